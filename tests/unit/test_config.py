"""The config tree: shipped configs load, overrides are typed, every error names its key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from lppo.core.config import (
    Config,
    ConfigError,
    apply_override,
    dump_config,
    load_config,
    parse_value,
    save_config,
    validate_config,
)
from lppo.core.config.schema import Section

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))


def test_configs_folder_is_not_empty():
    assert any(p.name == "demo.toml" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_round_trips(path: Path, tmp_path: Path):
    cfg = load_config(path)
    saved = save_config(cfg, tmp_path / "config.toml")
    assert load_config(saved) == cfg


def test_defaults_are_valid():
    cfg = load_config()
    assert cfg.transport.host == "127.0.0.1"
    assert cfg.lppo.lp.beta == 0.8 and cfg.lppo.lp.kappa == 8 and cfg.lppo.pg.r0 == 0.5


def _walk(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        yield f"{prefix}{name}", field
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, Section):
            yield from _walk(ann, f"{prefix}{name}.")


def test_every_field_is_documented():
    undocumented = [key for key, field in _walk(Config) if not (field.description or "").strip()]
    assert undocumented == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-6", 1e-6),
        ("3", 3),
        ("false", False),
        ('["a", "b"]', ["a", "b"]),
        ("{x = 1}", {"x": 1}),
        ("demo-run", "demo-run"),
        ('"quoted"', "quoted"),
        ("", ""),
    ],
)
def test_override_values_are_parsed_as_toml_with_string_fallback(text, value):
    assert parse_value(text) == value


def test_overrides_apply_with_types():
    cfg = load_config(
        ROOT / "configs" / "demo.toml",
        [
            "learner.lr=3e-5",
            "lppo.lp.enabled=false",
            "run.name=other",
            'actor.sampling.stop=["\\n\\n", "END"]',
            "learner.max_staleness=0",
        ],
    )
    assert cfg.learner.lr == 3e-5
    assert cfg.lppo.lp.enabled is False
    assert cfg.run.name == "other"
    assert cfg.actor.sampling.stop == ["\n\n", "END"]
    assert cfg.learner.max_staleness == 0


def _problems(*overrides: str, raw: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        if raw is not None:
            validate_config(raw)
        else:
            load_config(None, overrides)
    return info.value.problems


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("learner.lr=fast", "learner.lr: expected float > 0, got 'fast'"),
        ("learner.lr=-1", "learner.lr: expected float > 0, got -1"),
        ("learner.group_size=1", "learner.group_size: expected int >= 2, got 1"),
        ("learner.max_steps=2.5", "learner.max_steps: expected int >= 1, got 2.5"),
        ("lppo.lp.beta=1.0", "lppo.lp.beta: expected float >= 0 and < 1, got 1.0"),
        ("learner.advantage=ppo", "learner.advantage: expected one of 'grpo', 'drgrpo', "
         "'reinforce_pp', got 'ppo'"),
        ("learner.lrr=1", "learner.lrr: unknown key (did you mean 'lr'?)"),
        ("nope.x=1", "nope: unknown key"),
        ("learner=3", "learner: expected a table, got 3"),
        ("run.name=a b", "run.name: expected str of length >= 1 and matching"),
        ("learner.tis_cap=0.5", "learner.tis_cap: expected float or none > 1, got 0.5"),
        ("transport.work_port=70000", "transport.work_port: expected int >= 1 and <= 65535, got 70000"),
        ("actor.sampling.top_p=0", "actor.sampling.top_p: expected float > 0 and <= 1, got 0"),
        ("learner.lr=inf", "learner.lr: expected float > 0, got inf"),
        ("learner.clip_low=nan", "learner.clip_low: expected float >= 0 and < 1, got nan"),
        ("lppo.pg.sft_coef=inf", "lppo.pg.sft_coef: expected float >= 0, got inf"),
        ("actor.reward.correct=1.7e308",
         "actor.reward.correct: expected a finite reward within +-1000, got 1.7e+308"),
        ("actor.reward.wrong=-inf", "actor.reward.wrong: expected float, got -inf"),
        ("learner.weights_backend=nccl",  # not a backend: rejected, never silently ignored
         "learner.weights_backend: expected one of 'filesystem', 'collective', got 'nccl'"),
    ],
)
def test_bad_values_name_key_and_expectation(override, expected):
    problems = _problems(override)
    assert len(problems) == 1
    assert problems[0].startswith(expected), problems[0]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["lppo.pg.r0=0.95"], "lppo.pg.r0: expected <= lppo.pg.max_ratio (0.9), got 0.95"),
        (["transport.host=0.0.0.0"], "transport.host: '0.0.0.0' is not a loopback address"),
        (["transport.rollout_port=5555"], "transport: work_port, rollout_port and weights_port"),
        (["learner.weights_backend=collective", "transport.sync_port=5557"],
         "transport.sync_port: 5557 is already one of the other transport ports"),
        (["transport.peer_timeout_s=1"], "transport.peer_timeout_s: expected > transport.heartbeat_s"),
        (["learner.warmup_steps=500"], "learner.warmup_steps: expected <= learner.max_steps"),
        (["learner.advantage=drgrpo"], "learner.std_normalize: Dr.GRPO does not divide"),
        (["actor.sampling.max_tokens=5000"], "actor.sampling.max_tokens: data.max_prompt_tokens"),
        (["store.url=mysql://x"], "store.url: expected a sqlite:/// or postgresql+psycopg://"),
        (["data.plain_template=Q:"], "data.plain_template: must contain '{problem}'"),
        (["learner.thompson.target=0.3"],
         "learner.thompson: set, but learner.selection is 'lppo'"),
        (["learner.selection=uniform", "learner.category_bandit.field=level"],
         "learner.category_bandit: set, but learner.selection is 'uniform'"),
        (["learner.selection=category_bandit"], "learner.category_bandit.field: required"),
        (["learner.selection=bandit"], "learner.selection: expected one of 'lppo', 'uniform'"),
    ],
)
def test_cross_field_rules_name_their_keys(overrides, expected):
    problems = _problems(*overrides)
    assert any(p.startswith(expected) for p in problems), problems


def test_cross_field_rules_accept_consistent_values():
    cfg = load_config(
        None,
        ["transport.host=0.0.0.0", "transport.allow_non_loopback=true",
         "learner.advantage=drgrpo", "learner.std_normalize=false", "transport.host=::1"],
    )
    assert cfg.learner.advantage == "drgrpo"
    assert load_config(None, ["transport.host=localhost"]).transport.host == "localhost"
    cfg = load_config(None, ["learner.selection=thompson", "learner.thompson.decay=0.9"])
    assert cfg.learner.thompson.decay == 0.9


def test_all_problems_reported_at_once_with_list_positions():
    problems = _problems(raw={
        "learner": {"lr": "fast", "batch_groups": 0},
        "data": {"train": [{"name": "gsm8k", "path": "x.jsonl", "formt": "gsm8k"}, {"name": "y"}]},
    })
    assert "learner.lr: expected float > 0, got 'fast'" in problems
    assert "learner.batch_groups: expected int >= 1, got 0" in problems
    assert "data.train[0].formt: unknown key (did you mean 'format'?)" in problems
    assert "data.train[1]: data set 'y': give exactly one of path, shipped or hub" in problems


def test_toml_syntax_error_and_missing_file(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[learner\nlr = 1\n")
    with pytest.raises(ConfigError, match=r"bad.toml.*\n.*TOML syntax error"):
        load_config(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("item", "message"),
    [("learner.lr", "expected dotted.key=value"), ("=3", "expected dotted.key=value"),
     ("learner..lr=3", "empty key segment"), ("learner.lr.x=1", "is a value")],
)
def test_malformed_overrides(item, message):
    raw = {"learner": {"lr": 1.0}}
    with pytest.raises(ConfigError, match=message):
        apply_override(raw, item)


def test_saved_config_is_resolved_toml(tmp_path: Path):
    cfg = load_config(ROOT / "configs" / "demo.toml", ["learner.lr=0.5"])
    path = save_config(cfg, tmp_path / "run" / "config.toml")
    data = tomllib.loads(path.read_text())
    # Resolved: defaults are written out, not only what the file set.
    assert data["learner"]["lr"] == 0.5
    assert data["lppo"]["curation"]["retire_after"] == cfg.lppo.curation.retire_after
    assert not list(path.parent.glob("*.tmp"))
    assert dump_config(load_config(path)) == dump_config(cfg)


def test_ledger_url_defaults_to_sqlite_in_run_dir(tmp_path: Path):
    cfg = load_config(None, [f"run.output_dir={str(tmp_path)!r}".replace("'", '"'), "run.name=r1"])
    assert cfg.ledger_url == f"sqlite:///{tmp_path / 'r1' / 'ledger.db'}"
    pg = load_config(None, ['store.url="postgresql+psycopg://u@localhost:5432/db"'])
    assert pg.ledger_url.startswith("postgresql+psycopg://")
