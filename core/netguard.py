"""The outbound network guard: requests Folio makes on a user's behalf (webhooks,
URL rendering, `/v2/storage` uploads) may only reach public addresses, so a user
cannot point Folio at its own loopback, the private network or a cloud metadata
service. Operators can allow private targets and plain http in `config.toml` (tests
do, for loopback).

A name is resolved once, every address it gives is checked, and the connection goes
to one of those checked addresses (`resolve_checked` here, the HTTP clients in
`core/pinned_http.py`): checking a name and then connecting to it by name would
resolve it twice, and a name that answers a public address to the first lookup and
127.0.0.1 to the second (DNS rebinding) would get through."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class BlockedTarget(ValueError):
    """The URL is not one Folio may send requests to."""


def _address_allowed(address: str, *, allow_loopback: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_loopback and ip.is_loopback:
        return True
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def check_url_syntax(url: str, *, allow_http: bool) -> tuple[str, int]:
    """(host, port) of an acceptable URL, or BlockedTarget."""
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise BlockedTarget("the URL must use https" if not allow_http else "the URL must use http or https")
    if not parts.hostname or parts.username or parts.password:
        raise BlockedTarget("the URL needs a host and no credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise BlockedTarget("the URL's port is not valid") from exc
    return parts.hostname, port


@dataclass(frozen=True)
class PinnedTarget:
    """A host and the addresses it resolved to, all of them checked: connect to these
    addresses, never to the name again."""

    host: str
    port: int
    addresses: tuple[str, ...]


def _lookup(host: str, port: int) -> list[str]:
    """Every address of `host`, in the resolver's order, without repeats. Both the
    blocking and the async paths come here (the async one in a thread), so tests can
    answer for the resolver by patching `socket.getaddrinfo`."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise BlockedTarget(f"the host {host!r} does not resolve") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _checked(host: str, port: int, addresses: list[str], allow_private: bool, allow_loopback: bool) -> PinnedTarget:
    if not addresses:
        raise BlockedTarget(f"the host {host!r} does not resolve")
    if not allow_private and not all(_address_allowed(a, allow_loopback=allow_loopback) for a in addresses):
        raise BlockedTarget("the URL points at a private, loopback, link-local or metadata address")
    return PinnedTarget(host, port, tuple(addresses))


def resolve_checked(host: str, port: int, *, allow_private: bool, allow_loopback: bool = False) -> PinnedTarget:
    """Resolve `host` once and check every address (BlockedTarget if any is refused)."""
    return _checked(host, port, _lookup(host, port), allow_private, allow_loopback)


async def resolve_checked_async(
    host: str, port: int, *, allow_private: bool, allow_loopback: bool = False
) -> PinnedTarget:
    """resolve_checked without blocking the event loop."""
    addresses = await asyncio.get_running_loop().run_in_executor(None, _lookup, host, port)
    return _checked(host, port, addresses, allow_private, allow_loopback)


async def check_url(url: str, *, allow_private: bool, allow_http: bool, allow_loopback: bool = False) -> None:
    """Refuse URLs whose host is, or resolves to, a loopback, private, link-local,
    metadata or otherwise non-public address (every address the name resolves to).
    An early answer for the user (a webhook being created, a document request); the
    request itself goes through a pinned client, which checks again as it connects."""
    host, port = check_url_syntax(url, allow_http=allow_http)
    if not allow_private:
        await resolve_checked_async(host, port, allow_private=False, allow_loopback=allow_loopback)


def check_url_blocking(url: str, *, allow_private: bool, allow_http: bool, allow_loopback: bool = False) -> None:
    """check_url for code without an event loop."""
    host, port = check_url_syntax(url, allow_http=allow_http)
    if not allow_private:
        resolve_checked(host, port, allow_private=False, allow_loopback=allow_loopback)
