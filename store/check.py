"""Ledger consistency: what must hold of a run's rows whatever happened to the processes.

    violations = check_run(reader, run)          # [] for a consistent run
    lppo ledger check RUN_DIR_OR_URL [--run NAME]

Each rule is one read-only SQL query that returns the offending rows (at most `LIMIT`), so a
violation names what is wrong and where. The fault tests run it after every fault they inject
(crashes, forged groups, resumes); a user can run it on any ledger.

| rule | what must hold |
|---|---|
| `rollouts_match_group` | a group's `n` and `n_correct` are its rollouts' count and correct count |
| `unique_attempts` | an attempt id appears once per run |
| `known_samples` | every group's and sample state's sample exists |
| `steps_consecutive` | train steps are 1..N, one policy version each |
| `used_match_steps` | the groups a step used are as many as its `groups_used` |
| `used_not_dropped` | no used group has a drop reason |
| `used_step_exists` | every `used_in_step` is a recorded step |
| `staleness_bound` | a group used at step s was sampled by version s-1-k, 0 <= k <= max_staleness |
| `guided_has_prefix` | a group with a prefix ratio has a non-empty prefix (invalid ones aside) |
| `states_count_groups` | a sample's attempts count its observed groups (a mixed group twice) |
| `finite_json` | step metrics and run configs are JSON without NaN or infinities |
| `run_status` | an ended run is not `running`; a `failed` run says why |
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

LIMIT = 20
"""Offending rows reported per rule."""


@dataclass(frozen=True)
class Violation:
    rule: str
    detail: str


def _rules(run: int, max_staleness: int) -> dict[str, str]:
    g = f"rollout_groups g WHERE g.run_id = {run}"
    return {
        "rollouts_match_group": f"""
            SELECT g.id, g.n, g.n_correct, COUNT(r.idx), SUM(CASE WHEN r.verdict = 'correct'
                   THEN 1 ELSE 0 END)
            FROM rollout_groups g LEFT JOIN rollouts r ON r.group_id = g.id
            WHERE g.run_id = {run} GROUP BY g.id, g.n, g.n_correct
            HAVING COUNT(r.idx) <> g.n
                OR COALESCE(SUM(CASE WHEN r.verdict = 'correct' THEN 1 ELSE 0 END), 0)
                   <> g.n_correct""",
        "unique_attempts": f"SELECT g.attempt_id, COUNT(*) FROM {g} GROUP BY g.attempt_id "
                           "HAVING COUNT(*) > 1",
        "known_samples": f"""
            SELECT 'group', g.id, g.sample_id FROM {g}
              AND g.sample_id NOT IN (SELECT id FROM samples)
            UNION ALL SELECT 'state', st.run_id, st.sample_id FROM sample_state st
              WHERE st.run_id = {run} AND st.sample_id NOT IN (SELECT id FROM samples)""",
        "steps_consecutive": f"""
            SELECT s.step, s.policy_version FROM train_steps s WHERE s.run_id = {run}
              AND (s.policy_version <> s.step OR s.step < 1 OR s.step > (SELECT COUNT(*)
                   FROM train_steps t WHERE t.run_id = {run}))""",
        "used_match_steps": f"""
            SELECT s.step, s.groups_used, (SELECT COUNT(*) FROM rollout_groups u
                   WHERE u.run_id = {run} AND u.used_in_step = s.step)
            FROM train_steps s WHERE s.run_id = {run}
              AND s.groups_used <> (SELECT COUNT(*) FROM rollout_groups u
                   WHERE u.run_id = {run} AND u.used_in_step = s.step)""",
        "used_not_dropped": f"SELECT g.id, g.dropped_reason FROM {g} "
                            "AND g.used_in_step IS NOT NULL AND g.dropped_reason IS NOT NULL",
        "used_step_exists": f"""
            SELECT g.id, g.used_in_step FROM {g} AND g.used_in_step IS NOT NULL
              AND g.used_in_step NOT IN (SELECT step FROM train_steps WHERE run_id = {run})""",
        "staleness_bound": f"""
            SELECT g.id, g.used_in_step, g.policy_version FROM {g}
              AND g.used_in_step IS NOT NULL
              AND (g.used_in_step - 1 - g.policy_version < 0
                   OR g.used_in_step - 1 - g.policy_version > {int(max_staleness)})""",
        "guided_has_prefix": f"SELECT g.id, g.prefix_ratio FROM {g} AND g.prefix_ratio > 0 "
                             "AND g.prefix_len = 0 AND COALESCE(g.dropped_reason, '') "
                             "<> 'invalid'",
        "states_count_groups": f"""
            SELECT st.sample_id, st.attempts + st.guided_attempts, COALESCE(o.seen, 0)
            FROM sample_state st LEFT JOIN (
                SELECT g.sample_id, SUM(CASE WHEN g.guided_n > 0 AND g.guided_n < g.n
                                        THEN 2 ELSE 1 END) AS seen
                FROM {g} AND g.status IS NOT NULL GROUP BY g.sample_id) o
              ON o.sample_id = st.sample_id
            WHERE st.run_id = {run} AND st.attempts + st.guided_attempts <> COALESCE(o.seen, 0)""",
        "run_status": f"""
            SELECT r.id, r.status, r.ended_at FROM runs r WHERE r.id = {run}
              AND ((r.status = 'running' AND r.ended_at IS NOT NULL)
                   OR (r.status = 'failed' AND r.ended_at IS NOT NULL AND r.reason IS NULL))""",
    }


def check_run(reader, run: int | str | None = None) -> list[Violation]:
    """Every violation of the module's rules in one run of the ledger `reader` reads."""
    run_id = reader.run_id(run)
    config = reader.sql(f"SELECT config FROM runs WHERE id = {run_id}").rows[0][0]
    config = config if isinstance(config, dict) else json.loads(config or "{}")
    max_staleness = int(config.get("learner", {}).get("max_staleness", 1))
    out = []
    for rule, sql in _rules(run_id, max_staleness).items():
        for row in reader.sql(sql, row_limit=LIMIT).rows:
            out.append(Violation(rule, ", ".join(str(x) for x in row)))
    out += _json_violations(reader, run_id)
    return out


def _json_violations(reader, run_id: int) -> list[Violation]:
    out = []
    rows = reader.sql(f"SELECT step, metrics FROM train_steps WHERE run_id = {run_id}",
                      row_limit=10**7).rows
    for step, metrics in rows:
        if not _strict_json(metrics):
            out.append(Violation("finite_json", f"train step {step}: metrics {metrics!r:.80}"))
    (config,) = reader.sql(f"SELECT config FROM runs WHERE id = {run_id}").rows[0]
    if not _strict_json(config):
        out.append(Violation("finite_json", f"run {run_id}: config"))
    return out[:LIMIT]


def _strict_json(value: Any) -> bool:
    """Whether `value` (text from SQLite, a parsed object from PostgreSQL) is JSON without
    NaN or infinities."""
    def reject(token: str) -> Any:
        raise ValueError(token)

    try:
        if isinstance(value, str):
            json.loads(value, parse_constant=reject)
            return True
        return _finite_tree(value)
    except ValueError:
        return False


def _finite_tree(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_tree(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_tree(v) for v in value)
    return True
