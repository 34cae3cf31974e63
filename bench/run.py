"""`python -m bench.run`: start each server, drive every scenario against it, write the report.

All targets run side by side, each on its own free loopback port with a fresh temporary
directory, and take turns: every scenario runs `--runs` times (3 by default) on each, run 1
on every server, then run 2, and so on, so that other work on the machine falls evenly on
all of them. The report quotes the median and the spread. The load generator is a separate process per measured run; this
process only starts things, polls the server's CPU and RSS (psutil, every 20 ms for the
RSS scenario) and always stops everything it started, by PID.

    python -m bench.run                       # everything: about 10-15 minutes here
    python -m bench.run --quick               # one short run of each: a smoke test
    python -m bench.run --only folio,moto --scenarios put4k,get4k
    python -m bench.run --profile put4k       # Folio under py-spy (or pyinstrument)
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench import report
from bench.loadgen import Endpoint
from bench.scenarios import SCENARIOS, Scenario
from bench.targets import REPO_ROOT, TARGETS, FolioTarget, Target, Unavailable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DOC_PATH = REPO_ROOT / "docs" / "benchmarks.md"
DURATION, QUICK_DURATION = 5.0, 1.5


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for proc in _tree(pid):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def rss_bytes(pid: int) -> int:
    total = 0
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


class RssWatcher:
    """Polls the server's RSS (with its children) every 20 ms on a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.baseline = rss_bytes(pid)
        self.peak = self.baseline
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes(self.pid))
            self.samples += 1

    def __enter__(self) -> RssWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


def background_load(seconds: float = 2.0) -> float:
    """How busy the machine is with nothing of ours running, as % of one core."""
    busy0, t0 = machine_busy_seconds(), time.monotonic()
    time.sleep(seconds)
    return 100 * (machine_busy_seconds() - busy0) / (time.monotonic() - t0)


def wait_for_quiet(limit_s: float, threshold_pct: float = 25.0) -> float:
    """Wait (at most `limit_s`) until other work on the machine uses under `threshold_pct` of a core."""
    deadline = time.monotonic() + limit_s
    load = background_load()
    while load >= threshold_pct and time.monotonic() < deadline:
        log(f"machine busy with other work ({load:.0f}% of a core); waiting for it to settle")
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
        load = background_load()
    if load >= threshold_pct:
        log(f"warning: other work uses {load:.0f}% of a core: figures will be depressed")
    return load


def job_timeout(job: dict[str, Any]) -> float:
    if job["op"] in ("put", "get") and "duration" in job:
        return float(job["duration"]) + 120
    return 600.0


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (everything but idle and iowait)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def measure(
    target: Target, endpoint: Endpoint, scenario: Scenario, run: int, duration: float
) -> dict[str, Any]:
    job = scenario.job(run, duration)
    wall0, busy0, cpu0 = time.monotonic(), machine_busy_seconds(), cpu_seconds(target.pid)
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
    result["server_cpu_s"] = round(cpu_seconds(target.pid) - cpu0, 3)
    # What else ran meanwhile (other work shares these cores): busy time that was neither the server's nor
    # the generator process's (start-up included), as % of one core, over the whole measurement.
    wall = time.monotonic() - wall0
    other = (
        machine_busy_seconds() - busy0 - result["server_cpu_s"] - float(result.get("gen_process_cpu_s") or 0)
    )
    result["other_cpu_pct"] = round(max(0.0, 100 * other / wall), 1)
    return result


def summarize(scenario: Scenario, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and spread of the runs that completed; errors and their samples from all runs."""
    good = [r for r in runs if r.get("ops", 0) > 0 and scenario.metric in r]
    summary: dict[str, Any] = {
        "runs": runs,
        "completed": len(good),
        "errors": sum(int(r.get("errors", 0)) for r in runs),
        "error_samples": [s for r in runs for s in r.get("error_samples", [])][:5],
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
    ):
        present = [float(r[key]) for r in good if key in r]
        if present:
            summary[key] = statistics.median(present)
    return summary


def run_setup(endpoint: Endpoint, scenario: Scenario, done: set[str]) -> str | None:
    """Run the scenario's set-up jobs not yet run on this server; return an error, if any."""
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
            return f"set-up {job['op']} failed: {json.dumps(detail)[:800]}"
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
    created = run_loadgen(endpoint, {"op": "create_bucket", "bucket": "bench"}, 60)
    if not created.get("ok"):
        log(f"{target.name}: create bucket failed: {created}")
        return entry | {"status": "failed", "reason": f"CreateBucket failed: {created}"}
    return entry


def run_scenario(
    scenario: Scenario,
    live: dict[str, Target],
    entries: dict[str, dict[str, Any]],
    runs: int,
    duration: float,
    setups_done: dict[str, set[str]],
) -> None:
    """Set the scenario up on every live server, then measure run 1 on each, run 2 on each, and so on:
    interleaving spreads whatever else the machine is doing evenly over the servers compared."""
    ready: dict[str, Target] = {}
    for name, target in live.items():
        assert target.endpoint is not None
        problem = run_setup(target.endpoint, scenario, setups_done.setdefault(name, set()))
        if problem:
            log(f"{name} {scenario.name}: {problem}")
            entries[name]["scenarios"][scenario.name] = {"status": "failed", "reason": problem, "runs": []}
        else:
            ready[name] = target
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in ready}
    for run in range(runs):
        for name, target in ready.items():
            assert target.proc is not None and target.endpoint is not None
            if target.proc.poll() is not None:
                result = {
                    "ops": 0,
                    "errors": 1,
                    "error_samples": [{"what": f"server exited with {target.proc.returncode}"}],
                }
            else:
                result = measure(target, target.endpoint, scenario, run, duration)
            figure = result.get(scenario.metric)
            log(
                f"{name} {scenario.name} run {run + 1}/{runs}: "
                f"{figure if figure is None else round(figure, 1)} {scenario.unit}, errors {result.get('errors')}, "
                f"generator cpu {result.get('gen_cpu_pct')}%, other load {result.get('other_cpu_pct')}%"
            )
            results[name].append(result)
    for name, runs_done in results.items():
        entries[name]["scenarios"][scenario.name] = summarize(scenario, runs_done)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short run of each scenario (smoke test)")
    parser.add_argument(
        "--only", default=",".join(TARGETS), help=f"targets, comma-separated: {','.join(TARGETS)}"
    )
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"scenarios, comma-separated: {','.join(SCENARIOS)}"
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
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for other work on the machine to settle",
    )
    args = parser.parse_args(argv)
    for name in args.only.split(","):
        if name not in TARGETS:
            parser.error(f"unknown target {name!r}")
    for name in args.scenarios.split(","):
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}")
    if args.profile and args.profile not in SCENARIOS:
        parser.error(f"unknown scenario {args.profile!r}")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if args.profile:
        from bench.profile import profile_scenario

        return profile_scenario(SCENARIOS[args.profile], duration=args.duration or DURATION)
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
    results["meta"]["other_load_at_start_pct"] = round(wait_for_quiet(args.wait_quiet), 1)
    started = time.monotonic()
    workroot = Path(tempfile.mkdtemp(prefix="folio-bench-"))
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
            run_scenario(scenario, live, results["targets"], runs, duration, setups_done)
    finally:
        for name, target in targets.items():
            if isinstance(target, FolioTarget) and name in results["targets"]:
                results["targets"][name] |= target.log_problems()
            if target.proc is not None:
                log(f"stopping {name} (pid {target.proc.pid})")
            target.stop()
        shutil.rmtree(workroot, ignore_errors=True)
        results["meta"]["wall_s"] = round(time.monotonic() - started, 1)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        raw = RESULTS_DIR / f"{stamp}.json"
        raw.write_text(json.dumps(results, indent=1))
        markdown = report.render(results)
        (RESULTS_DIR / f"{stamp}.md").write_text(markdown)
        doc = args.doc or (DOC_PATH if full else None)
        if doc is not None:
            report.write_doc(doc, markdown)
        log(f"results: {raw}" + (f", report: {doc}" if doc else ""))
    print(report.summary_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
