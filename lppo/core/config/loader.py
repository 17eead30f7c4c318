"""Loading, overriding, validating and saving the config tree.

    raw = TOML file  ->  apply `--set a.b.c=value` overrides  ->  Config.model_validate(raw)

Override values are parsed as TOML values (`1e-6` is a float, `false` a bool, `["a", "b"]` a
list, `{x = 1}` a table) and fall back to a plain string (`run.name=demo`), so types come from
the value first and are then checked against the schema by pydantic.

Every failure raises `ConfigError`, whose message has one line per problem naming the dotted
key, what was expected and what was given, e.g.

    learner.lr: expected float > 0, got 'fast'
    learner.lrr: unknown key (did you mean 'lr'?)
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import annotated_types
import tomli_w
from pydantic import BaseModel, ValidationError

from lppo.core.config.schema import Config
from lppo.core.errors import UserError, resolved_against
from lppo.core.resources import shipped_root
from lppo.core.secrets import REVEAL


class ConfigError(UserError, ValueError):
    """A config file, override or value is invalid; the message names each key and problem."""

    def __init__(self, problems: Sequence[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        head = f"invalid config{f' ({source})' if source else ''}:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Read TOML at `path` (or start from defaults), apply `key=value` overrides, validate.

    `path` may also name a config lppo ships (`demo`, `gsm8k-smollm2-135m`: the TOML file of
    that name in configs/ of the installed package) where no file of that name exists."""
    if path is not None:
        path = resolve_config_path(path)
    source = str(path) if path is not None else "defaults"
    raw = read_toml(path) if path is not None else {}
    for item in overrides:
        apply_override(raw, item)
    return validate_config(raw, source=source)


def shipped_configs() -> dict[str, Path]:
    """The configs lppo ships, by name (`demo` -> .../configs/demo.toml)."""
    return {p.stem: p for p in sorted((shipped_root() / "configs").glob("*.toml"))}


def resolve_config_path(path: str | Path) -> Path:
    """`path` itself where it exists or has a folder part; else the shipped config of that
    name, if there is one."""
    p = Path(path)
    if p.exists() or len(p.parts) > 1:
        return p
    return shipped_configs().get(p.name, p)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, turning I/O and syntax errors into `ConfigError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        names = ", ".join(shipped_configs())
        raise ConfigError([f"file not found: {p}{resolved_against(p)}; the configs lppo ships, usable by "
                           f"name: {names}"], source=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read {p}: {exc}"], source=str(p)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"TOML syntax error: {exc}"], source=str(p)) from None


def validate_config(raw: Mapping[str, Any], source: str | None = None) -> Config:
    """Validate a raw mapping into a `Config`, with readable per-key errors."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, Config), source=source) from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `dotted.key=value` override to the raw mapping in place.

    A list item is addressed by its index (`data.train[0].path=...`); an index one past the
    end appends a new table (`data.eval[1].name=aime` on a one-item list)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError([f"--set {item!r}: expected dotted.key=value"])
    steps = _key_steps(key, item)
    node: Any = raw
    for depth, (step, nxt) in enumerate(zip(steps, steps[1:], strict=False)):
        where = dotted_key(steps[: depth + 1])
        node = _child(node, step, where, key, fresh=[] if isinstance(nxt, int) else {})
    last = steps[-1]
    if isinstance(last, int):
        _check_index(node, last, dotted_key(steps), appendable=False)
    elif not isinstance(node, dict):
        raise ConfigError([f"{dotted_key(steps[:-1])}: is a list, cannot set {key!r} in it"])
    node[last] = parse_value(text.strip())


_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


def _key_steps(key: str, item: str) -> list[str | int]:
    """`data.train[0].path` -> `["data", "train", 0, "path"]`."""
    steps: list[str | int] = []
    for part in key.split("."):
        if not part:
            raise ConfigError([f"--set {item!r}: empty key segment in {key!r}"])
        match = _SEGMENT.fullmatch(part)
        if match is None:
            raise ConfigError([f"--set {item!r}: bad key segment {part!r} in {key!r} (expected "
                               "name or name[index])"])
        steps.append(match.group(1))
        steps.extend(int(i) for i in re.findall(r"\d+", match.group(2)))
    return steps


def _child(node: Any, step: str | int, where: str, key: str, fresh: Any) -> Any:
    """The container at `node[step]`, created as `fresh` where the key or index is new."""
    if isinstance(step, int):
        _check_index(node, step, where, appendable=True)
        if step == len(node):
            node.append(fresh)
    elif isinstance(node, dict):
        node.setdefault(step, fresh)
    else:
        raise ConfigError([f"{where.rpartition('.')[0]}: is a list, use an index to set {key!r}"])
    child = node[step]
    if not isinstance(child, dict | list):
        raise ConfigError([f"{where}: is a value, cannot set {key!r} below it"])
    return child


def _check_index(node: Any, index: int, where: str, appendable: bool) -> None:
    if not isinstance(node, list):
        raise ConfigError([f"{where}: not a list, cannot index it"])
    limit = len(node) + (1 if appendable else 0)
    if index >= limit:
        raise ConfigError([f"{where}: index out of range (the list has {len(node)} item"
                           f"{'' if len(node) == 1 else 's'})"])


def parse_value(text: str) -> Any:
    """Parse an override value as a TOML value; anything that is not valid TOML is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def dump_config(config: Config, docs: bool = False, reveal_secrets: bool = False) -> str:
    """The resolved config as TOML (None values omitted: they are the defaults); with `docs`,
    every key is preceded by its description and default as comments. Secrets (a password in
    `store.url`) are redacted unless `reveal_secrets` (lppo/core/secrets.py)."""
    if not docs:
        context = REVEAL if reveal_secrets else None
        return tomli_w.dumps(config.model_dump(mode="json", exclude_none=True, context=context))
    return "\n".join(_documented(config, [])).lstrip("\n") + "\n"


def _documented(model: BaseModel, path: list[str]) -> Iterable[str]:
    """TOML lines of `model` (a section at `path`) with each field's docstring as comments."""
    scalars, tables = [], []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        nested = isinstance(value, list) and value and all(isinstance(v, BaseModel)
                                                            for v in value)
        if isinstance(value, BaseModel) or nested:
            tables.append((name, value))
        else:
            scalars.append((name, info))
    if path and scalars:
        yield ""
        yield f"[{'.'.join(path)}]"
    for name, info in scalars:
        for line in (info.description or "").splitlines():
            yield f"# {line.strip()}"
        shown = model.model_dump(mode="json", include={name})[name]
        if info.is_required():
            yield "# required"
        elif (default := info.get_default(call_default_factory=True)) is not None:
            yield f"# default: {json.dumps(_json(default))}"
        if shown is None:
            yield f"# {name} = (not set)"
        else:
            yield _assignment(name, shown)
    for name, value in tables:
        if isinstance(value, list):
            for item in value:
                yield ""
                yield f"[[{'.'.join([*path, name])}]]"
                yield from _documented(item, [])
        else:
            yield from _documented(value, [*path, name])


def _assignment(name: str, value: Any) -> str:
    """`name = value` on one line (a table value inline, so the section stays open)."""
    if isinstance(value, dict):
        items = (tomli_w.dumps({k: v}).strip() for k, v in value.items())
        return f"{name} = {{{', '.join(items)}}}"
    return tomli_w.dumps({name: value}).strip()


def _json(value: Any) -> Any:
    """A default as TOML can write it (paths as strings, tuples as lists)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def save_config(config: Config, path: str | Path) -> Path:
    """Write the resolved config to `path` atomically (write to a temp file, then rename), for
    the run's own processes: secrets kept, so the file is readable by its owner only."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(dump_config(config, reveal_secrets=True))
    os.chmod(tmp, 0o600)  # an existing file keeps its mode through os.open
    tmp.replace(p)
    return p


# --------------------------------------------------------------------------------------------
# error formatting
# --------------------------------------------------------------------------------------------


def format_validation_error(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    """One line per pydantic error: `dotted.key: expected <type and bounds>, got <value>`."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
        key = dotted_key(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            lines.append(f"{key}: unknown key{_suggest(root, loc)}")
        elif kind == "missing":
            lines.append(f"{key}: required key is missing")
        elif kind == "value_error":
            # Cross-field validators already name their keys: keep their message as is.
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(msg if ":" in msg.split(" ")[0] else f"{key or 'config'}: {msg}")
        else:
            expected = describe_field(root, loc) or err["msg"]
            lines.append(f"{key}: expected {expected}, got {_show(err.get('input'))}")
    return lines


def describe_field(root: type[BaseModel], loc: Sequence[str]) -> str | None:
    """Human description of the type and bounds of the field at `loc`, e.g. `float > 0`."""
    model: Any = root
    field = None
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            break
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _inner_model(field.annotation)
    if field is None:
        return None
    text = _type_name(field.annotation)
    bounds = []
    for meta in field.metadata:
        for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(meta, attr, None)
            if value is not None:
                bounds.append(f"{op} {value:g}" if isinstance(value, float) else f"{op} {value}")
        if isinstance(meta, annotated_types.MinLen) and meta.min_length:
            bounds.append(f"of length >= {meta.min_length}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            bounds.append(f"matching {pattern}")
    return f"{text} {' and '.join(bounds)}" if bounds else text


def dotted_key(loc: Sequence[str | int]) -> str:
    """`("data", "train", 0, "path")` -> `data.train[0].path`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _inner_model(annotation: Any) -> Any:
    """The BaseModel class inside an annotation (through Optional and list), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        optional = " or none" if type(None) in args else ""
        return " or ".join(names) + optional
    if origin in (list, tuple, dict):
        inner = ", ".join(_type_name(a) for a in args if a is not Ellipsis)
        return f"{origin.__name__}[{inner}]"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "a table"
        if issubclass(annotation, Path):
            return "path"
        return annotation.__name__
    return str(annotation)


def _suggest(root: type[BaseModel], loc: Sequence[str]) -> str:
    model: Any = root
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(model, type) else None
        model = _inner_model(field.annotation) if field else None
        if model is None:
            return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    valid = ", ".join(model.model_fields)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {valid})"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
