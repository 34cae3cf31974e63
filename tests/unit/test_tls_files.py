"""server/tls.py on real files from the test CA: every way a certificate or key cannot be
served is a TlsError naming the file (what `folio serve` prints as its one line: see
tests/test_tls.py for the process), a good pair gives a TLS 1.2+ HTTP/1.1 context, a
certificate near or past its end is warned about, and --tls-cert/--tls-key combine with
the configuration file's settings."""

from __future__ import annotations

import datetime
import logging
import ssl
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.config import Config
from server.tls import TlsError, server_context, tls_context, with_flags
from tests.tls_ca import TlsFiles, make_test_ca, other_key


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_test_ca(tmp_path_factory.mktemp("ca"))


def test_a_good_pair_gives_a_tls12_http11_server_context(files: TlsFiles) -> None:
    context = server_context(str(files.cert), str(files.key))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE  # no client certificates asked for
    assert tls_context(Config().server) is None  # TLS off by default


def _error(cert: Path | str, key: Path | str) -> str:
    with pytest.raises(TlsError) as exc:
        server_context(str(cert), str(key))
    return str(exc.value)


def test_missing_and_unreadable_files_are_named(files: TlsFiles, tmp_path: Path) -> None:
    assert _error(tmp_path / "none.pem", files.key) == (
        f"[server] tls_cert {tmp_path / 'none.pem'}: cannot read it: No such file or directory"
    )
    assert _error(files.cert, tmp_path / "none.pem") == (
        f"[server] tls_key {tmp_path / 'none.pem'}: cannot read it: No such file or directory"
    )
    assert _error(tmp_path, files.key) == f"[server] tls_cert {tmp_path}: cannot read it: Is a directory"


def test_files_that_are_not_pem_or_swapped_are_named(files: TlsFiles, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    assert "not a PEM certificate chain" in _error(empty, files.key)
    assert "not a PEM certificate chain" in _error(files.key, files.cert)  # swapped
    assert f"tls_key {files.cert}: not a PEM private key" in _error(files.cert, files.cert)


def test_a_key_of_another_certificate_is_refused(files: TlsFiles, tmp_path: Path) -> None:
    stranger = other_key(tmp_path)
    assert _error(files.cert, stranger) == (
        f"[server] tls_key {stranger} does not belong to the certificate in tls_cert {files.cert} "
        "(the first certificate of the chain must be the server's own)"
    )
    # The CA's certificate first: the key is the server's, the leaf is not.
    ca_first = tmp_path / "ca-first.pem"
    ca_first.write_bytes(files.ca.read_bytes() + files.cert.read_bytes())
    assert "does not belong" in _error(ca_first, files.key)


def test_an_encrypted_key_is_refused_with_what_to_do(files: TlsFiles, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    assert "the key is encrypted; give Folio an unencrypted key" in _error(files.cert, encrypted)


def _self_signed(tmp_path: Path, days_left: float) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now + datetime.timedelta(days=days_left))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"cert-{days_left}.pem", tmp_path / f"key-{days_left}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize(
    ("days_left", "warning"),
    [(-1, "expired on"), (3, "expires on"), (60, None)],
    ids=["expired", "soon", "fine"],
)
def test_a_certificate_near_or_past_its_end_is_served_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, days_left: float, warning: str | None
) -> None:
    cert, key = _self_signed(tmp_path, days_left)
    with caplog.at_level(logging.WARNING, logger="folio.server"):
        server_context(str(cert), str(key))
    messages = [record.getMessage() for record in caplog.records]
    if warning is None:
        assert messages == []
    else:
        assert len(messages) == 1 and warning in messages[0] and str(cert) in messages[0]


def test_flags_override_the_files_of_the_configuration_one_by_one() -> None:
    base = Config()
    configured = replace(base, server=replace(base.server, tls_cert="/etc/a.pem", tls_key="/etc/a.key"))
    renewed = with_flags(configured, "/etc/b.pem", None)
    assert (renewed.server.tls_cert, renewed.server.tls_key) == ("/etc/b.pem", "/etc/a.key")
    assert with_flags(base, None, None) == base
    with pytest.raises(TlsError, match="go together"):
        with_flags(base, None, "/etc/a.key")
