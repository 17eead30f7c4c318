"""The `lppo` command line: help, config show/check, and one clear message on bad input."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from tests.conftest import ROOT, run_cli


def test_help_lists_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    assert "config" in out.stdout and "demo" in out.stdout


def test_config_show_prints_resolved_toml_with_overrides():
    out = run_cli("config", "show", "configs/demo.toml", "--set", "learner.lr=3e-4")
    assert out.returncode == 0, out.stderr
    data = tomllib.loads(out.stdout)
    assert data["learner"]["lr"] == 3e-4
    assert data["run"]["name"] == "demo"
    assert "retire_after" in data["lppo"]["curation"]


def test_config_show_docs_comments_every_key_and_stays_the_same_toml():
    args = ("config", "show", "configs/demo.toml", "--set", "lppo.pg.sft_coef=0.5",
            "--set", "actor.reward.judge_unfinished=true",
            "--set", "actor.reward.truncated_overrides={correct = 0.5}")
    plain, documented = run_cli(*args), run_cli(*args, "--docs")
    assert documented.returncode == 0, documented.stderr
    assert tomllib.loads(documented.stdout) == tomllib.loads(plain.stdout)
    text = documented.stdout
    for key, words in (("sft_coef = 0.5", "supervised term"), ("guided_share", "mixed rollouts"),
                       ("off_policy_baseline", "unguided pass rate"), ("signal", "lagged"),
                       ("revisit_steps", "bounded number of steps"), ("anneal =", "max_ratio")):
        at = text.index(key)
        assert words in text[text.rindex("\n[", 0, at):at], key  # documented above its key
    assert "# default: 0.0\nsft_coef = 0.5" in text


def test_config_check_ok_and_errors_without_traceback(tmp_path):
    assert run_cli("config", "check", "configs/demo.toml").returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[learner]\nlr = "fast"\nbatch_groups = 0\n[actor]\ncout = 2\n')
    out = run_cli("config", "check", str(bad))
    assert out.returncode == 2
    assert "learner.lr: expected float > 0, got 'fast'" in out.stderr
    assert "learner.batch_groups: expected int >= 1, got 0" in out.stderr
    assert "actor.cout: unknown key (did you mean 'count'?)" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_override_syntax_is_one_message():
    out = run_cli("config", "show", "configs/demo.toml", "--set", "learner.lr")
    assert out.returncode == 2
    assert "expected dotted.key=value" in out.stderr and "Traceback" not in out.stderr


def test_cli_import_does_not_load_torch_or_vllm():
    code = (
        "import sys; from lppo.cli import build_parser; build_parser(); "
        "import lppo.core.config, lppo.core.wire, lppo.core.transport, lppo.core.logs; "
        "import lppo.testing.wirecheck; "
        "heavy = sorted(m for m in ('torch', 'vllm', 'transformers') if m in sys.modules); "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_full_disk_is_one_line_not_a_traceback(monkeypatch, capsys):
    import errno

    from lppo import cli

    def full(args):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:  # as the ledger writer reports it: chained
            raise RuntimeError("ledger writer failed") from exc

    parser = cli.build_parser()
    args = parser.parse_args(["config", "show", "configs/demo.toml"])
    args.handler = full
    monkeypatch.setattr(cli, "build_parser", lambda: type("P", (), {
        "parse_args": lambda self, argv: args})())
    assert cli.main([]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "--resume" in err and "Traceback" not in err
    args.handler = lambda a: 1 / 0  # anything else is a bug: it propagates
    with pytest.raises(ZeroDivisionError):
        cli.main([])
