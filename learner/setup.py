"""Everything the learner builds before its first step, fresh or resumed.

    ledger   open (SQLite in the run directory or PostgreSQL), register the run
    data     read `data.train` (a bad row fails here, nothing imported), import, add to run
    samples  problem, answer and the expert solution's cut points in the policy's tokens,
             checked by the verifier (`learner.certify`: no prefix states the answer)
    trainer  model from `model.path`, or from the checkpoint's model when resuming
    resume   scheduler state, staleness counters, RNG, optimizer; the ledger rolled back to
             the checkpoint (groups and steps recorded after it are removed, sample states
             rewritten) so ledger and checkpoint agree; weights of the checkpoint published
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from actor.prompts import PromptBuilder, PromptError
from learner import checkpoint
from learner.algo.prefix import prepare_solution
from learner.certify import certify_cuts
from learner.distributed import DistContext
from learner.ranks import Leader, build_trainer
from learner.scheduler import SampleEntry, Scheduler
from learner.trainer import Trainer
from lppo.core.config import Config, save_config
from lppo.core.errors import UserError, one_line
from lppo.core.resources import code_version
from lppo.core.weightfiles import write_weights
from lppo.core.wire import WeightsReady
from store.datasets import read_dataset
from store.ledger import Ledger
from store.records import SampleRecord
from store.rollback import rollback_to_checkpoint
from store.writer import LedgerWriter

log = logging.getLogger(__name__)


@dataclass
class LearnerSetup:
    ledger: Ledger
    writer: LedgerWriter
    run_id: int
    trainer: Trainer
    leader: Leader
    """Every call that all learner ranks make (steps, weights, checkpoints) goes through it."""
    tokenizer: object
    scheduler: Scheduler
    step: int = 0
    version: int = 0
    notice: WeightsReady | None = None


def read_train(cfg: Config) -> list[SampleRecord]:
    """Every row of `data.train`, checked (a bad row fails here, before the ledger is touched)."""
    if not cfg.data.train:
        raise UserError("data.train: the learner needs at least one training data set")
    records = [rec for spec in cfg.data.train for rec in read_dataset(spec)]
    for rec in records:
        category_of(cfg, rec)  # the bandit's field, in every row
    return records


def load_samples(cfg: Config, ledger: Ledger, run_id: int, tokenizer,
                 records: list[SampleRecord]) -> list[SampleEntry]:
    """Import the training records and return the run's samples with their solution cuts.
    Problems whose prompt is longer than `data.max_prompt_tokens` are skipped, with a
    warning (an actor could not sample them)."""
    records = fitting(cfg, tokenizer, records)
    result = ledger.import_samples(records)
    ledger.add_to_run(run_id, result.ids)
    entries: dict[int, SampleEntry] = {}
    for sid, rec in zip(result.ids, records, strict=True):
        if sid in entries:
            continue  # a duplicate problem maps onto its first occurrence
        entries[sid] = SampleEntry(sample_id=sid, problem=rec.problem, answer=rec.answer,
                                   category=category_of(cfg, rec),
                                   cuts=prepare_solution(tokenizer, rec.solution,
                                                         cfg.lppo.pg.boundary, rec.answer)
                                   if rec.solution else None)
    guided = [e for e in entries.values() if e.cuts is not None]
    if cfg.lppo.pg.enabled:
        certified, _ = certify_cuts(tokenizer, [(e.answer, e.cuts) for e in guided],
                                    cfg.actor.reward)
        for entry, cuts in zip(guided, certified, strict=True):
            entry.cuts = cuts
    lengths = {e.sample_id: len(e.cuts.token_ids) for e in guided}
    ledger.set_solution_tokens(lengths)
    log.info("%d training samples (%d with expert solutions)", len(entries), len(lengths))
    unguidable = [e for e in guided if not any(k > 0 for k in e.cuts.candidates())]
    for entry in unguidable:  # no line/sentence ends before the answer: nothing to show
        entry.cuts = None
    if unguidable:
        log.info("%d expert solutions state their answer before any boundary: those samples "
                 "are never guided (e.g. sample %d)", len(unguidable), unguidable[0].sample_id)
    return list(entries.values())


def category_of(cfg: Config, rec: SampleRecord) -> str | None:
    """The record's `learner.category_bandit.field` value (that policy only); a row without
    it is a `UserError` naming the row."""
    if cfg.learner.selection != "category_bandit":
        return None
    name = cfg.learner.category_bandit.field
    value = rec.meta.get(name) if name else None
    if value is None or isinstance(value, (dict, list)):
        raise UserError(f"learner.category_bandit.field: row {rec.source_key} of data set "
                        f"{rec.dataset!r} has no scalar field {name!r} (fields: "
                        f"{sorted(rec.meta) or 'none beyond problem/solution/answer'})")
    return str(value)


def fitting(cfg: Config, tokenizer, records: list[SampleRecord]) -> list[SampleRecord]:
    """The records whose templated prompt fits `data.max_prompt_tokens`; none is an error."""
    builder = PromptBuilder(tokenizer, cfg.data, cfg.model.max_model_len)
    kept, skipped = [], []
    for rec in records:
        try:
            n = len(builder.prompt_ids(rec.problem))
        except PromptError:
            n = 0
        (kept if 0 < n <= cfg.data.max_prompt_tokens else skipped).append(rec)
    if skipped:
        log.warning("%d training problems skipped: prompt longer than data.max_prompt_tokens=%d "
                    "(or empty), e.g. %s/%s", len(skipped), cfg.data.max_prompt_tokens,
                    skipped[0].dataset, skipped[0].source_key)
    if not kept:
        raise UserError(f"data.train: no problem's prompt fits data.max_prompt_tokens="
                        f"{cfg.data.max_prompt_tokens}")
    return kept


def load_tokenizer(cfg: Config):
    """The policy's tokenizer; a path or name that does not load is a user error."""
    from transformers import AutoTokenizer

    name = cfg.model.tokenizer or cfg.model.path
    try:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=cfg.model.trust_remote_code)
    except (OSError, ValueError) as exc:
        key = "model.tokenizer" if cfg.model.tokenizer else "model.path"
        raise UserError(f"{key}: cannot load a tokenizer from {name!r}: "
                        f"{str(exc).splitlines()[0]}") from None


def prepare(cfg: Config, resume: bool, dist: DistContext | None = None) -> LearnerSetup:
    """Build the learner's state (see the module docstring)."""
    run_dir = cfg.run.run_dir
    ckpt = checkpoint.latest(run_dir) if resume else None
    if resume and ckpt is None:
        log.warning("--resume: no checkpoint in %s; starting from step 0 (the run's ledger "
                    "rows are rolled back to none)", run_dir)
    records = read_train(cfg)
    tokenizer = load_tokenizer(cfg)
    save_config(cfg, run_dir / "config.toml")
    ledger = Ledger.open(cfg)
    run_id = None
    try:
        run_id = ledger.register_run(cfg.run.name, cfg.model_dump(mode="json"), code_version(),
                                     resume=resume)
        return _build(cfg, ledger, run_id, tokenizer, records, ckpt, resume,
                      dist or DistContext())
    except BaseException as exc:
        if run_id is not None:  # registered, then failed: the run must not stay `running`
            try:
                ledger.end_run(run_id, "failed", one_line(exc))
            except Exception as nested:  # the original error matters more; say both
                log.error("could not mark run %s failed: %s", run_id, one_line(nested))
        ledger.close()
        raise


def _build(cfg: Config, ledger: Ledger, run_id: int, tokenizer, records: list[SampleRecord],
           ckpt: Path | None, resume: bool, dist: DistContext) -> LearnerSetup:
    samples = load_samples(cfg, ledger, run_id, tokenizer, records)
    trainer = build_trainer(cfg, dist, ckpt)
    leader = Leader(trainer)
    scheduler = Scheduler(cfg, samples, vocab_size=trainer.vocab_size)
    writer = LedgerWriter.for_config(ledger, run_id, cfg.store)
    setup = LearnerSetup(ledger=ledger, writer=writer, run_id=run_id, trainer=trainer,
                         leader=leader, tokenizer=tokenizer, scheduler=scheduler)
    if ckpt is not None:
        _restore(cfg, setup, ckpt)
    else:  # version 0 published too: an actor that outlived a learner restart loads it
        setup.notice = write_weights(leader.policy_state(), cfg.run.run_dir, 0)
        if resume:  # an earlier attempt recorded groups and steps that nothing here knows of
            states = scheduler.ledger_states()
            removed = rollback_to_checkpoint(ledger, run_id, 0, (), states)
            log.info("--resume without a checkpoint: ledger rolled back to step 0 (%s)", removed)
    return setup


def _restore(cfg: Config, setup: LearnerSetup, ckpt: Path) -> None:
    trainer_state, state = checkpoint.load(ckpt)
    setup.leader.load(ckpt, trainer_state, state.get("steps_done"))
    checkpoint.set_rng_state(state["rng"])
    setup.scheduler.load_state_dict(state["scheduler"], buffered=state.get("buffered", 0))
    setup.step, setup.version = state["step"], state["version"]
    # The ledger may hold groups and steps recorded after the checkpoint (the learner died
    # later): remove them and put every sample's state back to the checkpoint's.
    removed = rollback_to_checkpoint(setup.ledger, setup.run_id, setup.step,
                                     setup.scheduler.arrived_this_step(),
                                     setup.scheduler.ledger_states())
    log.info("resumed from %s: step %d, version %d; ledger rolled back (%s)", ckpt.name,
             setup.step, setup.version, removed)
    notice = write_weights(setup.leader.policy_state(), cfg.run.run_dir, setup.version)
    setup.notice = notice
