"""The outbound network guard: requests Folio makes on a user's behalf (webhooks,
URL rendering) may only reach public addresses, so a user cannot point Folio at
its own loopback, the private network or a cloud metadata service. Operators can
allow private targets and plain http in `config.toml` (tests do, for loopback)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
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


async def check_url(url: str, *, allow_private: bool, allow_http: bool, allow_loopback: bool = False) -> None:
    """Refuse URLs whose host is, or resolves to, a loopback, private, link-local,
    metadata or otherwise non-public address (every address the name resolves to)."""
    host, port = check_url_syntax(url, allow_http=allow_http)
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise BlockedTarget(f"the host {host!r} does not resolve") from exc
    _check_addresses(infos, allow_loopback)


def _check_addresses(infos: list, allow_loopback: bool) -> None:
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(_address_allowed(a, allow_loopback=allow_loopback) for a in addresses):
        raise BlockedTarget("the URL points at a private, loopback, link-local or metadata address")


def check_url_blocking(url: str, *, allow_private: bool, allow_http: bool, allow_loopback: bool = False) -> None:
    """check_url for code without an event loop (the document renderer's fetcher)."""
    host, port = check_url_syntax(url, allow_http=allow_http)
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise BlockedTarget(f"the host {host!r} does not resolve") from exc
    _check_addresses(infos, allow_loopback)
