"""`lppo demo`: the whole system on a laptop CPU, nothing downloaded.

    1. assets   warm-started tiny Qwen2 + task files (cached: the second run skips training)
    2. before   held-out accuracy of the warm-started model (vLLM, math-verify)
    3. train    `lppo run`: the learner and vLLM actors, LPPO, SQLite ledger in the run dir
    4. after    held-out accuracy of the final policy (same settings as before), and the
                exact probability of writing each expert solution of `EXACT_PER_LEVEL` more
                held-out problems per level, before and after
                (`measure.expert_solution_probability`: no sampling noise)
    5. report   accuracy before/after, samples rescued by prefixes, curation counts, where the
                ledger is, and the command that opens the dashboard on it

Both evaluations are written to the ledger's `eval_results` (steps 0 and the last step), so
the dashboard shows them next to the training curves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lppo.core.config import Config
from lppo.core.errors import UserError
from lppo.core.secrets import REVEAL, redact_url
from lppo.demo.assets import prepare_demo
from lppo.demo.warmstart import DemoRecipe

if TYPE_CHECKING:
    from actor.eval_report import PairedGain

log = logging.getLogger(__name__)

EXACT_PER_LEVEL = 1000
"""Held-out problems per level of the exact measure (`DemoRecipe.measure_set`). The measure
costs one teacher-forced pass (~20 s for 3,000 problems on 2 cores), so it can afford ten
times the sampled evaluation's problems: its gain's only noise is which problems were drawn,
and 3,000 of them make a 1-point gain 7-15 standard errors (300 made it 2.7-4.5)."""

class DemoError(UserError):
    """The demo could not finish; the message says which part failed and where its log is."""


@dataclass
class DemoResult:
    accuracy_before: float
    accuracy_after: float
    steps: int
    rescued: int
    rescued_prefix_ratio: float | None
    statuses: dict[str, int]
    drops: dict[str, int]
    guided_groups: int
    groups: int
    ledger: str
    run_dir: Path
    exit_code: int
    seconds: dict[str, float]
    gain: PairedGain | None = None
    """After minus before, paired per problem, with its standard error and z
    (`actor.eval_report.paired_gain`)."""
    exact: PairedGain | None = None
    """The same for the exact probability of writing the expert solution, on
    `EXACT_PER_LEVEL` held-out problems per level (no sampling noise; its standard error is the
    problems' spread only)."""
    exact_levels: dict[int, PairedGain] = field(default_factory=dict)
    """`exact` per level; the hard level (3) is the one LPPO's guidance is for."""
    visits: tuple[int, float] = (0, 0.0)
    """Groups per sample: the fewest, and the mean."""


def with_assets(cfg: Config, cache_root: Path, recipe: DemoRecipe) -> Config:
    """The config pointed at the demo's model and data (whatever paths the file gave)."""
    assets = prepare_demo(cache_root, recipe)
    raw = cfg.model_dump(mode="json", context=REVEAL)
    raw["model"]["path"] = str(assets.model_dir)
    for spec in raw["data"]["train"]:
        spec["path"] = str(assets.trusted)
    for spec in raw["data"]["eval"]:
        spec["path"] = str(assets.eval)
    return Config.model_validate(raw)


def evaluate(cfg: Config, step: int, weights: Path | None = None):
    """pass@1 (mean over k samples) on `data.eval` and the report to record later."""
    from actor.evaluate import evaluate_model

    report = evaluate_model(cfg, cfg.model.path, cfg.data.eval, step=step, weights=weights)
    values = [b.metrics()["pass@1"] for b in report.benchmarks]
    return sum(values) / len(values), report


def run_demo(cfg: Config, recipe: DemoRecipe = DemoRecipe(),
             cache_root: Path | None = None) -> DemoResult:
    """The whole demo (module docstring); assets cached in `cache_root` (default
    `run.output_dir/_cache`)."""
    from lppo.launcher import Supervisor

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    cfg = with_assets(cfg, cache_root or cfg.run.output_dir / "_cache", recipe)
    seconds["assets"] = time.perf_counter() - t
    t = time.perf_counter()
    before, report_before = evaluate(cfg, step=0)
    seconds["eval_before"] = time.perf_counter() - t
    print(f"held-out accuracy before RL: {before:.1%}", flush=True)
    t = time.perf_counter()
    result = Supervisor(cfg).run()
    seconds["train"] = time.perf_counter() - t
    if result.exit_code:
        raise DemoError(f"the training run failed: {result.reason}")
    t = time.perf_counter()
    steps, version = _last_step(cfg)
    after, report_after = evaluate(cfg, step=steps,
                                   weights=cfg.run.run_dir / "weights" / f"v{version}")
    seconds["eval_after"] = time.perf_counter() - t
    # Recorded once the learner has created the run (the learner is the run's only writer
    # while it trains).
    from actor.eval_report import paired_gain, record_report

    record_report(cfg, report_before)
    record_report(cfg, report_after)
    summary = _summary(cfg, before, after, steps, result.exit_code, seconds)
    summary.gain = paired_gain(report_before, report_after)
    summary.exact, summary.exact_levels = exact_gain(
        cfg, recipe, cfg.run.run_dir / "weights" / f"v{version}")
    return summary


def exact_gain(cfg: Config, recipe: DemoRecipe,
               weights: Path) -> tuple[PairedGain, dict[int, PairedGain]]:
    """`exact_accuracy` of the warm start vs `weights`, paired per problem: over all levels,
    and per level."""
    from actor.eval_report import PairedGain

    before, after = exact_accuracy(cfg, recipe, (None, weights))
    levels = [p.level for p in recipe.measure_set(EXACT_PER_LEVEL)]
    per_level = {}
    for lv in sorted(set(levels)):
        idx = [i for i, x in enumerate(levels) if x == lv]
        per_level[lv] = PairedGain.of([before[i] for i in idx], [after[i] for i in idx])
    return PairedGain.of(before, after), per_level


def exact_accuracy(cfg: Config, recipe: DemoRecipe,
                   weights: Sequence[Path | None]) -> list[list[float]]:
    """Exact P(expert solution) per problem on `EXACT_PER_LEVEL` held-out problems per level
    (`recipe.measure_set`), for each entry of `weights` (None: the warm start's own)."""
    from lppo.demo.measure import expert_solution_probability

    return expert_solution_probability(Path(cfg.model.path),
                                       recipe.measure_set(EXACT_PER_LEVEL), weights)


def _last_step(cfg: Config) -> tuple[int, int]:
    from store.queries import LedgerReader

    with LedgerReader(cfg.ledger_url) as reader:
        rows = reader.sql(
            f"SELECT MAX(step), MAX(policy_version) FROM train_steps WHERE run_id = "
            f"(SELECT id FROM runs WHERE name = '{cfg.run.name}')").rows
    step, version = rows[0]
    return int(step or 0), int(version or 0)


def _summary(cfg: Config, before: float, after: float, steps: int, code: int,
             seconds: dict[str, float]) -> DemoResult:
    from store.queries import LedgerReader

    with LedgerReader(cfg.ledger_url) as reader:
        run = reader.run_id(cfg.run.name)
        rows = reader.rescued(run)
        rescued = len(rows)
        ratio = (sum(r["mean_prefix_ratio"] for r in rows) / rescued) if rows else None
        statuses = dict(reader.sql(f"SELECT status, COUNT(*) FROM sample_state WHERE run_id = "
                                   f"{run} GROUP BY status").rows)
        drops = dict(reader.sql(f"SELECT dropped_reason, COUNT(*) FROM rollout_groups WHERE "
                                f"run_id = {run} AND dropped_reason IS NOT NULL "
                                f"GROUP BY dropped_reason").rows)
        guided, groups = reader.sql(f"SELECT SUM(CASE WHEN prefix_len > 0 THEN 1 ELSE 0 END), "
                                    f"COUNT(*) FROM rollout_groups WHERE run_id = {run}").rows[0]
        visits = [n for (n,) in reader.sql(f"SELECT COUNT(*) FROM rollout_groups WHERE run_id "
                                           f"= {run} GROUP BY sample_id").rows]
    return DemoResult(
        accuracy_before=before, accuracy_after=after, steps=steps, rescued=int(rescued or 0),
        rescued_prefix_ratio=ratio, statuses=statuses, drops=drops,
        guided_groups=int(guided or 0), groups=int(groups or 0), ledger=redact_url(cfg.ledger_url),
        run_dir=cfg.run.run_dir, exit_code=code, seconds=seconds,
        visits=(min(visits), sum(visits) / len(visits)) if visits else (0, 0.0),
    )


def _noise(g: PairedGain | None) -> str:
    if g is None:
        return ""
    return (f"  ({g.gain * 100:+.1f} points, paired standard error {g.stderr * 100:.1f}, "
            f"z = {g.z:.1f})")


def report(r: DemoResult, lppo: str = "lppo") -> str:
    """The text `lppo demo` prints at the end; `lppo` is how to type the command again
    (`lppo.commands.invoked_as`), so the printed lines work when pasted."""
    ratio = "" if r.rescued_prefix_ratio is None else \
        f" (mean prefix ratio while guided: {r.rescued_prefix_ratio:.2f})"
    lines = [
        "",
        f"LPPO demo: {r.steps} learner steps in {r.seconds.get('train', 0):.0f} s "
        f"(assets {r.seconds.get('assets', 0):.0f} s, evaluation "
        f"{r.seconds.get('eval_before', 0) + r.seconds.get('eval_after', 0):.0f} s)",
        f"  held-out accuracy (pass@1): before {r.accuracy_before:.1%}  ->  after "
        f"{r.accuracy_after:.1%}" + _noise(r.gain),
    ]
    if r.exact is not None:
        lines.append(f"  expert solution written verbatim (exact probability on {r.exact.n:,} "
                     f"held-out problems, no sampling noise): before {r.exact.before:.1%}  ->  "
                     f"after {r.exact.after:.1%}"
                     + _noise(r.exact))
    for lv, g in sorted(r.exact_levels.items(), reverse=True):
        name = "hard level 3" if lv == max(r.exact_levels) else f"level {lv}"
        lines.append(f"    {name} ({g.n:,} problems): before {g.before:.2%}  ->  after "
                     f"{g.after:.2%}  ({g.gain * 100:+.2f} points, se {g.stderr * 100:.2f}, "
                     f"z = {g.z:.1f})")
    lines += [
        f"  samples rescued by prefixes (failed unguided, then guided, later passed "
        f"unguided): {r.rescued}{ratio}",
        f"  groups: {r.groups} ({r.guided_groups} prefix-guided; {r.visits[1]:.1f} per sample, "
        f"at least {r.visits[0]}); dropped by curation: "
        + (", ".join(f"{k} {v}" for k, v in sorted(r.drops.items())) or "none"),
        "  sample status: " + ", ".join(f"{k} {v}" for k, v in sorted(r.statuses.items())),
        f"  ledger: {r.ledger}",
        f"  dashboard: {lppo} dashboard {r.run_dir}",
        f"  query it:  {lppo} sql {r.run_dir} \"SELECT step, loss, groups_used FROM train_steps\"",
    ]
    return "\n".join(lines)
