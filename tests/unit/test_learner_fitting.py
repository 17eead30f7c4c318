"""Training problems whose prompt is longer than `data.max_prompt_tokens` are skipped at import,
counted in one warning; none fitting is a user error (`learner.setup.fitting`)."""

from __future__ import annotations

import logging

import pytest

from learner.setup import fitting
from lppo.core.config import Config
from lppo.core.errors import UserError
from store.records import SampleRecord


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def _cfg(limit: int) -> Config:
    return Config.model_validate({"data": {"prompt_format": "plain", "max_prompt_tokens": limit},
                                  "model": {"max_model_len": 512},
                                  "actor": {"sampling": {"max_tokens": 64}}})


def _rec(key: str, problem: str) -> SampleRecord:
    return SampleRecord(dataset="d", source_key=key, problem=problem, answer="1")


def test_long_prompts_are_skipped_and_counted(tokenizer, caplog):
    records = [_rec("short", "What is 1 + 1?"), _rec("long", "What is " + "1 + " * 60 + "1?"),
               _rec("longer", "What is " + "2 + " * 80 + "1?")]
    with caplog.at_level(logging.WARNING, logger="learner.setup"):
        kept = fitting(_cfg(32), tokenizer, records)
    assert [r.source_key for r in kept] == ["short"]
    assert "2 training problems skipped" in caplog.text and "d/long" in caplog.text


def test_no_fitting_prompt_is_a_user_error(tokenizer):
    with pytest.raises(UserError, match="data.max_prompt_tokens=4"):
        fitting(_cfg(4), tokenizer, [_rec("a", "What is 1 + 1?")])
