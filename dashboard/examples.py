"""The example queries of docs/queries.md, for the dashboard's SQL page.

docs/queries.md is the one place the examples live (a store test runs each of them on both
backends); this module reads its `## N. Title` sections: the title, the prose under it and
the first ```sql block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lppo.core.resources import shipped_root

_SECTION = re.compile(r"^## (\d+)\. (.+?)\s*$", re.MULTILINE)
_SQL = re.compile(r"```sql\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Example:
    title: str
    description: str
    sql: str


def parse(text: str) -> list[Example]:
    """Every numbered section of `text` that holds a ```sql block, in order."""
    heads = list(_SECTION.finditer(text))
    out = []
    for head, nxt in zip(heads, [*heads[1:], None], strict=True):
        body = text[head.end():nxt.start() if nxt else len(text)]
        sql = _SQL.search(body)
        if sql is None:
            continue
        prose = " ".join(body[:sql.start()].split())
        out.append(Example(f"{head.group(1)}. {head.group(2)}", prose, sql.group(1).strip()))
    return out


def load(path: Path | None = None) -> list[Example]:
    """The examples of `path` (default: docs/queries.md as lppo ships it, lppo/core/resources.py);
    an empty list where the file is missing."""
    if path is None:
        path = shipped_root() / "docs" / "queries.md"
    if not path.is_file():
        return []
    return parse(path.read_text(encoding="utf-8"))
