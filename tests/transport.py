"""Run a whole test module over plain HTTP and over HTTPS, without copying its tests.

A module opts in by importing these two fixtures, named `folio` and `s3`, which override
the session's (tests/conftest.py) for that module only (imported under their own names:
an import named `folio` would clash with every test argument of that name):

    from tests.transport import folio_over_both, s3_over_both  # noqa: F401

Every test of the module then runs twice, `[http]` against the session server and
`[https]` against `folio_https` (the same configuration behind a test CA). Fixtures that
take `folio` or `s3` (`bucket`, `aws`, `make_s3_client(folio)`) follow, so the boto3 clients,
the aws CLI and httpx (`verify=folio.verify`) trust the CA. Over HTTPS the default boto3
client sends its bodies as STREAMING-UNSIGNED-PAYLOAD-TRAILER: `s3` records the payload
mode of every body it sends (`payload_modes(s3)`) so a module can show that it did."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess

TRANSPORTS = ("http", "https")


@pytest.fixture(scope="module", params=TRANSPORTS, name="folio")
def folio_over_both(request: pytest.FixtureRequest) -> FolioProcess:
    # "folio" from here is the overridden session fixture (the plain HTTP server).
    return request.getfixturevalue("folio_https" if request.param == "https" else "folio")


# (method, x-amz-content-sha256) of every request each module's `s3` sent, by id(client).
_SENT: dict[int, list[tuple[str, str]]] = {}


@pytest.fixture(scope="module", name="s3")
def s3_over_both(folio: FolioProcess) -> Iterator:
    client = make_s3_client(folio)
    sent = _SENT.setdefault(id(client), [])

    def record(request, **_kwargs) -> None:
        # As sent, after signing: the body's SHA-256, UNSIGNED-PAYLOAD or a STREAMING-* mode.
        mode = request.headers.get("x-amz-content-sha256", b"")
        sent.append((request.method, mode.decode() if isinstance(mode, bytes) else mode))

    client.meta.events.register("before-send.s3.*", record)
    yield client
    _SENT.pop(id(client), None)


def payload_modes(client) -> list[tuple[str, str]]:
    """(method, x-amz-content-sha256) of every request the module's `s3` sent, oldest first."""
    return _SENT[id(client)]
