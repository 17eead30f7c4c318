"""The dashboard's pure parts: frame shaping, example parsing, launch options, the command."""

from __future__ import annotations

import argparse
import sys

import pandas as pd
import pytest

from dashboard import context, examples, frames
from lppo.cli import main
from lppo.commands.dashboard import APP, host_warning, streamlit_command
from lppo.core.errors import UserError
from tests.conftest import ROOT


def test_step_frame_joins_and_derives_rates():
    curves = [
        {"step": 1, "groups": 4, "rollouts": 32, "gen_tokens": 3200, "guided": 1,
         "first_at": 100.0, "last_at": 109.0},
        {"step": 2, "groups": 2, "rollouts": 16, "gen_tokens": 800, "guided": 0,
         "first_at": 111.0, "last_at": 118.0},
    ]
    steps = [{"step": 1, "created_at": 110.0, **{k: None for k in frames.STEP_METRICS
                                                    if k != "created_at"}}]
    df = frames.step_frame(curves, steps)
    assert list(df["step"]) == [1, 2]
    assert list(df["guided_share"]) == [0.25, 0.0]
    # step 1: from its first group (100) to its train step (110); step 2: 110 -> last group
    assert list(df["window_s"]) == [10.0, 8.0]
    assert list(df["rollouts_per_s"]) == [3.2, 2.0]
    assert list(df["tokens_per_s"]) == [320.0, 100.0]


def test_step_frame_of_nothing_is_empty():
    assert frames.step_frame([], []).empty


def test_actor_frame_and_totals():
    steps = pd.DataFrame({"step": [1, 2], "window_s": [10.0, 5.0],
                          "time": pd.to_datetime([110, 115], unit="s")})
    rows = [
        {"step": 1, "actor_id": "a", "groups": 2, "rollouts": 16, "tokens": 1600, "gen_s": 4.0,
         "mean_staleness": 0.0, "max_staleness": 0, "weight_version": 1,
         "first_at": 101.0, "last_at": 109.0},
        {"step": 2, "actor_id": "a", "groups": 1, "rollouts": 8, "tokens": 400, "gen_s": 0.0,
         "mean_staleness": 1.0, "max_staleness": 1, "weight_version": 1,
         "first_at": 111.0, "last_at": 114.0},
    ]
    df = frames.actor_frame(rows, steps)
    assert list(df["rollouts_per_s"]) == [1.6, 1.6]
    assert df["gen_tokens_per_s"].iloc[0] == 400.0 and pd.isna(df["gen_tokens_per_s"].iloc[1])
    (total,) = frames.actor_totals(df).to_dict("records")
    assert total["rollouts"] == 24 and total["rollouts_per_s"] == 24 / 15
    assert total["max_staleness"] == 1 and total["weight_version"] == 1


def test_long_form_and_drop_counts():
    df = pd.DataFrame({"step": [1, 2], "used": [3, 4], "dropped_all_correct": [1, None],
                       "dropped_all_wrong": [0, 2], "dropped_stale": [0, 0],
                       "dropped_invalid": [0, 0]})
    out = frames.drop_counts(df)
    assert set(out["outcome"]) == {"used", "dropped: all_correct", "dropped: all_wrong",
                                   "dropped: stale", "dropped: invalid"}
    assert out[(out.step == 2) & (out.outcome == "dropped: all_wrong")]["groups"].item() == 2
    assert len(out) == 9  # the missing value is left out
    assert frames.long_form(pd.DataFrame(), "step", {"x": "x"}).empty


def test_status_changes_follow_the_groups():
    traj = frames.trajectory_frame([
        {"step_seen": 1, "status": "active", "prefix_len": 0},
        {"step_seen": 2, "status": None, "prefix_len": 10},
        {"step_seen": 4, "status": "solved", "prefix_len": 0},
        {"step_seen": 7, "status": "active", "prefix_len": 0, "rollouts": [1]},
    ])
    assert list(traj["guided"]) == [False, True, False, False]
    assert "rollouts" not in traj.columns
    changes = frames.status_changes(traj)
    assert changes.to_dict("records") == [
        {"step": 4, "status": "solved", "previous": "active"},
        {"step": 7, "status": "active", "previous": "solved"},
    ]
    assert frames.status_changes(frames.trajectory_frame([])).empty


@pytest.mark.parametrize("prefix_len, tokens, ratio, expected", [
    (0, 30, 0.0, 0),                       # unguided: nothing marked
    (15, 30, 0.5, len("First, 2 + 3 = 5.\n")),  # half the tokens, cut back to the line end
    (29, 30, 0.95, len("First, 2 + 3 = 5.\nThen, 5 * 4 = 20.\n")),
    (3, None, 0.5, len("First, 2 + 3 = 5.\n")),  # no token count: by the ratio
])
def test_prefix_cut_maps_tokens_to_a_line_boundary(prefix_len, tokens, ratio, expected):
    solution = "First, 2 + 3 = 5.\nThen, 5 * 4 = 20.\nThe answer is \\boxed{20}."
    assert frames.prefix_cut(solution, prefix_len, tokens, ratio) == expected


def test_pass_rate_bins_keep_all_wrong_and_all_correct_apart():
    counts = [{"step": 1, "pass_rate": 0.0, "groups": 2}, {"step": 1, "pass_rate": 0.125,
              "groups": 1}, {"step": 1, "pass_rate": 1.0, "groups": 1},
              {"step": 2, "pass_rate": 0.5, "groups": 3}]
    bins = frames.pass_rate_bins(counts)
    one = bins[bins.step == 1].set_index("bin")
    assert one.loc["0 (all wrong)", "share"] == 0.5
    assert one.loc["10%-20%", "groups"] == 1 and one.loc["1 (all correct)", "groups"] == 1
    assert bins[bins.step == 2]["bin"].tolist() == ["40%-50%"]


def test_every_docs_example_is_offered():
    found = examples.load()
    text = (ROOT / "docs" / "queries.md").read_text()
    assert len(found) == text.count("```sql") >= 11
    assert found[0].title == "1. Samples rescued by prefixes"
    assert found[0].sql.startswith("WITH g AS") and not found[0].sql.endswith("```")
    assert "prefix-guided sampling is for" in found[0].description
    assert examples.load(ROOT / "does-not-exist" / "queries.md") == []


def test_launch_options_from_argv_then_environment(monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(APP), "runs/x", "--refresh", "2.5"])
    monkeypatch.setenv(context.ENV_TARGET, "runs/env")
    assert context.launch_options() == ("runs/x", 2.5)
    monkeypatch.setattr(sys, "argv", ["pytest", "-q"])  # not started by `streamlit run`
    assert context.launch_options() == ("runs/env", context.DEFAULT_REFRESH_S)
    monkeypatch.delenv(context.ENV_TARGET)
    monkeypatch.setenv(context.ENV_REFRESH, "0.1")
    assert context.launch_options() == (None, 1.0)  # at least one second


def test_display_url_hides_passwords():
    assert context.display_url("sqlite:////tmp/x/ledger.db") == "/tmp/x/ledger.db"
    shown = context.display_url("postgresql+psycopg://lppo:secret@db:5432/ledger")
    assert "secret" not in shown and "db:5432/ledger" in shown


def test_streamlit_command_serves_the_app_read_only_on_loopback():
    args = argparse.Namespace(target="runs/demo", host="127.0.0.1", port=8600, refresh=5.0,
                              no_browser=True)
    cmd = streamlit_command(args)
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(APP)]
    assert APP == ROOT / "dashboard" / "app.py" and APP.is_file()
    opts = dict(zip(cmd[5:cmd.index("--"):2], cmd[6:cmd.index("--"):2], strict=True))
    assert opts["--server.address"] == "127.0.0.1" and opts["--server.port"] == "8600"
    assert opts["--server.headless"] == "true"
    assert opts["--browser.gatherUsageStats"] == "false"
    assert cmd[cmd.index("--") + 1:] == ["runs/demo", "--refresh", "5"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_a_loopback_host_needs_no_flag(host):
    args = argparse.Namespace(host=host, port=8501, allow_non_loopback=False)
    assert host_warning(args) is None


def test_a_host_beyond_loopback_is_refused_without_the_flag_and_warned_with_it(tmp_path, capsys):
    args = argparse.Namespace(host="0.0.0.0", port=8600, allow_non_loopback=False)
    with pytest.raises(UserError, match=r"--host 0.0.0.0: not a loopback address, .* ssh -L "
                                        r"8600:127.0.0.1:8600 THIS_HOST"):
        host_warning(args)
    args.allow_non_loopback = True
    assert "WARNING: serving on 0.0.0.0, beyond loopback, with no login" in host_warning(args)
    # the command refuses before it opens the ledger or starts Streamlit
    assert main(["dashboard", str(tmp_path / "ledger.db"), "--host", "0.0.0.0"]) == 2
    assert "not a loopback address" in capsys.readouterr().err
