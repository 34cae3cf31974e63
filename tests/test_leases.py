"""core/leases.py and core/nodes.py on both engines (issue 18): the same statements on SQLite
and on a real PostgreSQL (tests/pg.py). A lease is one holder's until it expires; two
processes racing for the same leases never both win one; nodes are live while they beat, and a
node of this machine whose process is gone is found dead."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from core import leases, nodes
from core.db import Database

T = TypeVar("T")
MIGRATIONS = [*leases.MIGRATIONS, *nodes.MIGRATIONS]
NAMES = [f"sweep-{i}" for i in range(40)]


def _open(target: str) -> Any:
    """A Database (SQLite file path) or PostgresDatabase (postgresql:// URL), opened."""
    if target.startswith("postgresql://"):
        from core.db_postgres import PostgresDatabase

        db: Any = PostgresDatabase(target, pool_size=2)
    else:
        db = Database(Path(target), sync="normal")
    db.open(MIGRATIONS)
    return db


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "leases.db")
        return
    from tests.pg import drop_database, new_database_url

    url = new_database_url("leases")
    yield url
    drop_database(url)


class Db:
    """A database with the one event loop its writes run on (a Database keeps the first)."""

    def __init__(self, target: str) -> None:
        self.runner = asyncio.Runner()
        self.db = _open(target)

    def write(self, fn: Callable[[Any], T]) -> T:
        return self.runner.run(self.db.write(fn))

    def read(self, fn: Callable[[Any], T]) -> T:
        return self.db.read(fn)

    def close(self) -> None:
        self.db.close()
        self.runner.close()


@pytest.fixture
def db(target: str) -> Iterator[Db]:
    opened = Db(target)
    yield opened
    opened.close()


def write(db: Db, fn: Callable[[Any], T]) -> T:
    return db.write(fn)


def test_a_lease_is_its_holders_until_it_expires(db: Db) -> None:
    now = 1_000_000.0
    assert write(db, lambda c: leases.take(c, "sweep", "a", now, 15))
    assert write(db, lambda c: leases.take(c, "sweep", "a", now + 1, 15))  # ours: renewed
    assert not write(db, lambda c: leases.take(c, "sweep", "b", now + 10, 15))  # a's until now + 16
    assert write(db, lambda c: leases.renew(c, "a", now + 10, 15)) == {"sweep"}
    assert not write(db, lambda c: leases.take(c, "sweep", "b", now + 20, 15))  # renewed to now + 25
    assert write(db, lambda c: leases.take(c, "sweep", "b", now + 26, 15))  # expired: b's now
    assert write(db, lambda c: leases.renew(c, "a", now + 27, 15)) == set()  # a learns it lost it
    assert not write(db, lambda c: leases.release(c, "sweep", "a"))  # not a's to give up
    held = db.read(leases.all_leases)
    assert [(lease.name, lease.holder, lease.expires_at) for lease in held] == [("sweep", "b", now + 41)]
    assert write(db, lambda c: leases.release(c, "sweep", "b"))
    assert write(db, lambda c: leases.take(c, "sweep", "a", now + 28, 15))  # free again at once

    claims = leases.Claims("c", 15)
    assert write(db, lambda c: claims.take(c, "docgen-job:1"))
    assert write(db, lambda c: leases.release_all(c, "c")) == 1
    assert write(db, lambda c: leases.forget_expired(c, now + 100)) == 1  # a's, expired long ago


def _race(target: str, holder: str, start: Any, out: Any) -> None:
    db = _open(target)
    try:
        start.wait()
        won = []

        async def run() -> None:
            # Each name in its own write, all in flight at once: the two processes interleave.
            results = await asyncio.gather(
                *(db.write(lambda c, n=name: leases.take(c, n, holder, 1_000_000.0, 15)) for name in NAMES)
            )
            won.extend(name for name, taken in zip(NAMES, results, strict=True) if taken)

        asyncio.run(run())
        out.put((holder, won))
    finally:
        db.close()


def test_two_processes_racing_never_both_take_a_lease(target: str, db: Db) -> None:
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    racers = [context.Process(target=_race, args=(target, holder, start, out)) for holder in ("a", "b")]
    for racer in racers:
        racer.start()
    start.set()
    results = dict(out.get(timeout=60) for _ in racers)
    for racer in racers:
        racer.join(30)
    assert sorted(results["a"] + results["b"]) == sorted(NAMES)  # every lease once, no one twice
    held = {lease.name: lease.holder for lease in db.read(leases.all_leases)}
    assert held == {**{n: "a" for n in results["a"]}, **{n: "b" for n in results["b"]}}


def test_nodes_are_live_while_they_beat_and_a_gone_local_process_is_dead(db: Db) -> None:
    me = nodes.this_node()
    now = me.started_at
    write(db, lambda c: nodes.beat(c, me, now))
    # A node of this machine whose process is gone (a child that exited), and one elsewhere.
    child = multiprocessing.get_context("fork").Process(target=os.getpid)
    child.start()
    child.join()
    assert child.pid is not None
    gone = nodes.Node(f"{me.host}:{child.pid}:{nodes.PID_SPACE}:dead01", me.host, child.pid, now, now, "x")
    elsewhere = nodes.Node(f"{me.host}:{child.pid}:otherspace:far001", me.host, child.pid, now, now, "x")
    for node in (gone, elsewhere):
        write(db, lambda c, node=node: nodes.beat(c, node, now))
    assert {n.id for n in db.read(lambda c: nodes.live_nodes(c, now + 1))} == {me.id, gone.id, elsewhere.id}
    # Only the one whose pid this process can check is found dead.
    assert [n.id for n in db.read(lambda c: nodes.dead_local_nodes(c, me))] == [gone.id]
    # Not seen for LIVE_SECONDS: no longer live; this node beats on.
    later = now + nodes.LIVE_SECONDS + 1
    write(db, lambda c: nodes.beat(c, me, later))
    assert [n.id for n in db.read(lambda c: nodes.live_nodes(c, later))] == [me.id]
    assert write(db, lambda c: nodes.forget_gone(c, later - 1)) == 2
