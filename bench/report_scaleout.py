"""Issue 18's section of the report: Folio as today, with `--workers 2`, on PostgreSQL + SeaweedFS
with one and two nodes, and SeaweedFS's gateway alone, on the same S3 scenarios; then the issue's
targets as ratios of medians from the same run, each marked met or missed.

CPU per request is the server CPU of the run (every process of the target: Folio's workers or
nodes, PostgreSQL's postmaster and backends, SeaweedFS; bench/run.py) over the requests it
answered (a LIST request is one page of 1,000 keys).
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.scenarios import SCALEOUT_GOALS, SCALEOUT_SCENARIOS, SCALEOUT_TARGETS, SCENARIOS, ScaleOutGoal

SCALEOUT_SHORT = {
    "folio": "(a) Folio, one process",
    "folio-workers2": "(b) Folio, --workers 2",
    "folio-pg-seaweedfs": "(c) Folio on PostgreSQL + SeaweedFS, 1 node",
    "folio-pg-seaweedfs-2nodes": "(c) Folio on PostgreSQL + SeaweedFS, 2 nodes",
    "seaweedfs": "(d) SeaweedFS alone",
}


def _cell(results: dict[str, Any], target: str, scenario: str) -> dict[str, Any] | None:
    entry = results["targets"].get(target)
    if not entry or entry.get("status") != "ok":
        return None
    cell = (entry.get("scenarios") or {}).get(scenario)
    return cell if cell and cell.get("status") == "ok" else None


def _why(results: dict[str, Any], target: str, scenario: str) -> str:
    entry = results["targets"].get(target)
    if entry is None:
        return "not run"
    if entry.get("status") != "ok":
        return f"{entry.get('status')}: {str(entry.get('reason', ''))[:160]}".replace("|", "\\|").replace(
            "\n", " "
        )
    cell = (entry.get("scenarios") or {}).get(scenario)
    return "not run" if cell is None else f"{cell.get('status', 'failed')}"


def _median_of_runs(cell: dict[str, Any], key: str) -> float | None:
    values = [float(r[key]) for r in cell.get("runs", []) if r.get("ops", 0) > 0 and key in r]
    return statistics.median(values) if values else None


def _num(value: float | None, digits: int = 0) -> str:
    return "?" if value is None else f"{value:,.{digits}f}"


def _loadavg(cell: dict[str, Any]) -> str:
    values = [float(r["loadavg_1m"]) for r in cell.get("runs", []) if "loadavg_1m" in r]
    if not values:
        return "?"
    return f"{min(values):.1f}-{max(values):.1f}"


def goal_value(results: dict[str, Any], goal: ScaleOutGoal) -> float | None:
    top = _cell(results, goal.numerator, goal.scenario)
    bottom = _cell(results, goal.denominator, goal.scenario)
    if not top or not bottom or not bottom.get("median"):
        return None
    return float(top["median"] / bottom["median"])


def goal_rows(results: dict[str, Any]) -> list[str]:
    """The issue's targets as table rows: ratio of medians, the floor, met or missed."""
    rows = []
    for goal in SCALEOUT_GOALS:
        value = goal_value(results, goal)
        unit = SCENARIOS[goal.scenario].unit
        figures = []
        for name in (goal.numerator, goal.denominator):
            cell = _cell(results, name, goal.scenario)
            figures.append(f"{_num(cell['median'])} {unit}" if cell else _why(results, name, goal.scenario))
        if value is None:
            ratio, verdict = "n/a", "n/a"
        else:
            ratio, verdict = f"{value:.2f}x", "met" if value >= goal.floor else "**missed**"
        rows.append(
            f"| {goal.what} | {figures[0]} | {figures[1]} | {ratio} | ≥ {goal.floor:g}x | {verdict} |"
        )
    return rows


def goals_table(results: dict[str, Any]) -> list[str]:
    return [
        "| issue 18 target | numerator (median) | denominator (median) | ratio | target | verdict |",
        "|---|---|---|---|---|---|",
        *goal_rows(results),
    ]


def ran(results: dict[str, Any]) -> bool:
    """Whether any scale-out target beside `folio` and `seaweedfs` was part of the run."""
    return any(name in results["targets"] for name in SCALEOUT_TARGETS[1:-1])


def scaleout_lines(results: dict[str, Any]) -> list[str]:
    """The section: a table of every scale-out target on every scale-out scenario, then the targets."""
    if not ran(results):
        return []
    runs = results["settings"].get("runs", "?")
    out = [
        "### Issue 18: scale-out",
        "",
        f"Medians of {runs} run(s), the targets taking turns. (a) is `folio` as today (one process, SQLite + "
        "local disk); (b) the same with `[server] workers = 2`; (c) Folio on a throwaway PostgreSQL "
        "(PostgreSQL's default durability) and its own SeaweedFS (`weed server -s3`) for the blobs, one node, "
        "and two nodes on one PostgreSQL and one SeaweedFS with the load generator's connections spread "
        "over both (round-robin per connection; LIST uses one connection, to the first node); (d) "
        "SeaweedFS's gateway alone. *CPU/request* is the server CPU of the run summed over every process "
        "of the target (Folio workers or nodes, PostgreSQL, SeaweedFS) over the requests answered (LIST: "
        "per page of 1,000 keys). *other load*: share of a core other work took during the run; *load "
        "avg*: the machine's 1-minute load average at the end of each run (min-max).",
        "",
        "| scenario | target | figure (median) | ops/s | MB/s | p50 / p99 ms | CPU/request ms | other load "
        "| load avg | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario_name in SCALEOUT_SCENARIOS:
        scenario = SCENARIOS[scenario_name]
        for name in SCALEOUT_TARGETS:
            if name not in results["targets"]:
                continue
            cell = _cell(results, name, scenario_name)
            label = SCALEOUT_SHORT[name]
            if cell is None:
                out.append(f"| {scenario_name} | {label} | {_why(results, name, scenario_name)} |" + " |" * 7)
                continue
            spread = f"{_num(cell['min'])}-{_num(cell['max'])}"
            other = f"{cell['other_cpu_pct']:.0f}%" if "other_cpu_pct" in cell else "?"
            cpu = cell.get("server_cpu_ms_per_op")
            out.append(
                f"| {scenario_name} | {label} | {_num(cell['median'])} {scenario.unit} ({spread}) | "
                f"{_num(_median_of_runs(cell, 'ops_per_s'))} | {_num(_median_of_runs(cell, 'mb_per_s'), 1)} | "
                f"{cell.get('p50_ms', 0):.2f} / {cell.get('p99_ms', 0):.2f} | "
                f"{'?' if cpu is None else f'{cpu:.3f}'} | {other} | {_loadavg(cell)} | {cell['errors']} |"
            )
    out += ["", *_by_process(results), *goals_table(results), ""]
    return out


def _by_process(results: dict[str, Any]) -> list[str]:
    """For the targets of several processes: CPU per request of each (median of the runs)."""
    out = []
    for name in SCALEOUT_TARGETS:
        parts = []
        for scenario_name in SCALEOUT_SCENARIOS:
            cell = _cell(results, name, scenario_name)
            runs = [
                r.get("server_cpu_ms_per_op_by_process") for r in (cell or {}).get("runs", []) if r.get("ops")
            ]
            runs = [r for r in runs if r]
            if not runs:
                continue
            medians = {proc: statistics.median(r.get(proc, 0.0) for r in runs) for proc in runs[0]}
            parts.append(f"{scenario_name} " + ", ".join(f"{proc} {ms:.2f}" for proc, ms in medians.items()))
        if parts:
            out += [
                f"CPU per request by process, {SCALEOUT_SHORT[name]} (ms, medians): "
                + "; ".join(parts)
                + ".",
                "",
            ]
    return out
