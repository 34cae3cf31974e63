"""This process as one node among several sharing a database: each worker of `folio
serve --workers N`, or each Folio node on PostgreSQL. A background task (`Cluster.run`)
beats the node's heartbeat (core/nodes.py), renews every lease the node holds and tries
to take the ones it wants (core/leases.py), all in one small write every few seconds.

Work that must run on one node at a time is wrapped with `Cluster.exclusive(name, job)`:
the job runs while this node holds the lease `name` and is cancelled if the lease is lost
(another node took it after this one failed to renew it in time). When the holder dies,
another node takes the lease once it expires (`LEASE_SECONDS`), or at once when the dead
holder was a process on the same machine (a worker that crashed, the previous run of a
server restarted): its leases are released as soon as a node sees its process gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core import leases, nodes
from core.db import Database

log = logging.getLogger("folio.cluster")

# A lease runs this long unless renewed; renewed with every heartbeat (a third of it).
LEASE_SECONDS = 3 * nodes.HEARTBEAT_SECONDS
# Rows of leases no one renewed for this long are deleted.
FORGET_LEASES_SECONDS = 86400.0

Job = Callable[[], Awaitable[None]]


@dataclass
class _Wanted:
    held: asyncio.Event = field(default_factory=asyncio.Event)
    lost: asyncio.Event = field(default_factory=asyncio.Event)


class Cluster:
    def __init__(
        self,
        db: Database,
        *,
        beat_seconds: float = nodes.HEARTBEAT_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.db = db
        self.node = nodes.this_node()
        self.beat_seconds = beat_seconds
        self.lease_seconds = lease_seconds
        self._wanted: dict[str, _Wanted] = {}
        self.held: set[str] = set()
        # Claims on single pieces of work (document jobs), renewed with the heartbeat.
        self.claims = leases.Claims(self.node.id, lease_seconds)
        # Told, inside the write that forgets it, of each node found dead: claims kept
        # outside the leases table (webhook deliveries) are given back.
        self.on_node_gone: list[Callable[[sqlite3.Connection, str, float], None]] = []

    # -- the background task ------------------------------------------------------------------

    async def run(self) -> None:
        """Heartbeat and leases until cancelled (the server stopping); then leave: the
        node's leases are released so that another node takes its work at once."""
        try:
            while True:
                try:
                    await self.beat()
                except Exception:  # noqa: BLE001 - the next beat retries
                    log.exception("node heartbeat failed")
                    # Not renewed: after a lease period another node may hold them.
                    self._set_held(set())
                await asyncio.sleep(self.beat_seconds)
        finally:
            await self._leave()

    async def beat(self) -> None:
        """One round: heartbeat, forget dead local nodes, renew and take leases, count the
        live nodes."""
        now = time.time()
        wanted = list(self._wanted)

        def step(conn: sqlite3.Connection) -> tuple[set[str], int, list[str]]:
            nodes.beat(conn, self.node, now)
            dead = nodes.dead_local_nodes(conn, self.node)
            for node in dead:
                leases.release_all(conn, node.id)
                nodes.forget(conn, node.id)
                for hook in self.on_node_gone:
                    hook(conn, node.id, now)
            held = leases.renew(conn, self.node.id, now, self.lease_seconds)
            for name in wanted:
                if name not in held and leases.take(conn, name, self.node.id, now, self.lease_seconds):
                    held.add(name)
            nodes.forget_gone(conn, now - nodes.FORGET_SECONDS)
            leases.forget_expired(conn, now - FORGET_LEASES_SECONDS)
            return held, len(nodes.live_nodes(conn, now)), [node.id for node in dead]

        held, live, dead = await self.db.write(step)
        for node_id in dead:
            log.info("node %s is gone: its leases are released", node_id)
        nodes.set_live_node_count(live)
        self._set_held(held)

    def _set_held(self, held: set[str]) -> None:
        self.held = held
        for name, want in self._wanted.items():
            if name in held:
                want.lost.clear()
                want.held.set()
            else:
                want.held.clear()
                want.lost.set()

    async def _leave(self) -> None:
        def leave(conn: sqlite3.Connection) -> None:
            leases.release_all(conn, self.node.id)
            nodes.forget(conn, self.node.id)

        try:
            await asyncio.wait_for(self.db.write(leave), 5.0)
        except Exception:  # noqa: BLE001 - the leases expire anyway
            log.warning("node %s could not release its leases on leaving", self.node.id)

    # -- work on one node at a time -----------------------------------------------------------

    def exclusive(self, name: str, job: Job) -> Job:
        """`job` (a background loop), run only while this node holds the lease `name`."""
        want = self._wanted.setdefault(name, _Wanted())

        async def run() -> None:
            while True:
                await want.held.wait()
                log.info(
                    "lease %s taken: it runs on this node (%s, pid %d)", name, self.node.id, self.node.pid
                )
                work = asyncio.create_task(job())
                lost = asyncio.create_task(want.lost.wait())
                try:
                    await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (work, lost):
                        task.cancel()
                    await asyncio.gather(work, lost, return_exceptions=True)
                if work.done() and not work.cancelled():
                    return  # the job ended by itself (e.g. the scrub when it is off)
                log.warning("lease %s lost: it stops on this node (%s)", name, self.node.id)

        return run


def nodes_report(db: Database, *, as_json: bool = False) -> str:
    """`folio admin nodes`: the live nodes, each with the leases it holds (document job
    claims counted, not listed), as a table or JSON."""
    now = time.time()

    def read(conn: sqlite3.Connection) -> tuple[list[nodes.Node], list[leases.Lease]]:
        return nodes.live_nodes(conn, now), leases.all_leases(conn)

    live, held = db.read(read)
    rows = []
    for node in live:
        mine = [lease for lease in held if lease.holder == node.id and lease.expires_at >= now]
        rows.append(
            {
                **node.as_json(),
                "leases": [lease.name for lease in mine if not lease.name.startswith("docgen-job:")],
                "jobs": sum(1 for lease in mine if lease.name.startswith("docgen-job:")),
            }
        )
    if as_json:
        return json.dumps({"nodes": rows}, indent=2)
    header = ("NODE", "PID", "STARTED", "SEEN", "VERSION", "LEASES")
    table = [header] + [
        (
            row["id"],
            str(row["pid"]),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started_at"])),
            f"{now - row['seen_at']:.0f} s ago",
            row["version"],
            ", ".join(row["leases"] + ([f"{row['jobs']} document jobs"] if row["jobs"] else [])) or "-",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
    lines.append(
        f"{len(rows)} live node{'s' if len(rows) != 1 else ''} (seen in the last {nodes.LIVE_SECONDS:.0f} s)"
    )
    return "\n".join(lines)
