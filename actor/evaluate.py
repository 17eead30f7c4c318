"""Benchmark evaluation: k samples per problem with the actor's engine, verdicts from the actor's
verifier pool, pass@1 (averaged over the k samples) and pass@k per benchmark.

Why in actor/: evaluation generates and verifies exactly as an actor does (same engine wrapper,
prompt template, stop strings, math-verify pool and reward table), only with the evaluation
sampling of `learner.eval` and no learner. It imports nothing from learner/, so the learner can
call it in-process or in a subprocess (`lppo eval ... --output FILE`):

    with Evaluator(cfg, model_dir) as ev:              # engine + verifier pool, started once
        report = ev.evaluate(cfg.data.eval, step=0)
        ev.load_weights(run_dir / "weights" / "v12")   # later: new policy, same engine
        report = ev.evaluate(cfg.data.eval, step=12)
    report.records()                                   # EvalRecords for the ledger

    report = evaluate_model(cfg, model_dir, specs, step=s, weights=None)   # one shot

The engine is driven through its step loop (`actor.engine.Engine`) rather than a blocking
`vllm.LLM.generate`: all problems of all benchmarks go in at once, and each request is handed
to the verifier pool as soon as it finishes, so verification overlaps generation; the same
wrapper also reloads weights in place (periodic evaluation needs no engine restart) and runs
on the transformers engine when `actor.engine = "transformers"`.

The results, pass@k and the paired comparison of two reports are in `actor/eval_report.py`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actor.engine import GenRequest, GenSample, create_engine
from actor.eval_report import BenchmarkResult, EvalReport, ProblemResult
from actor.prompts import PromptBuilder, PromptError
from actor.reward import RewardPool, Scored
from lppo.core.config.schema import Config, DatasetSpec
from store.records import SampleRecord

if TYPE_CHECKING:
    from actor.engine import Engine

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (problems generated, problems) as generation goes."""


@dataclass
class _Item:
    """One problem in flight: its prompt, then its samples, then its verdicts."""

    bench: BenchmarkResult
    record: SampleRecord
    request_id: str
    prompt_ids: list[int]
    samples: list[GenSample] = field(default_factory=list)
    verify: Future[list[Scored]] | None = None


class Evaluator:
    """An engine and a verifier pool for repeated evaluations of one model (or its updates).

    `model` (a folder or hub name) replaces `model.path` of the config, `tokenizer` its
    tokenizer; sampling comes from `learner.eval` (stop strings from `actor.sampling`). `pool`
    shares an existing `RewardPool` instead of starting one.
    """

    def __init__(self, cfg: Config, model: str | Path | None = None, *,
                 tokenizer: str | None = None, pool: RewardPool | None = None):
        self.cfg = cfg
        self.engine_cfg = engine_config(cfg, model, tokenizer)
        self._own_pool = pool is None
        self.pool = pool if pool is not None else RewardPool(cfg.actor.reward)
        try:
            self.engine: Engine = create_engine(self.engine_cfg)
        except BaseException:
            if self._own_pool:
                self.pool.close()
            raise
        self.prompts = PromptBuilder(self.engine.tokenizer(), cfg.data, cfg.model.max_model_len)
        self._ids = itertools.count()

    @property
    def sampling(self) -> dict[str, Any]:
        s = self.engine_cfg.actor.sampling
        return {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens}

    def load_weights(self, path: str | Path) -> None:
        """Load new weights in place: a safetensors file, or a `weights/vN/` folder."""
        from lppo.core.weightfiles import FILENAME

        path = Path(path)
        file = path / FILENAME if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"no weights file at {file}")
        self.engine.load_weights(str(file))

    def evaluate(self, specs: Sequence[DatasetSpec], step: int = 0, *, k: int | None = None,
                 limit: int | None = None) -> EvalReport:
        """Sample `k` (default `learner.eval.k`) completions per problem of every data set,
        verify them, and return the report for `step`."""
        from store.datasets import read_dataset

        k = k or self.cfg.learner.eval.k
        limit = limit or self.cfg.learner.eval.limit
        data = []
        for spec in specs:
            if limit is not None:
                spec = spec.model_copy(update={"limit": min(limit, spec.limit or limit)})
            data.append((spec.name, read_dataset(spec)))
        return self.evaluate_records(data, step, k=k)

    def evaluate_records(self, data: Sequence[tuple[str, Sequence[SampleRecord]]], step: int,
                         *, k: int, progress: Progress | None = None) -> EvalReport:
        """`evaluate` on problems already read: (benchmark name, records) pairs. `progress`
        is called with (problems generated, problems) as each problem's samples finish."""
        if k > 1 and self.sampling["temperature"] == 0:
            log.warning("greedy decoding (temperature 0) gives k identical samples; using k=1")
            k = 1
        start = time.perf_counter()
        results, items = [], []
        for name, records in data:
            bench = BenchmarkResult(name=name, k=k)
            results.append(bench)
            items.extend(self._items(bench, records))
        self._generate(items, k, start, progress)
        for item in items:
            _finish(item)
        seconds = time.perf_counter() - start
        for bench in results:
            if bench.skipped:
                log.warning("%s: %d problem(s) skipped (prompt longer than "
                            "data.max_prompt_tokens=%d)", bench.name, len(bench.skipped),
                            self.cfg.data.max_prompt_tokens)
        return EvalReport(model=self.engine_cfg.model.path, step=step, k=k,
                          sampling=self.sampling, benchmarks=results, seconds=seconds)

    def _items(self, bench: BenchmarkResult, records: Sequence[SampleRecord]) -> list[_Item]:
        items = []
        for rec in records:
            try:
                ids = self.prompts.prompt_ids(rec.problem)
            except PromptError:
                ids = []
            if not ids or len(ids) > self.cfg.data.max_prompt_tokens:
                bench.skipped.append(rec.source_key)
                continue
            items.append(_Item(bench, rec, f"eval-{next(self._ids)}", ids))
        return items

    def _generate(self, items: list[_Item], k: int, start: float,
                  progress: Progress | None = None) -> None:
        """Generate every item's samples; each finished one goes to the verifier at once."""
        by_id = {item.request_id: item for item in items}
        total = Counter(item.bench.name for item in items)
        left = Counter(total)
        done = 0
        try:
            for item in items:
                self.engine.add(GenRequest(item.request_id, item.prompt_ids, k))
            while self.engine.has_unfinished():
                for result in self.engine.step():
                    item = by_id[result.request_id]
                    item.samples = result.samples
                    item.verify = self.pool.submit(
                        item.record.answer, [s.text for s in result.samples],
                        [s.finish_reason for s in result.samples])
                    left[item.bench.name] -= 1
                    done += 1
                    if progress is not None:
                        progress(done, len(items))
                    if left[item.bench.name] == 0:
                        item.bench.seconds = time.perf_counter() - start
                        log.info("%s: %d problems x %d samples generated in %.1f s",
                                 item.bench.name, total[item.bench.name], k, item.bench.seconds)
        finally:
            self.engine.abort_all()

    def close(self) -> None:
        try:
            self.engine.close()
        finally:
            if self._own_pool:
                self.pool.close()

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _finish(item: _Item) -> None:
    """Wait for an item's verdicts and add it to its benchmark."""
    if item.verify is None:
        raise RuntimeError(f"request {item.request_id} never finished generating")
    scored = item.verify.result()
    samples = item.samples
    item.bench.problems.append(ProblemResult(
        key=item.record.source_key, answer=item.record.answer,
        verdicts=[s.verdict.value for s in scored],
        finish_reasons=[s.finish_reason for s in samples],
        lengths=[len(s.token_ids) for s in samples], texts=[s.text for s in samples],
    ))


def engine_config(cfg: Config, model: str | Path | None = None,
                  tokenizer: str | None = None) -> Config:
    """The config an evaluation engine is built from: `model` instead of `model.path`, and
    the `learner.eval` sampling instead of the training one (stop strings kept)."""
    ev = cfg.learner.eval
    sampling = cfg.actor.sampling.model_copy(update={
        "temperature": ev.temperature, "top_p": ev.top_p,
        "max_tokens": ev.max_tokens or cfg.actor.sampling.max_tokens,
    })
    model_cfg = cfg.model
    if model is not None:
        model_cfg = cfg.model.model_copy(update={"path": str(model), "tokenizer": tokenizer})
    elif tokenizer is not None:
        model_cfg = cfg.model.model_copy(update={"tokenizer": tokenizer})
    actor = cfg.actor.model_copy(update={"sampling": sampling})
    return cfg.model_copy(update={"model": model_cfg, "actor": actor})


def evaluate_model(cfg: Config, model: str | Path | None, specs: Sequence[DatasetSpec], *,
                   step: int = 0, tokenizer: str | None = None,
                   weights: str | Path | None = None, k: int | None = None,
                   limit: int | None = None) -> EvalReport:
    """One evaluation: start an engine on `model` (None: `model.path`), load `weights` (a
    `weights/vN/` folder or safetensors file) into it if given, evaluate `specs`, stop.

    This is the call for periodic evaluation: the learner passes its current weights (a
    checkpoint's `model/` folder, or the base model plus the published `weights/vN/`), the
    run's `data.eval` and the step, and records `report.records()` through its ledger writer.
    """
    with Evaluator(cfg, model, tokenizer=tokenizer) as ev:
        if weights is not None:
            ev.load_weights(weights)
        return ev.evaluate(specs, step, k=k, limit=limit)
