"""thumbor for the image-transform benchmark: its own virtual environment and its configuration.

thumbor 7.8 requires Pillow < 13 while Folio takes the newest, so thumbor lives in a virtual
environment of its own, `.venv-thumbor` at the top of the repository, made by the bench set-up
(`make bench`, or `python -m bench.thumbor_env`, or the first thumbor target started) from PyPI,
never by hand. Its stamp file records what was asked for; a changed request re-installs.

    python -m bench.thumbor_env          # create or update .venv-thumbor, print what it holds
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV = REPO_ROOT / ".venv-thumbor"
STAMP = VENV / ".installed"
# Pillow < 13 for thumbor; 11.3+ wheels carry libavif and libwebp. pillow-avif-plugin only when
# the Pillow installed has no AVIF of its own (see `ensure`).
REQUIREMENTS = ("thumbor>=7.8,<8", "pillow>=11.3,<13")
AVIF_PLUGIN = "pillow-avif-plugin"
_PROBE = """
import json, PIL
from importlib import metadata
from PIL import features
info = {"thumbor": metadata.version("thumbor"), "pillow": PIL.__version__,
        "webp": bool(features.check("webp")), "avif": bool(features.check("avif"))}
try:
    info["pillow_avif_plugin"] = metadata.version("pillow-avif-plugin")
except metadata.PackageNotFoundError:
    pass
print(json.dumps(info))
"""


class ThumborMissing(Exception):
    """thumbor's environment could not be made; the message says why."""


_failure: str | None = None  # one failed install per process is enough


def python() -> Path:
    return VENV / "bin" / "python"


def executable() -> Path:
    return VENV / "bin" / "thumbor"


def _pip(*args: str) -> None:
    out = subprocess.run(
        [str(python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        raise ThumborMissing(f"pip install {' '.join(args)} failed: {(out.stderr or out.stdout)[-1500:]}")


def probe() -> dict[str, object]:
    """thumbor's and Pillow's versions in the environment, and whether Pillow there has WebP and AVIF."""
    out = subprocess.run([str(python()), "-c", _PROBE], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise ThumborMissing(f"thumbor's environment is broken: {out.stderr[-1000:]}")
    return dict(json.loads(out.stdout))


def ensure() -> dict[str, object]:
    """Create or update `.venv-thumbor`; returns `probe()`. Raises ThumborMissing."""
    global _failure
    if _failure is not None:
        raise ThumborMissing(_failure)
    wanted = json.dumps(REQUIREMENTS)
    try:
        if STAMP.exists() and STAMP.read_text() == wanted and executable().exists():
            return probe()
        if not python().exists():
            made = subprocess.run(
                [sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True, timeout=300
            )
            if made.returncode != 0:
                raise ThumborMissing(f"python -m venv {VENV} failed: {made.stderr[-1000:]}")
        _pip(*REQUIREMENTS)
        info = probe()
        if not info["avif"]:
            _pip(AVIF_PLUGIN)
            info = probe()
        STAMP.write_text(wanted)
        return info
    except (OSError, subprocess.SubprocessError, ThumborMissing, ValueError) as exc:
        _failure = str(exc) if isinstance(exc, ThumborMissing) else f"{type(exc).__name__}: {exc}"
        raise ThumborMissing(_failure) from exc


def config_text(root: Path, threadpool: int) -> str:
    """thumbor's configuration: the file loader on the benchmark's source files, no result storage,
    unsafe URLs, no automatic WebP; `threadpool` > 0 runs the transforms in that many threads
    (thumbor's default, 0, runs them on the event loop). Everything else is thumbor's default,
    except where originals are stored: thumbor's default keeps a second copy of every source it
    loads in /tmp/thumbor/storage; the file loader already reads them from disk, so none is kept."""
    lines = {
        "LOADER": "thumbor.loaders.file_loader",
        "FILE_LOADER_ROOT_PATH": str(root),
        "STORAGE": "thumbor.storages.no_storage",
        "RESULT_STORAGE": None,
        "ALLOW_UNSAFE_URL": True,
        "AUTO_WEBP": False,
    }
    if threadpool:
        lines["ENGINE_THREADPOOL_SIZE"] = threadpool
    return "".join(f"{name} = {value!r}\n" for name, value in lines.items())


def main() -> int:
    try:
        info = ensure()
    except ThumborMissing as exc:
        print(f"thumbor's environment: {exc}", file=sys.stderr)
        return 1
    print(f"{VENV}: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
