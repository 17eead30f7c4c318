"""Peak memory of per-token log-probs + entropy + backward: the plain full-vocabulary way vs
`learner.algo.logprobs.token_logprobs_and_entropy` (chunked, recomputing backward), as the
trainer calls them.

    python bench/logprobs.py [--positions 4096] [--vocab 32768] [--dtype bfloat16] [--json]

Each variant runs in its own process (so peaks do not mix), side by side in one invocation:
logits [positions, vocab] with gradient, log-probs of random targets and entropy, then
backward of their sum. Reported: peak resident memory above the process's memory once the
logits exist (`ru_maxrss`), and the time of forward + backward.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _variant(name: str, positions: int, vocab: int, dtype: str) -> dict:
    import torch

    from learner.algo.logprobs import token_logprobs_and_entropy

    torch.manual_seed(0)
    logits = torch.randn(positions, vocab, dtype=getattr(torch, dtype)).requires_grad_(True)
    targets = torch.randint(0, vocab, (positions,))
    base = _rss_mb()
    t0 = time.perf_counter()
    if name == "plain":
        logp_all = torch.log_softmax(logits.float(), -1)
        logp = logp_all.gather(-1, targets[:, None]).squeeze(-1)
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)
    else:
        logp, entropy = token_logprobs_and_entropy(logits, targets)
    logp.sum().backward()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": name, "extra_peak_mb": peak - base, "seconds": seconds,
            "logits_mb": logits.numel() * logits.element_size() / 2**20,
            "check": float(logp.sum() + entropy.sum())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--positions", type=int, default=4096)
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    p.add_argument("--json", action="store_true")
    p.add_argument("--variant", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.variant:
        print(json.dumps(_variant(args.variant, args.positions, args.vocab, args.dtype)))
        return
    rows = []
    for name in ("plain", "lean"):
        out = subprocess.run([sys.executable, __file__, "--variant", name, "--positions",
                              str(args.positions), "--vocab", str(args.vocab), "--dtype",
                              args.dtype], check=True, capture_output=True, text=True,
                             cwd=ROOT, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"})
        rows.append(json.loads(out.stdout))
    plain, lean = rows
    if abs(plain["check"] - lean["check"]) > 1e-3 * abs(plain["check"]):
        raise SystemExit(f"the variants disagree: {plain['check']} vs {lean['check']}")
    report = {"positions": args.positions, "vocab": args.vocab, "dtype": args.dtype,
              "logits_mb": plain["logits_mb"], "plain": plain, "lean": lean,
              "peak_ratio_lean_over_plain": lean["extra_peak_mb"] / plain["extra_peak_mb"]}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.positions} positions x {args.vocab} vocabulary, {args.dtype} logits "
          f"({plain['logits_mb']:.0f} MB)")
    for r in rows:
        print(f"  {r['variant']:5s}: +{r['extra_peak_mb']:.0f} MB peak, {r['seconds']:.2f} s")
    print(f"  peak, lean / plain: {report['peak_ratio_lean_over_plain']:.2f}")


if __name__ == "__main__":
    main()
