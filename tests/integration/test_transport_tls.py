"""TLS settings against a real registry that serves HTTPS with a test CA and requires a client
certificate: `ca_bundle` and `client_cert` apply together."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.cli import registry_entry, run, write_topology
from tests.support.registries import MakeRegistry, Registry, push_random_image
from tests.support.tls import TLSFiles, make_tls_files

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]


@pytest.fixture
def tls_files(tmp_path: Path) -> TLSFiles:
    return make_tls_files(tmp_path / "tls")


def mutual_tls_topology(
    path: Path, source: Registry, target: Registry, tls: dict[str, str]
) -> Path:
    return write_topology(
        path,
        {"src": registry_entry(source), "dst": {"host": target.host, "tls": tls}},
        [{"source": "src/app", "targets": ["dst/app"], "tags": ["v1"]}],
    )


def test_a_ca_bundle_and_a_client_certificate_apply_together(
    registry: Registry, make_registry: MakeRegistry, tls_files: TLSFiles, tmp_path: Path
) -> None:
    target = make_registry(tls=tls_files)
    digest = push_random_image(registry, "app", "v1", layers=[1000])
    topology = mutual_tls_topology(
        tmp_path / "topology.yaml",
        registry,
        target,
        {
            "ca_bundle": str(tls_files.ca),
            "client_cert": str(tls_files.client_cert),
            "client_key": str(tls_files.client_key),
        },
    )

    result = run("apply", "--auto-approve", str(topology))

    assert result.exit_code == 0, result.output
    with httpx.Client(verify=tls_files.client_context()) as client:
        head = client.head(
            f"{target.url}/v2/app/manifests/v1",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
    assert head.headers["docker-content-digest"] == digest


def test_a_registry_that_wants_a_client_certificate_and_gets_none_is_one_clear_error(
    make_registry: MakeRegistry, registry: Registry, tls_files: TLSFiles, tmp_path: Path
) -> None:
    target = make_registry(tls=tls_files)
    push_random_image(registry, "app", "v1", layers=[100])
    topology = mutual_tls_topology(
        tmp_path / "topology.yaml", registry, target, {"ca_bundle": str(tls_files.ca)}
    )

    result = run("plan", str(topology))

    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert f"registry 'dst' ({target.host}) unreachable" in result.stderr


def test_unreadable_tls_files_are_named(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path, tls_files: TLSFiles
) -> None:
    topology = mutual_tls_topology(
        tmp_path / "topology.yaml",
        registry,
        make_registry(tls=tls_files),
        {"client_cert": str(tmp_path / "missing.pem"), "client_key": str(tls_files.client_key)},
    )

    result = run("plan", str(topology))

    assert result.exit_code == 1
    assert "registry 'dst': reading its TLS settings" in result.stderr
    assert "hint: check the files named by ca_bundle, client_cert and client_key" in result.stderr
