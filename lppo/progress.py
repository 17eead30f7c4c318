"""The live progress view of `lppo run`, read from the ledger (read-only).

Every refresh reads the newest `train_steps` rows of the run and shows: step / max steps,
reward, pass rate, groups used and dropped, prefix-guided share, mean staleness, rollout
tokens per second, time per step and ETA, and which processes are alive. On a terminal it is a
rich live table; otherwise (logs, CI) one plain line per new step.

The ledger may not exist yet when the run starts (the learner creates it): the view shows
"waiting for the learner" until it does. A reader error is shown, never raised: the view must
not take the run down.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lppo.core.config import Config

REFRESH_S = 2.0


def summarize(rows: list[dict[str, Any]], max_steps: int) -> dict[str, Any] | None:
    """Numbers for the view from the run's train-step rows (oldest first); None if none."""
    if not rows:
        return None
    last = rows[-1]
    m = last.get("metrics") or {}
    out = {
        "step": last["step"], "max_steps": max_steps, "loss": last.get("loss"),
        "reward": m.get("batch/reward_mean"), "pass_rate": m.get("batch/pass_rate"),
        "used": last.get("groups_used"), "dropped": last.get("groups_dropped"),
        "guided": m.get("batch/guided_share"), "staleness": last.get("mean_staleness"),
        "tokens_per_s": None, "step_s": None, "eta_s": None,
    }
    if len(rows) >= 2:
        first = rows[max(0, len(rows) - 11)]
        span = last["created_at"] - first["created_at"]
        steps = last["step"] - first["step"]
        if span > 0 and steps > 0:
            out["step_s"] = span / steps
            out["eta_s"] = out["step_s"] * max(0, max_steps - last["step"])
            tokens = (m.get("actor/tokens") or 0) - ((first.get("metrics") or {}).get(
                "actor/tokens") or 0)
            out["tokens_per_s"] = tokens / span if tokens > 0 else None
    return out


def _fmt(value: Any, spec: str = ".3f", suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}{suffix}"


def plain_line(s: dict[str, Any]) -> str:
    return (
        f"step {s['step']}/{s['max_steps']}  reward {_fmt(s['reward'])}  "
        f"pass {_fmt(s['pass_rate'])}  used {s['used']} dropped {s['dropped']}  "
        f"guided {_fmt(None if s['guided'] is None else 100 * s['guided'], '.0f', '%')}  "
        f"staleness {_fmt(s['staleness'], '.2f')}  tok/s {_fmt(s['tokens_per_s'], '.0f')}  "
        f"ETA {_fmt(s['eta_s'], '.0f', 's')}"
    )


class ProgressView:
    """Polls the ledger and renders; `refresh()` is cheap to call often."""

    def __init__(self, cfg: Config, stream=None):
        self.cfg = cfg
        self.stream = stream or sys.stdout
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self._reader = None
        self._next = 0.0
        self._last_step = -1
        self._live = None
        self.error: str | None = None
        self.latest: dict[str, Any] | None = None

    def _rows(self) -> list[dict[str, Any]]:
        from store.queries import LedgerReader

        try:
            if self._reader is None:
                url = self.cfg.ledger_url
                if url.startswith("sqlite") and not (self.cfg.run.run_dir / "ledger.db").exists():
                    return []
                # The learner creates the file, then its schema: opening in between fails
                # ("empty ledger"); the next refresh tries again.
                self._reader = LedgerReader(url, statement_timeout_s=5.0)
            rows = self._reader.steps(self.cfg.run.name)
            self.error = None
            return rows
        except Exception as exc:  # noqa: BLE001 - shown in the view, the run goes on
            self.error = f"{type(exc).__name__}: {exc}"
            return []

    def refresh(self, alive: dict[str, bool]) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + REFRESH_S
        self.latest = summarize(self._rows(), self.cfg.learner.max_steps)
        if self.tty:
            self._render_live(alive)
        elif self.latest is not None and self.latest["step"] != self._last_step:
            self._last_step = self.latest["step"]
            print(plain_line(self.latest), file=self.stream, flush=True)

    def _render_live(self, alive: dict[str, bool]) -> None:
        from rich.live import Live
        from rich.table import Table

        table = Table(title=f"lppo run {self.cfg.run.name}", show_header=False)
        s = self.latest
        if s is None:
            table.add_row("status", self.error or "waiting for the learner's first step")
        else:
            for key, value in (("step", f"{s['step']}/{s['max_steps']}"), ("line", plain_line(s)),
                               ("time/step", _fmt(s["step_s"], ".1f", " s"))):
                table.add_row(key, value)
        table.add_row("processes", "  ".join(f"{k}:{'up' if v else 'down'}"
                                             for k, v in alive.items()))
        if self._live is None:
            self._live = Live(table, refresh_per_second=1, transient=False)
            self._live.start()
        else:
            self._live.update(table)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
        if self._reader is not None:
            self._reader.close()
