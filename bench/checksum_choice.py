"""`python -m bench.checksum_choice`: which checksum for integrity on every read (issue 17).

Times each candidate on a 1 MiB piece as a GET sees it: just read into a buffer (warm in
cache), 64 different pieces, best of 9 passes (the machine is shared). Candidates that are
not installed are skipped: awscrt (a dependency) and zlib always run; xxhash, google-crc32c,
crc32c and isal come from a throwaway environment, e.g.

    python -m venv /tmp/crc && /tmp/crc/bin/pip install awscrt xxhash google-crc32c crc32c isal
    PYTHONPATH=. /tmp/crc/bin/python -m bench.checksum_choice
"""

from __future__ import annotations

import importlib
import os
import time
import zlib
from collections.abc import Callable

MIB = 1024 * 1024
PIECES, PASSES = 64, 9


def candidates() -> dict[str, Callable[[bytes | bytearray], int]]:
    found: dict[str, Callable[[bytes | bytearray], int]] = {}

    def add(name: str, module: str, attribute: str) -> None:
        try:
            found[name] = getattr(importlib.import_module(module), attribute)
        except ImportError:
            pass

    add("awscrt crc32c", "awscrt.checksums", "crc32c")
    add("awscrt crc64nvme", "awscrt.checksums", "crc64nvme")
    add("crc32c (package)", "crc32c", "crc32c")
    add("isal crc32", "isal.isal_zlib", "crc32")
    add("xxhash xxh3_64", "xxhash", "xxh3_64_intdigest")
    add("xxhash xxh64", "xxhash", "xxh64_intdigest")
    try:
        google = importlib.import_module("google_crc32c")
        found["google-crc32c"] = lambda data: google.value(bytes(data))  # takes read-only bytes only
    except ImportError:
        pass
    found["zlib crc32"] = zlib.crc32
    return found


def main() -> None:
    source = memoryview(os.urandom(PIECES * MIB))
    piece = bytearray(MIB)
    best: dict[str, float] = {}
    for _ in range(PASSES):
        for name, checksum in candidates().items():
            spent = 0.0
            for index in range(PIECES):
                piece[:] = source[index * MIB : (index + 1) * MIB]  # the read
                started = time.perf_counter()
                checksum(piece)
                spent += time.perf_counter() - started
            best[name] = min(best.get(name, spent), spent)
    for name, spent in sorted(best.items(), key=lambda item: item[1]):
        per_piece = spent / PIECES
        print(f"{name:20s} {per_piece * 1e6:7.1f} us per 1 MiB piece  {MIB / per_piece / 1e9:6.1f} GB/s")


if __name__ == "__main__":
    main()
