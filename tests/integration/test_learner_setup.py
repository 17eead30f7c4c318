"""What the learner builds before its first step (learner/setup.py), on a tiny model: the
published version 0, over-long prompts skipped at import, and `--resume` with no checkpoint
rolling the run's ledger back to none (it used to keep the first attempt's rows)."""

from __future__ import annotations

from learner.setup import prepare
from lppo.core.config import load_config
from store.check import check_run
from store.queries import LedgerReader
from store.records import StepRecord
from tests.integration.run_files import small_run_config, write_task
from tests.store.helpers import group


def _close(setup) -> None:
    setup.writer.close()
    setup.ledger.end_run(setup.run_id, "failed", "closed by the test")
    setup.ledger.close()


def test_resume_without_a_checkpoint_rolls_the_ledger_back(tiny_model, tmp_path):
    paths = write_task(tmp_path, train={1: 6}, held_out={1: 2})
    cfg = load_config(small_run_config(tmp_path, tiny_model, paths["train"]))
    first = prepare(cfg, resume=False)
    assert first.notice is not None and first.notice.version == 0
    assert (cfg.run.run_dir / "weights" / "v0" / "model.safetensors").is_file()
    sids = list(first.scheduler.samples)
    first.ledger.record_groups(first.run_id, [group(f"g{i}", sid, step=i)
                                              for i, sid in enumerate(sids[:3])])
    first.ledger.record_steps(first.run_id, [StepRecord(step=1, policy_version=1,
                                                        used_attempt_ids=["g0"])])
    _close(first)  # died before its first checkpoint
    again = prepare(cfg, resume=True)
    try:
        assert again.step == 0 and again.notice.version == 0
    finally:
        _close(again)
    with LedgerReader(str(cfg.run.run_dir)) as reader:
        assert reader.sql("SELECT COUNT(*) FROM rollout_groups").rows[0][0] == 0
        assert reader.sql("SELECT COUNT(*) FROM train_steps").rows[0][0] == 0
        attempts = reader.sql("SELECT SUM(attempts) FROM sample_state").rows[0][0]
        assert check_run(reader) == []
    assert attempts == 0


def test_problems_whose_prompt_is_too_long_are_skipped_at_import(tiny_model, tmp_path, caplog):
    paths = write_task(tmp_path, train={1: 4}, held_out={1: 2})
    rows = paths["train"].read_text().splitlines()
    long = rows[0].replace('"What is', '"' + "Consider this. " * 60 + "What is", 1)
    paths["train"].write_text("\n".join([long, *rows[1:]]) + "\n")
    cfg = load_config(small_run_config(tmp_path, tiny_model, paths["train"]))
    setup = prepare(cfg, resume=False)
    try:
        assert len(setup.scheduler.samples) == 3
    finally:
        _close(setup)
    assert "1 training problems skipped: prompt longer than data.max_prompt_tokens=96" in caplog.text
