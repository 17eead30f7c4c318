"""Config UX: list items in `--set`, configs by name, `config check --strict`, secrets kept out
of every dump (lppo/core/config/loader.py, lppo/checks.py, lppo/core/secrets.py)."""

from __future__ import annotations

import stat

import pytest

from lppo.checks import strict_check
from lppo.cli import main
from lppo.core.config import ConfigError, apply_override, dump_config, load_config, save_config
from lppo.core.secrets import redact_url

PASSWORD = "hunter2-secret"
URL = f"postgresql+psycopg://bob:{PASSWORD}@127.0.0.1:1/ledger"


def test_list_items_are_addressed_by_index():
    raw = {"data": {"train": [{"name": "a", "path": "x.jsonl"}]}}
    apply_override(raw, "data.train[0].path=y.jsonl")
    apply_override(raw, "data.train[1].name=b")  # one past the end: appended
    apply_override(raw, "data.eval[0].shipped=aime24")
    assert raw == {"data": {"train": [{"name": "a", "path": "y.jsonl"}, {"name": "b"}],
                            "eval": [{"shipped": "aime24"}]}}


@pytest.mark.parametrize(("item", "problem"), [
    ("data.train[5].path=z", "data.train[5]: index out of range (the list has 1 item)"),
    ("data.train.path=z", "data.train: is a list, cannot set 'data.train.path' in it"),
    ("data[0]=1", "data[0]: not a list, cannot index it"),
    ("data.train[0]x=1", "bad key segment 'train[0]x'"),
    ("data.train[0].name.x=1", "data.train[0].name: is a value, cannot set"),
])
def test_bad_list_addresses_name_the_problem(item, problem):
    raw = {"data": {"train": [{"name": "a", "path": "x.jsonl"}]}}
    with pytest.raises(ConfigError) as info:
        apply_override(raw, item)
    assert problem in info.value.problems[0]


def test_a_shipped_config_is_found_by_name_from_anywhere(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert load_config("demo").run.name == "demo"
    with pytest.raises(ConfigError) as info:
        load_config("dmeo")
    assert info.value.problems == [
        f"file not found: dmeo (resolved against {tmp_path}); the configs lppo ships, usable by "
        "name: demo, gsm8k-qwen2.5-1.5b, gsm8k-smollm2-135m, math-qwen2.5-math-7b"]


def test_strict_check_reports_every_missing_thing_with_its_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "p"}\n')
    cfg = load_config(None, [
        "model.path=model", "model.tokenizer=tok", f"store.url={URL}",
        'data.train=[{name = "t", path = "missing/train.jsonl"}]',
        f'data.eval=[{{name = "e", path = "{bad}"}}, {{name = "a", shipped = "aime24"}}]'])
    report = strict_check(cfg)
    assert report.problems[:3] == [
        f"model.tokenizer: 'tok' does not exist (resolved against {tmp_path})",
        f"data.train[0].path: 'missing/train.jsonl' does not exist (resolved against {tmp_path})",
        f"data.eval[0]: {bad}:1: field 'answer': expected text or a number, got nothing",
    ]
    assert report.problems[3].startswith(
        "store.url: cannot connect to postgresql+psycopg://bob:***@127.0.0.1:1/ledger")
    assert len(report.problems) == 4 and PASSWORD not in "".join(report.problems)
    assert "data.eval[1]: a: 30 rows read from" in report.notes[0]
    # no model.tokenizer: the model's own folder must hold the tokenizer
    alone = strict_check(load_config(None, ["model.path=model"]))
    assert alone.problems == ["model.path: 'model' has none of tokenizer.json, "
                              "tokenizer_config.json, tokenizer.model, vocab.json"]
    (tmp_path / "model" / "tokenizer.json").write_text("{}")
    assert strict_check(load_config(None, ["model.path=model"])).problems == []
    gone = strict_check(load_config(None, ["model.path=missing-model"])).problems
    assert gone == [f"model.path: 'missing-model' does not exist (resolved against {tmp_path})"]


def test_strict_check_on_the_command_line_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["config", "check", "demo"]) == 0
    assert main(["config", "check", "demo", "--strict"]) == 2
    err = capsys.readouterr().err
    assert "demo: 3 problem(s):" in err
    assert f"model.path: 'runs/_cache/tiny-qwen2' does not exist (resolved against {tmp_path})" in err


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://bob:s3cr%40t@db:5432/x", "postgresql+psycopg://bob:***@db:5432/x"),
    ("postgresql+psycopg://bob:p@ss@db/x", "postgresql+psycopg://bob:***@db/x"),
    ("postgresql+psycopg://db/x?user=a&password=zz&sslmode=require",
     "postgresql+psycopg://db/x?user=a&password=***&sslmode=require"),
    ("postgresql+psycopg://bob@db/x", "postgresql+psycopg://bob@db/x"),
    ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_the_store_password_is_in_no_dump_but_the_runs_own_config(tmp_path, capsys):
    cfg = load_config(None, [f"store.url={URL}", f"run.output_dir={tmp_path}"])
    assert cfg.ledger_url == URL  # the process connects with the real URL
    assert PASSWORD not in repr(cfg) and PASSWORD not in str(cfg.model_dump())
    assert PASSWORD not in dump_config(cfg) and PASSWORD not in dump_config(cfg, docs=True)
    assert "bob:***@127.0.0.1" in dump_config(cfg)
    saved = save_config(cfg, tmp_path / "run" / "config.toml")
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert load_config(saved).ledger_url == URL  # the run's processes read the real URL
    assert main(["config", "show", str(saved)]) == 0
    assert PASSWORD not in capsys.readouterr().out
    with pytest.raises(ConfigError) as info:
        load_config(None, ["store.url=mysql://bob:" + PASSWORD + "@h/x"])
    assert PASSWORD not in str(info.value) and "mysql://bob:***@h/x" in str(info.value)


def test_show_docs_prints_every_field_with_its_description_and_default(capsys):
    assert main(["config", "show", "demo", "--docs"]) == 0
    out = capsys.readouterr().out
    assert "# Experiment trackers that also get every step's metrics" in out
    assert 'loggers = []' in out and "# default: []" in out
    assert "# A data set shipped with lppo, by name" in out
    for line in ("ppo_epochs = 1", "mini_batches = 1", 'is_level = "token"',
                 "# reject_band = (not set)", "mask_truncated = false", "dump_rollouts = false",
                 "overlong_buffer = 0", "overlong_penalty = 1.0"):  # the training options
        assert f"\n{line}\n" in out, line


def test_printed_commands_work_when_pasted(tmp_path, monkeypatch):
    """`make demo` runs `.venv/bin/lppo demo`, with no `lppo` on PATH: the commands the demo
    prints at its end name the program as it was started."""
    import sys

    from lppo.commands import invoked_as

    program = tmp_path / "venv" / "bin" / "lppo"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(program), "demo"])
    monkeypatch.setenv("PATH", "/usr/bin")
    assert invoked_as() == str(program)
    monkeypatch.setenv("PATH", f"{program.parent}:/usr/bin")
    assert invoked_as() == "lppo"
    monkeypatch.setattr(sys, "argv", ["-c"])
    assert invoked_as() == f"{sys.executable} -m lppo.cli"


def test_the_readme_name_mapping_names_real_keys():
    """Every lppo key in the README's verl/TRL table is a field of the config tree."""
    import re

    from lppo.core.config import Config
    from lppo.core.resources import CHECKOUT

    text = (CHECKOUT / "README.md").read_text()
    table = text[text.index("| verl | TRL"):].split("\n\n")[0]
    keys = [k for row in table.splitlines()[2:] for k in
            re.findall(r"`((?:learner|actor)\.[a-z_.]+)`", row.split("|")[3])]
    assert len(keys) >= 9
    for key in keys:
        node: object = Config()
        for part in key.split("."):
            assert part in type(node).model_fields, key
            node = getattr(node, part)
