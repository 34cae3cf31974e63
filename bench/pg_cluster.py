"""A throwaway PostgreSQL cluster for measurements (issue 18): Debian's `postgresql` binaries,
`initdb` and `pg_ctl` in a temporary directory, listening on a free loopback port only.

PostgreSQL refuses to run as root, so when this process is root the cluster belongs to the
`postgres` user Debian creates, and the server programs run through `runuser -u postgres`.
The server is stopped by its PID (the first line of postmaster.pid): SIGINT is PostgreSQL's
fast shutdown; SIGKILL if it has not gone within 10 s. The directory is removed afterwards.

    with PgCluster() as pg:
        dsn = pg.dsn          # postgresql://postgres@127.0.0.1:PORT/postgres
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.targets import free_port


class PgMissing(Exception):
    """PostgreSQL's server programs are not installed (make engines installs them)."""


def bin_dir() -> Path:
    """The newest /usr/lib/postgresql/N/bin with initdb (Debian's layout)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise PgMissing("PostgreSQL is not installed: make engines (apt-get install postgresql)")
    return found[-1].parent


class PgCluster:
    """initdb + pg_ctl start in a temporary directory; `settings` are extra `-c name=value`."""

    def __init__(
        self,
        settings: dict[str, str] | None = None,
        user: str = "postgres",
        initdb_args: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings or {}
        self.user = user
        # Extra initdb options, e.g. ("--locale=C",) for byte-order text everywhere (the tests).
        self.initdb_args = initdb_args
        self.port = 0
        self.dir: Path | None = None
        self.pid: int | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, args: list[str]) -> None:
        # As root: run the server programs as the unprivileged owner of the cluster.
        if os.geteuid() == 0:
            args = ["runuser", "-u", self.user, "--", *args]
        out = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{args[0:6]} failed: {out.stdout[-1500:]} {out.stderr[-1500:]}")

    def start(self) -> PgCluster:
        pg = bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="folio-pg-"))
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        data, socket_dir = self.dir / "data", self.dir
        # trust on loopback only: the cluster lives for one measurement and listens on 127.0.0.1.
        initdb = [str(pg / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
        self._run([*initdb, *self.initdb_args])
        self.port = free_port()
        options = f"-p {self.port} -k {socket_dir} -c listen_addresses=127.0.0.1"
        for name, value in self.settings.items():
            options += f" -c {name}={value}"
        log = self.dir / "server.log"
        self._run([str(pg / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"])
        self.pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
        return self

    def stop(self) -> None:
        pid, self.pid = self.pid, None
        if pid is not None:
            os.kill(pid, signal.SIGINT)  # fast shutdown: roll back sessions, checkpoint, exit
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # Not our child (pg_ctl daemonized it), so it cannot linger as a zombie of ours.
    return True
