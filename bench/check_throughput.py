"""`python -m bench.check_throughput`: `folio check`'s read speed against the disk's (issue 17).

Fills a fresh data directory through a real server (boto3: a few 256 MiB objects, many
1 MiB ones and small inline ones), stops it, then takes turns, `--rounds` times:
- the disk: every blob file read once with O_DIRECT in 8 MiB reads (what `folio check`
  reads, the same way, with no checksum and no database), on one thread and on two (as
  `folio check` reads two blobs at once), and `dd iflag=direct bs=8M` of the largest file
  (the disk's sequential speed);
- `folio check --json` on the stopped directory, as an operator runs it (its own process,
  start-up and database included), timed whole; its own report gives the time spent
  reading and checking.

O_DIRECT on both sides: the page cache holds neither answer (blobs are written with
O_DIRECT too). Prints one JSON object; `--keep DIR` keeps the data directory.

    python -m bench.check_throughput                 # about 2 GiB, 3 rounds
    python -m bench.check_throughput --large 8 --small 1024 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.monitor import OtherLoad

MIB = 1024 * 1024
CHUNK = 8 * MIB


def fill(data_dir: Path, large: int, small: int, inline: int) -> dict[str, int]:
    from tests.conftest import make_s3_client
    from tests.folio_process import FolioProcess

    server = FolioProcess(data_dir=data_dir).start(timeout=60)
    try:
        s3 = make_s3_client(server)
        s3.create_bucket(Bucket="check-bench")
        big, one, tiny = os.urandom(256 * MIB), os.urandom(MIB), os.urandom(4096)
        jobs = [(f"large/{i}", big) for i in range(large)]
        jobs += [(f"small/{i}", one) for i in range(small)]
        jobs += [(f"inline/{i}", tiny) for i in range(inline)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda job: s3.put_object(Bucket="check-bench", Key=job[0], Body=job[1]), jobs))
    finally:
        server.stop()
    return {"large_256mib": large, "small_1mib": small, "inline_4kib": inline}


def blob_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "blobs").rglob("*") if p.is_file())


def read_direct(files: list[Path], threads: int = 1) -> tuple[int, float]:
    """Every file once, O_DIRECT, 8 MiB reads into an aligned buffer, by `threads` threads
    taking files in turn (as `folio check`'s two readers do): (bytes, seconds)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(_read_files, [files[i::threads] for i in range(threads)]))
    return total, time.perf_counter() - started


def _read_files(files: list[Path]) -> int:
    buffer = mmap.mmap(-1, CHUNK)
    view = memoryview(buffer)
    total = 0
    for path in files:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        try:
            offset = 0
            while True:
                got = os.preadv(fd, [view], offset)
                total += got
                offset += got
                if got < CHUNK:
                    break
        finally:
            os.close(fd)
    view.release()
    buffer.close()
    return total


def dd_speed(path: Path) -> float:
    """MB/s of `dd iflag=direct bs=8M` over the file."""
    started = time.perf_counter()
    subprocess.run(
        ["dd", f"if={path}", "of=/dev/null", "bs=8M", "iflag=direct"], check=True, capture_output=True
    )
    return path.stat().st_size / (time.perf_counter() - started) / 1e6


def folio_check(data_dir: Path) -> dict[str, float]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "server", "check", "--json", "--no-progress", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"folio check exited {out.returncode}: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    report = json.loads(out.stdout)
    return {
        "bytes": report["bytes_checked"],
        "blobs": report["blobs_checked"],
        "inline": report["inline_checked"],
        "check_s": report["seconds"],
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.check_throughput")
    parser.add_argument("--large", type=int, default=4, help="256 MiB objects (default 4)")
    parser.add_argument("--small", type=int, default=1024, help="1 MiB objects (default 1024)")
    parser.add_argument("--inline", type=int, default=2000, help="4 KiB inline objects (default 2000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="use (and keep) this data directory; filled if empty")
    args = parser.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="folio-check-bench-"))
    data_dir = root / "data"
    try:
        contents = (
            fill(data_dir, args.large, args.small, args.inline)
            if not (data_dir / "folio.db").exists()
            else {}
        )
        files = blob_files(data_dir)
        largest = max(files, key=lambda p: p.stat().st_size)
        disk, disk2, dd, check, wall, loads = [], [], [], [], [], []
        for _ in range(args.rounds):
            load = OtherLoad()
            total, seconds = read_direct(files)
            loads.append(load.percent())  # other work on the machine while the disk was read
            disk.append(total / seconds / 1e6)
            total, seconds = read_direct(files, threads=2)
            disk2.append(total / seconds / 1e6)
            dd.append(dd_speed(largest))
            result = folio_check(data_dir)
            check.append(result["bytes"] / result["check_s"] / 1e6)
            wall.append(result["bytes"] / result["wall_s"] / 1e6)
        print(
            json.dumps(
                {
                    "contents": contents,
                    "blob_files": len(files),
                    "bytes": result["bytes"],
                    "blobs_checked": result["blobs"],
                    "inline_checked": result["inline"],
                    "disk_o_direct_mb_s": [round(x) for x in disk],
                    "disk_o_direct_2_threads_mb_s": [round(x) for x in disk2],
                    "dd_largest_mb_s": [round(x) for x in dd],
                    "check_mb_s": [round(x) for x in check],
                    "check_wall_mb_s": [round(x) for x in wall],
                    "median": {
                        "disk_o_direct_mb_s": round(statistics.median(disk)),
                        "disk_o_direct_2_threads_mb_s": round(statistics.median(disk2)),
                        "dd_largest_mb_s": round(statistics.median(dd)),
                        "check_mb_s": round(statistics.median(check)),
                        "check_wall_mb_s": round(statistics.median(wall)),
                        "check_over_disk": round(statistics.median(check) / statistics.median(disk), 2),
                        "check_over_disk_2_threads": round(
                            statistics.median(check) / statistics.median(disk2), 2
                        ),
                    },
                    "other_load_pct_during_disk_reads": [round(x) for x in loads],
                },
                indent=1,
            )
        )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
