"""The transfer probe's loop (`bench/transfer_probe.py`): sample, score, assemble, train, measure.

Everything the learner trains with is the learner's own: `learner.assemble.assemble` (group
advantages, the prefix terms of `learner.algo.guidance`), `learner.algo.curation.drop_reason`
and `learner.trainer.Trainer` (the PPO loss and AdamW). What is plain PyTorch is only the
generation (transformers `generate`, temperature 1, no top-k/top-p, the raw log-probs as the
behaviour policy's) and the scoring (the demo task's strict final-answer reader).
"""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

import numpy as np
import torch

BATCH, N, RATIO = 16, 8, 0.5
MAX_NEW = 128


class Probe:
    """One arm of the probe: a fresh trainer from the warm start and the problems' cuts."""

    def __init__(self, cfg, train: list, held: list, task) -> None:
        from transformers import AutoTokenizer

        from learner.algo.prefix import prepare_solution
        from learner.trainer import Trainer
        from lppo.demo.warmstart import PLAIN_TEMPLATE

        torch.manual_seed(cfg.run.seed)
        self.rng = random.Random(cfg.run.seed)
        self.cfg, self.task, self.train = cfg, task, train
        self.tok = AutoTokenizer.from_pretrained(cfg.model.path)
        self.trainer = Trainer(cfg)
        self.eos = self.tok.eos_token_id

        def encode(p):
            prompt = self.tok(PLAIN_TEMPLATE.format(problem=p.problem),
                              add_special_tokens=False)["input_ids"]
            cuts = prepare_solution(self.tok, p.solution, "line", p.answer)
            return prompt, cuts.prefix(RATIO), list(cuts.token_ids) + [self.eos]

        self.train_ids = [encode(p) for p in train]
        self.held_ids = [encode(p) for p in held]
        solved = self._logprobs([(pr, sol) for pr, _, sol in self.train_ids])
        self.baselines = [math.exp(x) for x in solved]
        """Each training problem's unguided pass rate: the warm start's exact probability."""

    # -- measures ------------------------------------------------------------------------------

    @torch.no_grad()
    def _logprobs(self, pairs: list[tuple[list[int], list[int]]], size: int = 100) -> list[float]:
        """log P(target | context) per (context, target), teacher-forced."""
        model = self.trainer.model
        out = []
        for at in range(0, len(pairs), size):
            chunk = pairs[at:at + size]
            width = max(len(c) + len(t) for c, t in chunk)
            ids = torch.full((len(chunk), width), self.eos, dtype=torch.long)
            mask = torch.zeros_like(ids)
            tmask = torch.zeros((len(chunk), width - 1))
            for i, (c, t) in enumerate(chunk):
                ids[i, :len(c) + len(t)] = torch.tensor(c + t)
                mask[i, :len(c) + len(t)] = 1
                tmask[i, len(c) - 1:len(c) + len(t) - 1] = 1
            logp = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            logp = logp.log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            out.extend((logp * tmask).sum(1).tolist())
        return out

    def measure(self) -> dict[str, float]:
        """Mean log P(hard part | prompt) and mean P(expert solution) on the held-out set."""
        self.trainer.model.eval()
        hard = self._logprobs([(pr, pre) for pr, pre, _ in self.held_ids])
        full = self._logprobs([(pr, sol) for pr, _, sol in self.held_ids])
        self.trainer.model.train()
        return {"hard_logp": statistics.fmean(hard),
                "exact": statistics.fmean(math.exp(x) for x in full)}

    # -- one step ------------------------------------------------------------------------------

    @torch.no_grad()
    def _sample(self, contexts: list[list[int]]) -> list[tuple[list[int], list[float]]]:
        """(tokens, behaviour log-probs) of one completion per context, temperature 1."""
        model = self.trainer.model.eval()
        width = max(len(c) for c in contexts)
        ids = torch.full((len(contexts), width), self.eos, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, c in enumerate(contexts):  # left padding
            ids[i, width - len(c):] = torch.tensor(c)
            mask[i, width - len(c):] = 1
        gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0,
                             top_p=1.0, temperature=1.0, max_new_tokens=MAX_NEW,
                             pad_token_id=self.eos, eos_token_id=self.eos,
                             output_logits=True, return_dict_in_generate=True)
        model.train()
        new = gen.sequences[:, width:]
        logp = torch.stack(gen.logits, 1).float().log_softmax(-1)
        logp = logp.gather(-1, new[..., None]).squeeze(-1)
        out = []
        for row, lp in zip(new.tolist(), logp.tolist(), strict=True):
            end = row.index(self.eos) + 1 if self.eos in row else len(row)
            out.append((row[:end], lp[:end]))
        return out

    def step(self) -> dict[str, float]:
        """One training step on `BATCH` guided groups; returns the guided pass rate."""
        from learner.algo.curation import drop_reason
        from learner.algo.guidance import guided_count
        from learner.assemble import assemble

        pg = self.cfg.lppo.pg
        picks = self.rng.sample(range(len(self.train)), BATCH)
        guided = guided_count(N, pg)
        contexts = [pr + (pre if j < guided else []) for i in picks
                    for pr, pre, _ in [self.train_ids[i]] for j in range(N)]
        samples = self._sample(contexts)
        decisions, passed = [], []
        for k, i in enumerate(picks):
            group, correct = self._group(i, samples[k * N:(k + 1) * N], guided)
            passed.extend(correct[:guided])
            reason = drop_reason([float(c) for c in correct], correct,
                                 self.cfg.lppo.curation, teaches_prefix=pg.prefix_terms)
            if reason is None:
                decisions.append(_decision(group, self.baselines[i]))
        if decisions:
            self.trainer.step(assemble(decisions, self.cfg).sequences)
        return {"guided_pass": float(np.mean(passed)), "trained_groups": len(decisions)}

    def _group(self, i: int, samples: list, guided: int):
        from lppo.core.wire import Array, Completion, RolloutGroup

        prompt, prefix, _ = self.train_ids[i]
        answer = self.train[i].answer
        comps, correct = [], []
        for j, (tokens, logp) in enumerate(samples):
            text = self.tok.decode(tokens, skip_special_tokens=True)
            ok = self.task.final_answer(text) == answer
            correct.append(ok)
            comps.append(Completion(
                token_ids=Array.of(tokens, "int32"), logprobs=Array.of(logp, "float32"),
                text=text, finish_reason="stop" if tokens[-1:] == [self.eos] else "length",
                reward=float(ok), verdict="correct" if ok else "wrong", unguided=j >= guided))
        group = RolloutGroup(
            attempt_id=f"probe-{i}", sample_id=i, actor_id="probe", policy_version=0,
            prompt_ids=Array.of(prompt, "int32"), prefix_ids=Array.of(prefix, "int32"),
            prefix_ratio=RATIO, prefix_len=len(prefix), completions=comps, gen_seconds=0.0)
        return group, correct

    def run(self, steps: int, every: int) -> list[dict[str, Any]]:
        """The curve: step 0 and every `every` steps, each with the measures."""
        curve = [{"step": 0, **self.measure(), "guided_pass": float("nan")}]
        for s in range(1, steps + 1):
            stats = self.step()
            if s % every == 0 or s == steps:
                curve.append({"step": s, **self.measure(), **stats})
        return curve


def _decision(group, baseline: float):
    from learner.algo.progress import SampleStats
    from learner.algo.sample import Observation
    from learner.scheduler import Decision

    obs = Observation(stats=SampleStats(), status="active", transition=None, progress=0.0,
                      weight=1.0, next_ratio=RATIO, baseline=baseline)
    return Decision(group, None, reason=None, observation=obs)


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    m = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return m, se


def summarize(results: dict[str, dict[int, list]], baseline: str) -> dict[str, Any]:
    """Per arm: change of each measure over the run (mean +- se over seeds), and paired with
    `baseline` by seed; report lines and numbers."""
    lines, numbers = [], {}
    base = results.get(baseline, {})
    for arm, by_seed in results.items():
        row = {}
        for key, scale, unit in (("hard_logp", 1.0, "nats"), ("exact", 100.0, "points")):
            deltas = {s: (c[-1][key] - c[0][key]) * scale for s, c in by_seed.items()}
            m, se = mean_se(list(deltas.values()))
            row[key] = {"delta": m, "se": se}
            text = f"{key} {m:+.3f} +- {se:.3f} {unit}"
            paired = [deltas[s] - (base[s][-1][key] - base[s][0][key]) * scale
                      for s in deltas if s in base]
            if arm != baseline and paired:
                pm, pse = mean_se(paired)
                row[key].update(paired=pm, paired_se=pse)
                text += f" (vs {baseline}: {pm:+.3f} +- {pse:.3f})"
            row.setdefault("text", []).append(text)
        numbers[arm] = {k: v for k, v in row.items() if k != "text"}
        lines.append(f"{arm:18s} " + "; ".join(row["text"]))
    return {"lines": lines, "numbers": numbers}
