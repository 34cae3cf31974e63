"""The node registry: every serving process (each worker of `folio serve --workers N`, each
Folio node sharing a PostgreSQL database) is a node with a row it refreshes every few
seconds (server/cluster.py). A node seen within `LIVE_SECONDS` is live: `folio admin
nodes` lists those, and the rate limiter divides a plan's rate by their number
(`live_node_count()`), so that N nodes together allow the plan's rate.

Portable SQL only (SQLite and PostgreSQL), as in core/leases.py.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import sqlite3
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from core.db import Migration

MIGRATIONS = [
    Migration(
        "core.nodes",
        1,
        """
        CREATE TABLE nodes (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            seen_at DOUBLE PRECISION NOT NULL,
            version TEXT NOT NULL
        );
        """,
    ),
]

# A node refreshes its row this often; one not seen for LIVE_SECONDS (three beats missed)
# is no longer counted, and another node may take its leases once they expire.
HEARTBEAT_SECONDS = 5.0
LIVE_SECONDS = 15.0
# Rows of nodes gone this long are deleted (a restart makes a new node each time).
FORGET_SECONDS = 86400.0


@dataclass(frozen=True)
class Node:
    id: str
    host: str
    pid: int
    started_at: float
    seen_at: float
    version: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _version() -> str:
    try:
        return metadata.version("folio")
    except metadata.PackageNotFoundError:
        return "unknown"


def _pid_space() -> str:
    """Which processes `process_alive` can see: the kernel's boot and this pid namespace.
    Two containers (or machines) may share a host name; a pid means something only to
    processes of the same boot and namespace. Empty where /proc has no answer."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        space = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return hashlib.sha256(f"{boot} {space}".encode()).hexdigest()[:8]


PID_SPACE = _pid_space()


def this_node() -> Node:
    """A new identity for this process: host, pid, the pid space it lives in and a random
    part (pids are reused): `host:pid:space:random`."""
    host = socket.gethostname()
    pid = os.getpid()
    now = time.time()
    return Node(f"{host}:{pid}:{PID_SPACE}:{secrets.token_hex(3)}", host, pid, now, now, _version())


def is_local(node: Node) -> bool:
    """Whether `node` is a process this one can check with `process_alive`."""
    parts = node.id.rsplit(":", 3)
    return bool(PID_SPACE) and len(parts) == 4 and parts[2] == PID_SPACE


def beat(conn: sqlite3.Connection, node: Node, now: float) -> None:
    """Record `node` as seen now (its row is made at its first beat)."""
    row = conn.execute("UPDATE nodes SET seen_at = ? WHERE id = ? RETURNING id", (now, node.id)).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO nodes (id, host, pid, started_at, seen_at, version) VALUES (?, ?, ?, ?, ?, ?)",
            (node.id, node.host, node.pid, node.started_at, now, node.version),
        )


def forget(conn: sqlite3.Connection, node_id: str) -> None:
    conn.execute("DELETE FROM nodes WHERE id = ?", (node_id,))


def forget_gone(conn: sqlite3.Connection, before: float) -> int:
    return len(conn.execute("DELETE FROM nodes WHERE seen_at < ? RETURNING id", (before,)).fetchall())


def on_host(conn: sqlite3.Connection, host: str) -> list[Node]:
    rows = conn.execute(
        "SELECT id, host, pid, started_at, seen_at, version FROM nodes WHERE host = ?", (host,)
    ).fetchall()
    return [Node(*row) for row in rows]


def dead_local_nodes(conn: sqlite3.Connection, me: Node) -> list[Node]:
    """Nodes of this machine (and pid namespace) whose process is gone: a worker that died,
    or the previous run of a server restarted after a crash."""
    return [
        node
        for node in on_host(conn, me.host)
        if node.id != me.id and is_local(node) and not process_alive(node.pid)
    ]


def live_nodes(conn: sqlite3.Connection, now: float) -> list[Node]:
    rows = conn.execute(
        "SELECT id, host, pid, started_at, seen_at, version FROM nodes WHERE seen_at >= ?"
        " ORDER BY host, started_at, id",
        (now - LIVE_SECONDS,),
    ).fetchall()
    return [Node(*row) for row in rows]


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (signal 0 checks, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


# How many nodes are live, as of this process's last heartbeat (server/cluster.py sets it).
# 1 until then, and in processes that are not nodes (the CLI, the tests' in-process stores).
_live_count = 1


def live_node_count() -> int:
    """The live nodes (at least 1), cached: read on every rate-limited request."""
    return _live_count


def set_live_node_count(count: int) -> None:
    global _live_count
    _live_count = max(1, count)
