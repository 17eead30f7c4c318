"""Actor throughput against bare vLLM, and weight-update latency, measured in one run.

    .venv/bin/python bench/actor.py [--prompts 64] [--n 8] [--max-tokens 96]

1. bare:  `vllm.LLM.generate` on the prompts (token ids), same engine settings and sampling
          (`logprobs=0`, as the actor asks), in a fresh process: completions per second.
2. actor: the same prompts as work items served by the learner's `ActorGateway` over real
          ZeroMQ sockets to a real `lppo actor` process (vLLM engine, math-verify pool,
          outbox/acks): verified completions per second from the first work handed out to
          the last group received.
3. weights: after the throughput run, publish new weights (`WeightsReady`) while work is in
          flight and time (a) until the actor reports them loaded and (b) until the first
          group sampled with the new version arrives.

Prints the ratio actor/bare (target >= 0.90). The two runs are sequential (one engine at a
time on 2 cores); the model is the demo's tiny Qwen2 (random init, built locally).
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


def _config(model_dir: Path, run_dir: Path, args) -> dict:
    from lppo.testing.postgres import free_ports

    work, rollouts, weights = free_ports(3)
    return {
        "run": {"name": "bench-actor", "output_dir": str(run_dir), "log_level": "WARNING"},
        "model": {"path": str(model_dir), "dtype": "float32", "max_model_len": 512},
        "data": {"prompt_format": "plain", "max_prompt_tokens": 128},
        "actor": {"slots": args.prompts, "kv_cache_gib": 1,
                  "sampling": {"temperature": 1.0, "max_tokens": args.max_tokens},
                  "reward": {"workers": 1}},
        "transport": {"work_port": work, "rollout_port": rollouts, "weights_port": weights},
    }


def _problems(count: int) -> list[tuple[str, str]]:
    from lppo.demo import task

    problems = task.generate(seed=123, counts={1: count // 2, 2: count - count // 2})
    return [(p.problem, p.answer) for p in problems[:count]]


def bare_main(cfg_path: str, n: int, out_path: str) -> None:
    """Child process: bare vLLM generate on the bench prompts."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from lppo.core.config import load_config

    cfg = load_config(cfg_path)
    llm = LLM(model=cfg.model.path, dtype="float32", max_model_len=cfg.model.max_model_len,
              enforce_eager=True, seed=cfg.run.seed)
    tok = llm.get_tokenizer()
    prompts = [TokensPrompt(prompt_token_ids=tok.encode(cfg.data.plain_template.format(problem=p),
                                                        add_special_tokens=False))
               for p, _ in _problems(cfg.actor.slots)]
    params = SamplingParams(n=n, temperature=cfg.actor.sampling.temperature,
                            max_tokens=cfg.actor.sampling.max_tokens, logprobs=0)
    llm.generate(prompts[:2], params, use_tqdm=False)  # warm-up
    start = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    completions = sum(len(o.outputs) for o in outs)
    tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
    Path(out_path).write_text(json.dumps({"seconds": seconds, "completions": completions,
                                          "tokens": tokens}))


def run_bare(cfg_path: Path, n: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, __file__, "--bare-child", str(cfg_path), str(n), out.name],
                       check=True, cwd=ROOT)
        return json.loads(Path(out.name).read_text())


def run_actor(cfg, cfg_path: Path, n: int) -> dict:
    import torch
    import zmq
    from transformers import AutoModelForCausalLM

    from learner.gateway import ActorGateway
    from lppo.core.transport import Endpoints, LearnerSockets
    from lppo.core.weightfiles import write_weights
    from lppo.core.wire import WorkItem

    ends = Endpoints.from_config(cfg.transport, cfg.run.run_dir)
    ctx = zmq.Context()
    socks = LearnerSockets.bind(ctx, ends, cfg.transport)
    queue: list[WorkItem] = []
    gateway = ActorGateway(socks, lambda _a, slots: [queue.pop(0) for _ in range(min(slots, len(queue)))])
    proc = subprocess.Popen([sys.executable, "-m", "lppo.cli", "actor", str(cfg_path),
                             "--actor-id", "bench-actor"], cwd=ROOT)
    try:
        def items(tag: str, count: int) -> list[WorkItem]:
            return [WorkItem(attempt_id=f"{tag}-{i}", sample_id=i, prompt=p, n=n, answer=a)
                    for i, (p, a) in enumerate(_problems(count))]

        def drain(count: int) -> list:
            got: list = []
            deadline = time.perf_counter() + 900
            while len(got) < count:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{len(got)} of {count} groups in 900 s")
                groups = gateway.poll(timeout_ms=20)
                gateway.ack(groups)
                got += groups
            return got

        # warm-up: the actor's engine starts, one small round trip
        queue.extend(items("warm", 2))
        drain(2)
        queue.extend(items("run", cfg.actor.slots))
        start = time.perf_counter()
        groups = drain(cfg.actor.slots)
        seconds = time.perf_counter() - start
        completions = sum(len(g.completions) for g in groups)
        tokens = sum(c.token_ids.numpy().size for g in groups for c in g.completions)

        model = AutoModelForCausalLM.from_pretrained(cfg.model.path, dtype=torch.float32)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.01)
        notice = write_weights(model.state_dict(), cfg.run.run_dir, 1)
        queue.extend(items("upd", cfg.actor.slots))
        while queue:  # publish once the actor holds this work (in flight or queued)
            gateway.ack(gateway.poll(timeout_ms=5))
        t0 = time.perf_counter()
        gateway.publish(notice)
        queue.extend(items("post", cfg.actor.slots))  # sampled after the update
        loaded_at = first_new_at = None
        while first_new_at is None:
            if time.perf_counter() - t0 > 600:
                raise TimeoutError("no group with the new policy version within 600 s")
            groups = gateway.poll(timeout_ms=5)
            gateway.ack(groups)
            if loaded_at is None and gateway.versions().get("bench-actor") == 1:
                loaded_at = time.perf_counter() - t0
            if any(g.policy_version == 1 for g in groups):
                first_new_at = time.perf_counter() - t0
        gateway.shutdown("bench done")
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        socks.close()
        ctx.term()
    return {"seconds": seconds, "completions": completions, "tokens": tokens,
            "weights_loaded_s": loaded_at, "first_new_sample_s": first_new_at}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--bare-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_child:
        bare_main(args.bare_child[0], int(args.bare_child[1]), args.bare_child[2])
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    from lppo.core.config import save_config, validate_config
    from lppo.demo.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "model", seed=0)
        cfg = validate_config(_config(model_dir, Path(tmp) / "runs", args))
        cfg_path = save_config(cfg, Path(tmp) / "bench.toml")
        bare = run_bare(cfg_path, args.n)
        actor = run_actor(cfg, cfg_path, args.n)
    b_rate, a_rate = bare["completions"] / bare["seconds"], actor["completions"] / actor["seconds"]
    print(f"workload: {args.prompts} prompts x n={args.n}, max_tokens={args.max_tokens}, "
          f"tiny Qwen2 fp32, vLLM-CPU")
    print(f"bare vllm.LLM.generate : {b_rate:8.1f} completions/s  "
          f"{bare['tokens'] / bare['seconds']:8.0f} tokens/s  ({bare['seconds']:.1f} s)")
    print(f"actor end to end       : {a_rate:8.1f} verified completions/s  "
          f"{actor['tokens'] / actor['seconds']:8.0f} tokens/s  ({actor['seconds']:.1f} s)")
    print(f"ratio actor / bare     : {a_rate / b_rate:.3f} (completions), "
          f"{(actor['tokens'] / actor['seconds']) / (bare['tokens'] / bare['seconds']):.3f} (tokens)")
    print(f"WeightsReady -> loaded : {actor['weights_loaded_s']:.2f} s (includes draining "
          f"in-flight requests)")
    print(f"WeightsReady -> first sample of the new version: {actor['first_new_sample_s']:.2f} s")


if __name__ == "__main__":
    main()
