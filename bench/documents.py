"""The document benchmark (issue 7): the 2-page invoice and a 20-page report (tables
and an SVG chart), each rendered through Folio's document API with the WeasyPrint
engine and with the Chromium engine, and by two baselines run the same way: Chromium's
own `--headless --print-to-pdf` started once per document, and Debian's wkhtmltopdf
(wkhtmltoimage for PNG). Measured: the p50 latency of a synchronous HTML to PDF and
HTML to PNG (one at a time), documents per minute at concurrency 4 (PDF), and the
WeasyPrint workers' memory over 500 jobs.

Run alone: `python -m bench.documents [--quick]`; `make bench` runs it after the S3 and
image scenarios. Results: bench/results/documents-*.json and a section of
docs/benchmarks.md."""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil

from docgen.templates import gallery_template, render_template

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENCY = 4
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-pdf-header-footer",
]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def invoice_html() -> str:
    data = {
        "number": "INV-2026-0042",
        "date": "2026-01-15",
        "due": "2026-02-14",
        "currency": "USD",
        "from": {"name": "Acme Ltd", "address": ["1 Main St", "Springfield"], "email": "billing@acme.test"},
        "to": {"name": "Globex Corporation", "address": ["9 Elm Rd", "Shelbyville"]},
        "items": [
            {"description": f"Consulting, week {i + 1}", "quantity": i % 5 + 1, "price": 120.0 + i}
            for i in range(24)
        ],
        "taxRate": 0.2,
        "notes": "Payment within 30 days by bank transfer. Thank you for your business.",
    }
    return render_template(gallery_template("invoice") or "", data)


def report_html() -> str:
    data = {
        "title": "Annual operations report",
        "subtitle": "Fiscal year 2026",
        "author": "Operations",
        "date": "2026-04-02",
        "summary": "Revenue grew in every region; costs fell in the second half. " * 3,
        "chart": {
            "label": "Revenue by month (k$)",
            "bars": [{"label": m, "value": 100 + 17 * i} for i, m in enumerate(MONTHS)],
        },
        "sections": [
            {
                "heading": f"Region {s + 1}",
                "text": "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. "
                * 6,
                "columns": ["Site", "Revenue", "Cost", "Growth"],
                "rows": [
                    [f"Site {s + 1}.{r + 1}", f"${r * 7 + s}.2k", f"${r * 5 + s}.9k", f"{(r * 3 + s) % 11}%"]
                    for r in range(40)
                ],
            }
            for s in range(12)
        ],
    }
    return render_template(gallery_template("report") or "", data)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


DEFAULT_NAME = "Folio, default engine choice"


class FolioEngine:
    """Folio's document API, pinned to one engine (WeasyPrint or Chromium) or, with
    engine None, left to choose (docgen/engine_choice.py); `engines` records which
    engine answered (X-Folio-Engine)."""

    def __init__(self, engine: str | None, server: Any, key: str) -> None:
        self.name = f"Folio, {engine}" if engine else DEFAULT_NAME
        self.engine = engine
        self.server = server
        self.client = httpx.Client(base_url=server.web_url, headers={"x-api-key": key}, timeout=120)
        self.engines: set[str] = set()

    def render(self, html: str, kind: str) -> int:
        body: dict[str, Any] = {"html": base64.b64encode(html.encode()).decode()}
        if self.engine:
            body["engine"] = self.engine
        if kind == "png":
            body.update({"imageType": "png", "viewPort": {"width": 1240, "height": 1754}})
        response = self.client.post(f"/v1/html/{'pdf' if kind == 'pdf' else 'image'}", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"{self.name}: {response.status_code} {response.text[:200]}")
        self.engines.add(response.headers.get("x-folio-engine", "?"))
        return len(response.content)


class _CommandBaseline:
    """A baseline that runs a command per document on the HTML files in `workdir`;
    each render numbers its own output files (renders run from several threads)."""

    def __init__(self, workdir: Path, documents: dict[str, Path]) -> None:
        self.workdir = workdir
        self.documents = documents
        self._count = 0
        self._lock = threading.Lock()

    def _next_number(self) -> int:
        with self._lock:
            self._count += 1
            return self._count


class ChromiumOnce(_CommandBaseline):
    """`chromium --headless --print-to-pdf` (or --screenshot), one process per document."""

    name = "chromium --print-to-pdf, once per document"

    def __init__(self, workdir: Path, documents: dict[str, Path]) -> None:
        super().__init__(workdir, documents)
        self.binary = shutil.which("chromium")

    def render(self, html: str, kind: str) -> int:
        assert self.binary
        n = self._next_number()
        source = self.documents[html]
        profile = self.workdir / f"profile-{n}"
        out = self.workdir / f"out-{n}.{kind}"
        flag = (
            [f"--print-to-pdf={out}"] if kind == "pdf" else [f"--screenshot={out}", "--window-size=1240,1754"]
        )
        subprocess.run(
            [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flag, source.as_uri()],
            capture_output=True,
            timeout=120,
            check=True,
        )
        size = out.stat().st_size
        out.unlink()
        shutil.rmtree(profile, ignore_errors=True)
        return size


class Wkhtmltopdf(_CommandBaseline):
    name = "wkhtmltopdf"

    def __init__(self, workdir: Path, documents: dict[str, Path]) -> None:
        super().__init__(workdir, documents)
        self.pdf = shutil.which("wkhtmltopdf")
        self.image = shutil.which("wkhtmltoimage")

    def render(self, html: str, kind: str) -> int:
        n = self._next_number()
        out = self.workdir / f"wk-{n}.{kind}"
        binary = self.pdf if kind == "pdf" else self.image
        assert binary
        args = [binary, "--quiet"]
        if kind == "png":
            args += ["--width", "1240", "--format", "png"]
        subprocess.run(
            [*args, str(self.documents[html]), str(out)], capture_output=True, timeout=120, check=False
        )
        size = out.stat().st_size if out.exists() else 0
        if not size:
            raise RuntimeError("wkhtmltopdf produced nothing")
        out.unlink()
        return size


def _latency(target: Any, html: str, kind: str, count: int) -> dict[str, float]:
    target.render(html, kind)  # warm-up, untimed
    times = []
    for _ in range(count):
        started = time.perf_counter()
        target.render(html, kind)
        times.append(time.perf_counter() - started)
    return {"p50_ms": statistics.median(times) * 1000, "p90_ms": _percentile(times, 0.9) * 1000, "n": count}


def _throughput(target: Any, html: str, count: int) -> dict[str, float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(lambda _i: target.render(html, "pdf"), range(count)))
    elapsed = time.perf_counter() - started
    return {"docs_per_minute": count / elapsed * 60, "n": count, "seconds": elapsed}


def _worker_rss(server_pid: int) -> list[int]:
    """RSS of Folio's WeasyPrint workers (children named folio-docgen-worker or
    forked from the fork server)."""
    found = []
    for child in psutil.Process(server_pid).children(recursive=True):
        try:
            if "chrom" in child.name() or "node" in child.name():
                continue
            found.append(child.memory_info().rss)
        except psutil.Error:
            continue
    return found


def memory_soak(target: FolioEngine, html: str, jobs: int) -> dict[str, Any]:
    """RSS of the worker processes every 50 jobs over `jobs` sync invoices."""
    samples = []
    done = 0
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        while done < jobs:
            batch = min(50, jobs - done)
            list(pool.map(lambda _i: target.render(html, "pdf"), range(batch)))
            done += batch
            rss = _worker_rss(target.server.proc.pid)
            samples.append(
                {
                    "jobs": done,
                    "workers_rss_mib": round(sum(rss) / 2**20, 1),
                    "max_worker_mib": round(max(rss, default=0) / 2**20, 1),
                }
            )
    first, last = samples[0]["max_worker_mib"], samples[-1]["max_worker_mib"]
    peak = max(s["max_worker_mib"] for s in samples)
    return {
        "samples": samples,
        "first_mib": first,
        "last_mib": last,
        "peak_mib": peak,
        "flat": peak <= first * 1.25 + 20,
    }


def run(quick: bool = False) -> dict[str, Any]:
    sys.path.insert(0, str(REPO_ROOT))
    from tests.folio_process import FolioProcess

    workdir = Path(tempfile.mkdtemp(prefix="folio-bench-docs-"))
    docs = {"invoice": invoice_html(), "report": report_html()}
    paths = {}
    for name, html in docs.items():
        path = workdir / f"{name}.html"
        path.write_text(html)
        paths[html] = path
    server = FolioProcess(
        data_dir=workdir / "folio" / "data",
        config_text="[plans.default]\nstorage_bytes = 1099511627776\nmax_buckets = 100000\nwrite_per_second = 0\n"
        "read_per_second = 0\nlist_per_second = 0\ndashboard_per_minute = 0\ndocgen_per_minute = 0\n",
    )
    server.start()
    results: dict[str, Any] = {"documents": {}, "machine_cores": psutil.cpu_count()}
    try:
        key = json.loads(server.admin("create-api-key", "--email", "admin@localhost"))["apiKey"]
        targets: list[Any] = [FolioEngine("weasyprint", server, key)]
        chromium_available = httpx.get(f"{server.web_url}/healthz/documents").json()["chromium"]["available"]
        if chromium_available:
            targets.append(FolioEngine("chromium", server, key))
            targets.append(FolioEngine(None, server, key))
        if shutil.which("chromium"):
            targets.append(ChromiumOnce(workdir, paths))
        if shutil.which("wkhtmltopdf"):
            targets.append(Wkhtmltopdf(workdir, paths))
        latency_n = 3 if quick else 9
        for name, html in docs.items():
            pages = "2" if name == "invoice" else "about 20"
            through_n = (4 if quick else 24) if name == "invoice" else (4 if quick else 8)
            entry: dict[str, Any] = {}
            for target in targets:
                print(f"[documents] {target.name}: {name}", flush=True)
                row: dict[str, Any] = {}
                if isinstance(target, FolioEngine):
                    target.engines.clear()
                try:
                    row["pdf"] = _latency(target, html, "pdf", latency_n)
                    row["png"] = _latency(target, html, "png", latency_n)
                    row["throughput"] = _throughput(target, html, through_n)
                except (RuntimeError, subprocess.SubprocessError, httpx.HTTPError, OSError) as exc:
                    row["error"] = str(exc)[:300]
                if isinstance(target, FolioEngine):
                    row["engines"] = sorted(target.engines)
                entry[target.name] = row
            results["documents"][name] = {"pages": pages, "targets": entry}
        print("[documents] memory over 500 jobs", flush=True)
        results["memory"] = memory_soak(targets[0], docs["invoice"], 100 if quick else 500)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"documents-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"[documents] results: {out}", flush=True)
    return results


def markdown(results: dict[str, Any]) -> str:
    """The section of docs/benchmarks.md."""
    lines = ["## Documents (issue 7)", ""]
    lines.append(
        "Sync requests to `/v1/html/pdf` and `/v1/html/image` (PNG, 1240x1754 viewport), one at a time after one "
        "untimed warm-up: the p50 (and p90) of 9; then documents per minute with 4 PDF requests in flight "
        "(24 invoices, 8 reports). The baselines do the same from the same HTML files: `chromium --headless "
        "--print-to-pdf` (`--screenshot` for PNG) started once per document with a fresh profile, and Debian's "
        "wkhtmltopdf / wkhtmltoimage. Folio's engines run in one Folio process with its default settings "
        "(WeasyPrint workers: one per core; Chromium: one warm browser, 2 jobs at once): pinned with "
        '`"engine"`, and as a request without it gets them (WeasyPrint, Chromium for documents of more than '
        "`long_document_elements` elements; the engine that answered in brackets)."
    )
    lines.append("")
    chromium_once = "chromium --print-to-pdf, once per document"
    verdicts = []
    for name, doc in results["documents"].items():
        lines.append(f"### {name} ({doc['pages']} pages)")
        lines.append("")
        lines.append(
            "| engine | PDF p50 / p90 ms | PNG p50 / p90 ms | PDFs per minute at c4 | vs chromium once |"
        )
        lines.append("|---|---|---|---|---|")
        base = doc["targets"].get(chromium_once, {}).get("throughput", {}).get("docs_per_minute")
        for target, row in doc["targets"].items():
            if "error" in row:
                lines.append(f"| {target} | error: {row['error']} | | | |")
                continue
            rate = row["throughput"]["docs_per_minute"]
            ratio = f"{rate / base:.2f}x" if base else "n/a"
            label = f"{target} ({', '.join(row['engines'])})" if target == DEFAULT_NAME else target
            lines.append(
                f"| {label} | {row['pdf']['p50_ms']:,.0f} / {row['pdf']['p90_ms']:,.0f} | "
                f"{row['png']['p50_ms']:,.0f} / {row['png']['p90_ms']:,.0f} | {rate:,.1f} | {ratio} |"
            )
            if target.startswith("Folio") and base:
                verdicts.append(
                    (
                        f"{label}, {name}: throughput {rate / base:.2f}x chromium once (target ≥ 2x)",
                        rate / base >= 2,
                    )
                )
            if target == "Folio, weasyprint" and name == "invoice":
                p50 = row["pdf"]["p50_ms"]
                verdicts.append(
                    (f"{target}, sync invoice PDF p50 {p50:,.0f} ms (target < 700 ms)", p50 < 700)
                )
        lines.append("")
    memory = results.get("memory")
    if memory:
        lines.append("### WeasyPrint workers' memory over 500 sync invoices (concurrency 4)")
        lines.append("")
        lines.append("| jobs | " + " | ".join(str(s["jobs"]) for s in memory["samples"]) + " |")
        lines.append("|---|" + "---|" * len(memory["samples"]))
        lines.append(
            "| largest worker RSS, MiB | "
            + " | ".join(str(s["max_worker_mib"]) for s in memory["samples"])
            + " |"
        )
        lines.append(
            "| all workers, MiB | " + " | ".join(str(s["workers_rss_mib"]) for s in memory["samples"]) + " |"
        )
        lines.append("")
        verdicts.append(
            (
                f"worker memory over 500 jobs: first {memory['first_mib']} MiB, peak {memory['peak_mib']} MiB, last "
                f"{memory['last_mib']} MiB (flat: peak within 25% + 20 MiB of the first)",
                memory["flat"],
            )
        )
    lines.append("Targets:")
    lines.append("")
    for text, ok in verdicts:
        lines.append(f"- {text}: **{'pass' if ok else 'miss'}**")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer documents: a smoke test of the harness")
    args = parser.parse_args(argv)
    print(markdown(run(quick=args.quick)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
