"""The ablation bench's runs, measures and report (`bench/ablation.py`).

`Grid` owns what the runs share: one temporary folder, one ledger (a run per arm and seed),
one generation engine (`actor.engine`, in this process) and one reward pool. The engine is
reset to the warm start's weights at the start of each run, and torch's RNG is seeded with the
run's seed (the transformers engine samples with it). After each run the kept weight versions are scored
with the demo's exact measure (`lppo.demo.measure.expert_solution_logprobs`: the probability
of writing the expert solution, teacher-forced, no sampling noise) and deleted.
"""

from __future__ import annotations

import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.probe_parts import mean_se

LEVEL_NAMES = {1: "L1", 2: "L2", 3: "L3"}


class Grid:
    """Runs arms x seeds one after the other; see the module docstring."""

    def __init__(self, steps: int, measure_every: int, keep: bool = False):
        self.steps, self.every, self.keep = steps, measure_every, keep
        self.results: dict[tuple[str, int], dict[str, Any]] = {}
        self.engine = self.pool = self.ledger = None
        self.base: dict[str, float] | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="lppo-ablation-"))

    def __enter__(self) -> Grid:
        from store.ledger import Ledger

        self.ledger = Ledger(f"sqlite:///{self.tmp / 'ledger.db'}")
        return self

    def __exit__(self, *exc: object) -> None:
        for closer in (self.pool, self.engine, self.ledger):
            if closer is not None:
                closer.close()
        if self.keep:
            print(f"runs and ledger kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- one run -----------------------------------------------------------------------------

    def run(self, arm: str, seed: int, overrides: list[str]) -> dict[str, Any]:
        from bench.common import demo_config
        from bench.inproc import InProcessRun

        cfg = demo_config(self.tmp, f"{arm}-s{seed}", [
            *overrides, f"run.seed={seed}", f"learner.max_steps={self.steps}"])
        self._open_shared(cfg)
        t0 = time.perf_counter()
        with InProcessRun(cfg, self.engine, self.pool, self.ledger) as run:
            stats = run.train(keep_every=self.every)
        wall = time.perf_counter() - t0
        curve, final = self._measure(cfg, stats.kept)
        result = {"arm": arm, "seed": seed, "wall_s": wall, "steps": stats.steps,
                  "stopped": stats.stopped, "gen_s": stats.gen_s, "train_s": stats.train_s,
                  "l3_curve": curve, "final_levels": final,
                  **self._ledger_facts(cfg.run.name)}
        self.results[(arm, seed)] = result
        shutil.rmtree(cfg.run.run_dir / "weights", ignore_errors=True)
        print(_run_line(result), flush=True)
        return result

    def _open_shared(self, cfg) -> None:
        import torch

        torch.manual_seed(cfg.run.seed)  # the transformers engine samples with torch's RNG
        if self.engine is None:
            from actor.engine import create_engine
            from actor.reward import RewardPool

            self.engine = create_engine(cfg)
            self.pool = RewardPool(cfg.actor.reward)

    # -- measures ----------------------------------------------------------------------------

    def _measure(self, cfg, kept: list[int]) -> tuple[dict[int, dict], dict[str, float]]:
        """Per version (0 and every kept one): the level-3 measures (`LEVEL3`); at the last
        version, levels 1 and 2 as well."""
        model = Path(cfg.model.path)
        sets = problem_sets()
        weights = [cfg.run.run_dir / "weights" / f"v{v}" for v in kept]
        if self.base is None:  # the warm start, the same for every run
            self.base = {name: _score(model, sets[name], [None], part)[0]
                         for name, part in MEASURES.items()}
        per_version = {name: _score(model, sets[name], weights, part)
                       for name, part in LEVEL3.items()}
        curve = {0: {name: self.base[name] for name in LEVEL3}}
        for i, v in enumerate(kept):
            curve[v] = {name: per_version[name][i] for name in LEVEL3}
        final = {**curve[kept[-1]], **{f"{n}_step0": self.base[n] for n in MEASURES}}
        for name in ("L1", "L2"):
            final[name] = _score(model, sets[name], weights[-1:], None)[0]
        return curve, final

    def _ledger_facts(self, run_name: str) -> dict[str, Any]:
        """Visits per sample, rescues, statuses and guided groups, from the run's ledger."""
        from store.queries import LedgerReader

        with LedgerReader(str(self.ledger.engine.url)) as reader:
            run_id = reader.run_id(run_name)
            visits = [n for (n,) in reader.sql(
                f"SELECT count(*) FROM rollout_groups WHERE run_id = {run_id} "
                "GROUP BY sample_id").rows]
            statuses = dict(reader.sql(f"SELECT status, count(*) FROM sample_state WHERE "
                                       f"run_id = {run_id} GROUP BY status").rows)
            guided, groups = reader.sql(
                f"SELECT sum(CASE WHEN prefix_len > 0 THEN 1 ELSE 0 END), count(*) FROM "
                f"rollout_groups WHERE run_id = {run_id}").rows[0]
            rescued = len(reader.rescued(run_id))
            signal, rollouts, trained = reader.sql(
                f"SELECT sum(CASE WHEN n_correct > 0 AND n_correct < n THEN 1 ELSE 0 END), "
                f"sum(n), sum(CASE WHEN used_in_step IS NOT NULL THEN 1 ELSE 0 END) "
                f"FROM rollout_groups WHERE run_id = {run_id}").rows[0]
        return {"visits_min": min(visits), "visits_mean": statistics.fmean(visits),
                "rescued": rescued, "statuses": statuses, "guided_groups": int(guided or 0),
                "groups": int(groups), "signal_share": int(signal or 0) / max(1, int(groups)),
                "rollouts_per_trained": int(rollouts or 0) / max(1, int(trained or 0))}

    # -- the report --------------------------------------------------------------------------

    def report(self, target_gain: float, baseline: str) -> dict[str, Any]:
        arms = list(dict.fromkeys(arm for arm, _ in self.results))
        lines = ["", "gains from step 0, mean +- standard error over seeds: L3 = level-3 exact "
                 "accuracy (points) on 1,000 held-out problems, L3_hard = mean log-prob of the "
                 "first half of their expert solutions (nats), sel_* = the same on the 500 "
                 f"selection problems; target: L3 step 0 + {target_gain:g} points", ""]
        numbers: dict[str, Any] = {"runs": list(self.results.values()), "arms": {}}
        for arm in arms:
            row = self._arm_numbers(arm, target_gain, baseline)
            numbers["arms"][arm] = row
            lines.append(_arm_line(arm, row, baseline))
        return {"lines": lines, "numbers": numbers}

    def _arm_numbers(self, arm: str, target_gain: float, baseline: str) -> dict[str, Any]:
        runs = {s: r for (a, s), r in self.results.items() if a == arm}
        base = {s: r for (a, s), r in self.results.items() if a == baseline}
        out: dict[str, Any] = {"seeds": sorted(runs)}
        for key in LEVEL3:
            gains = {s: _gain(r, key) for s, r in runs.items()}
            out[key] = mean_se([r["final_levels"][key] for r in runs.values()])
            out[f"{key}_gain"] = mean_se(list(gains.values()))
            paired = [g - _gain(base[s], key) for s, g in gains.items() if s in base]
            out[f"{key}_vs_{baseline}"] = (mean_se(paired) if paired and arm != baseline
                                           else None)
        first = next(iter(runs.values()))["final_levels"]
        for level in ("L1", "L2"):
            out[level] = mean_se([r["final_levels"][level] for r in runs.values()])
            out[f"{level}_step0"] = first[f"{level}_step0"]
        out.update(
            steps_to_target=[_steps_to(r["l3_curve"], target_gain) for r in runs.values()],
            visits_min=min(r["visits_min"] for r in runs.values()),
            visits_mean=statistics.fmean(r["visits_mean"] for r in runs.values()),
            rescued=statistics.fmean(r["rescued"] for r in runs.values()),
            solved=statistics.fmean(r["statuses"].get("solved", 0) for r in runs.values()),
            parked=statistics.fmean(r["statuses"].get("parked", 0) for r in runs.values()),
            groups=statistics.fmean(r["groups"] for r in runs.values()),
            signal_share=mean_se([r["signal_share"] for r in runs.values()]),
            rollouts_per_trained=mean_se([r["rollouts_per_trained"] for r in runs.values()]),
            wall_s=statistics.fmean(r["wall_s"] for r in runs.values()))
        return out


LEVEL3 = {"L3": None, "L3_hard": 0.5, "sel_L3": None, "sel_L3_hard": 0.5}
"""The measures taken at every kept version: exact accuracy (%) of the whole expert solution
(None) or mean log-prob of its first half (0.5: the multiplication, the hard part), on the
reported held-out set (`L3...`) and on the selection set (`sel_...`)."""
MEASURES = {**LEVEL3, "L1": None, "L2": None}


def problem_sets() -> dict[str, list]:
    """Reported: `DemoRecipe.measure_set` (1,000 per level, the demo's exact measure).
    Selection: 500 level-3 problems of `DemoRecipe.probe_set`, disjoint from it; choices made
    from the bench (LP signal, the full arm's options) read these, never the reported set."""
    from lppo.demo.pipeline import EXACT_PER_LEVEL
    from lppo.demo.warmstart import DemoRecipe

    recipe = DemoRecipe()
    held = recipe.measure_set(EXACT_PER_LEVEL)
    sel = [p for p in recipe.probe_set(500, EXACT_PER_LEVEL) if p.level == 3]
    by = {lv: [p for p in held if p.level == lv] for lv in LEVEL_NAMES}
    return {"L1": by[1], "L2": by[2], "L3": by[3], "L3_hard": by[3], "sel_L3": sel,
            "sel_L3_hard": sel}


def _score(model: Path, problems: list, weights: list, part: float | None) -> list[float]:
    """Per weights entry: exact accuracy in % (`part` None) or the mean log-prob of the part."""
    from lppo.demo.measure import expert_solution_logprobs

    rows = expert_solution_logprobs(model, problems, weights, part=part)
    if part is None:
        return [100.0 * statistics.fmean(math.exp(x) for x in row) for row in rows]
    return [statistics.fmean(row) for row in rows]


def _steps_to(curve: dict[int, dict], gain: float) -> int | None:
    target = curve[0]["L3"] + gain
    return next((s for s, v in sorted(curve.items()) if s and v["L3"] >= target), None)


def _run_line(r: dict[str, Any]) -> str:
    curve = " / ".join(f"{v['L3']:.2f}" for _, v in sorted(r["l3_curve"].items()))
    hard = " / ".join(f"{v['L3_hard']:.2f}" for _, v in sorted(r["l3_curve"].items()))
    f = r["final_levels"]
    return (f"{r['arm']:20s} seed {r['seed']}: L3 {curve}  hard part {hard}  "
            f"L1 {f['L1_step0']:.1f}->"
            f"{f['L1']:.1f}  L2 {f['L2_step0']:.1f}->{f['L2']:.1f}  visits {r['visits_min']}-"
            f"{r['visits_mean']:.1f}  rescued {r['rescued']}  status {r['statuses']}  "
            f"{r['wall_s']:.0f} s" + (f"  ({r['stopped']})" if r["stopped"] else ""))


def _gain(run: dict[str, Any], key: str) -> float:
    return run["final_levels"][key] - run["final_levels"][f"{key}_step0"]


def _arm_line(arm: str, n: dict[str, Any], baseline: str) -> str:
    def part(key: str, unit: str, spec: str) -> str:
        (g, se), vs = n[f"{key}_gain"], n[f"{key}_vs_{baseline}"]
        paired = "" if vs is None else f", vs {baseline} {vs[0]:{spec}} +- {vs[1]:.3f}"
        return f"{key} gain {g:{spec}} +- {se:.3f}{unit}{paired}"

    reached = [s for s in n["steps_to_target"] if s is not None]
    to = (f"{statistics.fmean(reached):.0f} steps ({len(reached)}/{len(n['steps_to_target'])})"
          if reached else f"never (0/{len(n['steps_to_target'])})")
    return (f"{arm:20s} " + "; ".join(part(k, u, f) for k, u, f in (
        ("L3", " pts", "+.3f"), ("L3_hard", " nats", "+.3f"), ("sel_L3", " pts", "+.3f"),
        ("sel_L3_hard", " nats", "+.3f")))
            + f"\n{'':20s} L1 {n['L1_step0']:.1f}->{n['L1'][0]:.1f}, L2 {n['L2_step0']:.1f}->"
            f"{n['L2'][0]:.1f}; target {to}; groups {n['groups']:.0f}; visits >= "
            f"{n['visits_min']} (mean "
            f"{n['visits_mean']:.1f}); rescued {n['rescued']:.1f}, solved {n['solved']:.1f}, "
            f"parked {n['parked']:.1f}; signal {n['signal_share'][0]:.3f} +- "
            f"{n['signal_share'][1]:.3f} of groups; {n['rollouts_per_trained'][0]:.1f} rollouts "
            f"per trained group; {n['wall_s']:.0f} s/run")
