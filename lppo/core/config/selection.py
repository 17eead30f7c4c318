"""The parameters of the sample-selection policies (`learner.selection`; learner/algo/select.py).

Each policy with parameters has its own section under `learner`; setting the section of a
policy that is not selected is an error (`LearnerConfig`), so no value is accepted and
ignored."""

from __future__ import annotations

from pydantic import Field

from lppo.core.config.section import Section


class ThompsonConfig(Section):
    """MoPPS: a Beta posterior of each sample's unguided pass rate, Thompson-sampled."""

    target: float = Field(0.5, gt=0.0, lt=1.0)
    """Samples whose drawn pass rate is closest to this go first (0.5: groups most likely to be
    neither all-correct nor all-wrong)."""
    prior_alpha: float = Field(1.0, gt=0.0)
    """Beta prior's alpha (pseudo-successes) of a sample never observed."""
    prior_beta: float = Field(1.0, gt=0.0)
    """Beta prior's beta (pseudo-failures)."""
    decay: float = Field(1.0, gt=0.0, le=1.0)
    """Before each update the posterior moves back toward the prior by this factor
    (alpha <- decay * alpha + (1 - decay) * prior_alpha, same for beta): < 1 forgets old
    groups, since the policy's pass rate moves as it trains; 1 keeps every group."""


class TargetPassRateConfig(Section):
    """Prompt Curriculum Learning's rule with the ledger's statistics as the predictor."""

    target: float = Field(0.5, gt=0.0, lt=1.0)
    """Samples whose predicted pass rate is closest to this go first."""
    prior_rate: float = Field(0.5, ge=0.0, le=1.0)
    """Predicted pass rate of a sample not yet observed unguided."""


class CategoryBanditConfig(Section):
    """Self-Evolving Curriculum: a bandit over categories of the training set."""

    field: str | None = None
    """The data rows' field whose value is a sample's category (e.g. `level`, `type`);
    required with this policy. A training row without it is an error at start."""
    step_size: float = Field(0.5, gt=0.0, le=1.0)
    """TD(0) step: Q <- Q + step_size * (reward - Q), the reward being a group's mean absolute
    advantage."""
    temperature: float = Field(1.0, gt=0.0)
    """Boltzmann temperature: a category is drawn with probability proportional to
    exp(Q / temperature)."""
