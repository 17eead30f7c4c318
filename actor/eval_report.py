"""An evaluation's results: per problem, per benchmark and per report; pass@k; the paired
comparison of two evaluations; their rows in the ledger.

pass@k uses the unbiased estimator of Chen et al. 2021 (Codex), 1 - C(n-c, k) / C(n, k) for n
samples of which c are correct, averaged over problems; with n = k it is the share of problems
with at least one correct sample. A sample counts as correct when its verdict is `correct`.
`actor/evaluate.py` produces these reports.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lppo.core.config.schema import Config
from lppo.core.vocab import Verdict
from store.ledger import Ledger
from store.records import EvalRecord


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with `c` correct among `n` samples (needs n >= k)."""
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: expected 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: expected 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    # 1 - C(n-c, k) / C(n, k) as a product: exact enough and no huge binomials.
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def metric_name(k: int) -> str:
    return f"pass@{k}"


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


@dataclass
class ProblemResult:
    """The k samples of one problem and their verdicts."""

    key: str
    """The problem's source key in its data set."""
    answer: str
    """Gold answer."""
    verdicts: list[str]
    finish_reasons: list[str]
    lengths: list[int]
    """Completion lengths in tokens."""
    texts: list[str]

    @property
    def correct(self) -> int:
        return sum(v == Verdict.CORRECT for v in self.verdicts)


@dataclass
class BenchmarkResult:
    """One benchmark's problems, with pass@1 / pass@k and what the verifier said."""

    name: str
    k: int
    problems: list[ProblemResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Source keys of problems left out: prompt longer than `data.max_prompt_tokens` (or empty)."""
    seconds: float = 0.0
    """Wall time from the start until its last request finished generating (benchmarks are
    generated concurrently, so these overlap)."""

    @property
    def n(self) -> int:
        """Problems evaluated (the `n` of the ledger rows)."""
        return len(self.problems)

    def pass_at(self, k: int) -> float:
        """Mean unbiased pass@k over the problems (NaN when there are none)."""
        if not self.problems:
            return math.nan
        return sum(pass_at_k(len(p.verdicts), p.correct, k) for p in self.problems) / self.n

    def metrics(self) -> dict[str, float]:
        """`pass@1` (averaged over the k samples) and, for k > 1, `pass@k`."""
        return {metric_name(k): self.pass_at(k) for k in sorted({1, self.k})}

    def verdict_counts(self) -> Counter[str]:
        return Counter(v for p in self.problems for v in p.verdicts)

    @property
    def truncated(self) -> float:
        """Share of samples that did not finish (cut by max_tokens or aborted)."""
        reasons = [r for p in self.problems for r in p.finish_reasons]
        return sum(r != "stop" for r in reasons) / len(reasons) if reasons else math.nan

    @property
    def mean_tokens(self) -> float:
        lengths = [n for p in self.problems for n in p.lengths]
        return sum(lengths) / len(lengths) if lengths else math.nan

    def records(self, step: int) -> list[EvalRecord]:
        """One ledger row per metric (none for a benchmark with no problems evaluated)."""
        if not self.problems:
            return []
        return [EvalRecord(step=step, benchmark=self.name, metric=name, value=value, n=self.n)
                for name, value in self.metrics().items()]

    def to_dict(self, texts: bool = True) -> dict[str, Any]:
        problems = [{"key": p.key, "answer": p.answer, "correct": p.correct,
                     "verdicts": p.verdicts, "finish_reasons": p.finish_reasons,
                     "lengths": p.lengths, **({"texts": p.texts} if texts else {})}
                    for p in self.problems]
        return {"name": self.name, "n": self.n, "k": self.k, "metrics": self.metrics(),
                "verdicts": dict(self.verdict_counts()), "truncated": self.truncated,
                "mean_tokens": self.mean_tokens, "skipped": self.skipped,
                "seconds": self.seconds, "problems": problems}


@dataclass
class EvalReport:
    """Every benchmark of one evaluation of one model at one step."""

    model: str
    step: int
    k: int
    sampling: dict[str, Any]
    """temperature, top_p, max_tokens used."""
    benchmarks: list[BenchmarkResult]
    seconds: float

    def records(self) -> list[EvalRecord]:
        """The `eval_results` rows: one per benchmark and metric, at `step`."""
        return [r for b in self.benchmarks for r in b.records(self.step)]

    def to_dict(self, texts: bool = True) -> dict[str, Any]:
        return {"model": self.model, "step": self.step, "k": self.k, "sampling": self.sampling,
                "seconds": self.seconds,
                "benchmarks": [b.to_dict(texts) for b in self.benchmarks]}


@dataclass(frozen=True)
class PairedGain:
    """`after` minus `before` on the same problems, as a paired comparison."""

    n: int
    """Problems in both evaluations."""
    before: float
    after: float
    gain: float
    """Mean over problems of (pass@1 after - pass@1 before)."""
    stderr: float
    """Standard error of that mean: sd of the per-problem differences / sqrt(n)."""

    @property
    def z(self) -> float:
        """gain / stderr (inf for a gain with no spread at all, 0 for none)."""
        if self.stderr > 0:
            return self.gain / self.stderr
        return 0.0 if self.gain == 0 else math.copysign(math.inf, self.gain)

    @classmethod
    def of(cls, before: Sequence[float], after: Sequence[float]) -> PairedGain:
        """From per-problem values, `before[i]` and `after[i]` on the same problem i."""
        if len(before) != len(after):
            raise ValueError(f"paired values: {len(before)} before but {len(after)} after")
        n = len(before)
        if n < 2:
            raise ValueError(f"a paired gain needs >= 2 problems in both evaluations, got {n}")
        diffs = [b - a for a, b in zip(before, after, strict=True)]
        mean = sum(diffs) / n
        var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
        return cls(n=n, before=sum(before) / n, after=sum(after) / n, gain=mean,
                   stderr=math.sqrt(var / n))


def paired_gain(before: EvalReport, after: EvalReport) -> PairedGain:
    """Compare two evaluations problem by problem (benchmark name + source key).

    Why paired: problems differ far more in difficulty than the two models do, so the
    per-problem differences have a much smaller spread than either accuracy; the standard
    error of their mean is what sampling noise (k samples per problem) would move the gain
    by. z = gain / stderr >= 3 happens by chance with probability ~0.1% (normal approximation;
    n in the hundreds).
    """
    def rates(report: EvalReport) -> dict[tuple[str, str], float]:
        return {(b.name, p.key): p.correct / len(p.verdicts)
                for b in report.benchmarks for p in b.problems if p.verdicts}

    a, b = rates(before), rates(after)
    keys = sorted(a.keys() & b.keys())
    return PairedGain.of([a[k] for k in keys], [b[k] for k in keys])


def record_report(cfg: Config, report: EvalReport) -> tuple[str, int]:
    """Write a report's rows to the ledger's `eval_results`, under run `run.name` (registered
    as a finished run if the ledger has no such run yet). Returns (ledger url, run id)."""
    with Ledger.open(cfg) as ledger:
        run_id = ledger.results_run(cfg.run.name, cfg.model_dump(mode="json"))
        ledger.record_evals(run_id, report.records())
        return ledger.url, run_id
