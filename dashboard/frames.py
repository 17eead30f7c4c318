"""Pure pandas shaping between the ledger's rows and the dashboard's charts and tables.

No Streamlit and no database here: every function takes rows (or frames) and returns a frame
or a value, so each one is unit-tested on hand-made input. The pages call them on the cached
rows from `dashboard.data`.

Rates. The ledger does not store "rollouts per second"; it is derived from arrival times. A
step's window runs from the end of the previous step (its `train_steps.created_at`, else the
last group it received) to the end of this one; a step's rate is what arrived in it (groups
with that `step_seen`) divided by the window's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from store.models import DROP_REASONS, STATUSES

Rows = Sequence[dict[str, Any]]

STEP_METRICS = ("loss", "kl", "entropy", "grad_norm", "lr", "mean_staleness", "tokens",
                "groups_used", "groups_dropped", "samples_active", "samples_solved",
                "samples_parked", "train_s", "gen_wait_s", "sync_s", "created_at")
FROM_METRICS = {"batch/lp_weight_std": "lp_weight_std",
                "batch/lp_weight_not_one": "lp_weight_not_one",
                "batch/prefix_taught": "prefix_taught",
                "train/kl_ref": "kl_ref"}
"""Per-step numbers kept in `train_steps.metrics` that the overview draws (NaN where a step,
e.g. of an older run, did not record them)."""


def step_frame(curves: Rows, steps: Rows) -> pd.DataFrame:
    """One row per step: the groups' aggregates (`queries.step_curves`) joined with the train
    step (`LedgerReader.steps`), plus guided share, window and throughput columns."""
    groups = pd.DataFrame(list(curves))
    trained = pd.DataFrame(list(steps))
    if trained.empty:
        trained = pd.DataFrame(columns=["step", *STEP_METRICS, *FROM_METRICS.values()])
    else:
        extra = pd.DataFrame([{col: (m or {}).get(key) for key, col in FROM_METRICS.items()}
                              for m in trained.get("metrics", [None] * len(trained))],
                             index=trained.index, dtype=float)
        trained = pd.concat([trained[["step", *STEP_METRICS]], extra], axis=1)
    if groups.empty:
        groups = pd.DataFrame(columns=["step", "groups", "rollouts", "gen_tokens", "guided",
                                       "first_at", "last_at"])
    df = groups.merge(trained, on="step", how="outer").sort_values("step", ignore_index=True)
    df["guided_share"] = df["guided"] / df["groups"].where(df["groups"] > 0)
    end = df["created_at"].fillna(df["last_at"]).astype(float)
    start = end.shift(1)
    if len(df):
        start.iloc[0] = df["first_at"].astype(float).min()
    window = (end - start).where(lambda w: w > 0)
    df["window_s"] = window
    df["rollouts_per_s"] = df["rollouts"].astype(float) / window
    df["tokens_per_s"] = df["gen_tokens"].astype(float) / window
    df["time"] = pd.to_datetime(end, unit="s")
    return df


def actor_frame(actor_steps: Rows, steps: pd.DataFrame) -> pd.DataFrame:
    """One row per (step, actor) with rollouts/s and tokens/s over the step's window (from
    `step_frame`), staleness and weight version, and the step's end as `time`."""
    df = pd.DataFrame(list(actor_steps))
    if df.empty:
        return pd.DataFrame(columns=["step", "actor_id", "rollouts_per_s", "tokens_per_s",
                                     "mean_staleness", "max_staleness", "weight_version",
                                     "time"])
    windows = steps[["step", "window_s", "time"]] if len(steps) else None
    if windows is None:
        df["window_s"], df["time"] = np.nan, pd.to_datetime(df["last_at"], unit="s")
    else:
        df = df.merge(windows, on="step", how="left")
    df["rollouts_per_s"] = df["rollouts"].astype(float) / df["window_s"]
    df["tokens_per_s"] = df["tokens"].astype(float) / df["window_s"]
    df["gen_tokens_per_s"] = df["tokens"].astype(float) / df["gen_s"].where(df["gen_s"] > 0)
    return df


def actor_totals(actors: pd.DataFrame) -> pd.DataFrame:
    """Per actor over the whole run: groups, rollouts, mean rates, staleness, last version."""
    if actors.empty:
        return pd.DataFrame(columns=["actor_id", "groups", "rollouts", "rollouts_per_s",
                                     "tokens_per_s", "mean_staleness", "max_staleness",
                                     "weight_version"])
    out = actors.groupby("actor_id", as_index=False).agg(
        groups=("groups", "sum"), rollouts=("rollouts", "sum"), tokens=("tokens", "sum"),
        window_s=("window_s", "sum"), mean_staleness=("mean_staleness", "mean"),
        max_staleness=("max_staleness", "max"), weight_version=("weight_version", "max"),
    )
    window = out["window_s"].where(out["window_s"] > 0)
    out["rollouts_per_s"] = out["rollouts"] / window
    out["tokens_per_s"] = out["tokens"] / window
    return out.drop(columns=["window_s"])


def long_form(df: pd.DataFrame, x: str, columns: dict[str, str],
              extra: Sequence[str] = ()) -> pd.DataFrame:
    """`df` melted to (x, series, value) for multi-line charts; `columns` maps column ->
    series label. Rows without a value are left out."""
    present = {c: label for c, label in columns.items() if c in df.columns}
    if df.empty or not present:
        return pd.DataFrame(columns=[x, *extra, "series", "value"])
    out = df[[x, *extra, *present]].melt(id_vars=[x, *extra], var_name="series",
                                         value_name="value")
    out["series"] = out["series"].map(present)
    return out.dropna(subset=["value"]).reset_index(drop=True)


def drop_counts(df: pd.DataFrame) -> pd.DataFrame:
    """(step, outcome, groups): used and each drop reason, for a stacked bar per step."""
    columns = {"used": "used", **{f"dropped_{r}": f"dropped: {r}" for r in DROP_REASONS}}
    out = long_form(df, "step", columns)
    return out.rename(columns={"series": "outcome", "value": "groups"})


def status_counts(df: pd.DataFrame) -> pd.DataFrame:
    """(step, status, samples) from the per-step sample counts of train steps."""
    out = long_form(df, "step", {f"samples_{s}": s for s in STATUSES})
    return out.rename(columns={"series": "status", "value": "samples"})


def trajectory_frame(rows: Rows) -> pd.DataFrame:
    """One row per group of a sample (`LedgerReader.trajectory`), with a `guided` flag and
    the group's place among the sample's groups (`attempt`)."""
    df = pd.DataFrame([{k: v for k, v in r.items() if k != "rollouts"} for r in rows])
    if df.empty:
        return df
    df["guided"] = df["prefix_len"] > 0
    df["attempt"] = range(1, len(df) + 1)
    df["kind"] = np.where(df["guided"], "guided", "unguided")
    return df


def status_changes(traj: pd.DataFrame) -> pd.DataFrame:
    """(step, status, previous) where a sample's curation status changed along its groups."""
    if traj.empty or "status" not in traj.columns:
        return pd.DataFrame(columns=["step", "status", "previous"])
    known = traj.dropna(subset=["status"])
    previous = known["status"].shift(1).fillna("active")
    changed = known[known["status"] != previous]
    return pd.DataFrame({"step": changed["step_seen"].to_numpy(),
                         "status": changed["status"].to_numpy(),
                         "previous": previous[changed.index].to_numpy()})


def prefix_cut(solution: str, prefix_len: int, solution_tokens: int | None,
               prefix_ratio: float) -> int:
    """Where, in characters, the prefix of `prefix_len` tokens ends in `solution`.

    The ledger knows the prefix in tokens, the dashboard has no tokenizer: the token position
    is mapped to characters in proportion (by `solution_tokens` when known, else by the
    ratio), then cut back to the last line or sentence end before it, as the learner cuts."""
    if not solution or (prefix_len <= 0 and prefix_ratio <= 0):
        return 0
    frac = min(1.0, prefix_len / solution_tokens if solution_tokens else prefix_ratio)
    pos = int(round(frac * len(solution)))
    for sep in ("\n", ". "):
        cut = solution.rfind(sep, 0, pos + 1)
        if cut > 0:
            return cut + len(sep)
    return pos


def pass_rate_bins(counts: Rows, bins: int = 10) -> pd.DataFrame:
    """(step, bin, groups, share) of unguided groups by pass rate: 0, then `bins` equal bins
    over (0, 1), then 1, so all-wrong and all-correct groups stand apart."""
    df = pd.DataFrame(list(counts))
    if df.empty:
        return pd.DataFrame(columns=["step", "bin", "order", "groups", "share"])
    edges = np.linspace(0.0, 1.0, bins + 1)
    labels = [f"{lo:.0%}-{hi:.0%}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    rate = df["pass_rate"].astype(float)
    order = np.clip(np.ceil(rate * bins).astype(int), 1, bins)
    order = np.where(rate <= 0, 0, np.where(rate >= 1, bins + 1, order))
    names = ["0 (all wrong)", *labels, "1 (all correct)"]
    df["order"] = order
    df["bin"] = [names[i] for i in order]
    out = df.groupby(["step", "order", "bin"], as_index=False)["groups"].sum()
    out["share"] = out["groups"] / out.groupby("step")["groups"].transform("sum")
    return out
