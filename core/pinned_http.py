"""HTTP clients for requests Folio makes on a user's behalf, pinned to checked addresses.

Every connection these clients open goes through one httpcore network backend whose
`connect_tcp` resolves the host once with the outbound guard (`resolve_checked`),
refuses the connection if any address is not allowed, and connects to a checked
address, never to the name. The request keeps its URL, so the Host header, the TLS
server name and certificate verification all stay the original hostname's: only the
address a second DNS lookup would have chosen is taken out of the attacker's hands.
Each new connection (a redirect hop, a retry, a dropped keep-alive) is checked anew.

A refused target raises `core.netguard.BlockedTarget` out of the request call. The
clients never read proxy settings from the environment (a proxy would connect by
name) and keep no cookies (one client serves many users' requests).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpcore
import httpx

from core.netguard import PinnedTarget, resolve_checked, resolve_checked_async

# At most this many of a name's addresses are tried, each with the full connect
# timeout: a name with fifty unreachable addresses must not hold a worker for minutes.
MAX_ADDRESSES_TRIED = 4

SocketOption = typing.Any  # httpcore's SOCKET_OPTION, a tuple for setsockopt


class _PinnedBackend(httpcore.NetworkBackend):
    def __init__(self, allow_private: bool, allow_loopback: bool) -> None:
        self._inner = httpcore.SyncBackend()
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        target = resolve_checked(host, port, allow_private=self.allow_private, allow_loopback=self.allow_loopback)
        return _first_that_connects(
            target, lambda address: self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[SocketOption] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not outbound targets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _PinnedAsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, allow_private: bool, allow_loopback: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        target = await resolve_checked_async(
            host, port, allow_private=self.allow_private, allow_loopback=self.allow_loopback
        )
        error: Exception | None = None
        for address in target.addresses[:MAX_ADDRESSES_TRIED]:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # resolve_checked never returns an empty list
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[SocketOption] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not outbound targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _first_that_connects(
    target: PinnedTarget, connect: Callable[[str], httpcore.NetworkStream]
) -> httpcore.NetworkStream:
    error: Exception | None = None
    for address in target.addresses[:MAX_ADDRESSES_TRIED]:
        try:
            return connect(address)
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
            error = exc
    assert error is not None  # resolve_checked never returns an empty list
    raise error


# httpx's transports build their httpcore pool in __init__ with no way to pass a
# network backend; these build the same pool with ours. Only `_pool` is relied on
# (the attribute their request methods use); tests/test_outbound_pinning.py fails
# if an httpx upgrade stops routing connections through the backend.


class PinnedTransport(httpx.HTTPTransport):
    def __init__(self, *, allow_private: bool, allow_loopback: bool, verify: typing.Any = True) -> None:
        # Deliberately not HTTPTransport.__init__: it would build (and load the CA
        # bundle for) a pool that is thrown away at once.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_PinnedBackend(allow_private, allow_loopback),
        )


class AsyncPinnedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, *, allow_private: bool, allow_loopback: bool, verify: typing.Any = True) -> None:
        # Not AsyncHTTPTransport.__init__, for the reason PinnedTransport gives.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_PinnedAsyncBackend(allow_private, allow_loopback),
        )


def _no_cookies() -> httpx.Cookies:
    """A jar that neither stores nor sends a cookie (no domain is allowed)."""
    return httpx.Cookies(CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))


def pinned_client(
    *, allow_private: bool, allow_loopback: bool, timeout: float | httpx.Timeout, verify: typing.Any = True
) -> httpx.Client:
    """A blocking client whose connections go only to guard-checked addresses.
    Redirects are not followed: a caller that follows them sends each hop through
    the same client, so each hop's host is checked as it is connected to."""
    return httpx.Client(
        transport=PinnedTransport(allow_private=allow_private, allow_loopback=allow_loopback, verify=verify),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        cookies=_no_cookies(),
    )


def pinned_async_client(
    *, allow_private: bool, allow_loopback: bool, timeout: float | httpx.Timeout, verify: typing.Any = True
) -> httpx.AsyncClient:
    """pinned_client for the event loop."""
    return httpx.AsyncClient(
        transport=AsyncPinnedTransport(allow_private=allow_private, allow_loopback=allow_loopback, verify=verify),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        cookies=_no_cookies(),
    )
