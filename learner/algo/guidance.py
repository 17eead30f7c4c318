"""What a guided group teaches about its prefix: the terms on prefix tokens, mixed groups.

PG-sampling gives a failing sample part of the expert solution as context. With the prefix
masked (LPPO as published) the group trains only the completion: the policy learns to
*finish* from the hint, while the part it fails at, the prefix, gets no gradient; and an
all-correct guided group is dropped by curation although its prefix is exactly what the
policy should learn to write. The options here give the prefix a learning signal, each an
ablation switch under `lppo.pg`:

    off_policy_loss   LUFFY (Yan et al. 2025, "Learning to Reason under Off-Policy
                      Guidance"): the prefix tokens as off-policy tokens with policy shaping
                      -p/(p+gamma) * A (`learner.algo.loss`), counted once per group, with
                      A measured against
        off_policy_baseline = group   the guided group's own baseline: A = (r_correct - mean_g)
                                      / scale_g, LUFFY's choice for an expert trace inside a
                                      group; ~0 when the guided group mostly passes
        off_policy_baseline = ema     the sample's *unguided* pass-rate EMA b, before this
                        / last        group (or its last unguided pass rate):
                                      A = r_correct - b. The expert's solution is correct; the
                                      policy alone passes b of the time; the difference is what
                                      writing the prefix is worth. Positive for every guided
                                      group of a sample the policy cannot solve alone.
    sft_coef          a supervised term, sft_coef * -log p, on the prefix tokens of guided
                      groups with a correct completion (UFT, Liu et al. 2025; TRAPO), once per
                      group.
    guided_share      mixed groups (LUFFY's mixed rollouts): a share of a guided group's
                      completions sees the prefix, the rest are sampled without it, and the
                      group-relative advantages are taken over the whole mixed group, so an
                      unguided success and a guided one compete in one baseline.

With a prefix term on, an all-correct guided group stays in the batch (its completions have
advantage 0, its prefix does not); see `learner.algo.curation.drop_reason`.

Every term is multiplied by the group's LP weight, like the completions' advantages. What was
applied is recorded per group in the ledger (`rollout_groups.prefix_term`, `.prefix_advantage`,
`.guided_n`) and drawn on the sample's trajectory page.
"""

from __future__ import annotations

from dataclasses import dataclass

from learner.algo.progress import SampleStats
from lppo.core.config.schema import PGConfig

MASKED = "masked"
"""`prefix_term` of a guided group whose prefix gets no gradient."""


@dataclass(frozen=True)
class PrefixSignal:
    """The terms one guided group puts on its prefix tokens."""

    advantage: float | None
    """Advantage of the off-policy term (LP weight applied); None: no off-policy term."""
    sft_weight: float
    """Weight of the supervised term (LP weight applied); 0: none."""

    @property
    def term(self) -> str:
        """`masked`, `off_policy`, `sft` or `off_policy+sft`: what the ledger records."""
        names = [n for n, on in (("off_policy", self.advantage is not None),
                                 ("sft", self.sft_weight > 0.0)) if on]
        return "+".join(names) or MASKED


NONE = PrefixSignal(advantage=None, sft_weight=0.0)


def guided_count(n: int, cfg: PGConfig) -> int:
    """How many of a guided group's `n` completions see the prefix (`pg.guided_share`): all
    at share 1, else round(share * n) kept within [1, n - 1], so a mixed group is mixed."""
    if n < 1:
        raise ValueError(f"n: expected >= 1, got {n}")
    if cfg.guided_share >= 1.0 or n == 1:
        return n
    return min(n - 1, max(1, round(cfg.guided_share * n)))


def unguided_baseline(stats: SampleStats, cfg: PGConfig) -> float:
    """The sample's unguided pass rate the prefix is measured against (`ema` or `last`), from
    its statistics before the group; 0 for a sample never seen unguided."""
    value = stats.ema if cfg.off_policy_baseline == "ema" else stats.last_pass_rate
    return 0.0 if value is None else float(value)


def prefix_signal(cfg: PGConfig, *, guided_correct: int, reward_correct: float,
                  group_advantage_of_correct: float, baseline: float,
                  lp_weight: float) -> PrefixSignal:
    """The prefix terms of one guided group (see the module docstring).

    `guided_correct`: correct completions among those that saw the prefix;
    `group_advantage_of_correct`: the advantage a correct completion gets in this group
    (`Advantages.of_reward(g, reward_correct)`), used by `off_policy_baseline = "group"`;
    `baseline`: `unguided_baseline` of the sample before this group.
    """
    if not cfg.prefix_terms:
        return NONE
    advantage = None
    if cfg.off_policy_loss:
        raw = (group_advantage_of_correct if cfg.off_policy_baseline == "group"
               else reward_correct - baseline)
        advantage = raw * lp_weight
    sft = cfg.sft_coef * lp_weight if cfg.sft_coef > 0.0 and guided_correct > 0 else 0.0
    return PrefixSignal(advantage=advantage, sft_weight=sft)
