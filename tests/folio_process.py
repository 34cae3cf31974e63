"""Start, stop and crash a real Folio server process for the tests and benchmarks.

The server binds to free loopback ports, keeps its data in a directory the caller
owns, and is always stopped by its own PID.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.targets import free_port
from tests.server_logs import EXPECTED_SUFFIX
from tests.tls_ca import TlsFiles

ROOT_ACCESS_KEY = "FOLIOTESTROOTKEY0001"
ROOT_SECRET_KEY = "folio-test-root-secret-key-0000000000001"
REPO_ROOT = Path(__file__).resolve().parent.parent


# Every server started in this test session, by log file: tests/test_zz_server_logs.py
# reads their logs at the end of the run.
STARTED: dict[Path, FolioProcess] = {}


def group_members(group: int) -> list[int]:
    """The processes of a process group that still run (zombies, which hold no socket, left
    out: whoever adopted them may be slow to reap them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == group and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@dataclass
class FolioProcess:
    """One Folio server: `start()`, `stop()` (SIGTERM), `kill()` (SIGKILL)."""

    data_dir: Path
    config_text: str = ""
    engine: str = "uvicorn"
    env: dict[str, str] = field(default_factory=dict)
    s3_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    access_key: str = ROOT_ACCESS_KEY
    secret_key: str = ROOT_SECRET_KEY
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    # Set by tests that break the server on purpose (a traceback in its log is theirs,
    # not a client's): the end-of-run log check skips this server's log.
    expect_tracebacks: bool = False
    # Servers that share one data directory (tests/test_two_nodes.py) tell their config and
    # log files apart by this name.
    node: str = ""
    # FOLIO_TEST_DATABASE=postgres: this server's own PostgreSQL database (kept, so that a
    # restart finds its rows).
    database_url: str = ""
    # Serve both listeners over HTTPS with these files (`--tls-cert/--tls-key`).
    tls: TlsFiles | None = None
    # Worker processes (`--workers`); FOLIO_TEST_WORKERS runs every server with that many.
    workers: int = field(default_factory=lambda: int(os.environ.get("FOLIO_TEST_WORKERS", "1")))
    # FOLIO_TEST_BLOBS=s3: the `[blobs]` section of this server's own upstream bucket (kept, so
    # that a restart finds its blobs).
    upstream_blobs: str = ""

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def s3_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.s3_port}"

    @property
    def web_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.web_port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """httpx's `verify=` for this server: its test CA when it serves HTTPS."""
        return self.tls.client_context() if self.tls else True

    @property
    def config_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}{self.node}-config.toml"

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "FOLIO_ROOT_ACCESS_KEY": self.access_key,
                "FOLIO_ROOT_SECRET_KEY": self.secret_key,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.env)
        return env

    def _base_args(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        text = self.config_text
        if "[plans.default]" not in text:
            # Tests send requests as fast as they can: the default plan's seed rates
            # (100 writes/s) would throttle them. Rate-limit tests use their own plans.
            text += (
                "\n[plans.default]\nwrite_per_second = 0\nread_per_second = 0\nlist_per_second = 0\n"
                "dashboard_per_minute = 0\ndocgen_per_minute = 0\n"
            )
        if os.environ.get("FOLIO_TEST_DATABASE") == "postgres" and "[database]" not in text:
            # Metadata on PostgreSQL (issue 18): a fresh database per server, as a fresh
            # SQLite file is; `folio admin` reads the same config, so the same database.
            if not self.database_url:
                from tests.pg import new_database_url

                self.database_url = new_database_url(self.data_dir.parent.name)
            text += f'\n[database]\nurl = "{self.database_url}"\n'
        if os.environ.get("FOLIO_TEST_BLOBS") == "s3" and "[blobs]" not in text:
            # Blobs on an upstream S3 (issue 18): a fresh SeaweedFS bucket per server.
            if not self.upstream_blobs:
                from tests.seaweedfs import blobs_section, new_bucket

                self.upstream_blobs = blobs_section(*new_bucket())
            text += self.upstream_blobs
            if "gc_grace_seconds" not in text:
                # Freed blobs are deleted upstream after the grace: 2 s, so that tests see them go.
                grace = "gc_grace_seconds = 2\n"
                text = text.replace("[storage]\n", "[storage]\n" + grace, 1)
                if grace not in text:
                    text += "\n[storage]\n" + grace
        if self.engine != "uvicorn":
            text = f'[server]\nengine = "{self.engine}"\n' + text
        self.config_path.write_text(text)
        return ["--config", str(self.config_path), "--data-dir", str(self.data_dir)]

    def start(self, timeout: float = 30.0) -> FolioProcess:
        args = [
            sys.executable,
            "-m",
            "server",
            "serve",
            *self._base_args(),
            "--s3-listen",
            f"127.0.0.1:{self.s3_port}",
            "--web-listen",
            f"127.0.0.1:{self.web_port}",
        ]
        if self.tls:
            args += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
        if self.workers != 1:
            args += ["--workers", str(self.workers)]
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}{self.node}-server.log"
        STARTED[self.log_path] = self
        if self.expect_tracebacks:  # for the log check of another process (pytest-xdist's controller)
            self.log_path.with_suffix(EXPECTED_SUFFIX).touch()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        # With workers, a process group of their own: kill() takes the workers too (a crash),
        # where killing the supervisor alone would let them drain and stop gracefully.
        group = {"process_group": 0} if self.workers != 1 else {}
        self.proc = subprocess.Popen(
            args, env=self._environment(), stdout=log, stderr=subprocess.STDOUT, **group
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"folio exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.web_url}/healthz", timeout=1, verify=self.verify).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"folio did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the server: with workers, every process of it (the supervisor and its
        workers, as a crash of the machine's server would)."""
        if self.proc is None:
            return
        if self.workers != 1:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
            self._wait_group_gone()
        elif self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def _wait_group_gone(self, timeout: float = 10.0) -> None:
        """Until no process of the server's group runs (its listening ports are free)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while group_members(self.proc.pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes of folio (group {self.proc.pid}) still running after SIGKILL")
            time.sleep(0.02)

    def admin(self, *args: str) -> str:
        """Run `folio admin ...` against this server's data directory and return stdout."""
        out = subprocess.run(
            [sys.executable, "-m", "server", "admin", *args, *self._base_args()],
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            raise RuntimeError(f"folio admin {args} failed: {out.stderr}")
        return out.stdout

    def create_account(self, email: str, password: str | None = None, plan: str | None = None) -> dict:
        args = ["create-account", "--email", email]
        if password:
            args += ["--password", password]
        if plan:
            args += ["--plan", plan]
        return json.loads(self.admin(*args))

    def usage(self, email: str) -> dict:
        """`folio admin usage`: the account's bytes, objects and per-bucket usage."""
        return json.loads(self.admin("usage", "--email", email))


def running_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, config_text: str = "", **kwargs: Any
) -> Iterator[FolioProcess]:
    """A started server in a fresh directory named after `name`, stopped when the fixture
    that yields from this ends (the usual module- or session-scoped server fixture)."""
    server = FolioProcess(data_dir=tmp_path_factory.mktemp(name) / "data", config_text=config_text, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
