"""The method's config sections (`lppo.lp`, `lppo.pg`, `lppo.curation`): LPPO's constants as
defaults, every rule of `learner/algo/` reads its numbers from here (docs/design.md, 2)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lppo.core.config.section import Section


class LPConfig(Section):
    enabled: bool = True
    """Learning-progress weighting; off: every group weighs 1."""
    beta: float = Field(0.8, ge=0.0, lt=1.0)
    """EMA factor: ema_t = beta * ema_{t-1} + (1 - beta) * p_t."""
    kappa: float = Field(8.0, ge=0.0)
    """Slope of the sigmoid on progress."""
    bias: float = Field(0.5, ge=0.0)
    """Weight offset b in w = b + sigmoid(kappa * progress) (1 when nothing moves)."""
    renormalize: bool = True
    """Rescale weights to mean 1 over the batch."""
    signal: Literal["current", "lagged", "fast_slow"] = "current"
    """Which progress weights a group: `current`, the EMA's move caused by this very group
    (0 for guided groups; LPPO's formula); `lagged`, the sample's last progress before this
    group (guided groups included); `fast_slow`, a fast EMA (`beta_fast`) minus the EMA
    (`beta`), both before this group. The last two never contain the group they weight."""
    beta_fast: float = Field(0.5, ge=0.0, lt=1.0)
    """EMA factor of the fast EMA (`signal = "fast_slow"`); must be below `beta`."""

    @model_validator(mode="after")
    def _fast_is_faster(self) -> LPConfig:
        if self.signal == "fast_slow" and not self.beta_fast < self.beta:
            raise ValueError(f"lppo.lp.beta_fast: expected < lppo.lp.beta ({self.beta}), got "
                             f"{self.beta_fast}")
        return self


class PGConfig(Section):
    enabled: bool = True
    """Prefix-guided sampling; off: every sample is unguided."""
    r0: float = Field(0.5, gt=0.0, lt=1.0)
    """Initial prefix ratio (share of expert-solution tokens) once guidance starts."""
    step_up: float = Field(0.1, gt=0.0, lt=1.0)
    """Ratio increase after a guided group with no correct completion."""
    step_down: float = Field(0.1, gt=0.0, lt=1.0)
    """Ratio decrease after a guided group that mostly succeeds."""
    success_threshold: float = Field(0.5, gt=0.0, le=1.0)
    """Guided pass rate at or above which the ratio falls."""
    max_ratio: float = Field(0.9, gt=0.0, lt=1.0)
    """Largest prefix ratio; the final answer is never included whatever the ratio."""
    boundary: Literal["line", "sentence"] = "line"
    """Cut prefixes back to the last line (or sentence) boundary."""
    off_policy_loss: bool = False
    """LUFFY-style off-policy loss on prefix tokens (off: prefix tokens are masked)."""
    off_policy_gamma: float = Field(0.1, gt=0.0)
    """LUFFY's policy shaping on off-policy (prefix) tokens: the token term is
    -p / (p + gamma) * A with p the current token probability (LUFFY uses 0.1)."""
    off_policy_baseline: Literal["group", "ema", "last"] = "ema"
    """What the prefix's advantage is measured against: `group`, the guided group's own
    baseline (the expert's correct answer as a member of the group, LUFFY's choice; ~0 when
    the guided group mostly passes); `ema` / `last`, the sample's unguided pass rate (its EMA
    or its last unguided group): A = reward_correct - baseline, so a prefix the policy cannot
    write alone is pushed up even when every guided completion passes."""
    sft_coef: float = Field(0.0, ge=0.0)
    """Weight of a supervised term (negative log-likelihood) on the prefix tokens of guided
    groups with a correct completion (UFT / TRAPO-style); 0: off."""
    guided_share: float = Field(1.0, gt=0.0, le=1.0)
    """Share of a guided group's completions sampled with the prefix; the rest are sampled
    without it and the advantages are taken over the mixed group (LUFFY's mixed rollouts).
    1: the whole group is guided. Below 1, at least one completion of each is guided and one
    unguided."""
    anneal: Literal["none", "linear", "cosine"] = "none"
    """Schedule of the largest prefix ratio over training: from `max_ratio` at step 0 to
    `final_max_ratio` at `anneal_steps`, so the policy is made to write the hard part itself."""
    anneal_steps: int = Field(0, ge=0)
    """Steps over which the largest ratio anneals (0: `learner.max_steps`)."""
    final_max_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    """Largest prefix ratio at the end of the anneal (0: no guidance by then)."""

    @model_validator(mode="after")
    def _ratio_order(self) -> PGConfig:
        if self.r0 > self.max_ratio:
            raise ValueError(
                f"lppo.pg.r0: expected <= lppo.pg.max_ratio ({self.max_ratio}), got {self.r0}"
            )
        if self.anneal != "none" and self.final_max_ratio > self.max_ratio:
            raise ValueError(f"lppo.pg.final_max_ratio: expected <= lppo.pg.max_ratio "
                             f"({self.max_ratio}), got {self.final_max_ratio}")
        return self

    @property
    def prefix_terms(self) -> bool:
        """Whether guided groups teach their prefix (an off-policy or a supervised term)."""
        return self.enabled and (self.off_policy_loss or self.sft_coef > 0.0)


class CurationConfig(Section):
    enabled: bool = True
    """Online curation; off: every group is trained on and no sample retires."""
    drop_all_correct: bool = True
    """Leave all-correct groups out of the batch (no group-relative signal)."""
    drop_all_wrong: bool = True
    """Leave all-wrong groups out of the batch."""
    retire_after: int = Field(3, ge=1)
    """Consecutive all-correct unguided groups before a sample is retired (`solved`)."""
    park_after: int = Field(3, ge=1)
    """Consecutive all-wrong groups at the largest prefix before a sample is parked."""
    recheck_fraction: float = Field(0.05, ge=0.0, le=1.0)
    """Share of dispatched work drawn from solved/parked samples."""
    overdispatch: float = Field(1.5, ge=1.0)
    """Work handed out per batch slot, to keep batches full after curation."""
    revisit_steps: int = Field(0, ge=0)
    """A sample whose last group failed unguided, or was guided, is dispatched again before
    any other once this many learner steps have passed since that group arrived (oldest
    first), so hard samples come back within a bounded number of steps however large the set.
    0: plain least-recently-dispatched order."""


class LPPOConfig(Section):
    lp: LPConfig = Field(default_factory=LPConfig)
    """Learning-progress weighting."""
    pg: PGConfig = Field(default_factory=PGConfig)
    """Prefix-guided sampling."""
    curation: CurationConfig = Field(default_factory=CurationConfig)
    """Online curation."""
