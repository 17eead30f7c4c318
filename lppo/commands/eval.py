"""`lppo eval CONFIG --checkpoint PATH --benchmarks math500,aime24,gsm8k --k 4`: benchmark a model.

Samples k completions per problem with vLLM at `learner.eval`'s temperature and top-p, verifies
them with the training verifier, prints pass@1 (averaged over the k samples) and pass@k per
benchmark as a table, and records them in the ledger's `eval_results` under `run.name`, at the
step the checkpoint belongs to. The logic is `actor.evaluate`, `actor.eval_report` and
`actor.eval_targets`; this file parses arguments, resolves the checkpoint and benchmarks (every
user error before vLLM is imported), and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path

from lppo.commands import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval", help="evaluate a checkpoint on benchmarks (pass@1 over k samples, pass@k)",
        description="Evaluate a checkpoint or model on benchmarks: k samples per problem at "
        "learner.eval's temperature/top-p, verified like training rollouts; prints a table and "
        "records the results in the ledger's eval_results.")
    add_config_args(parser)
    parser.add_argument(
        "--checkpoint", metavar="PATH",
        help="a learner checkpoint (runs/NAME/checkpoints/step_N), a run directory (its newest "
        "checkpoint), a model folder or a hub name; default: the config's model.path")
    parser.add_argument(
        "--benchmarks", metavar="NAMES",
        help="comma-separated data sets: names in data.eval, or shipped ones (math500, aime24, "
        "aime25, amc23, gsm8k, ...); default: every data.eval entry")
    parser.add_argument("--k", type=int, metavar="K",
                        help="samples per problem (default: learner.eval.k)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="evaluate the first N problems of each benchmark only")
    parser.add_argument("--step", type=int, metavar="S",
                        help="step to record the results at (default: the checkpoint's step; "
                        "0 for a plain model)")
    parser.add_argument("--weights", metavar="DIR",
                        help="load these weights (a run's weights/vN folder or a safetensors "
                        "file) into the model before evaluating; needs --step")
    parser.add_argument("--output", metavar="FILE",
                        help="also write the full report (every sample's verdict and text) "
                        "as JSON")
    parser.add_argument("--no-ledger", action="store_true",
                        help="print (and --output) only; write nothing to the ledger")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from actor.eval_targets import EvalTargetError, parse_names, resolve_benchmarks, resolve_model
    from lppo.core.config import load_config
    from lppo.core.logs import setup_logging
    from store.datasets import read_dataset

    overrides = list(args.overrides)
    if args.k is not None:
        overrides.append(f"learner.eval.k={args.k}")
    if args.limit is not None:
        overrides.append(f"learner.eval.limit={args.limit}")
    cfg = load_config(args.config, overrides)
    setup_logging(cfg.run.log_level, cfg.run.log_format, process="eval")
    if args.weights is not None:
        if args.step is None:
            raise EvalTargetError("--weights: give the step these weights belong to with --step")
        if not Path(args.weights).exists():
            raise EvalTargetError(f"--weights {args.weights!r}: no such folder or file")
    fallback = cfg.model.tokenizer or cfg.model.path
    model = resolve_model(args.checkpoint or cfg.model.path, args.step, fallback)
    step = args.step if args.step is not None else model.step
    specs = resolve_benchmarks(parse_names(args.benchmarks or ""), cfg.data,
                               cfg.learner.eval.limit)
    data = [(spec.name, read_dataset(spec)) for spec in specs]  # bad files fail here, fast

    # vLLM logs to stdout by default; stdout is for the results table.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    from actor.eval_report import record_report
    from actor.evaluate import Evaluator

    with Evaluator(cfg, model.path, tokenizer=model.tokenizer) as ev:
        if args.weights is not None:
            ev.load_weights(args.weights)
        with generation_progress(sum(len(records) for _, records in data)) as progress:
            report = ev.evaluate_records(data, step, k=cfg.learner.eval.k, progress=progress)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_dict(), indent=1, allow_nan=True), encoding="utf-8")
    weights = f", weights {args.weights}" if args.weights else ""
    print(f"model: {report.model} ({model.kind}{weights}, step {report.step})")
    print_table(report)
    if args.output:
        print(f"full report: {args.output}")
    if not args.no_ledger:
        url, run_id = record_report(cfg, report)
        print(f"ledger: {len(report.records())} rows in eval_results of run {cfg.run.name!r} "
              f"(id {run_id}) at step {report.step}: {url}")
    return 0


@contextlib.contextmanager
def generation_progress(problems: int):
    """A progress bar on stderr (stdout is for the results) while problems are generated: a
    live bar on a terminal, else one line per tenth of the problems."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:

        def report(done: int, total: int) -> None:
            if done * 10 // total > (done - 1) * 10 // total:  # each tenth, and the last
                print(f"lppo eval: {done}/{total} problems generated", file=sys.stderr,
                      flush=True)

        yield report
        return
    with Progress("generating", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("generating", total=problems)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def print_table(report) -> None:
    """The report as a rich table on stdout: one row per benchmark."""
    from rich.console import Console
    from rich.table import Table

    s = report.sampling
    print(f"sampling: k={report.k}, temperature={s['temperature']:g}, top_p={s['top_p']:g}, "
          f"max_tokens={s['max_tokens']}")
    table = Table()
    for name, justify in [("benchmark", "left"), ("problems", "right"), ("pass@1", "right"),
                          (f"pass@{report.k}", "right"), ("verdicts", "left"),
                          ("truncated", "right"), ("tokens", "right"), ("s", "right")]:
        table.add_column(name, justify=justify, no_wrap=True)
    for b in report.benchmarks:
        counts = b.verdict_counts()
        verdicts = " ".join(f"{v}={c}" for v, c in counts.most_common())
        problems = f"{b.n}" + (f" (+{len(b.skipped)} skipped)" if b.skipped else "")
        table.add_row(b.name, problems, _pct(b.pass_at(1)), _pct(b.pass_at(report.k)),
                      verdicts or "-", _pct(b.truncated), _num(b.mean_tokens), f"{b.seconds:.1f}")
    Console(width=max(Console().width, 132)).print(table)


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def _num(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"
