"""Enough file descriptors for the connection cap.

Each listener holds up to `max_connections` sockets (config.toml `[server]`), plus the
database, blob files, pipes to document workers and outbound connections. Many systems
start processes with a soft limit of 1,024 descriptors: below the cap, accept() would
fail with EMFILE first, and uvicorn logs and retries that on every new connection. The
soft limit is raised toward what the cap needs, never past the hard limit (which only
root may raise)."""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("folio.server")

# Descriptors besides client connections: database and WAL, blobs being read or written,
# worker pipes, Chromium, webhook deliveries.
SPARE_DESCRIPTORS = 512


def raise_fd_limit(listeners: int, max_connections: int) -> int:
    """The soft RLIMIT_NOFILE after raising it to fit `listeners * max_connections`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = listeners * max_connections + SPARE_DESCRIPTORS
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    if soft != resource.RLIM_INFINITY and soft < listeners * max_connections + SPARE_DESCRIPTORS:
        log.warning(
            "only %d file descriptors (hard limit): fewer than max_connections = %d per listener needs",
            soft,
            max_connections,
        )
    return soft
