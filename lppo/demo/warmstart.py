"""The demo's warm start: a short supervised phase on the tiny model, cached by content hash.

Why: a randomly initialised model never produces a correct answer, so RL has no signal. The
demo first teaches the tiny Qwen2 (`lppo.demo.tiny`) the solution format and
the arithmetic with a few minutes of supervised fine-tuning on a CPU: a plain PyTorch loop,
AdamW, loss on the solution tokens only, prompts in the demo's `plain` format
(`Question: {problem}\\nAnswer: `, then the expert solution and EOS).

The default recipe is tuned for the regime LPPO is for: level 1 solved, level 2 mostly, level 3
rarely unguided but mostly with half of the expert solution as a hint. Most level-3 examples
are *hinted*: the first half of the solution (the multiplication) is context, as in
PG-sampling, and only the rest (the addition) is learned, so the model learns to finish hard
problems better than to start them. Measured with the default recipe (1000 steps, 145 s on 2
CPU cores), greedy decoding with vLLM on the 100 held-out problems per level, unguided / with
the first 50% of the expert solution in the prompt: level 1 100% / 100%, level 2 89% / 91%,
level 3 10% / 95%. The regime holds across seeds, but where exactly it lands varies (other
model seeds: level 2 75-100%, level 3 4-23% unguided, 80-90% with the prefix).

The result is a model folder under `cache_root/tiny-qwen2-<hash>/`, where the hash covers
everything that determines it (`DemoRecipe`, including `CODE_VERSION`): a second run with the
same recipe finds the folder and skips training. The folder is written to a temporary name and
renamed when complete, so an interrupted run leaves no half-written cache.

The three problem sets (held-out eval, RL train, SFT) are disjoint: `recipe.problem_sets()`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lppo.demo import task, tiny

log = logging.getLogger(__name__)

CODE_VERSION = 3
"""Bump when the task, tokenizer, model or training code changes what a recipe produces."""

LOG_EVERY = 25
"""SFT steps between loss records (and callback calls)."""

Callback = Callable[[int, Any, Any], None]
"""`callback(step, model, tokenizer)` during the warm start, e.g. to save or probe the model."""

PLAIN_TEMPLATE = "Question: {problem}\nAnswer: "
"""The demo's `data.plain_template`; SFT prompts use it so RL starts where SFT left off."""


@dataclass(frozen=True)
class SFTConfig:
    """Hyperparameters of the supervised warm start."""

    steps: int = 1000
    """Optimizer steps."""
    batch_size: int = 32
    """Sequences per step."""
    mix: tuple[float, float, float] = (0.2, 0.5, 0.3)
    """Sampling weight of levels 1, 2, 3 in each batch."""
    hinted: tuple[float, float, float] = (0.0, 0.0, 0.6)
    """Share of each level's examples trained as hint completions: the first `hint_ratio` of
    the expert solution is appended to the prompt (context, no loss), as PG-sampling does, and
    only the rest is learned. Teaches finishing hard problems more than starting them."""
    hint_ratio: float = 0.5
    """Prefix ratio of the hinted examples (`task.solution_prefix`)."""
    lr: float = 3e-3
    """Peak AdamW learning rate (tiny models take large rates)."""
    min_lr_ratio: float = 0.1
    """Cosine decay floor as a share of `lr`."""
    warmup_steps: int = 30
    """Linear warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Global gradient-norm clip."""


@dataclass(frozen=True)
class DemoRecipe:
    """Everything that determines the warm-started model and the demo's problem sets."""

    task_seed: int = 0
    """Seed of the arithmetic task generator."""
    held_out: tuple[int, int, int] = (100, 100, 100)
    """Held-out problems per level (1, 2, 3), drawn first."""
    rl_train: tuple[int, int, int] = (200, 200, 200)
    """RL training problems per level, disjoint from the held-out ones."""
    sft_pool: tuple[int, int, int] = (3000, 3000, 1000)
    """Problems per level the SFT samples from, disjoint from both sets above."""
    trusted: tuple[int, int, int] = (8, 16, 72)
    """The trusted set RL trains on: the first problems per level of `rl_train`. Small and
    dominated by the hard level, so each sample is visited many times (LPPO's regime). Not
    part of the model's cache key: it changes nothing the warm start sees."""
    model_seed: int = 0
    """Seed of the model's random init and of the SFT's batch order."""
    spec: tiny.TinySpec = field(default_factory=tiny.TinySpec)
    """Tokenizer and model shape."""
    sft: SFTConfig = field(default_factory=SFTConfig)
    """Warm-start hyperparameters."""
    template: str = PLAIN_TEMPLATE
    """Prompt template of the SFT examples."""

    def key(self) -> str:
        """Hash of the recipe and `CODE_VERSION`: names the cache folder."""
        fields = {k: v for k, v in asdict(self).items() if k != "trusted"}
        blob = json.dumps({"code": CODE_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def trusted_set(self) -> list[task.Problem]:
        """The first `trusted[level - 1]` RL training problems of each level."""
        train = self.problem_sets()[1]
        return [p for lv, n in zip(task.LEVELS, self.trusted, strict=True)
                for p in [q for q in train if q.level == lv][:n]]

    def problem_sets(self) -> tuple[list[task.Problem], list[task.Problem], list[task.Problem]]:
        """(held-out, RL train, SFT pool), disjoint, deterministic for the recipe."""
        ev, tr, sft = task.split(self.task_seed, *self._counts())
        return ev, tr, sft

    def measure_set(self, per_level: int) -> list[task.Problem]:
        """`per_level` more held-out problems per level, disjoint from `problem_sets()` (drawn
        after them, so those never change), for measures that are cheap enough to want many
        problems (`lppo.demo.measure.expert_solution_probability`). Not part of the cache key:
        it changes nothing the warm start sees."""
        return task.split(self.task_seed, *self._counts(),
                          dict.fromkeys(task.LEVELS, per_level))[-1]

    def probe_set(self, per_level: int, measured: int) -> list[task.Problem]:
        """`per_level` more problems per level, drawn after `measure_set(measured)` and so
        disjoint from it and from `problem_sets()`: for choosing settings (the transfer probe)
        without looking at the problems results are reported on."""
        return task.split(self.task_seed, *self._counts(),
                          dict.fromkeys(task.LEVELS, measured),
                          dict.fromkeys(task.LEVELS, per_level))[-1]

    def _counts(self) -> list[dict[int, int]]:
        """`{level: n}` of the held-out, RL train and SFT sets, in the order they are drawn."""
        return [{lv: n for lv, n in zip(task.LEVELS, t, strict=True) if n}
                for t in (self.held_out, self.rl_train, self.sft_pool)]


def cached_model_dir(cache_root: Path, recipe: DemoRecipe) -> Path:
    """Where the warm-started model of `recipe` lives (or will live) under `cache_root`."""
    return Path(cache_root) / f"tiny-qwen2-{recipe.key()}"


def warm_start(cache_root: Path, recipe: DemoRecipe = DemoRecipe(), *,
               threads: int | None = None, callback: Callback | None = None) -> Path:
    """The warm-started model folder for `recipe`: from the cache, or built and trained now.

    Returns `cache_root/tiny-qwen2-<hash>/` holding the model (safetensors), tokenizer,
    generation config and `warmstart.json` (recipe, losses, wall and CPU time). `threads`
    sets torch's intra-op threads for the training (None: torch's default, all cores); it
    changes the result only by float rounding, so it is not part of the cache key.
    `callback(step, model, tokenizer)` is called every `LOG_EVERY` steps.
    """
    out = cached_model_dir(cache_root, recipe)
    if (out / "warmstart.json").is_file():
        log.info("warm start: cached model %s", out)
        return out
    tmp = tiny.temp_dir_for(out)
    try:
        _build_and_train(tmp, recipe, threads, callback)
        os.rename(tmp, out)
    except OSError:
        if not (out / "warmstart.json").is_file():
            raise
        log.info("warm start: %s was completed by another process meanwhile", out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _build_and_train(folder: Path, recipe: DemoRecipe, threads: int | None,
                     callback: Callback | None) -> None:
    import torch
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    t0, c0 = time.monotonic(), time.process_time()
    tiny.build_tiny_model(folder / "init", recipe.model_seed, recipe.spec)
    tokenizer = AutoTokenizer.from_pretrained(str(folder / "init"))
    model = Qwen2ForCausalLM.from_pretrained(str(folder / "init"), dtype=torch.float32)
    _, _, pool = recipe.problem_sets()
    losses = sft_train(model, tokenizer, pool, recipe, threads=threads, callback=callback)
    tiny.save_model(model, tokenizer, folder)
    tokenizer.save_pretrained(str(folder))
    shutil.rmtree(folder / "init")
    meta = {
        "recipe": asdict(recipe), "key": recipe.key(), "code_version": CODE_VERSION,
        "params": tiny.count_params(model), "vocab_size": len(tokenizer),
        "seconds": round(time.monotonic() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1), "losses": losses,
    }
    (folder / "warmstart.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    log.info("warm start: %d steps in %.0f s, final loss %.3f", recipe.sft.steps,
             meta["seconds"], losses[-1][1] if losses else float("nan"))


def encode_example(tokenizer, prompt: str, solution: str) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one SFT example: prompt and solution encoded separately (as the
    actor sees them: prompt ids, then generated ids), EOS appended, prompt labels masked."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    s = tokenizer(solution, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return p + s, [-100] * len(p) + s


def padded(rows: list[tuple[list[int], list[int]]], pad_id: int):
    """(input ids, labels, attention mask) tensors of `encode_example` pairs, right-padded
    (labels with -100, which the loss ignores)."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, :len(x)] = torch.tensor(x)
        labels[i, :len(y)] = torch.tensor(y)
        mask[i, :len(x)] = 1
    return ids, labels, mask


def sft_example(tokenizer, p: task.Problem, recipe: DemoRecipe, hinted: bool
                ) -> tuple[list[int], list[int]]:
    """(input ids, labels) of problem `p`: the whole solution learned, or (`hinted`) only what
    follows its expert prefix, the prefix being part of the prompt."""
    prompt = recipe.template.format(problem=p.problem)
    if not hinted:
        return encode_example(tokenizer, prompt, p.solution)
    prefix = task.solution_prefix(p.solution, recipe.sft.hint_ratio)
    return encode_example(tokenizer, prompt + prefix, p.solution[len(prefix):])


def _batches(tokenizer, pool: list[task.Problem], recipe: DemoRecipe):
    """Endless stream of (input ids, labels, attention mask) batches; each batch is of one
    level, drawn with the recipe's mix weights."""
    rng = random.Random(f"lppo-demo-sft/{recipe.model_seed}")
    by_level = {lv: [p for p in pool if p.level == lv] for lv in task.LEVELS}
    levels = [lv for lv, w in zip(task.LEVELS, recipe.sft.mix, strict=True) if w > 0]
    weights = [w for w in recipe.sft.mix if w > 0]
    if any(not by_level[lv] for lv in levels):
        raise ValueError("SFT mix gives weight to a level with no problems in sft_pool")
    pad = tokenizer.pad_token_id
    while True:
        # One level per batch: rows of a level have nearly the same length, so little padding.
        lv = rng.choices(levels, weights)[0]
        rows = [sft_example(tokenizer, p, recipe, rng.random() < recipe.sft.hinted[lv - 1])
                for p in rng.choices(by_level[lv], k=recipe.sft.batch_size)]
        yield padded(rows, pad)


def lr_at(step: int, sft: SFTConfig) -> float:
    """Linear warm-up to `lr`, then cosine decay to `min_lr_ratio * lr` at the last step."""
    if step < sft.warmup_steps:
        return sft.lr * (step + 1) / sft.warmup_steps
    span = max(1, sft.steps - sft.warmup_steps)
    frac = min(1.0, (step - sft.warmup_steps) / span)
    floor = sft.min_lr_ratio
    return sft.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac)))


def sft_train(model, tokenizer, pool: list[task.Problem], recipe: DemoRecipe, *,
              threads: int | None = None, callback: Callback | None = None
              ) -> list[tuple[int, float]]:
    """Train `model` in place on problems drawn from `pool`; returns (step, mean loss) every
    `LOG_EVERY` steps and at the last step."""
    import torch

    torch.manual_seed(recipe.model_seed)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _loop(model, tokenizer, pool, recipe, callback)
    finally:
        torch.set_num_threads(before)


def _loop(model, tokenizer, pool: list[task.Problem], recipe: DemoRecipe,
          callback: Callback | None) -> list[tuple[int, float]]:
    import torch

    sft = recipe.sft
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": sft.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=sft.lr, betas=(0.9, 0.98),
    )
    model.train()
    losses: list[tuple[int, float]] = []
    running, t0 = 0.0, time.monotonic()
    batches = _batches(tokenizer, pool, recipe)
    for step in range(sft.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, sft)
        ids, labels, mask = next(batches)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), sft.grad_clip)
        opt.step()
        running += loss.item()
        if (step + 1) % LOG_EVERY == 0 or step + 1 == sft.steps:
            n = (step % LOG_EVERY) + 1
            losses.append((step + 1, round(running / n, 4)))
            log.info("sft step %d/%d loss %.4f (%.0f s)", step + 1, sft.steps, running / n,
                     time.monotonic() - t0)
            running = 0.0
            if callback is not None:
                model.eval()
                callback(step + 1, model, tokenizer)
                model.train()
    model.eval()
    return losses
