"""Who is writing: the identity recorded on each version a request makes (Time Machine's
"who wrote it"). A context variable because every front door (the S3 dispatcher, the API
key check, the dashboard session) knows the caller and the store's write paths are many
levels below it; the store reads it at its public write methods, in the request's own
task, and passes it down explicitly to the transaction (which may run elsewhere).

Values: an access key id (S3 or document API key), "dashboard" for a signed-in session,
"anonymous" for an unsigned S3 request a policy or ACL let through, None for Folio's own
writes and for versions written before this was recorded."""

from __future__ import annotations

from contextvars import ContextVar

DASHBOARD = "dashboard"
ANONYMOUS = "anonymous"

_writer: ContextVar[str | None] = ContextVar("folio_writer", default=None)


def act_as(writer: str | None) -> None:
    """Record `writer` for the writes of the current request (its task's context: an
    asyncio task gets a copy, so this never leaks into another request)."""
    _writer.set(writer)


def current_writer() -> str | None:
    return _writer.get()
