"""Expert-solution cuts checked by the verifier that scores completions: no prefix can answer.

`learner.algo.prefix` stops every cut before the first line (or sentence) that states the
final answer, read syntactically: an answer marker, or a result equal to a numeric answer.
A solution can also state its answer in a form only the verifier recognises: an unsimplified
expression (`2^8 - 1^8` for 255, `2x+8x^2+9-4+2x+8x^2` for `16x^2+4x+5`). So before the first
step the learner puts every prefix a sample can get in front of the verifier (math-verify,
through the actors' `RewardPool`: worker processes with deadlines) as if it were a whole
answer, and stops the sample's cuts before the first one scored correct:

    for each sample with cuts:  texts = decode(solution[:k]) for every candidate length k
    first k whose text is correct  ->  cuts.stopped_before(k)

The actor verifies the completion alone, so a leaky prefix could never earn a reward; this
check keeps the prefix from doing the policy's last step for it. Cost: one verification per
line of each solution, once per learner start (the demo's 600 samples: under a second).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from actor.reward import RewardPool, Verdict
from learner.algo.prefix import SolutionCuts
from lppo.core.config.schema import RewardConfig

log = logging.getLogger(__name__)


def certify_cuts(tokenizer, solutions: Sequence[tuple[str, SolutionCuts]],
                 reward: RewardConfig) -> tuple[list[SolutionCuts], int]:
    """(cuts, how many were shortened) for `(gold answer, cuts)` pairs, in order."""
    if not solutions:
        return [], 0
    # Read every prefix as loosely as the verifier can (no marker needed): a prefix whose last
    # expression already equals the answer leaks it even if a run only rewards marked answers.
    with RewardPool(reward.model_copy(update={"require_anchor": False})) as pool:
        futures = []
        for answer, cuts in solutions:
            lengths = [k for k in cuts.candidates() if k > 0]
            texts = [tokenizer.decode(list(cuts.token_ids[:k])) for k in lengths]
            futures.append((lengths, pool.submit(answer, texts, ["stop"] * len(texts))
                            if texts else None))
        out, shortened = [], 0
        for (lengths, future), (_, cuts) in zip(futures, solutions, strict=True):
            scored = future.result() if future is not None else []
            hit = next((k for k, s in zip(lengths, scored, strict=True)
                        if s.verdict == Verdict.CORRECT), None)
            if hit is not None:
                cuts = cuts.stopped_before(hit)
                shortened += 1
            out.append(cuts)
    if shortened:
        log.info("%d of %d expert solutions state their answer before the syntactic cut; "
                 "their prefixes stop earlier", shortened, len(solutions))
    return out, shortened
