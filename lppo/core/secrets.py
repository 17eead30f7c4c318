"""Secrets in the config: `SecretURL`, a URL whose password never leaves the process by accident.

A `SecretURL` field (`store.url`) holds the URL as it was given, so the process connects with
it, but:

- every dump of the config (`model_dump`, `lppo config show`, `runs.config` in the ledger, the
  config sent to trackers) writes it with the password replaced by `***`, unless the dump is
  asked for with `context=REVEAL` (only `save_config`, which writes the run directory's
  `config.toml` that the run's own processes read, with permissions 0600);
- a `SecretURL` field is declared with `Field(repr=False)`, so a logged config shows no URL.

The password is found in the URL's user info (`user:PASSWORD@host`) and in a `password=` query
parameter (`?password=...`, which psycopg accepts).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import PlainSerializer, SerializationInfo

MASK = "***"
REVEAL = {"reveal_secrets": True}
"""Serialization context for the one dump that must keep secrets (`save_config`)."""

_USERINFO_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:?#]*):[^/?#]*@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`url` with its password (user info or `password=` parameter) replaced by `***`."""
    url = _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", url, count=1)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", url)


def _serialize(value: str | None, info: SerializationInfo) -> str | None:
    context: Any = info.context
    if value is None or (isinstance(context, dict) and context.get("reveal_secrets")):
        return value
    return redact_url(value)


SecretURL = Annotated[str, PlainSerializer(_serialize, when_used="always")]
"""A URL that may hold a password: used as given, redacted in every dump but `REVEAL`'s."""
