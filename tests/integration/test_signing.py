"""Signing policies against real registries: verify before copying, block or warn, prove after.

Every signature here is made by the test itself in the format the real tool writes
(tests/support/signing.py) and pushed with its image to a real Distribution registry, which
has no referrers API: cosign v3 bundles and notation signatures are found through the
fallback tag, as clients do against such registries.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from ruamel.yaml import YAML
from typer.testing import CliRunner

from regtopo.apply.executor import Executor, Outcome
from regtopo.cli.main import app
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.plan.actions import ActionKind, Plan
from regtopo.plan.planner import Planner
from regtopo.plan.session import Session
from regtopo.plan.signing.discovery import RegistrySignatureSource
from regtopo.plan.signing.policy import Policy
from regtopo.render.text import render_plan
from regtopo.topology.loader import TopologyError, load
from regtopo.topology.models import PolicySpec, Topology
from tests.support import signing as s
from tests.support.cli import run
from tests.support.kyverno_schema import validate_cluster_policy
from tests.support.proxy import Proxy, ProxyRequest, Reply, error_reply
from tests.support.registries import MakeRegistry, Registry, push_random_image

pytestmark = pytest.mark.registry

EMAIL = "release@example.test"
MARKS = ("  ok ", "  FAIL ")
ISSUER = "https://token.example.test"


def write_topology(
    tmp_path: Path,
    origin: Registry,
    mirror: Registry,
    policies: str,
    *,
    tags: list[str],
    verify: list[str],
    enforce: str = "block",
) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(
        f"""\
registries:
  origin: {{host: "http://{origin.host}"}}
  mirror: {{host: "http://{mirror.host}"}}
signing:
  policies:
{policies}
replications:
  - name: app
    source: origin/app
    targets: [mirror/app]
    tags: {json.dumps(tags)}
    verify: {json.dumps(verify)}
    enforce: {enforce}
"""
    )
    return path


def plan_for(path: Path) -> tuple[Plan, Session]:
    loaded = load(path)
    session = Session(loaded.topology, base_dir=path.parent)
    return Planner(loaded, session).plan(), session


def by_tag(plan: Plan) -> dict[str, Any]:
    return {a.target.tag: a for a in plan.actions}


def head(registry: Registry, repository: str, reference: str) -> str | None:
    response = httpx.head(
        f"{registry.url}/v2/{repository}/manifests/{reference}",
        headers={"Accept": f"{s.OCI_MANIFEST}, {s.OCI_INDEX}, {s.DOCKER_MANIFEST}"},
    )
    return response.headers.get("docker-content-digest") if response.status_code == 200 else None


def referrer_digests(registry: Registry, repository: str, tag: str) -> set[str]:
    response = httpx.get(
        f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": s.OCI_INDEX}
    )
    response.raise_for_status()
    return {entry["digest"] for entry in response.json()["manifests"]}


def sign_legacy(pusher: s.Pusher, digest: str, key: s.PrivateKey) -> None:
    payload = s.simple_signing_payload(digest)
    signature = s.b64(s.sign(key, payload))
    pusher.cosign_tag(
        digest,
        "sig",
        [(payload, s.SIMPLESIGNING, {"dev.cosignproject.cosign/signature": signature})],
    )


# --- cosign with a key ----------------------------------------------------------------------------


def test_the_real_cosign_signature_verifies_when_read_from_a_registry(
    registry: Registry, fixtures_dir: Path, tmp_path: Path
) -> None:
    folder = fixtures_dir / "cosign-keyed"
    subject = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
    with s.Pusher(registry, "sample") as pusher:
        annotations = {
            "dev.cosignproject.cosign/signature": (folder / "signature.b64").read_text().strip()
        }
        pusher.cosign_tag(
            subject, "sig", [((folder / "payload.json").read_bytes(), s.SIMPLESIGNING, annotations)]
        )
    spec = PolicySpec(name="fixture", kind="cosign-key", keys=[str(folder / "cosign.pub")])
    policy = Policy.load(spec, tmp_path)
    topology = Topology.model_validate({"registries": {"r": {"host": f"http://{registry.host}"}}})
    repository = Session(topology, tmp_path).repository("r", "sample")

    signed = Descriptor(
        s.DOCKER_MANIFEST,
        Digest.parse(subject),
        len((folder / "subject-manifest.json").read_bytes()),
    )

    result = policy.evaluate(repository, signed, RegistrySignatureSource())

    assert result.ok
    assert result.reason == (
        f"signed by key {folder / 'cosign.pub'} (ECDSA secp256r1) "
        f"(tag sha256-634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00.sig "
        f"({s.SIMPLESIGNING}))"
    )


def test_signed_tags_copy_and_unsigned_or_wrongly_signed_tags_are_blocked(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    origin, mirror = make_registry(), make_registry()
    release, rsa_signer, stranger = s.ec_key(), s.rsa_key(), s.ec_key()
    s.write_public_key(tmp_path / "release.pub", release)
    s.write_public_key(tmp_path / "rsa.pub", rsa_signer)
    digests = {
        tag: push_random_image(origin, "app", tag)
        for tag in ("signed", "rsa", "unsigned", "stranger")
    }
    with s.Pusher(origin, "app") as pusher:
        sign_legacy(pusher, digests["signed"], release)
        sign_legacy(pusher, digests["rsa"], rsa_signer)
        sign_legacy(pusher, digests["stranger"], stranger)
    path = write_topology(
        tmp_path,
        origin,
        mirror,
        "    - {name: release, kind: cosign-key, keys: [release.pub, rsa.pub]}",
        tags=["signed", "rsa", "unsigned", "stranger"],
        verify=["release"],
    )

    plan, session = plan_for(path)
    actions = by_tag(plan)

    assert actions["signed"].kind is ActionKind.COPY
    assert actions["signed"].verified == ["release"]
    assert actions["rsa"].kind is ActionKind.COPY
    assert actions["unsigned"].kind is ActionKind.BLOCKED
    assert actions["unsigned"].policy == "release"
    assert actions["unsigned"].reason == (
        f"policy 'release' not satisfied: unsigned: no cosign signature found for "
        f"{digests['unsigned']} (attachments: none)"
    )
    assert actions["stranger"].kind is ActionKind.BLOCKED
    sig_tag = digests["stranger"].replace(":", "-") + ".sig"
    assert actions["stranger"].reason == (
        f"policy 'release' not satisfied: no valid signature: tag {sig_tag} ({s.SIMPLESIGNING}): "
        "the signature does not verify with key release.pub, rsa.pub"
    )
    assert plan.summary()["blocked"] == 2

    report = Executor(session).apply(plan)
    session.close()

    assert [r.outcome for r in report.results] == [Outcome.DONE, Outcome.DONE]
    for result in report.results:
        assert result.verification[0].startswith(
            "at the target: policy 'release' satisfied: signed by key"
        )
    assert head(mirror, "app", "signed") == digests["signed"]
    signed_sig = digests["signed"].replace(":", "-") + ".sig"
    assert head(mirror, "app", signed_sig) == head(origin, "app", signed_sig)
    assert head(mirror, "app", "unsigned") is None
    assert head(mirror, "app", "stranger") is None

    # The audit at the targets: what was copied verifies; the blocked tags are absent.
    runner = CliRunner()
    audited = runner.invoke(app, ["verify", str(path)])
    assert audited.exit_code == 0, audited.output
    assert "Verified 4 tags: 2 satisfied, 0 failed, 2 absent." in audited.output

    # Someone pushes unsigned content straight to the mirror: the audit catches it.
    intruder = push_random_image(mirror, "app", "unsigned")
    audited = runner.invoke(app, ["verify", str(path), "--registry", "mirror"])
    assert audited.exit_code == 1
    assert f"FAIL mirror/app:unsigned {intruder[:19]}" in audited.output
    assert f"unsigned: no cosign signature found for {intruder}" in audited.output


def test_a_warn_policy_copies_the_unsigned_tag_with_a_warning(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    origin, mirror = make_registry(), make_registry()
    s.write_public_key(tmp_path / "release.pub", s.ec_key())
    digest = push_random_image(origin, "app", "unsigned")
    path = write_topology(
        tmp_path,
        origin,
        mirror,
        "    - {name: release, kind: cosign-key, keys: [release.pub]}",
        tags=["unsigned"],
        verify=["release"],
        enforce="warn",
    )

    plan, session = plan_for(path)
    action = by_tag(plan)["unsigned"]

    assert action.kind is ActionKind.COPY
    assert action.warnings == [
        f"policy 'release' not satisfied: unsigned: no cosign signature found for {digest} "
        "(attachments: none)"
    ]
    report = Executor(session).apply(plan)
    session.close()
    assert report.results[0].outcome is Outcome.DONE
    assert (
        report.results[0]
        .verification[0]
        .startswith("at the target: policy 'release' not satisfied")
    )
    assert head(mirror, "app", "unsigned") == digest


@pytest.mark.parametrize("bare", [False, True], ids=["full-entry", "bare-entry-C28"])
def test_a_cosign_v3_bundle_made_with_a_key_is_found_through_the_fallback_tag(
    make_registry: MakeRegistry, tmp_path: Path, bare: bool
) -> None:
    origin, mirror = make_registry(), make_registry()
    key = s.ec_key()
    s.write_public_key(tmp_path / "release.pub", key)
    digest = push_random_image(origin, "app", "v3")
    with s.Pusher(origin, "app") as pusher:
        subject = pusher.descriptor(digest)
        pusher.referrer(
            subject,
            s.BUNDLE_V03,
            [(s.key_bundle(key, digest), s.BUNDLE_V03)],
            {"dev.sigstore.bundle.content": "dsse-envelope"},
            bare_fallback_entry=bare,
        )
    path = write_topology(
        tmp_path,
        origin,
        mirror,
        "    - {name: release, kind: cosign-key, keys: [release.pub]}",
        tags=["v3"],
        verify=["release"],
    )

    plan, session = plan_for(path)
    assert by_tag(plan)["v3"].kind is ActionKind.COPY
    report = Executor(session).apply(plan)
    session.close()

    assert report.results[0].outcome is Outcome.DONE
    # The target's fallback index is written by merging entries, so compare what it lists.
    fallback = digest.replace(":", "-")
    assert referrer_digests(mirror, "app", fallback) == referrer_digests(origin, "app", fallback)
    assert len(referrer_digests(mirror, "app", fallback)) == 1
    assert "satisfied: signed by key release.pub" in report.results[0].verification[0]


def test_sbom_and_provenance_requirements_are_checked_on_signed_attestations(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    origin, mirror = make_registry(), make_registry()
    key = s.ec_key()
    s.write_public_key(tmp_path / "release.pub", key)
    builder = "https://ci.example.test/builder@v1"
    digests = {
        t: push_random_image(origin, "app", t)
        for t in ("complete", "no-sbom", "other-builder", "unsigned-sbom")
    }
    with s.Pusher(origin, "app") as pusher:
        for digest in digests.values():
            sign_legacy(pusher, digest, key)
        attest_key = {"unsigned-sbom": s.ec_key()}
        for tag in ("complete", "other-builder", "unsigned-sbom"):
            layers = []
            signer = attest_key.get(tag, key)
            sbom, _ = s.dsse_envelope(
                signer,
                s.statement(digests[tag], "https://cyclonedx.org/bom", {"bomFormat": "CycloneDX"}),
            )
            layers.append(
                (json.dumps(sbom).encode(), s.DSSE, {"predicateType": "https://cyclonedx.org/bom"})
            )
            used = builder if tag != "other-builder" else "https://rogue.example.test/builder"
            provenance, _ = s.dsse_envelope(
                key,
                s.statement(
                    digests[tag],
                    "https://slsa.dev/provenance/v1",
                    {"runDetails": {"builder": {"id": used}}},
                ),
            )
            layers.append(
                (
                    json.dumps(provenance).encode(),
                    s.DSSE,
                    {"predicateType": "https://slsa.dev/provenance/v1"},
                )
            )
            pusher.cosign_tag(digests[tag], "att", layers)
        provenance, _ = s.dsse_envelope(
            key,
            s.statement(
                digests["no-sbom"],
                "https://slsa.dev/provenance/v1",
                {"runDetails": {"builder": {"id": builder}}},
            ),
        )
        pusher.cosign_tag(
            digests["no-sbom"], "att", [(json.dumps(provenance).encode(), s.DSSE, {})]
        )
    policies = f"""\
    - name: release
      kind: cosign-key
      keys: [release.pub]
      requirements:
        sbom: {{format: cyclonedx}}
        provenance: {{builder: "{builder}"}}"""
    path = write_topology(
        tmp_path, origin, mirror, policies, tags=list(digests), verify=["release"]
    )

    plan, session = plan_for(path)
    session.close()
    actions = by_tag(plan)

    assert actions["complete"].kind is ActionKind.COPY
    assert actions["no-sbom"].kind is ActionKind.BLOCKED
    assert (
        actions["no-sbom"].reason
        == "policy 'release' not satisfied: no signed CycloneDX SBOM found"
    )
    assert actions["other-builder"].kind is ActionKind.BLOCKED
    assert actions["other-builder"].reason == (
        "policy 'release' not satisfied: no signed SLSA provenance with a matching builder found "
        f"(the provenance's builder is https://rogue.example.test/builder, expected {builder})"
    )
    assert actions["unsigned-sbom"].kind is ActionKind.BLOCKED
    assert actions["unsigned-sbom"].reason.startswith(
        "policy 'release' not satisfied: no signed CycloneDX SBOM found"
    )


SPDX_PREDICATE = "https://spdx.dev/Document"
SPDX_JSON = "application/spdx+json"
CYCLONEDX_JSON = "application/vnd.cyclonedx+json"


def audit_output(path: Path, registry: str) -> str:
    """`regtopo verify --registry`: each tag's verdict with the reason of each policy."""
    return CliRunner().invoke(app, ["verify", str(path), "--registry", registry]).output


def test_an_spdx_requirement_is_met_by_a_signed_spdx_attestation_and_by_nothing_else(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    origin, mirror = make_registry(), make_registry()
    key = s.ec_key()
    s.write_public_key(tmp_path / "release.pub", key)
    tags = ("spdx", "cyclonedx-only", "spdx-other-signer")
    digests = {t: push_random_image(origin, "app", t) for t in tags}
    with s.Pusher(origin, "app") as pusher:
        for tag, digest in digests.items():
            sign_legacy(pusher, digest, key)
            predicate_type = (
                "https://cyclonedx.org/bom" if tag == "cyclonedx-only" else SPDX_PREDICATE
            )
            signer = s.ec_key() if tag == "spdx-other-signer" else key
            envelope, _ = s.dsse_envelope(
                signer, s.statement(digest, predicate_type, {"spdxVersion": "SPDX-2.3"})
            )
            pusher.cosign_tag(
                digest,
                "att",
                [(json.dumps(envelope).encode(), s.DSSE, {"predicateType": predicate_type})],
            )
    policies = """\
    - name: release
      kind: cosign-key
      keys: [release.pub]
      requirements: {sbom: {format: spdx}}"""
    path = write_topology(tmp_path, origin, mirror, policies, tags=list(tags), verify=["release"])

    plan, session = plan_for(path)
    session.close()
    actions = by_tag(plan)

    assert actions["spdx"].kind is ActionKind.COPY
    assert actions["spdx"].verified == ["release"]
    for tag in ("cyclonedx-only", "spdx-other-signer"):
        assert actions[tag].kind is ActionKind.BLOCKED
        assert actions[tag].reason == "policy 'release' not satisfied: no signed SPDX SBOM found"
    assert (
        "policy 'release' satisfied: signed by key release.pub (ECDSA secp256r1) "
        f"(tag {digests['spdx'].replace(':', '-')}.sig ({s.SIMPLESIGNING})); "
        "SPDX SBOM attestation signed by key release.pub (ECDSA secp256r1)"
    ) in audit_output(path, "origin")


def test_an_spdx_requirement_is_met_by_a_signed_spdx_referrer_which_copies_with_its_signature(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    origin, mirror = make_registry(), make_registry()
    key = s.ec_key()
    s.write_public_key(tmp_path / "release.pub", key)
    kinds = {
        "signed-spdx": SPDX_JSON,
        "unsigned-spdx": SPDX_JSON,
        "signed-cyclonedx": CYCLONEDX_JSON,
    }
    digests = {t: push_random_image(origin, "app", t) for t in kinds}
    sboms: dict[str, str] = {}
    with s.Pusher(origin, "app") as pusher:
        for tag, artifact_type in kinds.items():
            sign_legacy(pusher, digests[tag], key)
            document = json.dumps({"spdxVersion": "SPDX-2.3", "name": tag}).encode()
            sbom = pusher.referrer(
                pusher.descriptor(digests[tag]), artifact_type, [(document, artifact_type)]
            )
            sboms[tag] = sbom["digest"]
            if tag.startswith("signed"):
                sign_legacy(pusher, sbom["digest"], key)
    policies = """\
    - name: release
      kind: cosign-key
      keys: [release.pub]
      requirements: {sbom: {format: spdx}}"""
    path = write_topology(tmp_path, origin, mirror, policies, tags=list(kinds), verify=["release"])

    plan, session = plan_for(path)
    actions = by_tag(plan)

    assert actions["signed-spdx"].kind is ActionKind.COPY
    assert actions["unsigned-spdx"].kind is ActionKind.BLOCKED
    assert actions["unsigned-spdx"].reason == (
        "policy 'release' not satisfied: no signed SPDX SBOM found (SPDX SBOM referrer "
        f"{Digest.parse(sboms['unsigned-spdx']).short}: it carries no cosign signature)"
    )
    assert actions["signed-cyclonedx"].kind is ActionKind.BLOCKED
    assert actions["signed-cyclonedx"].reason == (
        "policy 'release' not satisfied: no signed SPDX SBOM found"
    )
    report = Executor(session).apply(plan)
    session.close()

    assert [r.outcome for r in report.results] == [Outcome.DONE]
    assert (
        report.results[0]
        .verification[0]
        .endswith(
            f"; SPDX SBOM referrer {Digest.parse(sboms['signed-spdx']).short} signed by key "
            "release.pub (ECDSA secp256r1)"
        )
    )
    sbom_signature = sboms["signed-spdx"].replace(":", "-") + ".sig"
    assert head(mirror, "app", sbom_signature) == head(origin, "app", sbom_signature)


def test_a_slsa_v02_provenance_builder_id_must_match_the_policy(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    origin, mirror = make_registry(), make_registry()
    key = s.ec_key()
    s.write_public_key(tmp_path / "release.pub", key)
    builder = "https://ci.example.test/builder@v1"
    builders = {
        "matching": {"builder": {"id": builder}},
        "other-builder": {"builder": {"id": "https://rogue.example.test/builder"}},
        "no-builder": {"buildType": "https://ci.example.test/build@v1"},
    }
    digests = {t: push_random_image(origin, "app", t) for t in builders}
    v02 = "https://slsa.dev/provenance/v0.2"
    with s.Pusher(origin, "app") as pusher:
        for tag, predicate in builders.items():
            sign_legacy(pusher, digests[tag], key)
            envelope, _ = s.dsse_envelope(key, s.statement(digests[tag], v02, predicate))
            pusher.cosign_tag(
                digests[tag],
                "att",
                [(json.dumps(envelope).encode(), s.DSSE, {"predicateType": v02})],
            )
    policies = f"""\
    - name: release
      kind: cosign-key
      keys: [release.pub]
      requirements: {{provenance: {{builder: "{builder}"}}}}"""
    path = write_topology(
        tmp_path, origin, mirror, policies, tags=list(builders), verify=["release"]
    )

    plan, session = plan_for(path)
    session.close()
    actions = by_tag(plan)

    assert actions["matching"].kind is ActionKind.COPY
    assert actions["other-builder"].kind is ActionKind.BLOCKED
    assert actions["other-builder"].reason == (
        "policy 'release' not satisfied: no signed SLSA provenance with a matching builder found "
        f"(the provenance's builder is https://rogue.example.test/builder, expected {builder})"
    )
    assert actions["no-builder"].kind is ActionKind.BLOCKED
    assert actions["no-builder"].reason == (
        "policy 'release' not satisfied: no signed SLSA provenance with a matching builder found "
        f"(the provenance's builder is absent, expected {builder})"
    )
    assert (
        f"SLSA provenance from builder {builder} signed by key release.pub (ECDSA secp256r1)"
    ) in audit_output(path, "origin")


# --- keyless --------------------------------------------------------------------------------------


def test_keyless_signatures_in_both_layouts_copy_and_another_identity_is_blocked(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    origin, mirror = make_registry(), make_registry()
    fulcio, rekor = s.TestCA("test fulcio"), s.TestRekor()
    (tmp_path / "fulcio.pem").write_bytes(fulcio.pem)
    (tmp_path / "rekor.pub").write_bytes(rekor.pem)
    digests = {t: push_random_image(origin, "app", t) for t in ("legacy", "bundle", "intruder")}
    with s.Pusher(origin, "app") as pusher:
        payload, notes = s.keyless_signature_layer(
            fulcio, rekor, digests["legacy"], email=EMAIL, issuer=ISSUER
        )
        pusher.cosign_tag(digests["legacy"], "sig", [(payload, s.SIMPLESIGNING, notes)])
        bundle = s.keyless_bundle(fulcio, rekor, digests["bundle"], email=EMAIL, issuer=ISSUER)
        pusher.referrer(
            pusher.descriptor(digests["bundle"]), s.BUNDLE_V03, [(bundle, s.BUNDLE_V03)]
        )
        payload, notes = s.keyless_signature_layer(
            fulcio, rekor, digests["intruder"], email="intruder@example.test", issuer=ISSUER
        )
        pusher.cosign_tag(digests["intruder"], "sig", [(payload, s.SIMPLESIGNING, notes)])
    policies = f"""\
    - name: ci
      kind: cosign-keyless
      roots: [fulcio.pem]
      rekor_keys: [rekor.pub]
      identities: [{{subject_regex: 'release@example\\.test'}}]
      issuer: {ISSUER}"""
    path = write_topology(tmp_path, origin, mirror, policies, tags=list(digests), verify=["ci"])

    plan, session = plan_for(path)
    actions = by_tag(plan)

    assert actions["legacy"].kind is ActionKind.COPY
    assert actions["bundle"].kind is ActionKind.COPY
    assert actions["intruder"].kind is ActionKind.BLOCKED
    assert actions["intruder"].reason.endswith(
        "the certificate's identity intruder@example.test does not match /release@example\\.test/"
    )
    report = Executor(session).apply(plan)
    session.close()
    assert [r.outcome for r in report.results] == [Outcome.DONE, Outcome.DONE]
    for result in report.results:
        assert f"satisfied: signed by identity {EMAIL} (issuer {ISSUER})" in result.verification[0]


# --- notation -------------------------------------------------------------------------------------


def test_notation_signatures_verify_against_the_trust_store(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    origin, mirror = make_registry(), make_registry()
    root, other = s.TestCA("notation root"), s.TestCA("other root")
    (tmp_path / "root.pem").write_bytes(root.pem)
    tags = ("signed", "other-root", "other-size", "expired")
    digests = {t: push_random_image(origin, "app", t) for t in tags}
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "release signer")])
    expired = {
        "io.cncf.notary.expiry": "2020-01-01T00:00:00Z",
        "crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"],
    }
    subjects: dict[str, dict[str, Any]] = {}
    with s.Pusher(origin, "app") as pusher:
        for tag in tags:
            subject = subjects[tag] = pusher.descriptor(digests[tag])
            ca = other if tag == "other-root" else root
            key = s.ec_key()
            leaf = ca.issue(key, subject=name)
            # The signed descriptor names the right digest with a wrong size for "other-size".
            signed = {**subject, "size": subject["size"] + 1} if tag == "other-size" else subject
            envelope = s.notation_jws(
                key,
                [leaf, ca.certificate],
                signed,
                headers=expired if tag == "expired" else None,
            )
            pusher.referrer(subject, s.NOTATION_SIGNATURE, [(envelope, s.JWS)])
    policies = """\
    - name: notary
      kind: notation
      roots: [root.pem]
      identities: [{subject: "CN=release signer"}]"""
    path = write_topology(tmp_path, origin, mirror, policies, tags=list(tags), verify=["notary"])

    plan, session = plan_for(path)
    actions = by_tag(plan)

    assert actions["signed"].kind is ActionKind.COPY
    assert actions["other-root"].kind is ActionKind.BLOCKED
    assert "does not lead to a trusted root" in actions["other-root"].reason
    assert actions["other-size"].kind is ActionKind.BLOCKED
    size = subjects["other-size"]["size"]
    assert actions["other-size"].reason.endswith(
        f"the signed targetArtifact does not match the subject {digests['other-size']}: "
        f"size {size + 1}, not {size}"
    )
    assert actions["expired"].kind is ActionKind.BLOCKED
    assert actions["expired"].reason.endswith(
        "the signature expired at 2020-01-01T00:00:00+00:00 (io.cncf.notary.expiry)"
    )
    report = Executor(session).apply(plan)
    session.close()
    assert report.results[0].outcome is Outcome.DONE
    assert "satisfied: signed by certificate CN=release signer" in report.results[0].verification[0]

    # The audit reads each tag's descriptor at the target and at the source alike.
    audited = CliRunner().invoke(app, ["verify", str(path), "--registry", "origin"])
    assert audited.exit_code == 1
    assert f"ok   origin/app:signed {digests['signed'][:19]}" in audited.output
    assert f"FAIL origin/app:other-size {digests['other-size'][:19]}" in audited.output
    assert "Verified 4 tags: 1 satisfied, 3 failed, 0 absent." in audited.output


# --- topology and export --------------------------------------------------------------------------


def test_policy_mistakes_are_reported_with_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(
        """\
registries:
  origin: {host: "example.test"}
  mirror: {host: "mirror.example.test"}
signing:
  policies:
    - name: release
      kind: cosign-key
      keys: [missing.pub]
    - name: ci
      kind: cosign-keyless
      roots: [missing.pem]
replications:
  - source: origin/app
    targets: [mirror/app]
    tags: [v1]
    verify: [release, nobody]
"""
    )

    with pytest.raises(TopologyError) as error:
        load(path)

    assert [str(p) for p in error.value.problems] == [
        f"{path}:9:7: a cosign-keyless policy needs 'rekor_keys', 'identities', 'issuer'",
    ]

    path.write_text(
        path.read_text().replace(
            "      kind: cosign-keyless\n      roots: [missing.pem]\n",
            "      kind: cosign-key\n      keys: [missing.pub]\n",
        )
    )
    with pytest.raises(TopologyError) as error:
        load(path)

    assert [str(p) for p in error.value.problems] == [
        f"{path}:8:14: key file missing.pub does not exist",
        f"{path}:11:14: key file missing.pub does not exist",
        f"{path}:16:23: unknown policy 'nobody'; expected one of: ci, release",
    ]


def test_the_kyverno_export_requires_the_same_signers_at_the_target_registries(
    tmp_path: Path,
) -> None:
    key = s.ec_key()
    s.write_public_key(tmp_path / "release.pub", key)
    fulcio, rekor = s.TestCA(), s.TestRekor()
    (tmp_path / "fulcio.pem").write_bytes(fulcio.pem)
    (tmp_path / "rekor.pub").write_bytes(rekor.pem)
    path = tmp_path / "topology.yaml"
    path.write_text(
        f"""\
registries:
  hub: {{host: docker.io}}
  ghcr: {{host: ghcr.io}}
  local: {{path: ./layout}}
signing:
  policies:
    - name: release
      kind: cosign-key
      keys: [release.pub]
      requirements: {{provenance: {{builder: "https://ci.example.test/b"}}}}
    - name: ci
      kind: cosign-keyless
      roots: [fulcio.pem]
      rekor_keys: [rekor.pub]
      identities: [{{subject: {EMAIL}}}]
      issuer: {ISSUER}
replications:
  - name: app
    source: hub/library/app
    targets: [ghcr/acme/app, local/app]
    tags: [v1]
    verify: [release, ci]
    enforce: block
  - name: tools
    source: hub/library/tools
    targets: [ghcr/acme/tools]
    tags: [v1]
    verify: [ci]
    enforce: warn
"""
    )

    result = CliRunner().invoke(app, ["export", "kyverno", str(path)])

    assert result.exit_code == 0, result.output
    policy = YAML(typ="safe").load(result.output)
    assert policy["kind"] == "ClusterPolicy"
    rules = {r["name"]: r["verifyImages"][0] for r in policy["spec"]["rules"]}
    assert sorted(rules) == ["app-ci", "app-release", "tools-ci"]
    assert rules["app-release"]["imageReferences"] == ["ghcr.io/acme/app:*", "ghcr.io/acme/app@*"]
    assert rules["app-release"]["failureAction"] == "Enforce"
    key_entry = rules["app-release"]["attestors"][0]["entries"][0]["keys"]
    assert key_entry["publicKeys"] == s.public_pem(key).decode()
    assert rules["app-release"]["attestations"][0]["conditions"][0]["all"][0]["value"] == (
        "https://ci.example.test/b"
    )
    keyless = rules["tools-ci"]["attestors"][0]["entries"][0]["keyless"]
    assert (keyless["subject"], keyless["issuer"]) == (EMAIL, ISSUER)
    assert keyless["roots"] == fulcio.pem.decode()
    assert keyless["rekor"]["pubkey"] == rekor.pem.decode()
    assert rules["tools-ci"]["failureAction"] == "Audit"


def test_a_blocked_tag_is_not_read_downstream_as_if_it_had_been_copied(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    origin, mirror, edge = make_registry(), make_registry(), make_registry()
    s.write_public_key(tmp_path / "release.pub", s.ec_key())
    push_random_image(origin, "app", "unsigned")
    path = tmp_path / "topology.yaml"
    path.write_text(
        f"""\
registries:
  origin: {{host: "http://{origin.host}"}}
  mirror: {{host: "http://{mirror.host}"}}
  edge: {{host: "http://{edge.host}"}}
signing:
  policies:
    - {{name: release, kind: cosign-key, keys: [release.pub]}}
replications:
  - {{name: first, source: origin/app, targets: [mirror/app], tags: [unsigned], verify: [release]}}
  - {{name: second, source: mirror/app, targets: [edge/app], tags: [unsigned]}}
"""
    )

    plan, session = plan_for(path)
    session.close()
    actions = {a.replication: a for a in plan.actions}

    assert actions["first"].kind is ActionKind.BLOCKED
    assert actions["second"].kind is ActionKind.SKIPPED
    assert actions["second"].reason == "the source repository does not exist"
    text = render_plan(plan)
    assert "  x blocked  mirror/app:unsigned  <- origin/app:unsigned" in text
    assert "policy 'release' not satisfied: unsigned: no cosign signature found" in text
    assert text.endswith("No changes. 0 in sync, 1 skipped, 1 blocked.")


def test_a_cosign_signature_with_docker_media_types_verifies_and_copies_byte_for_byte_C30(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    origin, mirror = make_registry(), make_registry()
    key = s.ec_key()
    s.write_public_key(tmp_path / "release.pub", key)
    digest = push_random_image(origin, "app", "v1")
    payload = s.simple_signing_payload(digest)
    annotations = {"dev.cosignproject.cosign/signature": s.b64(s.sign(key, payload))}
    with s.Pusher(origin, "app") as pusher:
        signature = pusher.cosign_tag(
            digest, "sig", [(payload, s.SIMPLESIGNING, annotations)], docker_media_types=True
        )
    assert signature["mediaType"] == s.DOCKER_MANIFEST
    path = write_topology(
        tmp_path,
        origin,
        mirror,
        "    - {name: release, kind: cosign-key, keys: [release.pub]}",
        tags=["v1"],
        verify=["release"],
    )

    plan, session = plan_for(path)
    assert by_tag(plan)["v1"].verified == ["release"]
    report = Executor(session).apply(plan)
    session.close()

    assert report.results[0].outcome is Outcome.DONE
    assert head(mirror, "app", digest.replace(":", "-") + ".sig") == signature["digest"]
    assert "satisfied: signed by key release.pub" in report.results[0].verification[0]


def test_a_trusted_root_alone_verifies_legacy_signatures_and_sigstore_bundles(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    pytest.importorskip("sigstore")
    origin, mirror = make_registry(), make_registry()
    fulcio, rekor, ct = s.TestCA("test fulcio"), s.TestRekor(), s.TestCTLog()
    (tmp_path / "trusted_root.json").write_bytes(s.trusted_root(fulcio, rekor, ct))
    digests = {t: push_random_image(origin, "app", t) for t in ("legacy", "bundle", "unlogged")}
    with s.Pusher(origin, "app") as pusher:
        payload, notes = s.keyless_signature_layer(
            fulcio, rekor, digests["legacy"], email=EMAIL, issuer=ISSUER
        )
        pusher.cosign_tag(digests["legacy"], "sig", [(payload, s.SIMPLESIGNING, notes)])
        bundle = s.sigstore_bundle(fulcio, rekor, ct, digests["bundle"], email=EMAIL, issuer=ISSUER)
        pusher.referrer(
            pusher.descriptor(digests["bundle"]), s.BUNDLE_V03, [(bundle, s.BUNDLE_V03)]
        )
        # The bundle without an inclusion proof: the manual path would take its promise alone,
        # sigstore does not.
        thin = json.loads(
            s.sigstore_bundle(fulcio, rekor, ct, digests["unlogged"], email=EMAIL, issuer=ISSUER)
        )
        del thin["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
        pusher.referrer(
            pusher.descriptor(digests["unlogged"]),
            s.BUNDLE_V03,
            [(json.dumps(thin).encode(), s.BUNDLE_V03)],
        )
    policies = f"""\
    - name: ci
      kind: cosign-keyless
      trusted_root: trusted_root.json
      identities: [{{subject: {EMAIL}}}]
      issuer: {ISSUER}"""
    path = write_topology(tmp_path, origin, mirror, policies, tags=list(digests), verify=["ci"])

    plan, session = plan_for(path)
    session.close()
    actions = by_tag(plan)

    assert actions["legacy"].kind is ActionKind.COPY
    assert actions["bundle"].kind is ActionKind.COPY
    assert actions["unlogged"].kind is ActionKind.BLOCKED
    assert actions["unlogged"].reason.endswith(
        "sigstore refused the bundle: failed to load bundle: 1 validation error for Bundle"
    )


def test_a_notation_sbom_requirement_needs_the_sbom_itself_signed_and_copies_its_signature(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    origin, mirror = make_registry(), make_registry()
    root = s.TestCA("notation root")
    (tmp_path / "root.pem").write_bytes(root.pem)
    digests = {t: push_random_image(origin, "app", t) for t in ("signed-sbom", "unsigned-sbom")}
    cyclonedx = "application/vnd.cyclonedx+json"

    def notation_sign(pusher: s.Pusher, subject: dict[str, Any]) -> None:
        key = s.ec_key()
        leaf = root.issue(key, subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ci")]))
        envelope = s.notation_jws(key, [leaf, root.certificate], subject)
        pusher.referrer(subject, s.NOTATION_SIGNATURE, [(envelope, s.JWS)])

    sboms: dict[str, dict[str, Any]] = {}
    with s.Pusher(origin, "app") as pusher:
        for tag, digest in digests.items():
            subject = pusher.descriptor(digest)
            notation_sign(pusher, subject)
            sboms[tag] = pusher.referrer(
                subject, cyclonedx, [(json.dumps({"bomFormat": "CycloneDX"}).encode(), cyclonedx)]
            )
        notation_sign(pusher, {k: sboms["signed-sbom"][k] for k in ("mediaType", "digest", "size")})
    policies = """\
    - name: notary
      kind: notation
      roots: [root.pem]
      requirements: {sbom: {format: cyclonedx}}"""
    path = write_topology(tmp_path, origin, mirror, policies, tags=list(digests), verify=["notary"])

    plan, session = plan_for(path)
    actions = by_tag(plan)

    assert actions["signed-sbom"].kind is ActionKind.COPY
    assert actions["unsigned-sbom"].kind is ActionKind.BLOCKED
    unsigned = Digest.parse(sboms["unsigned-sbom"]["digest"])
    assert actions["unsigned-sbom"].reason == (
        "policy 'notary' not satisfied: no signed CycloneDX SBOM found (CycloneDX SBOM referrer "
        f"{unsigned.short}: it carries no notation signature)"
    )
    report = Executor(session).apply(plan)
    session.close()

    assert report.results[0].outcome is Outcome.DONE
    assert report.results[0].verification[0] == (
        "at the target: policy 'notary' satisfied: signed by certificate CN=ci (referrer "
        f"{report.results[0].verification[0].split('(referrer ')[1].split(' ')[0]} "
        f"({s.JWS})); CycloneDX SBOM referrer {Digest.parse(sboms['signed-sbom']['digest']).short} "
        "signed by certificate CN=ci"
    )
    # The SBOM's own signature came along: the target's fallback index lists the same referrer.
    sbom_fallback = sboms["signed-sbom"]["digest"].replace(":", "-")
    signatures = referrer_digests(origin, "app", sbom_fallback)
    assert len(signatures) == 1
    assert referrer_digests(mirror, "app", sbom_fallback) == signatures


def _export_topology(tmp_path: Path, policies: str, verify: list[str], enforce: str) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(
        f"""\
registries:
  hub: {{host: docker.io}}
  ghcr: {{host: ghcr.io}}
signing:
  policies:
{policies}
replications:
  - name: app
    source: hub/library/app
    targets: [ghcr/acme/app]
    tags: [v1]
    verify: {json.dumps(verify)}
    enforce: {enforce}
"""
    )
    return path


def test_every_exported_kyverno_policy_fits_the_verify_images_subset_schema(
    tmp_path: Path,
) -> None:
    s.write_public_key(tmp_path / "release.pub", s.ec_key())
    s.write_public_key(tmp_path / "second.pub", s.rsa_key())
    fulcio, rekor, ct = s.TestCA("test fulcio"), s.TestRekor(), s.TestCTLog()
    (tmp_path / "fulcio.pem").write_bytes(fulcio.pem)
    (tmp_path / "rekor.pub").write_bytes(rekor.pem)
    (tmp_path / "trusted_root.json").write_bytes(s.trusted_root(fulcio, rekor, ct))
    (tmp_path / "notation.pem").write_bytes(s.TestCA("notation root").pem)
    policies = f"""\
    - name: release
      kind: cosign-key
      keys: [release.pub, second.pub]
      requirements:
        sbom: {{format: spdx}}
        provenance: {{builder: "https://ci.example.test/b"}}
    - name: ci
      kind: cosign-keyless
      roots: [fulcio.pem]
      rekor_keys: [rekor.pub]
      identities: [{{subject: {EMAIL}}}, {{subject_regex: 'ci@example\\.test'}}]
      issuer: {ISSUER}
    - name: sigstore
      kind: cosign-keyless
      trusted_root: trusted_root.json
      identities: [{{subject: {EMAIL}}}]
      issuer: {ISSUER}
    - name: notary
      kind: notation
      roots: [notation.pem]
      requirements: {{sbom: {{format: cyclonedx}}}}"""
    names = ["release", "ci", "sigstore", "notary"]

    for enforce in ("block", "warn"):
        path = _export_topology(tmp_path, policies, names, enforce)
        result = run("export", "kyverno", str(path))
        assert result.exit_code == 0, result.stderr
        document = YAML(typ="safe").load(result.stdout)
        validate_cluster_policy(document)
        assert len(document["spec"]["rules"]) == len(names)


def test_the_kyverno_export_keeps_keyless_identities_as_strict_as_the_topology(
    tmp_path: Path,
) -> None:
    fulcio, rekor, ct = s.TestCA("test fulcio"), s.TestRekor(), s.TestCTLog()
    (tmp_path / "fulcio.pem").write_bytes(fulcio.pem)
    (tmp_path / "rekor.pub").write_bytes(rekor.pem)
    (tmp_path / "trusted_root.json").write_bytes(s.trusted_root(fulcio, rekor, ct))
    policies = f"""\
    - name: ci
      kind: cosign-keyless
      roots: [fulcio.pem]
      rekor_keys: [rekor.pub]
      identities: [{{subject: {EMAIL}}}, {{subject_regex: 'https://ci\\.example\\.test/.*'}}]
      issuer: {ISSUER}
    - name: sigstore
      kind: cosign-keyless
      trusted_root: trusted_root.json
      identities: [{{subject: {EMAIL}}}]
      issuer: {ISSUER}"""
    path = _export_topology(tmp_path, policies, ["ci", "sigstore"], "block")

    result = run("export", "kyverno", str(path))

    assert result.exit_code == 0, result.stderr
    rules = {
        r["name"]: r["verifyImages"][0]
        for r in YAML(typ="safe").load(result.stdout)["spec"]["rules"]
    }
    ci = rules["app-ci"]["attestors"][0]
    assert ci["count"] == 1
    exact, pattern = (entry["keyless"] for entry in ci["entries"])
    assert (exact["subject"], exact["issuer"]) == (EMAIL, ISSUER)
    # regtopo matches the whole identity; Kyverno's subjectRegExp is a search, so it is anchored.
    assert pattern["subjectRegExp"] == "^(?:https://ci\\.example\\.test/.*)$"
    assert pattern["issuer"] == ISSUER
    assert (
        re.search(pattern["subjectRegExp"], "https://evil.test/?https://ci.example.test/x") is None
    )
    # A trusted_root.json policy carries the root's Fulcio CA and Rekor key, not empty blocks.
    keyless = rules["app-sigstore"]["attestors"][0]["entries"][0]["keyless"]
    assert keyless["roots"] == fulcio.pem.decode()
    assert keyless["rekor"]["pubkey"] == rekor.pem.decode()


def test_notation_identities_kyverno_cannot_express_are_warned_about_naming_the_policy(
    tmp_path: Path,
) -> None:
    root = s.TestCA("notation root")
    (tmp_path / "root.pem").write_bytes(root.pem)
    policies = """\
    - name: notary
      kind: notation
      roots: [root.pem]
      identities: [{subject: "CN=release signer"}]
      requirements:
        sbom: {format: cyclonedx}
        provenance: {builder: "https://ci.example.test/b"}
    - name: anyone-under-root
      kind: notation
      roots: [root.pem]"""
    path = _export_topology(tmp_path, policies, ["notary", "anyone-under-root"], "block")

    result = run("export", "kyverno", str(path))

    assert result.exit_code == 0, result.stderr
    rules = {
        r["name"]: r["verifyImages"][0]
        for r in YAML(typ="safe").load(result.stdout)["spec"]["rules"]
    }
    notary = rules["app-notary"]
    assert notary["type"] == "Notary"
    assert notary["attestors"][0]["entries"] == [{"certificates": {"cert": root.pem.decode()}}]
    # Kyverno's Notary mode matches an attestation by the referrer's artifact type.
    assert [a["type"] for a in notary["attestations"]] == ["application/vnd.cyclonedx+json"]
    assert (
        "policy notary: Kyverno's Notary verification has no signer identity constraint; "
        "admission accepts any signature chaining to the trust store, not only "
        "subject CN=release signer" in result.stderr
    )
    assert (
        "policy notary: Kyverno's Notary mode finds attestations by the referrer's artifact "
        "type; regtopo's notation provenance is a signed in-toto statement, so the provenance "
        "requirement is not exported" in result.stderr
    )
    assert "anyone-under-root" not in result.stderr


def test_verify_all_tags_audits_a_tag_pushed_outside_the_selector(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    origin, mirror = make_registry(), make_registry()
    key = s.ec_key()
    s.write_public_key(tmp_path / "release.pub", key)
    digest = push_random_image(origin, "app", "v1")
    with s.Pusher(origin, "app") as pusher:
        sign_legacy(pusher, digest, key)
    path = write_topology(
        tmp_path,
        origin,
        mirror,
        "    - {name: release, kind: cosign-key, keys: [release.pub]}",
        tags=["v1"],
        verify=["release"],
    )
    plan, session = plan_for(path)
    report = Executor(session).apply(plan)
    session.close()
    assert [r.outcome for r in report.results] == [Outcome.DONE]
    # Pushed straight to the mirror, under a tag no replication selects.
    intruder = push_random_image(mirror, "app", "hotfix")

    default = run("verify", str(path))
    everything = run("verify", str(path), "--all-tags")

    assert default.exit_code == 0, default.stdout
    assert "hotfix" not in default.stdout
    assert "Verified 1 tag: 1 satisfied, 0 failed, 0 absent." in default.stdout
    assert everything.exit_code == 1, everything.stdout
    assert f"FAIL mirror/app:hotfix {intruder[:19]}" in everything.stdout
    assert f"ok   mirror/app:v1 {digest[:19]}" in everything.stdout
    # The signature tag the executor copied is an attachment, not a tag to audit.
    audited = [line.split()[1] for line in everything.stdout.splitlines() if line.startswith(MARKS)]
    assert audited == ["mirror/app:v1", "mirror/app:hotfix"]
    assert "Verified 2 tags: 1 satisfied, 1 failed, 0 absent." in everything.stdout


def test_a_target_whose_signature_does_not_verify_fails_the_action_under_block(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    origin, backend = make_registry(), make_registry()
    key = s.ec_key()
    s.write_public_key(tmp_path / "release.pub", key)
    digest = push_random_image(origin, "app", "v1")
    with s.Pusher(origin, "app") as pusher:
        sign_legacy(pusher, digest, key)
    sig_tag = digest.replace(":", "-") + ".sig"
    # The target accepts the signature but never shows it again, as a registry that drops
    # or garbles attachment tags would: regtopo must not take the copy as proven.
    hidden = rf"/v2/app/manifests/{re.escape(sig_tag)}"

    def hide_signature(request: ProxyRequest) -> Reply | None:
        if request.method in ("GET", "HEAD") and re.fullmatch(hidden, request.path):
            return error_reply(404, "MANIFEST_UNKNOWN")
        return None

    with Proxy(backend.url, name="mirror") as mirror:
        mirror.add(hide_signature)
        path = write_topology(
            tmp_path,
            origin,
            mirror,  # type: ignore[arg-type]
            "    - {name: release, kind: cosign-key, keys: [release.pub]}",
            tags=["v1"],
            verify=["release"],
        )
        applied = run("apply", str(path), "--auto-approve")

        assert applied.exit_code == 1, applied.stdout + applied.stderr
        reason = (
            "verifying at the target: policy 'release' not satisfied: unsigned: no cosign "
            f"signature found for {digest} (attachments: none)"
        )
        assert "Apply complete: 0 done, 1 failed, 0 stale, 0 not attempted" in applied.stdout
        assert f"Failed:\n  mirror/app:v1: {reason}\n" in applied.stdout
        # The signature went in but reads back as absent. The tag had been written before the
        # target check: it stays, and the failure is what says so (docs/signing.md).
        assert head(backend, "app", sig_tag) == head(origin, "app", sig_tag)
        assert head(backend, "app", "v1") == digest

        # Once the target serves its signatures, `verify` is what confirms it: apply sees the
        # tag in sync and does not check it again.
        mirror.rules.clear()
        audited = run("verify", str(path), "--registry", "mirror")
        assert audited.exit_code == 0, audited.stdout
        assert f"ok   mirror/app:v1 {digest[:19]}" in audited.stdout
        assert run("apply", str(path), "--auto-approve").stdout.endswith("No changes. 1 in sync.\n")
