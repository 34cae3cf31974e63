"""Write many objects into a stopped Folio's data directory through the store's own API
(`Store.put_bytes`, the path every upload ends in), each in its own transaction with its
event recorded as the server records it: for an account with an active webhook, an
`object.created` or `object.updated` row in the events outbox, not yet dispatched.

tests/test_housekeeping.py and bench/housekeeping_soak.py use it to make 100,000 writes in
seconds where 100,000 S3 PUTs over HTTP would take minutes on two cores; the server then
dispatches, delivers and prunes them as it would any others.

    python -m tests.housekeeping_seed --config C --data-dir D --bucket B --count N --keys K

prints {"written": N, "seconds": ...}. Keys are `obj-{i % K}`: with K < N the later writes
overwrite the first K keys (object.updated)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from core.config import load_config
from s3proxy.store.models import ObjectMeta
from server.runtime import open_runtime

# Writes in flight at once: they share group commits, as concurrent requests do.
CONCURRENCY = 256


async def _write(runtime, bucket_name: str, count: int, keys: int) -> None:
    bucket = runtime.store.bucket(bucket_name)
    if bucket is None:
        raise SystemExit(f"no bucket {bucket_name}")
    meta = ObjectMeta(content_type="text/plain")
    todo = iter(range(count))

    async def writer() -> None:
        for i in todo:
            await runtime.store.put_bytes(bucket, f"obj-{i % keys:07d}", b"x", meta)

    await asyncio.gather(*(writer() for _ in range(CONCURRENCY)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--keys", type=int, default=0, help="distinct keys (default: count)")
    args = parser.parse_args()
    config = load_config(args.config, data_dir=args.data_dir)
    runtime = open_runtime(config)
    started = time.monotonic()
    try:
        asyncio.run(_write(runtime, args.bucket, args.count, args.keys or args.count))
    finally:
        runtime.close()
    print(json.dumps({"written": args.count, "seconds": round(time.monotonic() - started, 2)}))


if __name__ == "__main__":
    main()
