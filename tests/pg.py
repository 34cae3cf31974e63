"""A throwaway PostgreSQL for the tests (issue 18): one cluster per test process, started on
first use and stopped when the process exits, and a fresh database per Folio server.

The cluster is bench/pg_cluster.py's: Debian's `initdb` and `pg_ctl` in a temporary directory,
on a free loopback port, run as the `postgres` user when the tests run as root (PostgreSQL
refuses root), stopped by its PID. `--locale=C` makes every text comparison a byte comparison,
as Folio's `COLLATE "C"` columns are anyway. Durability is off (fsync, full-page writes): a test
never survives a power cut, and a commit then costs no disk flush.

    url = new_database_url("s3_suite")   # postgresql://postgres@127.0.0.1:PORT/s3_suite_1
    FolioProcess(data_dir, config_text=f'[database]\\nurl = "{url}"\\n')
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import threading

import psycopg

from bench.pg_cluster import PgCluster

_lock = threading.Lock()
_cluster: PgCluster | None = None
_numbers = itertools.count(1)

# Enough connections for several Folio servers in one test process (each keeps a pool of
# [database] pool_size, 10 by default) plus the tests' own.
SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "400",
    "shared_buffers": "32MB",
}


def cluster() -> PgCluster:
    """This process's cluster, started on first use."""
    global _cluster
    with _lock:
        if _cluster is None:
            started = PgCluster(SETTINGS, initdb_args=("--locale=C",)).start()
            atexit.register(_stop, started, os.getpid())
            _cluster = started
        return _cluster


def _stop(started: PgCluster, pid: int) -> None:
    # A forked child (multiprocessing) inherits the atexit hook: only the starter stops it.
    if os.getpid() == pid:
        started.stop()


def admin_url() -> str:
    """The superuser's URL to the cluster's `postgres` database."""
    return cluster().dsn


def database_url(dbname: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{cluster().port}/{dbname}"


def new_database_url(name: str = "folio", *, icu_locale: str | None = None) -> str:
    """CREATE a fresh, empty database for one Folio server (or one test) and return its URL.
    `name` is a readable prefix; a number makes each database new. `icu_locale` (e.g. "en-US")
    gives the database a default collation that is not byte order, as a production cluster's
    often is: Folio's columns must not depend on it."""
    prefix = re.sub(r"[^a-z0-9_]", "_", name.lower())[:40] or "folio"
    dbname = f"{prefix}_{os.getpid()}_{next(_numbers)}"
    options = ""
    if icu_locale is not None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", icu_locale):
            raise ValueError(f"not an ICU locale name: {icu_locale!r}")
        options = f" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}'"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"{options}')
    return database_url(dbname)


def drop_database(url: str) -> None:
    """DROP a database made by new_database_url (its connections are ended first)."""
    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
