"""Which roots regtopo trusts when a registry names no CA bundle."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from regtopo.registry.client import TLSSettings, ssl_context
from tests.support.tls import make_tls_files


def test_ssl_cert_file_is_honoured_as_openssl_and_httpx_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corporate TLS proxy's root comes through SSL_CERT_FILE when the topology names none."""
    files = make_tls_files(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(files.ca))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    roots = ssl_context(TLSSettings()).get_ca_certs()

    assert [dict(x[0] for x in r["subject"])["commonName"] for r in roots] == ["regtopo test CA"]


def test_a_ca_bundle_in_the_topology_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs = make_tls_files(tmp_path / "ours"), make_tls_files(tmp_path / "theirs")
    monkeypatch.setenv("SSL_CERT_FILE", str(theirs.ca))

    roots = ssl_context(TLSSettings(ca_bundle=str(ours.ca))).get_ca_certs()

    serial = x509.load_pem_x509_certificate(ours.ca.read_bytes()).serial_number
    assert [int(str(r["serialNumber"]), 16) for r in roots] == [serial]
