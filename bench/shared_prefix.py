"""Learner step, plain vs shared-prefix forward: time and peak memory, side by side.

    python bench/shared_prefix.py [--cells 128x128,512x128,1024x256,...] [--models demo,100m]

Every cell is one optimizer step (`Trainer.step`, fp32, CPU) on 2 groups of 8 completions
whose context (prompt, here all of it shared) has C tokens and whose completions have K
tokens, `learner.shared_prefix` off (plain: every completion encodes the context again) and on
(learner/grouped.py: the context once per group), each variant in its own process so peaks do
not mix. Reported: the step's seconds and its peak resident memory above the process once the
model and optimizer exist (`ru_maxrss`). Models built here, random init: the demo's size
(Qwen2, 128 wide, 2 layers, 512-token vocabulary) and ~100M parameters (Qwen2, 768 wide, 12
layers, 32k vocabulary). Goal: >= 2x faster and lower peak memory at C = 1,024, K = 256.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {
    "demo": {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512},
    "100m": {"hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12,
             "num_attention_heads": 12, "num_key_value_heads": 4, "vocab_size": 32768},
}
GROUPS, GROUP_SIZE = 2, 8


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def build(name: str, out: Path) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(max_position_embeddings=4096, tie_word_embeddings=True,
                                         pad_token_id=0, **MODELS[name]))
    model.save_pretrained(out)
    return out


def _child(model: str, context: int, completion: int, shared: bool) -> dict:
    import numpy as np
    import torch

    from learner.batch import TrainSequence
    from learner.trainer import Trainer
    from lppo.core.config import Config

    torch.manual_seed(0)
    trainer = Trainer(Config.model_validate({
        "model": {"path": model, "dtype": "float32", "max_model_len": 4096},
        "data": {"max_prompt_tokens": 2048}, "actor": {"sampling": {"max_tokens": 2048}},
        "learner": {"device": "cpu", "lr": 1e-5, "shared_prefix": shared,
                    "micro_batch_tokens": GROUP_SIZE * (context + completion)},
    }))
    rng = np.random.default_rng(0)
    vocab = trainer.vocab_size
    seqs = []
    for g in range(GROUPS):
        prompt = rng.integers(1, vocab, context)
        seqs += [TrainSequence(prompt, (), rng.integers(1, vocab, completion),
                               np.full(completion, -3.0), float(rng.normal()), g)
                 for _ in range(GROUP_SIZE)]
    base = _rss_mb()
    start = time.perf_counter()
    stats = trainer.step(seqs)
    return {"seconds": time.perf_counter() - start, "loss": stats.loss,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base}


def _run(model: Path, context: int, completion: int, shared: bool) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(model), str(context),
                          str(completion), str(int(shared))], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default="128x128,512x128,1024x128,128x512,512x512,1024x512,"
                                      "1024x256")
    p.add_argument("--models", default="demo,100m")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        model, context, completion, shared = args.child
        print(json.dumps(_child(model, int(context), int(completion), shared == "1")))
        return
    print("| model | context x completion | plain: step / peak | shared: step / peak | "
          "speed-up | peak ratio |\n|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="lppo-bench-prefix-") as tmp:
        for name in args.models.split(","):
            path = build(name, Path(tmp) / name)
            for cell in args.cells.split(","):
                context, completion = (int(x) for x in cell.split("x"))
                plain = _run(path, context, completion, False)
                shared = _run(path, context, completion, True)
                assert abs(plain["loss"] - shared["loss"]) <= 1e-4 * max(1, abs(plain["loss"]))
                print(f"| {name} | {context} x {completion} | {plain['seconds']:.2f} s / "
                      f"{plain['peak_mb']:,.0f} MB | {shared['seconds']:.2f} s / "
                      f"{shared['peak_mb']:,.0f} MB | {plain['seconds'] / shared['seconds']:.2f}x"
                      f" | {shared['peak_mb'] / max(1.0, plain['peak_mb']):.2f} |", flush=True)


if __name__ == "__main__":
    main()
