"""`python -m bench.run --profile SCENARIO`: where Folio spends its time under one scenario's load.

Folio starts as in a benchmark run and the scenario's set-up runs; then a sampling profiler
watches the measured job, repeated for `--duration` seconds (single transfers are short).
py-spy attaches by PID when it is installed (`pip install py-spy`; it samples every thread
and sees only the measured runs). Otherwise, or with `--profiler pyinstrument`, Folio starts
with pyinstrument loaded through a `sitecustomize` of our own; that profile covers the whole
process (set-up included) and is written when Folio exits. The raw profile and a summary
(own time per line, inclusive time per function) land in `bench/results/`.
"""

from __future__ import annotations

import collections
import functools
import linecache
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench.monitor import log
from bench.scenarios import Scenario
from bench.targets import REPO_ROOT, FolioTarget, Unavailable

RESULTS_DIR = Path(__file__).resolve().parent / "results"

_SITECUSTOMIZE = textwrap.dedent(
    """
    import atexit, os
    _out = os.environ.get("FOLIO_BENCH_PYINSTRUMENT")
    if _out:
        from pyinstrument import Profiler
        _profiler = Profiler(interval=0.001, async_mode="disabled")
        _profiler.start()

        def _save():
            _profiler.stop()
            with open(_out + ".txt", "w") as f:
                f.write(_profiler.output_text(unicode=False, color=False))
            with open(_out + ".html", "w") as f:
                f.write(_profiler.output_html())

        atexit.register(_save)
    """
)


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")
_WAITING = re.compile(r"\.get\((block=True)?\)|\.wait\(|\.acquire\(|\bsleep\(|\.select\(")


@functools.cache
def _is_wait(frame: str) -> bool:
    """Whether a leaf frame is a thread blocked on a queue, lock or sleep (py-spy counts some as busy)."""
    match = _FRAME.match(frame)
    if not match:
        return False
    for base in (REPO_ROOT, *map(Path, sys.path)):
        candidate = base / match["file"]
        if candidate.is_file():
            return bool(_WAITING.search(linecache.getline(str(candidate), int(match["line"]))))
    return False


def _function(frame: str) -> str:
    """`func (file:line)` -> `func (file)`: inclusive time is per function, not per line."""
    match = _FRAME.match(frame)
    return f"{match['func']} ({match['file']})" if match else frame


def summarize_collapsed(path: Path, top: int = 25) -> str:
    """Own-time and inclusive-time tables from py-spy's raw (collapsed stack) output, idle waits left out."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = waiting = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if _is_wait(frames[-1]):
            waiting += count
            continue
        total += count
        own[frames[-1]] += count
        for function in {_function(frame) for frame in frames}:
            inclusive[function] += count
    if not total:
        return "no samples (was the server idle?)\n"
    out = [f"{total} busy samples ({waiting} more in queue/lock waits, left out), all threads\n"]
    out += ["## own time (where the time goes; C calls such as fsync or hashing count for their caller)\n"]
    out += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    out += ["", "## inclusive time by function (what it is for)\n"]
    out += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top * 2)]
    return "\n".join(out) + "\n"


def _prepare(target: FolioTarget, scenario: Scenario) -> None:
    """Create the bucket and run the scenario's set-up, before any profiler watches."""
    from bench.run import run_loadgen, run_setup

    assert target.endpoint is not None
    created = run_loadgen(target.endpoint, {"op": "create_bucket", "bucket": "bench"}, 60)
    if not created.get("ok"):
        raise Unavailable(f"CreateBucket failed: {created}")
    problem = run_setup(target.endpoint, scenario, set())
    if problem:
        raise Unavailable(problem)


def _run_measured(target: FolioTarget, scenario: Scenario, duration: float) -> list[dict[str, Any]]:
    """The measured job, repeated (single transfers are short) until `duration` seconds have passed."""
    from bench.run import measure

    assert target.endpoint is not None
    log(f"profiling {target.name} {scenario.name}")
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + duration
    while not results or (time.monotonic() < deadline and len(results) < 20):
        result = measure(target, target.endpoint, scenario, len(results), duration)
        log(
            f"{scenario.name}: {result.get(scenario.metric)} {scenario.unit}, errors {result.get('errors')}, "
            f"server CPU {result.get('server_cpu_ms_per_op')} ms/request "
            f"{result.get('server_cpu_ms_per_op_by_process') or ''}, other load {result.get('other_cpu_pct')}%"
        )
        results.append(result)
    return results


def _find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile_scenario(
    scenario: Scenario, duration: float, profiler: str = "auto", target: FolioTarget | None = None
) -> int:
    """Profile `target` (default: `folio`) under `scenario`. py-spy follows the server's
    subprocesses (`--workers`); on a target of several nodes it watches the first node."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = target.name if target else "folio"
    stem = RESULTS_DIR / f"profile-{name}-{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    py_spy = _find_py_spy() if profiler in ("auto", "py-spy") else None
    if profiler == "py-spy" and py_spy is None:
        log("py-spy is not installed (pip install py-spy)")
        return 1
    workroot = Path(tempfile.mkdtemp(prefix="folio-bench-profile-"))
    target = target or FolioTarget()
    target.min_part_size = scenario.min_part_size
    spy: subprocess.Popen[bytes] | None = None
    try:
        if py_spy is None:
            boot = workroot / "boot"
            boot.mkdir()
            (boot / "sitecustomize.py").write_text(_SITECUSTOMIZE)
            target.extra_env = {"PYTHONPATH": str(boot), "FOLIO_BENCH_PYINSTRUMENT": str(stem)}
        target.start(workroot)
        _prepare(target, scenario)
        if py_spy is not None:
            raw = stem.with_suffix(".collapsed.txt")
            spy = subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(target.pid),
                    "--rate",
                    "200",
                    "--subprocesses",
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(1.0)  # py-spy needs a moment to attach
        _run_measured(target, scenario, duration)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            _, err = spy.communicate(timeout=60)
            spy = None
            if not raw.exists():
                log(f"py-spy wrote nothing: {err.decode(errors='replace')[-800:]}")
                return 1
            summary = stem.with_suffix(".summary.txt")
            summary.write_text(summarize_collapsed(raw))
            log(f"profile: {raw}\nsummary: {summary}")
            print(summary.read_text()[:6000])
    except Unavailable as exc:
        log(f"cannot profile: {exc}")
        return 1
    finally:
        if spy is not None and spy.poll() is None:
            spy.send_signal(signal.SIGKILL)
            spy.wait()
        target.stop()  # pyinstrument writes its profile as Folio exits
        shutil.rmtree(workroot, ignore_errors=True)
    if py_spy is None and Path(f"{stem}.txt").exists():
        log(f"pyinstrument profile: {stem}.txt and {stem}.html")
        print(Path(f"{stem}.txt").read_text()[:6000])
    return 0
