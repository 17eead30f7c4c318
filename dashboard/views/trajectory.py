"""Sample trajectory page: one sample's whole history in the run.

Pass rate, EMA, progress, LP weight and prefix ratio against step on shared axes, with the
sample's curation status changes ruled across; its problem and answer; its expert solution
with the prefix in use highlighted; and every group it got, newest first, with each
completion's text, verdict and reward; for a guided group, which completions saw the prefix
(a mixed group samples some without it) and what its prefix tokens were trained with
(`masked`, `off_policy` with its advantage, `sft`). The sample comes from the URL
(`?sample=ID`, so a view can be shared), a click in the Samples table, or the id box.
"""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from dashboard import charts, data, frames
from dashboard.context import Ctx, show
from lppo.core.errors import UserError

SHOWN = {"newest 10": 10, "newest 50": 50, "all": None}


def pick_sample(ctx: Ctx) -> int | None:
    """The sample to show: URL, then the session, then a default; kept in the URL."""
    wanted = _as_int(st.query_params.get("sample"))
    if wanted is None:
        wanted = st.session_state.get("sample_id")
    if wanted is None:
        wanted = data.default_sample(ctx.target, ctx.run_id, ctx.version)
    if wanted is None:
        return None
    if "traj_sample" not in st.session_state or st.session_state.get("traj_from") != wanted:
        st.session_state["traj_sample"] = int(wanted)
        st.session_state["traj_from"] = wanted
    sid = st.number_input("Sample id", min_value=0, step=1, key="traj_sample")
    st.session_state["sample_id"] = int(sid)
    st.query_params["sample"] = str(int(sid))
    return int(sid)


def _as_int(text: str | None) -> int | None:
    """A sample id from the URL; a malformed one is reported and ignored."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        st.warning(f"Ignoring ?sample={text!r} in the URL: not a sample id.")
        return None


def state_metrics(state: dict) -> None:
    cols = st.columns(7)
    cols[0].metric("Status", state["status"], help=f"since step {state['status_since_step']}")
    cols[1].metric("Groups", state["attempts"] + state["guided_attempts"],
                   help=f"{state['attempts']} unguided, {state['guided_attempts']} guided")
    cols[2].metric("EMA pass rate", _num(state["ema"], ".2f"))
    cols[3].metric("Progress", _num(state["progress"], "+.3f"))
    cols[4].metric("LP weight", _num(state["weight"], ".3f"))
    cols[5].metric("Prefix ratio", _num(state["prefix_ratio"], ".2f"),
                   help=f"{state['prefix_len']} tokens")
    cols[6].metric("Last seen", "-" if state["last_seen_step"] is None
                   else f"step {state['last_seen_step']}")


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def solution_html(solution: str, cut: int, label: str) -> str:
    """The solution as escaped, pre-wrapped HTML with its first `cut` characters marked."""
    head, tail = html.escape(solution[:cut]), html.escape(solution[cut:])
    mark = (f'<mark style="background:#fdd9a8" title="{html.escape(label)}">{head}</mark>'
            if cut else "")
    return (f'<div style="white-space:pre-wrap;font-family:monospace;font-size:0.9em;'
            f'border:1px solid #ddd;border-radius:6px;padding:0.6em">{mark}{tail}</div>')


def texts(ctx: Ctx, sample: dict, state: dict, traj: pd.DataFrame) -> None:
    left, right = st.columns(2)
    with left:
        st.markdown("**Problem**")
        st.markdown(f'<div style="white-space:pre-wrap">{html.escape(sample["problem"])}'
                    "</div>", unsafe_allow_html=True)
        st.markdown(f"**Answer:** `{sample['answer']}` · data set `{sample['dataset']}`, "
                    f"key `{sample['source_key']}`")
    with right:
        st.markdown("**Expert solution**")
        solution = sample.get("solution") or ""
        if not solution:
            st.caption("No expert solution stored: this sample cannot be guided.")
            return
        prefix_len, ratio, label = state["prefix_len"], state["prefix_ratio"], "in use now"
        guided = traj[traj["guided"]] if len(traj) else traj
        if not prefix_len and len(guided):
            last = guided.iloc[-1]
            prefix_len, ratio = int(last["prefix_len"]), float(last["prefix_ratio"])
            label = f"last used at step {int(last['step_seen'])}; unguided now"
        cut = frames.prefix_cut(solution, prefix_len, sample.get("solution_tokens"), ratio)
        st.markdown(solution_html(solution, cut, label), unsafe_allow_html=True)
        st.caption(f"Highlighted: the prefix {label} ({ratio:.0%}, {prefix_len} tokens; "
                   "mapped to characters in proportion)." if cut else
                   "Never guided: no prefix to highlight.")


def prefix_note(g: dict) -> str:
    """What a guided group did with its prefix: who saw it, and the term its tokens got."""
    mixed = g.get("guided_n") or g["n"]
    seen = f"{mixed} of {g['n']} with it" if mixed < g["n"] else "all with it"
    term = g.get("prefix_term")
    if term is None:
        return seen
    adv = g.get("prefix_advantage")
    return f"{seen}, prefix {term}" + (f" (A {adv:+.2f})" if adv is not None else "")


def selection_note(g: dict) -> str:
    """Why the sample was dispatched (`rollout_groups.selection`) and the score it ranked by."""
    chosen = g.get("selection")
    if chosen is None:
        return ""
    score = g.get("selection_score")
    return f"chosen by {chosen}" + (f" ({score:.2f})" if score is not None else "") + " · "


def group_title(g: dict) -> str:
    kind = (f"guided, prefix {g['prefix_ratio']:.0%} ({g['prefix_len']} tokens; "
            f"{prefix_note(g)})" if g["prefix_len"] else "unguided")
    fate = (f"used in step {g['used_in_step']}" if g["used_in_step"] is not None
            else f"dropped: {g['dropped_reason']}" if g["dropped_reason"] else "not trained")
    return (f"step {g['step_seen']} · {selection_note(g)}{kind} · {g['n_correct']}/{g['n']} "
            f"correct · {fate} · {g['actor_id']}, policy v{g['policy_version']}")


def rollouts(groups: list[dict]) -> None:
    st.subheader("Rollouts per step")
    choice = st.selectbox("Groups shown", list(SHOWN), key="traj_shown")
    newest = list(reversed(groups))[:SHOWN[choice]] if SHOWN[choice] else groups[::-1]
    st.caption(f"{len(newest)} of {len(groups)} groups, newest first.")
    for i, g in enumerate(newest):
        with st.expander(group_title(g), expanded=i == 0):
            for r in g.get("rollouts", []):
                ok = r["verdict"] == "correct"
                seen = (" · with the prefix" if r.get("with_prefix") else " · no prefix"
                        ) if g["prefix_len"] else ""
                st.markdown(f"{':green' if ok else ':red'}[**#{r['idx']} {r['verdict']}**] · "
                            f"reward {r['reward']:g} · {r['length']} tokens · "
                            f"finish: {r['finish_reason']}{seen}")
                st.code(r["text"] if r["text"] is not None else "(text not stored)",
                        language=None, wrap_lines=True)


def render(ctx: Ctx) -> None:
    st.title("Sample trajectory")
    sid = pick_sample(ctx)
    if sid is None:
        st.info("This run has no samples yet.")
        return
    try:
        sample = data.sample(ctx.target, sid)
    except UserError as exc:
        st.error(str(exc))
        return
    state = data.sample_state(ctx.target, ctx.run_id, ctx.version, sid)
    if state is None:
        st.warning(f"Sample {sid} is in the ledger but not in run {ctx.run['name']}.")
        return
    state_metrics(state)
    groups = data.trajectory(ctx.target, ctx.run_id, ctx.version, sid)
    traj = frames.trajectory_frame(groups)
    if traj.empty:
        st.info("No groups yet for this sample.")
    else:
        changes = frames.status_changes(traj)
        st.altair_chart(charts.trajectory(traj, changes), width="content")
    texts(ctx, sample, state, traj)
    if groups:
        rollouts(groups)


show(render)
