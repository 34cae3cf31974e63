"""HTTPS on both listeners: the certificate and key of `[server] tls_cert` / `tls_key`
(or `folio serve --tls-cert/--tls-key`) checked once at start-up, one `ssl.SSLContext`
that uvicorn and Hypercorn both serve with, and HSTS on the web listener.

The files are checked before the store is opened, so a wrong path, a file that is not
PEM or a key that belongs to another certificate stops `folio serve` with one line that
names the file, never a traceback from inside the server."""

from __future__ import annotations

import datetime
import logging
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import replace
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from core.config import Config, ServerConfig

log = logging.getLogger("folio.server")

# A year, without includeSubDomains or preload: those would commit other hosts of the
# operator's domain to HTTPS, which is not Folio's decision to make.
HSTS = (b"strict-transport-security", b"max-age=31536000")
# A warning at start-up when the certificate runs out within this many days.
EXPIRY_WARNING_DAYS = 14


class TlsError(Exception):
    """The certificate or key cannot be served; the message names the file and why."""


def _read(setting: str, path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise TlsError(f"[server] {setting} {path}: cannot read it: {exc.strerror or exc}") from exc


def _public(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_files(cert_path: str, key_path: str) -> x509.Certificate:
    """The first (leaf) certificate, once both files are PEM and the key is the certificate's."""
    try:
        chain = x509.load_pem_x509_certificates(_read("tls_cert", cert_path))
    except ValueError as exc:  # cryptography's text points at its FAQ: ours names what is missing
        raise TlsError(
            f"[server] tls_cert {cert_path}: not a PEM certificate chain (no valid -----BEGIN CERTIFICATE----- block)"
        ) from exc
    try:
        key = serialization.load_pem_private_key(_read("tls_key", key_path), password=None)
    except TypeError as exc:  # a password-protected key: the server could only ask for it on a terminal
        raise TlsError(
            f"[server] tls_key {key_path}: the key is encrypted; give Folio an unencrypted key"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TlsError(f"[server] tls_key {key_path}: not a PEM private key ({exc})") from exc
    leaf = chain[0]
    if _public(leaf.public_key()) != _public(key.public_key()):
        raise TlsError(
            f"[server] tls_key {key_path} does not belong to the certificate in tls_cert {cert_path} "
            "(the first certificate of the chain must be the server's own)"
        )
    return leaf


def _warn_about_validity(leaf: x509.Certificate, cert_path: str) -> None:
    now = datetime.datetime.now(datetime.UTC)
    if leaf.not_valid_after_utc <= now:
        log.warning(
            "TLS certificate %s expired on %s: clients will refuse it", cert_path, leaf.not_valid_after_utc
        )
    elif leaf.not_valid_after_utc - now < datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        log.warning("TLS certificate %s expires on %s", cert_path, leaf.not_valid_after_utc)
    if leaf.not_valid_before_utc > now:
        log.warning("TLS certificate %s is not valid before %s", cert_path, leaf.not_valid_before_utc)


def server_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """The context both listeners serve with: TLS 1.2 or later, HTTP/1.1 only (the same
    protocol under either engine: Hypercorn would otherwise offer HTTP/2, which no S3
    client uses)."""
    leaf = _check_files(cert_path, key_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:  # what the checks above did not foresee, still one line
        raise TlsError(
            f"[server] tls_cert {cert_path} / tls_key {key_path}: OpenSSL refuses them: {exc}"
        ) from exc
    _warn_about_validity(leaf, cert_path)
    return context


def with_flags(config: Config, cert: str | None, key: str | None) -> Config:
    """`folio serve --tls-cert/--tls-key` over the configuration's files (each flag on its
    own, so a renewed certificate can be named without repeating the key)."""
    server = config.server
    if cert:
        server = replace(server, tls_cert=cert)
    if key:
        server = replace(server, tls_key=key)
    if bool(server.tls_cert) != bool(server.tls_key):
        raise TlsError(
            "--tls-cert and --tls-key ([server] tls_cert and tls_key) go together: give both or neither"
        )
    return replace(config, server=server)


def tls_context(server: ServerConfig) -> ssl.SSLContext | None:
    """The listeners' context, or None when TLS is off (no certificate configured)."""
    if not server.tls_cert:
        return None
    return server_context(server.tls_cert, server.tls_key)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class StrictTransport:
    """Adds `Strict-Transport-Security` to every HTTPS response of the wrapped app (the
    web listener: browsers then never try the dashboard over plain HTTP)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), HSTS]}
            await send(message)

        await self.app(scope, receive, send_with_hsts)
