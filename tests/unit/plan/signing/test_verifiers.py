"""Verification primitives against signatures made here and by the real cosign tool."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.plan.signing.crypto import (
    VerificationFailure,
    b64decode,
    load_public_key,
    verify_signature,
)
from regtopo.plan.signing.discovery import Attachment, Carrier
from regtopo.plan.signing.verifiers import (
    CosignKeylessVerifier,
    CosignKeyVerifier,
    IdentityRule,
    NotationVerifier,
    check_simple_signing,
)
from tests.support import signing as s

FIXTURE_SUBJECT = Digest.parse(
    "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
)
# The manifest the real cosign signed (shared/fixtures/cosign-keyed/subject-manifest.json).
FIXTURE_DESCRIPTOR = Descriptor(s.DOCKER_MANIFEST, FIXTURE_SUBJECT, 428)
SUBJECT_MANIFEST = b"an image manifest"
SUBJECT = Digest.of(SUBJECT_MANIFEST)
# What a verifier is given: the subject's descriptor as the registry serves it.
SUBJECT_DESCRIPTOR = Descriptor(s.OCI_MANIFEST, SUBJECT, len(SUBJECT_MANIFEST))
EMAIL = "release@example.test"
ISSUER = "https://token.example.test"


def described(descriptor: Descriptor) -> dict[str, Any]:
    return {
        "mediaType": descriptor.media_type,
        "digest": str(descriptor.digest),
        "size": descriptor.size,
    }


def attachment(
    content: bytes,
    media_type: str,
    annotations: dict[str, str] | None = None,
    *,
    artifact_type: str | None = None,
    subject: Descriptor | None = None,
    tag: str | None = "sha256-x.sig",
) -> Attachment:
    layer: dict[str, Any] = {
        "mediaType": media_type,
        "digest": str(Digest.of(content)),
        "size": len(content),
    }
    if annotations:
        layer["annotations"] = annotations
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": s.OCI_MANIFEST,
        "config": {"mediaType": s.OCI_EMPTY, "digest": str(Digest.of(b"{}")), "size": 2},
        "layers": [layer],
    }
    if artifact_type:
        document["artifactType"] = artifact_type
    if subject:
        document["subject"] = described(subject)
    manifest = Manifest.parse(json.dumps(document).encode(), s.OCI_MANIFEST)
    return Attachment(Carrier(manifest, tag), Descriptor.from_json(layer), content)


def key_verifier(*keys: s.PrivateKey) -> CosignKeyVerifier:
    return CosignKeyVerifier(
        [load_public_key(s.public_pem(k), name=f"key{i}.pub") for i, k in enumerate(keys)]
    )


def legacy_signature(key: s.PrivateKey, digest: Digest, *, raw: bool = False) -> Attachment:
    payload = s.simple_signing_payload(str(digest))
    signature = s.sign(key, payload, raw=raw)
    return attachment(
        payload, s.SIMPLESIGNING, {"dev.cosignproject.cosign/signature": s.b64(signature)}
    )


# --- the signature made by the real cosign tool --------------------------------------------------


@pytest.fixture
def cosign_fixture(fixtures_dir: Path) -> tuple[bytes, bytes, bytes]:
    folder = fixtures_dir / "cosign-keyed"
    return (
        (folder / "cosign.pub").read_bytes(),
        (folder / "payload.json").read_bytes(),
        (folder / "signature.b64").read_bytes().strip(),
    )


def fixture_attachment(payload: bytes, signature: bytes) -> Attachment:
    return attachment(
        payload, s.SIMPLESIGNING, {"dev.cosignproject.cosign/signature": signature.decode()}
    )


def test_the_real_cosign_signature_verifies_with_its_key(
    cosign_fixture: tuple[bytes, bytes, bytes],
) -> None:
    pem, payload, signature = cosign_fixture
    verifier = CosignKeyVerifier([load_public_key(pem, name="cosign.pub")])

    proof = verifier.verify(fixture_attachment(payload, signature), FIXTURE_DESCRIPTOR)

    assert proof.signer == "key cosign.pub (ECDSA secp256r1)"
    assert proof.statement is None


def test_the_real_cosign_signature_fails_after_a_one_byte_change_of_the_payload(
    cosign_fixture: tuple[bytes, bytes, bytes],
) -> None:
    pem, payload, signature = cosign_fixture
    changed = payload.replace(b"634a8f35", b"634a8f36", 1)
    assert len(changed) == len(payload) and changed != payload
    verifier = CosignKeyVerifier([load_public_key(pem, name="cosign.pub")])

    with pytest.raises(VerificationFailure) as failure:
        verifier.verify(fixture_attachment(changed, signature), FIXTURE_DESCRIPTOR)

    assert failure.value.reason == "the signature does not verify with key cosign.pub"


def test_the_real_cosign_signature_fails_with_another_key(
    cosign_fixture: tuple[bytes, bytes, bytes],
) -> None:
    _, payload, signature = cosign_fixture
    other = CosignKeyVerifier([load_public_key(s.public_pem(s.ec_key()), name="other.pub")])

    with pytest.raises(VerificationFailure) as failure:
        other.verify(fixture_attachment(payload, signature), FIXTURE_DESCRIPTOR)

    assert failure.value.reason == "the signature does not verify with key other.pub"


def test_the_real_cosign_signature_is_refused_for_another_subject(
    cosign_fixture: tuple[bytes, bytes, bytes],
) -> None:
    pem, payload, signature = cosign_fixture
    verifier = CosignKeyVerifier([load_public_key(pem, name="cosign.pub")])

    with pytest.raises(VerificationFailure) as failure:
        verifier.verify(fixture_attachment(payload, signature), SUBJECT_DESCRIPTOR)

    assert failure.value.reason == (
        f"the signature is for {FIXTURE_SUBJECT}, not for the subject {SUBJECT}"
    )


# --- cosign with a key: every key type, both signature encodings ---------------------------------


@pytest.mark.parametrize(
    ("make_key", "description"),
    [
        (lambda: s.ec_key(ec.SECP256R1()), "ECDSA secp256r1"),
        (lambda: s.ec_key(ec.SECP384R1()), "ECDSA secp384r1"),
        (s.rsa_key, "RSA 2048"),
        (s.ed25519_key, "Ed25519"),
    ],
)
def test_a_legacy_signature_verifies_with_each_key_type(make_key: Any, description: str) -> None:
    key = make_key()

    proof = key_verifier(key).verify(legacy_signature(key, SUBJECT), SUBJECT_DESCRIPTOR)

    assert proof.signer == f"key key0.pub ({description})"


def test_a_raw_r_s_ecdsa_signature_verifies_as_sigstore_accepts_it() -> None:
    key = s.ec_key(ec.SECP384R1())

    proof = key_verifier(key).verify(legacy_signature(key, SUBJECT, raw=True), SUBJECT_DESCRIPTOR)

    assert proof.signer == "key key0.pub (ECDSA secp384r1)"


def test_any_of_several_keys_may_have_signed() -> None:
    first, second = s.ec_key(), s.rsa_key()

    proof = key_verifier(first, second).verify(
        legacy_signature(second, SUBJECT), SUBJECT_DESCRIPTOR
    )

    assert proof.signer == "key key1.pub (RSA 2048)"


def test_a_payload_of_another_type_is_refused() -> None:
    key = s.ec_key()
    payload = s.simple_signing_payload(str(SUBJECT)).replace(
        b"cosign container", b"atomic container"
    )

    with pytest.raises(VerificationFailure) as failure:
        check_simple_signing(payload, SUBJECT)
    assert "critical.type is 'atomic container image signature'" in failure.value.reason

    signed = attachment(
        payload,
        s.SIMPLESIGNING,
        {"dev.cosignproject.cosign/signature": s.b64(s.sign(key, payload))},
    )
    with pytest.raises(VerificationFailure):
        key_verifier(key).verify(signed, SUBJECT_DESCRIPTOR)


def test_the_digest_key_of_the_payload_matches_case_insensitively() -> None:
    payload = s.simple_signing_payload(str(SUBJECT)).replace(
        b"docker-manifest-digest", b"Docker-Manifest-Digest"
    )

    check_simple_signing(payload, SUBJECT)


def test_a_dsse_bundle_made_with_a_key_verifies_and_carries_its_statement() -> None:
    key = s.ec_key()
    bundle = s.key_bundle(key, str(SUBJECT))

    proof = key_verifier(key).verify(attachment(bundle, s.BUNDLE_V03, tag=None), SUBJECT_DESCRIPTOR)

    assert proof.predicate_type == s.COSIGN_SIGN_PREDICATE


def test_a_dsse_bundle_for_another_subject_is_refused() -> None:
    key = s.ec_key()
    bundle = s.key_bundle(key, str(Digest.of(b"another image")))

    with pytest.raises(VerificationFailure) as failure:
        key_verifier(key).verify(attachment(bundle, s.BUNDLE_V03, tag=None), SUBJECT_DESCRIPTOR)

    assert failure.value.reason == f"the in-toto statement's subject does not include {SUBJECT}"


def test_a_dsse_bundle_with_a_changed_statement_is_refused() -> None:
    key = s.ec_key()
    bundle = json.loads(s.key_bundle(key, str(SUBJECT)))
    body = base64.b64decode(bundle["dsseEnvelope"]["payload"]).replace(b"sign/v1", b"sign/v2")
    bundle["dsseEnvelope"]["payload"] = s.b64(body)

    with pytest.raises(VerificationFailure) as failure:
        key_verifier(key).verify(
            attachment(json.dumps(bundle).encode(), s.BUNDLE_V03, tag=None), SUBJECT_DESCRIPTOR
        )

    assert failure.value.reason == "the DSSE signature does not verify with key key0.pub"


# --- keyless ------------------------------------------------------------------------------------


def keyless_verifier(
    ca: s.TestCA, rekor: s.TestRekor, identity: IdentityRule | None = None
) -> CosignKeylessVerifier:
    return CosignKeylessVerifier(
        [ca.certificate],
        [load_public_key(rekor.pem, name="rekor.pub")],
        [identity or IdentityRule(exact=EMAIL)],
        ISSUER,
    )


def test_a_keyless_signature_verifies_chain_identity_issuer_and_the_log_promise() -> None:
    ca, rekor = s.TestCA(), s.TestRekor()
    payload, notes = s.keyless_signature_layer(ca, rekor, str(SUBJECT), email=EMAIL, issuer=ISSUER)

    proof = keyless_verifier(ca, rekor).verify(
        attachment(payload, s.SIMPLESIGNING, notes), SUBJECT_DESCRIPTOR
    )

    assert proof.signer == f"identity {EMAIL} (issuer {ISSUER})"


def test_a_keyless_identity_may_be_a_pattern() -> None:
    ca, rekor = s.TestCA(), s.TestRekor()
    payload, notes = s.keyless_signature_layer(ca, rekor, str(SUBJECT), email=EMAIL, issuer=ISSUER)
    verifier = keyless_verifier(ca, rekor, IdentityRule(pattern=r".*@example\.test"))

    assert verifier.verify(
        attachment(payload, s.SIMPLESIGNING, notes), SUBJECT_DESCRIPTOR
    ).signer.startswith(f"identity {EMAIL}")


def test_a_keyless_signature_of_another_identity_is_refused() -> None:
    ca, rekor = s.TestCA(), s.TestRekor()
    payload, notes = s.keyless_signature_layer(
        ca, rekor, str(SUBJECT), email="intruder@example.test", issuer=ISSUER
    )

    with pytest.raises(VerificationFailure) as failure:
        keyless_verifier(ca, rekor).verify(
            attachment(payload, s.SIMPLESIGNING, notes), SUBJECT_DESCRIPTOR
        )

    assert failure.value.reason == (
        f"the certificate's identity intruder@example.test does not match {EMAIL}"
    )


def test_a_keyless_signature_from_another_issuer_is_refused() -> None:
    ca, rekor = s.TestCA(), s.TestRekor()
    payload, notes = s.keyless_signature_layer(
        ca, rekor, str(SUBJECT), email=EMAIL, issuer="https://evil.example.test"
    )

    with pytest.raises(VerificationFailure) as failure:
        keyless_verifier(ca, rekor).verify(
            attachment(payload, s.SIMPLESIGNING, notes), SUBJECT_DESCRIPTOR
        )

    assert failure.value.reason == (
        f"the certificate's OIDC issuer is https://evil.example.test, expected {ISSUER}"
    )


def test_a_keyless_certificate_from_another_ca_is_refused() -> None:
    ca, rogue, rekor = s.TestCA(), s.TestCA("rogue root"), s.TestRekor()
    payload, notes = s.keyless_signature_layer(
        rogue, rekor, str(SUBJECT), email=EMAIL, issuer=ISSUER
    )

    with pytest.raises(VerificationFailure) as failure:
        keyless_verifier(ca, rekor).verify(
            attachment(payload, s.SIMPLESIGNING, notes), SUBJECT_DESCRIPTOR
        )

    assert "does not lead to a trusted root" in failure.value.reason


def test_a_log_promise_signed_by_another_rekor_is_refused() -> None:
    ca, rekor, rogue = s.TestCA(), s.TestRekor(), s.TestRekor()
    payload, notes = s.keyless_signature_layer(ca, rogue, str(SUBJECT), email=EMAIL, issuer=ISSUER)

    with pytest.raises(VerificationFailure) as failure:
        keyless_verifier(ca, rekor).verify(
            attachment(payload, s.SIMPLESIGNING, notes), SUBJECT_DESCRIPTOR
        )

    assert failure.value.reason.startswith("the transparency-log entry is from log ")


def test_a_tampered_log_promise_is_refused() -> None:
    ca, rekor = s.TestCA(), s.TestRekor()
    payload, notes = s.keyless_signature_layer(ca, rekor, str(SUBJECT), email=EMAIL, issuer=ISSUER)
    bundle = json.loads(notes["dev.sigstore.cosign/bundle"])
    bundle["Payload"]["integratedTime"] += 1
    notes["dev.sigstore.cosign/bundle"] = json.dumps(bundle)

    with pytest.raises(VerificationFailure) as failure:
        keyless_verifier(ca, rekor).verify(
            attachment(payload, s.SIMPLESIGNING, notes), SUBJECT_DESCRIPTOR
        )

    assert failure.value.reason == (
        "the transparency-log entry's signed entry timestamp does not verify with Rekor key "
        "rekor.pub"
    )


def test_a_keyless_signature_logged_after_the_certificate_expired_is_refused() -> None:
    ca, rekor = s.TestCA(), s.TestRekor()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    payload, notes = s.keyless_signature_layer(
        ca, rekor, str(SUBJECT), email=EMAIL, issuer=ISSUER, when=later
    )

    with pytest.raises(VerificationFailure) as failure:
        keyless_verifier(ca, rekor).verify(
            attachment(payload, s.SIMPLESIGNING, notes), SUBJECT_DESCRIPTOR
        )

    assert failure.value.reason.startswith("the certificate was not valid at the signing time")


def test_a_keyless_v03_bundle_verifies() -> None:
    ca, rekor = s.TestCA(), s.TestRekor()
    bundle = s.keyless_bundle(ca, rekor, str(SUBJECT), email=EMAIL, issuer=ISSUER)

    proof = keyless_verifier(ca, rekor).verify(
        attachment(bundle, s.BUNDLE_V03, tag=None), SUBJECT_DESCRIPTOR
    )

    assert proof.signer == f"identity {EMAIL} (issuer {ISSUER})"
    assert proof.predicate_type == s.COSIGN_SIGN_PREDICATE


# --- notation -----------------------------------------------------------------------------------

OTHER_MANIFEST = b"another image manifest, of another size"
OTHER_DESCRIPTOR = Descriptor(s.OCI_MANIFEST, Digest.of(OTHER_MANIFEST), len(OTHER_MANIFEST))
SIGNING_SCHEME = "io.cncf.notary.signingScheme"
EXPIRY = "io.cncf.notary.expiry"


def notation_attachment(
    envelope: bytes, subject: Descriptor = SUBJECT_DESCRIPTOR, media_type: str = s.JWS
) -> Attachment:
    return attachment(
        envelope, media_type, artifact_type=s.NOTATION_SIGNATURE, subject=subject, tag=None
    )


def signed_jws(
    root: s.TestCA,
    target: dict[str, Any] | Descriptor = SUBJECT_DESCRIPTOR,
    *,
    headers: dict[str, Any] | None = None,
) -> bytes:
    """An envelope signed by a leaf of `root` over `target` (a descriptor, or its JSON as is)."""
    key = s.ec_key()
    leaf = root.issue(key, subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer")]))
    signed = described(target) if isinstance(target, Descriptor) else target
    return s.notation_jws(key, [leaf, root.certificate], signed, headers=headers)


def verify_notation(root: s.TestCA, envelope: bytes) -> str:
    """The signer, or the reason the envelope was refused."""
    try:
        proof = NotationVerifier([root.certificate], []).verify(
            notation_attachment(envelope), SUBJECT_DESCRIPTOR
        )
    except VerificationFailure as failure:
        return f"refused: {failure.reason}"
    return proof.signer


def test_a_notation_jws_verifies_against_the_trust_store() -> None:
    root = s.TestCA()

    proof = NotationVerifier([root.certificate], []).verify(
        notation_attachment(signed_jws(root)), SUBJECT_DESCRIPTOR
    )

    assert proof.signer == "certificate CN=signer"


def test_a_notation_jws_under_another_root_is_refused() -> None:
    root, other = s.TestCA(), s.TestCA("other root")

    with pytest.raises(VerificationFailure) as failure:
        NotationVerifier([other.certificate], []).verify(
            notation_attachment(signed_jws(root)), SUBJECT_DESCRIPTOR
        )

    assert "does not lead to a trusted root" in failure.value.reason


def test_a_notation_jws_for_another_artifact_is_refused() -> None:
    root = s.TestCA()

    assert verify_notation(root, signed_jws(root, OTHER_DESCRIPTOR)) == (
        f"refused: the signature is for {OTHER_DESCRIPTOR.digest}, not for the subject {SUBJECT}"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"size": len(SUBJECT_MANIFEST) + 1},
            f"size {len(SUBJECT_MANIFEST) + 1}, not {len(SUBJECT_MANIFEST)}",
        ),
        (
            {"size": str(len(SUBJECT_MANIFEST))},
            f"size '{len(SUBJECT_MANIFEST)}', not {len(SUBJECT_MANIFEST)}",
        ),
        ({"size": None}, f"size (absent), not {len(SUBJECT_MANIFEST)}"),
        (
            {"mediaType": s.OCI_INDEX},
            f"mediaType {s.OCI_INDEX!r}, not {s.OCI_MANIFEST!r}",
        ),
        ({"mediaType": None}, f"mediaType (absent), not {s.OCI_MANIFEST!r}"),
    ],
    ids=["larger-size", "size-as-text", "no-size", "other-media-type", "no-media-type"],
)
def test_a_notation_jws_whose_signed_descriptor_differs_from_the_subject_is_refused(
    change: dict[str, Any], reason: str
) -> None:
    root = s.TestCA()
    target = {**described(SUBJECT_DESCRIPTOR), **change}
    target = {k: v for k, v in target.items() if v is not None}

    assert verify_notation(root, signed_jws(root, target)) == (
        f"refused: the signed targetArtifact does not match the subject {SUBJECT}: {reason}"
    )


def test_a_notation_jws_may_sign_annotations_and_artifact_type_besides_the_descriptor() -> None:
    root = s.TestCA()
    target = {
        **described(SUBJECT_DESCRIPTOR),
        "artifactType": "application/vnd.example.thing",
        "annotations": {"io.wabbit-networks.buildId": "123"},
    }

    assert verify_notation(root, signed_jws(root, target)) == "certificate CN=signer"


def test_a_notation_jws_with_a_changed_payload_is_refused() -> None:
    root = s.TestCA()
    envelope = json.loads(signed_jws(root))
    payload = json.loads(b64decode(envelope["payload"], what="payload"))
    payload["targetArtifact"]["size"] = 18
    envelope["payload"] = s.b64url(json.dumps(payload).encode())

    with pytest.raises(VerificationFailure) as failure:
        NotationVerifier([root.certificate], []).verify(
            notation_attachment(json.dumps(envelope).encode()), SUBJECT_DESCRIPTOR
        )

    assert failure.value.reason == "the JWS signature does not verify with its certificate"


def test_a_notation_jws_past_its_expiry_is_refused() -> None:
    root = s.TestCA()
    envelope = signed_jws(
        root, headers={EXPIRY: "2020-01-01T00:00:00Z", "crit": [SIGNING_SCHEME, EXPIRY]}
    )

    assert verify_notation(root, envelope) == (
        "refused: the signature expired at 2020-01-01T00:00:00+00:00 (io.cncf.notary.expiry)"
    )


def test_a_notation_jws_before_its_expiry_verifies() -> None:
    root = s.TestCA()
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    envelope = signed_jws(root, headers={EXPIRY: later, "crit": [SIGNING_SCHEME, EXPIRY]})

    assert verify_notation(root, envelope) == "certificate CN=signer"


def test_an_extended_header_not_marked_critical_is_informational() -> None:
    root = s.TestCA()
    envelope = signed_jws(root, headers={"io.example.buildHost": "ci-7"})

    assert verify_notation(root, envelope) == "certificate CN=signer"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (
            {"io.example.policy": "strict", "crit": [SIGNING_SCHEME, "io.example.policy"]},
            "the JWS marks io.example.policy critical, which regtopo does not understand",
        ),
        (
            {
                "io.cncf.notary.verificationPlugin": "com.example.plugin",
                "crit": [SIGNING_SCHEME, "io.cncf.notary.verificationPlugin"],
            },
            "the JWS marks io.cncf.notary.verificationPlugin critical, which regtopo does not "
            "understand",
        ),
        (
            {EXPIRY: "2099-01-01T00:00:00Z"},
            "the JWS header io.cncf.notary.expiry is not listed in crit, as the notation "
            "signature spec requires",
        ),
        (
            {"crit": None},
            "the JWS protected header has no crit list (the notation signature spec requires "
            "one naming io.cncf.notary.signingScheme)",
        ),
        ({"crit": []}, "the JWS protected header has no crit list"),
        ({"crit": "io.cncf.notary.signingScheme"}, "the JWS protected header has no crit list"),
        (
            {EXPIRY: "2099-01-01T00:00:00Z", "crit": [EXPIRY]},
            "the JWS header io.cncf.notary.signingScheme is not listed in crit",
        ),
        (
            {"crit": [SIGNING_SCHEME, "alg"]},
            "the JWS crit list names alg, a header registered by JWS itself",
        ),
        (
            {"crit": [SIGNING_SCHEME, EXPIRY]},
            "the JWS crit list names io.cncf.notary.expiry, which the header does not have",
        ),
        (
            {SIGNING_SCHEME: "notary.x509.signingAuthority"},
            "the signing scheme notary.x509.signingAuthority is not supported by regtopo "
            "(it verifies notary.x509, notation's default)",
        ),
        ({SIGNING_SCHEME: "notary.other"}, "unknown signing scheme 'notary.other'"),
        (
            {"io.cncf.notary.signingTime": None},
            "the JWS has no io.cncf.notary.signingTime, which the notary.x509 scheme requires",
        ),
        (
            {EXPIRY: "next week", "crit": [SIGNING_SCHEME, EXPIRY]},
            "the JWS io.cncf.notary.expiry 'next week' is not an RFC 3339 date and time",
        ),
        (
            {EXPIRY: "2099-01-01T00:00:00", "crit": [SIGNING_SCHEME, EXPIRY]},
            "the JWS io.cncf.notary.expiry '2099-01-01T00:00:00' is not an RFC 3339 date and time",
        ),
    ],
    ids=[
        "unknown-critical",
        "verification-plugin",
        "expiry-not-critical",
        "no-crit",
        "empty-crit",
        "crit-not-a-list",
        "crit-without-signing-scheme",
        "crit-names-registered-header",
        "crit-names-absent-header",
        "signing-authority-scheme",
        "unknown-scheme",
        "no-signing-time",
        "expiry-not-a-date",
        "expiry-without-offset",
    ],
)
def test_a_notation_jws_whose_protected_header_breaks_the_spec_is_refused(
    headers: dict[str, Any], reason: str
) -> None:
    root = s.TestCA()

    refused = verify_notation(root, signed_jws(root, headers=headers))

    assert refused.startswith(f"refused: {reason}"), refused


def test_a_notation_jws_naming_another_algorithm_than_its_key_takes_is_refused() -> None:
    """A P-256 key signs with ES256; an envelope saying ES384 (signed with SHA-384, so the
    signature itself holds) is an algorithm substitution, refused before it is tried."""
    root = s.TestCA()

    refused = verify_notation(root, signed_jws(root, headers={"alg": "ES384"}))

    assert refused == (
        "refused: the JWS algorithm 'ES384' is not the one the signing key takes (ES256)"
    )


def test_a_notation_identity_rule_checks_the_certificate_subject() -> None:
    root = s.TestCA()

    with pytest.raises(VerificationFailure) as failure:
        NotationVerifier([root.certificate], [IdentityRule(exact="CN=release")]).verify(
            notation_attachment(signed_jws(root)), SUBJECT_DESCRIPTOR
        )

    assert failure.value.reason == (
        "the signing certificate's subject CN=signer does not match CN=release"
    )


def test_a_cose_envelope_is_refused_saying_it_is_not_supported_and_what_to_use() -> None:
    root = s.TestCA()

    with pytest.raises(VerificationFailure) as failure:
        NotationVerifier([root.certificate], []).verify(
            notation_attachment(b"\xd2\x84", media_type="application/cose"), SUBJECT_DESCRIPTOR
        )

    assert failure.value.reason == (
        "COSE signature envelopes (application/cose) are not supported by regtopo yet, so this "
        "signature cannot count as valid; sign with JWS instead: notation sign "
        "--signature-format jws (notation's default)"
    )


def test_an_ecdsa_signature_of_other_data_does_not_verify() -> None:
    key = s.ec_key()
    named = load_public_key(s.public_pem(key), name="k")

    assert verify_signature(named.key, s.sign(key, b"data"), b"data")
    assert not verify_signature(named.key, s.sign(key, b"data"), b"datA")


# --- new-format bundles through the sigstore package ---------------------------------------------


@pytest.fixture
def sigstore_trust(tmp_path: Path) -> tuple[s.TestCA, s.TestRekor, s.TestCTLog, Path]:
    pytest.importorskip("sigstore")
    ca, rekor, ct = s.TestCA("test fulcio"), s.TestRekor(), s.TestCTLog()
    path = tmp_path / "trusted_root.json"
    path.write_bytes(s.trusted_root(ca, rekor, ct))
    return ca, rekor, ct, path


def sigstore_verifier(ca: s.TestCA, root: Path, identity: str = EMAIL) -> CosignKeylessVerifier:
    return CosignKeylessVerifier([ca.certificate], [], [IdentityRule(exact=identity)], ISSUER, root)


def test_a_bundle_with_sct_and_inclusion_proof_verifies_through_sigstore(
    sigstore_trust: tuple[s.TestCA, s.TestRekor, s.TestCTLog, Path],
) -> None:
    ca, rekor, ct, root = sigstore_trust
    bundle = s.sigstore_bundle(ca, rekor, ct, str(SUBJECT), email=EMAIL, issuer=ISSUER)

    proof = sigstore_verifier(ca, root).verify(
        attachment(bundle, s.BUNDLE_V03, tag=None), SUBJECT_DESCRIPTOR
    )

    assert proof.signer == f"identity {EMAIL} (issuer {ISSUER}), verified by sigstore"
    assert proof.predicate_type == s.COSIGN_SIGN_PREDICATE


def test_sigstore_refuses_a_certificate_whose_sct_another_ct_log_signed(
    sigstore_trust: tuple[s.TestCA, s.TestRekor, s.TestCTLog, Path],
) -> None:
    ca, rekor, _, root = sigstore_trust
    bundle = s.sigstore_bundle(ca, rekor, s.TestCTLog(), str(SUBJECT), email=EMAIL, issuer=ISSUER)

    with pytest.raises(VerificationFailure) as failure:
        sigstore_verifier(ca, root).verify(
            attachment(bundle, s.BUNDLE_V03, tag=None), SUBJECT_DESCRIPTOR
        )

    assert failure.value.reason.startswith("sigstore refused the bundle: failed to verify SCT")


def test_sigstore_refuses_an_inclusion_proof_that_does_not_match_the_checkpoint(
    sigstore_trust: tuple[s.TestCA, s.TestRekor, s.TestCTLog, Path],
) -> None:
    ca, rekor, ct, root = sigstore_trust
    bundle = json.loads(s.sigstore_bundle(ca, rekor, ct, str(SUBJECT), email=EMAIL, issuer=ISSUER))
    proof = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["rootHash"] = s.b64(b"\x01" * 32)

    with pytest.raises(VerificationFailure) as failure:
        sigstore_verifier(ca, root).verify(
            attachment(json.dumps(bundle).encode(), s.BUNDLE_V03, tag=None), SUBJECT_DESCRIPTOR
        )

    assert failure.value.reason.startswith(
        "sigstore refused the bundle: invalid log entry: inclusion proof contains invalid root hash"
    )


def test_sigstore_refuses_a_checkpoint_signed_by_another_log(
    sigstore_trust: tuple[s.TestCA, s.TestRekor, s.TestCTLog, Path],
) -> None:
    ca, rekor, ct, root = sigstore_trust
    bundle = json.loads(s.sigstore_bundle(ca, rekor, ct, str(SUBJECT), email=EMAIL, issuer=ISSUER))
    proof = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["checkpoint"]["envelope"] = s.checkpoint(s.TestRekor(), s.b64decode(proof["rootHash"]), 1)

    with pytest.raises(VerificationFailure) as failure:
        sigstore_verifier(ca, root).verify(
            attachment(json.dumps(bundle).encode(), s.BUNDLE_V03, tag=None), SUBJECT_DESCRIPTOR
        )

    assert failure.value.reason == (
        "sigstore refused the bundle: invalid log entry: checkpoint: Signature not found for "
        f"log ID {rekor.log_id}"
    )


def test_sigstore_verification_still_applies_the_policy_identity(
    sigstore_trust: tuple[s.TestCA, s.TestRekor, s.TestCTLog, Path],
) -> None:
    ca, rekor, ct, root = sigstore_trust
    bundle = s.sigstore_bundle(ca, rekor, ct, str(SUBJECT), email=EMAIL, issuer=ISSUER)

    with pytest.raises(VerificationFailure) as failure:
        sigstore_verifier(ca, root, "someone@example.test").verify(
            attachment(bundle, s.BUNDLE_V03, tag=None), SUBJECT_DESCRIPTOR
        )

    assert failure.value.reason == (
        f"sigstore refused the bundle: the certificate's identity {EMAIL} does not match "
        "someone@example.test"
    )
