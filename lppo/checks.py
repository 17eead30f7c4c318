"""`lppo config check --strict`: does what the config points at exist and open?

`load_config` checks a config's shape (types, bounds, cross-field rules); these checks look at
the world the config names, and report every problem at once:

- `model.path` (and `model.tokenizer`): a folder with `config.json` and tokenizer files, or a
  hub name present in the local Hugging Face cache (else a note: it is downloaded at start,
  unless HF_HUB_OFFLINE is set, then a problem);
- every `data.train` / `data.eval` set: its file, folder or cached hub data set exists, and
  every row reads (store/datasets.py: the same reader the learner uses);
- the ledger (`store.url`): PostgreSQL accepts a connection, or SQLite's folder exists or can
  be created.

A relative path that is missing is reported with the folder it was resolved against.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from actor.eval_targets import HUB_NAME, TOKENIZER_FILES, hub_offline, in_hub_cache
from lppo.core.config import Config, DatasetSpec
from lppo.core.errors import resolved_against
from lppo.core.secrets import redact_url


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def strict_check(cfg: Config) -> CheckReport:
    """Every problem (and note) about what `cfg` points at."""
    report = CheckReport()
    _check_model(cfg, report)
    for section, specs in (("data.train", cfg.data.train), ("data.eval", cfg.data.eval)):
        for index, spec in enumerate(specs):
            _check_data(f"{section}[{index}]", spec, report)
    _check_ledger(cfg, report)
    return report


def missing(path: Path) -> str:
    """`'x' does not exist`, with the folder a relative path was resolved against."""
    return f"{str(path)!r} does not exist{resolved_against(path)}"


def _check_model(cfg: Config, report: CheckReport) -> None:
    """The model folder needs config.json, the tokenizer's folder (the model's unless
    `model.tokenizer`) tokenizer files; a hub name is looked up in the local cache once."""
    tokenizer_key = "model.tokenizer" if cfg.model.tokenizer else "model.path"
    seen: set[str] = set()
    for key, name, wanted in (("model.path", cfg.model.path, ("config.json",)),
                              (tokenizer_key, cfg.model.tokenizer or cfg.model.path,
                               TOKENIZER_FILES)):
        folder = Path(name).expanduser()
        if folder.is_dir():
            if not any((folder / f).is_file() for f in wanted):
                report.problems.append(f"{key}: {name!r} has none of {', '.join(wanted)}")
        elif name in seen:
            continue  # the same missing folder or hub name: reported once
        elif HUB_NAME.match(name) and not folder.exists():
            _check_hub_model(key, name, report)
        else:
            report.problems.append(f"{key}: {missing(folder)}")
        seen.add(name)


def _check_hub_model(key: str, name: str, report: CheckReport) -> None:
    if in_hub_cache(name):
        return
    text = f"{key}: {name!r} is not a local folder nor in the Hugging Face cache"
    if hub_offline():
        report.problems.append(f"{text}, and HF_HUB_OFFLINE is set")
    else:
        report.notes.append(f"{text}: it will be downloaded at start")


def _check_data(key: str, spec: DatasetSpec, report: CheckReport) -> None:
    from store.datasets import read_dataset
    from store.sources import DatasetError

    if spec.path is not None and not spec.path.exists():
        report.problems.append(f"{key}.path: {missing(spec.path)}")
        return
    try:
        rows = len(read_dataset(spec))
    except DatasetError as exc:
        report.problems.append(f"{key}: {exc}")
        return
    report.notes.append(f"{key}: {spec.name}: {rows} rows read from {spec.source}")


def _check_ledger(cfg: Config, report: CheckReport) -> None:
    url = cfg.ledger_url
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        database = make_url(url).database
        if database and database != ":memory:":
            folder = Path(database).parent
            while not folder.exists():
                folder = folder.parent
            if not os.access(folder, os.W_OK):
                report.problems.append(f"store: the ledger's folder {str(folder)!r} is not "
                                       "writable")
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        report.problems.append(f"store.url: cannot connect to {redact_url(url)}: "
                               f"{redact_url(reason)}")
    finally:
        engine.dispose()
