"""Verifying one attachment under one kind of policy: cosign with a key, keyless, notation.

A verifier either returns a `Proof` (who signed, and the in-toto statement when the signature
wraps one) or raises `VerificationFailure` saying what did not hold. An attachment a verifier
does not understand raises too: nothing unsupported ever counts as valid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from regtopo.oci import mediatype as mt
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.plan.signing.crypto import (
    LogEntry,
    NamedKey,
    VerificationFailure,
    b64decode,
    certificate_identities,
    certificate_issuer,
    certificate_key,
    check_dsse_entry,
    check_hashedrekord,
    load_certificates,
    load_der_certificate,
    matches,
    pae,
    subject_name,
    verify_chain,
    verify_signature,
)
from regtopo.plan.signing.discovery import Attachment

DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
SIGSTORE_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
SIMPLE_SIGNING_TYPE = "cosign container image signature"
NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature"
NOTATION_PAYLOAD = "application/vnd.cncf.notary.payload.v1+json"
JWS = "application/jose+json"
COSE = "application/cose"

ANNOTATION_SIGNATURE = "dev.cosignproject.cosign/signature"
ANNOTATION_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANNOTATION_CHAIN = "dev.sigstore.cosign/chain"
ANNOTATION_BUNDLE = "dev.sigstore.cosign/bundle"

# Protected headers of a notation JWS [Notary Project signature spec, JWS envelope].
SIGNING_SCHEME = "io.cncf.notary.signingScheme"
SIGNING_TIME = "io.cncf.notary.signingTime"
AUTHENTIC_SIGNING_TIME = "io.cncf.notary.authenticSigningTime"
EXPIRY = "io.cncf.notary.expiry"
SCHEME_X509 = "notary.x509"
SCHEME_SIGNING_AUTHORITY = "notary.x509.signingAuthority"
# The critical headers this verifier processes. The authentic signing time belongs to the
# signingAuthority scheme, which is refused; plugin headers need a plugin: both are unknown.
UNDERSTOOD_CRITICAL_HEADERS = frozenset({SIGNING_SCHEME, EXPIRY})
# Header names JWS registers (RFC 7515 §4.1): the spec forbids them in `crit`.
JWS_REGISTERED_HEADERS = frozenset(
    {"alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit"}
)

# JWS `alg` values notation writes: RSASSA-PSS and ECDSA [Notary Project signature spec].
JWS_ALGORITHMS: dict[str, tuple[hashes.HashAlgorithm, bool]] = {
    "PS256": (hashes.SHA256(), True),
    "PS384": (hashes.SHA384(), True),
    "PS512": (hashes.SHA512(), True),
    "ES256": (hashes.SHA256(), False),
    "ES384": (hashes.SHA384(), False),
    "ES512": (hashes.SHA512(), False),
}


def notation_algorithm(key: object) -> str | None:
    """The JWS `alg` notation signs with for a key: RSA-PSS by modulus size, ECDSA by curve."""
    if isinstance(key, rsa.RSAPublicKey):
        return {2048: "PS256", 3072: "PS384", 4096: "PS512"}.get(key.key_size)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(
            key.curve.name
        )
    return None


@dataclass(frozen=True)
class Proof:
    """A verified signature: who signed, where it was found, what statement it carries."""

    signer: str
    origin: str
    statement: dict[str, Any] | None = None

    @property
    def predicate_type(self) -> str | None:
        if self.statement is None:
            return None
        value = self.statement.get("predicateType")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class IdentityRule:
    """An identity to require: exact or a full-match regular expression."""

    exact: str | None = None
    pattern: str | None = None

    def __str__(self) -> str:
        return self.exact if self.exact is not None else f"/{self.pattern}/"

    def matches(self, value: str) -> bool:
        return matches(value, exact=self.exact, pattern=self.pattern)


def is_bundle(media_type: str) -> bool:
    return media_type.startswith(SIGSTORE_BUNDLE_PREFIX)


def _json(content: bytes, *, what: str) -> dict[str, Any]:
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VerificationFailure(f"{what} is not JSON") from err
    if not isinstance(document, dict):
        raise VerificationFailure(f"{what} is not a JSON object")
    return document


def check_simple_signing(payload: bytes, subject: Digest) -> None:
    """The simple-signing payload must name the subject's digest and cosign's type."""
    document = _json(payload, what="the simple-signing payload")
    critical = document.get("critical")
    if not isinstance(critical, dict):
        raise VerificationFailure("the simple-signing payload has no 'critical' section")
    kind = critical.get("type")
    if not isinstance(kind, str) or kind.lower() != SIMPLE_SIGNING_TYPE:
        raise VerificationFailure(
            f"the simple-signing payload's critical.type is {kind!r}, expected "
            f"{SIMPLE_SIGNING_TYPE!r}"
        )
    image = critical.get("image")
    signed = None
    if isinstance(image, dict):
        # cosign writes `docker-manifest-digest`; other tools vary the case of the key.
        for key, value in image.items():
            if isinstance(key, str) and key.lower() == "docker-manifest-digest":
                signed = value
    if signed != str(subject):
        raise VerificationFailure(
            f"the signature is for {signed or 'no digest'}, not for the subject {subject}"
        )


def check_statement(payload_type: str, body: bytes, subject: Digest) -> dict[str, Any]:
    """An in-toto statement whose subject list holds the subject's digest."""
    if payload_type != mt.IN_TOTO:
        raise VerificationFailure(
            f"the envelope's payload type is {payload_type!r}, expected {mt.IN_TOTO!r}"
        )
    statement = _json(body, what="the in-toto statement")
    subjects = statement.get("subject")
    if isinstance(subjects, list):
        for entry in subjects:
            digests = entry.get("digest") if isinstance(entry, dict) else None
            if isinstance(digests, dict) and digests.get(subject.algorithm) == subject.encoded:
                return statement
    raise VerificationFailure(f"the in-toto statement's subject does not include {subject}")


def _dsse_parts(envelope: dict[str, Any]) -> tuple[str, bytes, list[bytes]]:
    payload_type = envelope.get("payloadType")
    payload = envelope.get("payload")
    signatures = envelope.get("signatures")
    if not isinstance(payload_type, str) or not isinstance(payload, str):
        raise VerificationFailure("the DSSE envelope lacks payloadType or payload")
    if not isinstance(signatures, list) or not signatures:
        raise VerificationFailure("the DSSE envelope has no signatures")
    sigs = [
        b64decode(s["sig"], what="the DSSE signature")
        for s in signatures
        if isinstance(s, dict) and isinstance(s.get("sig"), str)
    ]
    return payload_type, b64decode(payload, what="the DSSE payload"), sigs


class CosignKeyVerifier:
    """cosign signatures and attestations made with a key pair (legacy `.sig`/`.att`, bundles)."""

    def __init__(self, keys: Sequence[NamedKey]) -> None:
        self.keys = list(keys)

    def _signed_by(self, signature: bytes, data: bytes) -> NamedKey:
        for key in self.keys:
            if verify_signature(key.key, signature, data):
                return key
        names = ", ".join(k.name for k in self.keys)
        raise VerificationFailure(f"the signature does not verify with key {names}")

    def verify(self, attachment: Attachment, described: Descriptor) -> Proof:
        subject = described.digest  # cosign's payloads name the digest alone
        media_type = attachment.media_type
        if media_type == mt.COSIGN_SIMPLESIGNING:
            encoded = attachment.layer.annotations.get(ANNOTATION_SIGNATURE)
            if not encoded:
                raise VerificationFailure(f"the layer has no {ANNOTATION_SIGNATURE} annotation")
            key = self._signed_by(b64decode(encoded, what="the signature"), attachment.content)
            check_simple_signing(attachment.content, subject)
            return Proof(f"key {key.description}", attachment.origin)
        if media_type == DSSE_ENVELOPE:
            envelope = _json(attachment.content, what="the DSSE envelope")
            return self._dsse(envelope, subject, attachment.origin)
        if is_bundle(media_type):
            bundle = _json(attachment.content, what="the sigstore bundle")
            bundled = bundle.get("dsseEnvelope")
            if not isinstance(bundled, dict):
                raise VerificationFailure(
                    "bundles with a message signature are not supported for images; "
                    "expected a DSSE envelope"
                )
            return self._dsse(bundled, subject, attachment.origin)
        raise VerificationFailure(f"{media_type} is not a cosign signature")

    def _dsse(self, envelope: dict[str, Any], subject: Digest, origin: str) -> Proof:
        payload_type, body, signatures = _dsse_parts(envelope)
        message = pae(payload_type, body)
        for signature in signatures:
            for key in self.keys:
                if verify_signature(key.key, signature, message):
                    statement = check_statement(payload_type, body, subject)
                    return Proof(f"key {key.description}", origin, statement)
        names = ", ".join(k.name for k in self.keys)
        raise VerificationFailure(f"the DSSE signature does not verify with key {names}")


class CosignKeylessVerifier:
    """cosign keyless: Fulcio certificate chain, identity and issuer, Rekor's signed promise."""

    def __init__(
        self,
        roots: Sequence[x509.Certificate],
        rekor_keys: Sequence[NamedKey],
        identities: Sequence[IdentityRule],
        issuer: str,
        sigstore_root: Path | None = None,
    ) -> None:
        self.roots = list(roots)
        self.rekor_keys = list(rekor_keys)
        self.identities = list(identities)
        self.issuer = issuer
        self.sigstore = SigstoreBundles(sigstore_root, self) if sigstore_root else None

    def verify(self, attachment: Attachment, described: Descriptor) -> Proof:
        subject = described.digest  # cosign's payloads name the digest alone
        media_type = attachment.media_type
        annotations = attachment.layer.annotations
        if media_type == mt.COSIGN_SIMPLESIGNING:
            signature = b64decode(
                annotations.get(ANNOTATION_SIGNATURE, ""), what="the signature annotation"
            )
            leaf, chain = self._certificates_from_annotations(annotations)
            entry = self._entry_from_annotation(annotations)
            signer = self._check_certificate(leaf, chain, entry)
            check_hashedrekord(
                entry.entry(),
                signature=signature,
                artifact=attachment.content,
                certificate_der=leaf.public_bytes(serialization.Encoding.DER),
            )
            key = certificate_key(leaf, what="the signing certificate")
            if not verify_signature(key, signature, attachment.content):
                raise VerificationFailure("the signature does not verify with its certificate")
            check_simple_signing(attachment.content, subject)
            return Proof(signer, attachment.origin)
        if is_bundle(media_type):
            return self._bundle(
                _json(attachment.content, what="the sigstore bundle"), subject, attachment.origin
            )
        raise VerificationFailure(f"{media_type} is not a keyless cosign signature this verifies")

    def _certificates_from_annotations(
        self, annotations: dict[str, str]
    ) -> tuple[x509.Certificate, list[x509.Certificate]]:
        pem = annotations.get(ANNOTATION_CERTIFICATE)
        if not pem:
            raise VerificationFailure(
                f"the layer has no {ANNOTATION_CERTIFICATE} annotation (not a keyless signature)"
            )
        leaf = load_certificates(pem.encode(), name="the signing certificate")[0]
        chain_pem = annotations.get(ANNOTATION_CHAIN)
        chain = load_certificates(chain_pem.encode(), name="the chain") if chain_pem else []
        return leaf, chain

    def _entry_from_annotation(self, annotations: dict[str, str]) -> LogEntry:
        raw = annotations.get(ANNOTATION_BUNDLE)
        if not raw:
            raise VerificationFailure(
                f"the layer has no {ANNOTATION_BUNDLE} annotation: no transparency-log entry"
            )
        bundle = _json(raw.encode(), what="the Rekor bundle annotation")
        payload = bundle.get("Payload")
        if not isinstance(payload, dict):
            raise VerificationFailure("the Rekor bundle has no Payload")
        try:
            return LogEntry(
                body=str(payload["body"]),
                integrated_time=int(payload["integratedTime"]),
                log_index=int(payload["logIndex"]),
                log_id=str(payload["logID"]),
                signed_entry_timestamp=b64decode(
                    str(bundle["SignedEntryTimestamp"]), what="the signed entry timestamp"
                ),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise VerificationFailure("the Rekor bundle lacks a field of its Payload") from err

    def _check_certificate(
        self, leaf: x509.Certificate, chain: Sequence[x509.Certificate], entry: LogEntry
    ) -> str:
        entry.verify(self.rekor_keys)
        verify_chain(leaf, chain, self.roots, at=entry.integrated_at, code_signing=True)
        return self.check_identity(leaf)

    def check_identity(self, leaf: x509.Certificate) -> str:
        """The OIDC issuer and one identity of the certificate must be the policy's."""
        issuer = certificate_issuer(leaf)
        if issuer != self.issuer:
            raise VerificationFailure(
                f"the certificate's OIDC issuer is {issuer or 'absent'}, expected {self.issuer}"
            )
        identities = certificate_identities(leaf)
        for identity in identities:
            if any(rule.matches(identity) for rule in self.identities):
                return f"identity {identity} (issuer {issuer})"
        wanted = ", ".join(str(r) for r in self.identities)
        raise VerificationFailure(
            f"the certificate's identity {', '.join(identities) or '(none)'} does not match "
            f"{wanted}"
        )

    def _bundle(self, bundle: dict[str, Any], subject: Digest, origin: str) -> Proof:
        if self.sigstore is not None:
            return self.sigstore.verify(bundle, subject, origin)
        material = bundle.get("verificationMaterial")
        if not isinstance(material, dict):
            raise VerificationFailure("the bundle has no verificationMaterial")
        ders: list[str] = []
        if isinstance(material.get("certificate"), dict):
            ders = [material["certificate"].get("rawBytes", "")]
        elif isinstance(material.get("x509CertificateChain"), dict):
            ders = [
                c.get("rawBytes", "")
                for c in material["x509CertificateChain"].get("certificates", [])
                if isinstance(c, dict)
            ]
        if not ders:
            raise VerificationFailure("the bundle carries no certificate (a key-based bundle?)")
        certificates = [
            load_der_certificate(
                b64decode(d, what="a bundle certificate"), what="a bundle certificate"
            )
            for d in ders
        ]
        entries = material.get("tlogEntries")
        if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
            raise VerificationFailure("the bundle needs exactly one transparency-log entry")
        raw = entries[0]
        try:
            entry = LogEntry(
                body=str(raw["canonicalizedBody"]),
                integrated_time=int(raw["integratedTime"]),
                log_index=int(raw["logIndex"]),
                log_id=b64decode(str(raw["logId"]["keyId"]), what="the log id").hex(),
                signed_entry_timestamp=b64decode(
                    str(raw["inclusionPromise"]["signedEntryTimestamp"]),
                    what="the signed entry timestamp",
                ),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise VerificationFailure(
                "the bundle's log entry lacks its inclusion promise or a field of it"
            ) from err
        leaf = certificates[0]
        signer = self._check_certificate(leaf, certificates[1:], entry)
        envelope = bundle.get("dsseEnvelope")
        if not isinstance(envelope, dict):
            raise VerificationFailure(
                "bundles with a message signature are not supported for images; "
                "expected a DSSE envelope"
            )
        payload_type, body, signatures = _dsse_parts(envelope)
        key = certificate_key(leaf, what="the signing certificate")
        for signature in signatures:
            if verify_signature(key, signature, pae(payload_type, body)):
                check_dsse_entry(entry.entry(), signature=signature, payload=body)
                statement = check_statement(payload_type, body, subject)
                return Proof(signer, origin, statement)
        raise VerificationFailure("the DSSE signature does not verify with its certificate")


class SigstoreBundles:
    """Sigstore bundles verified by the `sigstore` package against a trusted_root.json.

    sigstore checks what the manual path does not: the certificate's SCT against the CT log
    keys, the Merkle inclusion proof and the log's signed checkpoint. Identity and issuer are
    still the policy's rules (exact or pattern), checked on the certificate sigstore verified.
    """

    def __init__(self, trusted_root: Path, keyless: CosignKeylessVerifier) -> None:
        try:
            from sigstore.models import TrustedRoot
            from sigstore.verify import Verifier
        except ImportError as err:
            raise VerificationFailure(
                "a trusted_root needs the sigstore package: pip install 'regtopo[sigstore]'"
            ) from err
        try:
            self.verifier = Verifier(trusted_root=TrustedRoot.from_file(str(trusted_root)))
        except Exception as err:  # sigstore raises several types for a malformed root
            raise VerificationFailure(f"reading trusted root {trusted_root}: {err}") from err
        self.keyless = keyless

    def verify(self, bundle: dict[str, Any], subject: Digest, origin: str) -> Proof:
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import Bundle

        keyless = self.keyless

        class _Policy:
            # sigstore's VerificationPolicy protocol: raise to refuse the certificate.
            def verify(self, cert: x509.Certificate) -> None:
                from sigstore.errors import VerificationError

                try:
                    keyless.check_identity(cert)
                except VerificationFailure as err:
                    raise VerificationError(err.reason) from err

        try:
            parsed = Bundle.from_json(json.dumps(bundle))
            payload_type, body = self.verifier.verify_dsse(parsed, _Policy())
        except SigstoreError as err:
            # The first line names the failure; pydantic's details follow on later lines.
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise VerificationFailure(f"sigstore refused the bundle: {first}") from err
        except ValueError as err:
            raise VerificationFailure(f"sigstore cannot read the bundle: {err}") from err
        signer = keyless.check_identity(parsed.signing_certificate)
        statement = check_statement(payload_type, body, subject)
        return Proof(f"{signer}, verified by sigstore", origin, statement)


def read_trusted_root(path: Path) -> tuple[list[x509.Certificate], list[NamedKey]]:
    """Fulcio certificates and Rekor keys of a Sigstore trusted_root.json (for `.sig` layers)."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError) as err:
        raise VerificationFailure(f"reading trusted root {path}: {err}") from err
    certificates: list[x509.Certificate] = []
    for authority in document.get("certificateAuthorities") or []:
        for entry in (authority.get("certChain") or {}).get("certificates") or []:
            raw = b64decode(str(entry.get("rawBytes", "")), what="a trusted root certificate")
            certificates.append(load_der_certificate(raw, what="a trusted root certificate"))
    keys: list[NamedKey] = []
    for index, log in enumerate(document.get("tlogs") or []):
        raw = b64decode(str((log.get("publicKey") or {}).get("rawBytes", "")), what="a log key")
        try:
            key = serialization.load_der_public_key(raw)
        except ValueError as err:
            raise VerificationFailure(f"reading trusted root {path}: tlog {index} key") from err
        if not isinstance(
            key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
        ):
            raise VerificationFailure(f"reading trusted root {path}: tlog {index} key type")
        keys.append(NamedKey(f"{path.name} tlog {log.get('baseUrl') or index}", key))
    if not certificates or not keys:
        raise VerificationFailure(
            f"reading trusted root {path}: it needs certificateAuthorities and tlogs"
        )
    return certificates, keys


class NotationVerifier:
    """Notary Project signatures: a JWS envelope whose x5c chain leads to a trusted root."""

    def __init__(
        self, roots: Sequence[x509.Certificate], identities: Sequence[IdentityRule]
    ) -> None:
        self.roots = list(roots)
        self.identities = list(identities)

    def verify(self, attachment: Attachment, subject: Descriptor) -> Proof:
        manifest = attachment.carrier.manifest
        config = manifest.config
        is_notation = manifest.artifact_type == NOTATION_SIGNATURE or (
            config is not None and config.media_type == NOTATION_SIGNATURE
        )
        if not is_notation:
            raise VerificationFailure(f"{attachment.origin} is not a notation signature")
        if manifest.subject is not None and manifest.subject.digest != subject.digest:
            raise VerificationFailure(
                f"the signature's subject is {manifest.subject.digest}, not {subject.digest}"
            )
        if attachment.media_type == COSE:
            raise VerificationFailure(
                f"COSE signature envelopes ({COSE}) are not supported by regtopo yet, so this "
                "signature cannot count as valid; sign with JWS instead: notation sign "
                "--signature-format jws (notation's default)"
            )
        if attachment.media_type != JWS:
            raise VerificationFailure(f"unknown notation envelope type {attachment.media_type}")
        return self._jws(
            _json(attachment.content, what="the JWS envelope"), subject, attachment.origin
        )

    def _jws(self, envelope: dict[str, Any], subject: Descriptor, origin: str) -> Proof:
        protected = envelope.get("protected")
        payload = envelope.get("payload")
        signature = envelope.get("signature")
        header = envelope.get("header")
        if not (
            isinstance(protected, str)
            and isinstance(payload, str)
            and isinstance(signature, str)
            and isinstance(header, dict)
        ):
            raise VerificationFailure(
                "the JWS envelope lacks protected, payload, signature or header"
            )
        headers = _json(
            b64decode(protected, what="the JWS protected header"), what="the JWS protected header"
        )
        algorithm = headers.get("alg")
        if algorithm not in JWS_ALGORITHMS:
            raise VerificationFailure(f"the JWS algorithm {algorithm!r} is not one notation uses")
        chain_b64 = header.get("x5c")
        if not isinstance(chain_b64, list) or not chain_b64:
            raise VerificationFailure("the JWS envelope has no x5c certificate chain")
        chain = [
            load_der_certificate(
                b64decode(str(c), what="an x5c certificate"), what="an x5c certificate"
            )
            for c in chain_b64
        ]
        leaf = chain[0]
        now = datetime.now(UTC)
        verify_chain(leaf, chain[1:], self.roots, at=now, code_signing=False)
        if self.identities:
            name = subject_name(leaf)
            if not any(rule.matches(name) for rule in self.identities):
                wanted = ", ".join(str(r) for r in self.identities)
                raise VerificationFailure(
                    f"the signing certificate's subject {name} does not match {wanted}"
                )
        hash_algorithm, pss = JWS_ALGORITHMS[str(algorithm)]
        signing_input = f"{protected}.{payload}".encode("ascii")
        key = certificate_key(leaf, what="the signing certificate")
        expected = notation_algorithm(key)
        if expected != algorithm:
            # The key decides the algorithm [Notary Project signature spec, "Algorithm
            # selection"]: an envelope naming another one is refused, not tried.
            raise VerificationFailure(
                f"the JWS algorithm {algorithm!r} is not the one the signing key takes "
                f"({expected or 'none: the key is of no type notation signs with'})"
            )
        if not verify_signature(
            key,
            b64decode(signature, what="the JWS signature"),
            signing_input,
            algorithm=hash_algorithm,
            pss=pss,
        ):
            raise VerificationFailure("the JWS signature does not verify with its certificate")
        if headers.get("cty") != NOTATION_PAYLOAD:
            raise VerificationFailure(
                f"the JWS content type is {headers.get('cty')!r}, expected {NOTATION_PAYLOAD}"
            )
        check_notation_headers(headers, now)
        document = _json(b64decode(payload, what="the JWS payload"), what="the notation payload")
        check_target_artifact(document.get("targetArtifact"), subject)
        return Proof(f"certificate {subject_name(leaf)}", origin)


def check_notation_headers(headers: dict[str, Any], now: datetime) -> None:
    """The protected header's critical list, signing scheme, signing time and expiry.

    Per the Notary Project signature spec (JWS envelope): `crit` is required and names the
    signing scheme, and the expiry and authentic signing time when present; a header named in
    `crit` that the verifier does not understand fails verification (RFC 7515 §4.1.11 too);
    an artifact is expired when now is at or past its expiry. A header not named critical is
    informational and ignored.
    """
    critical = headers.get("crit")
    if (
        not isinstance(critical, list)
        or not critical
        or not all(isinstance(name, str) for name in critical)
    ):
        raise VerificationFailure(
            "the JWS protected header has no crit list (the notation signature spec requires "
            f"one naming {SIGNING_SCHEME})"
        )
    for name in critical:
        if name in JWS_REGISTERED_HEADERS:
            raise VerificationFailure(
                f"the JWS crit list names {name}, a header registered by JWS itself, which the "
                "notation signature spec forbids"
            )
        if name not in headers:
            raise VerificationFailure(
                f"the JWS crit list names {name}, which the header does not have"
            )
        if name not in UNDERSTOOD_CRITICAL_HEADERS:
            raise VerificationFailure(
                f"the JWS marks {name} critical, which regtopo does not understand: a verifier "
                "must then refuse the signature"
            )
    for name in (SIGNING_SCHEME, EXPIRY, AUTHENTIC_SIGNING_TIME):
        if (name == SIGNING_SCHEME or name in headers) and name not in critical:
            raise VerificationFailure(
                f"the JWS header {name} is not listed in crit, as the notation signature spec "
                "requires"
            )
    scheme = headers.get(SIGNING_SCHEME)
    if scheme == SCHEME_SIGNING_AUTHORITY:
        raise VerificationFailure(
            f"the signing scheme {SCHEME_SIGNING_AUTHORITY} is not supported by regtopo (it "
            f"verifies {SCHEME_X509}, notation's default)"
        )
    if scheme != SCHEME_X509:
        raise VerificationFailure(f"unknown signing scheme {scheme!r}, expected {SCHEME_X509}")
    # The signing time is the signer's claim, not an authentic timestamp: without a timestamp
    # countersignature the certificate must be valid now (as notation verifies). The claim is
    # required by the scheme and parsed, so that an absent or malformed one is refused.
    if SIGNING_TIME not in headers:
        raise VerificationFailure(
            f"the JWS has no {SIGNING_TIME}, which the {SCHEME_X509} scheme requires"
        )
    _rfc3339(headers[SIGNING_TIME], what=SIGNING_TIME)
    if EXPIRY in headers:
        expiry = _rfc3339(headers[EXPIRY], what=EXPIRY)
        if now >= expiry:
            raise VerificationFailure(f"the signature expired at {expiry.isoformat()} ({EXPIRY})")


def check_target_artifact(target: Any, subject: Descriptor) -> None:
    """The signed `targetArtifact` must be the subject's descriptor: mediaType, digest, size.

    The spec requires all three in the signed descriptor; annotations and artifactType may be
    signed besides (user metadata) and are not compared.
    """
    signed = target if isinstance(target, dict) else {}
    digest = signed.get("digest")
    if digest != str(subject.digest):
        raise VerificationFailure(
            f"the signature is for {digest or 'no digest'}, not for the subject {subject.digest}"
        )
    wrong: list[str] = []
    media_type = signed.get("mediaType")
    if media_type != subject.media_type:
        shown = "(absent)" if media_type is None else repr(media_type)
        wrong.append(f"mediaType {shown}, not {subject.media_type!r}")
    size = signed.get("size")
    # A JSON number that is an integer; `True == 1` and `17.0 == 17` must not pass for a size.
    if type(size) is not int or size != subject.size:
        shown = "(absent)" if size is None else repr(size)
        wrong.append(f"size {shown}, not {subject.size}")
    if wrong:
        raise VerificationFailure(
            f"the signed targetArtifact does not match the subject {subject.digest}: "
            + "; ".join(wrong)
        )


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: Any, *, what: str) -> datetime:
    """An RFC 3339 date and time: with seconds and an offset (Z or ±hh:mm)."""
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        try:
            return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            pass
    raise VerificationFailure(f"the JWS {what} {value!r} is not an RFC 3339 date and time")
