"""Verification primitives on `cryptography`: keys, signatures, certificate chains, Rekor SETs.

Nothing here reads a registry. Every failure is a `VerificationFailure` whose message says what
did not hold, in words a plan can show.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

# Fulcio's certificate extensions [sigstore-python `policy.py`].
OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OTHERNAME_IDENTITY = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")


class VerificationFailure(Exception):
    """A signature, certificate or statement that does not prove what it must."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class NamedKey:
    """A public key and the file it came from (keys are named by file in every message)."""

    name: str
    key: PublicKey

    @property
    def description(self) -> str:
        return f"{self.name} ({describe_key(self.key)})"


def describe_key(key: PublicKey) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    return "Ed25519"


def load_public_key(pem: bytes, *, name: str) -> NamedKey:
    """A PEM `PUBLIC KEY` (SubjectPublicKeyInfo): ECDSA, RSA or Ed25519."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as err:
        raise VerificationFailure(f"reading public key {name}: not a PEM public key") from err
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise VerificationFailure(
            f"reading public key {name}: {type(key).__name__} keys are not supported"
        )
    return NamedKey(name, key)


def b64decode(value: str, *, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not."""
    text = value.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as err:
        raise VerificationFailure(f"{what} is not base64") from err


def verify_signature(
    key: PublicKey,
    signature: bytes,
    data: bytes,
    *,
    algorithm: hashes.HashAlgorithm | None = None,
    pss: bool = False,
) -> bool:
    """Whether `signature` over `data` verifies with `key`.

    ECDSA accepts DER and raw `r||s` (IEEE P1363, as JWS and some cosign signers write it).
    RSA is PKCS#1 v1.5 unless `pss`; the hash is SHA-256 unless `algorithm` says otherwise
    (cosign hashes with SHA-256 whatever the curve).
    """
    chosen = algorithm or hashes.SHA256()
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        elif isinstance(key, rsa.RSAPublicKey):
            scheme: padding.AsymmetricPadding = (
                padding.PSS(mgf=padding.MGF1(chosen), salt_length=chosen.digest_size)
                if pss
                else padding.PKCS1v15()
            )
            key.verify(signature, data, scheme, chosen)
        else:
            try:
                key.verify(signature, data, ec.ECDSA(chosen))
            except InvalidSignature:
                raw = _raw_to_der(key, signature)
                if raw is None:
                    raise
                key.verify(raw, data, ec.ECDSA(chosen))
        return True
    except InvalidSignature:
        return False


def _raw_to_der(key: ec.EllipticCurvePublicKey, signature: bytes) -> bytes | None:
    size = (key.curve.key_size + 7) // 8
    if len(signature) != 2 * size:
        return None
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    return utils.encode_dss_signature(r, s)


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE pre-authentication encoding: what a DSSE signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON (what a Rekor signed entry timestamp covers)."""
    return rfc8785.dumps(value)


def load_certificates(pem: bytes, *, name: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError as err:
        raise VerificationFailure(f"reading certificates {name}: no PEM certificate") from err
    return certificates


def load_der_certificate(der: bytes, *, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as err:
        raise VerificationFailure(f"{what} is not a DER certificate") from err


def certificate_key(certificate: x509.Certificate, *, what: str) -> PublicKey:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise VerificationFailure(f"{what} has an unsupported {type(key).__name__} key")
    return key


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    at: datetime | None,
    code_signing: bool,
) -> list[x509.Certificate]:
    """The path from `leaf` to one of `roots`, each link's signature checked.

    Validity times are checked for the leaf only, at `at` (the signing time), as cosign does:
    a short-lived Fulcio certificate expires minutes after signing. Every issuer must be a CA.
    """
    if at is not None and not (leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc):
        raise VerificationFailure(
            f"the certificate was not valid at the signing time {at.isoformat()} "
            f"(valid {leaf.not_valid_before_utc.isoformat()} to "
            f"{leaf.not_valid_after_utc.isoformat()})"
        )
    if code_signing:
        _require_code_signing(leaf)

    trusted = {fingerprint(root) for root in roots}
    path = [leaf]
    current = leaf
    for _ in range(len(intermediates) + 2):
        if fingerprint(current) in trusted:
            return path
        issuer = _find_issuer(current, [*roots, *intermediates])
        if issuer is None:
            raise VerificationFailure(
                f"the certificate chain of {_subject(leaf)} does not lead to a trusted root "
                f"(no trusted issuer for {_subject(current)})"
            )
        _require_ca(issuer)
        path.append(issuer)
        if fingerprint(issuer) in trusted:
            return path
        current = issuer
    raise VerificationFailure(f"the certificate chain of {_subject(leaf)} is too long or loops")


def _find_issuer(
    certificate: x509.Certificate, candidates: Iterable[x509.Certificate]
) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject != certificate.issuer or candidate == certificate:
            continue
        try:
            certificate.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def _require_ca(certificate: x509.Certificate) -> None:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.value.ca:
        raise VerificationFailure(f"{_subject(certificate)} issues certificates but is not a CA")


def _require_code_signing(certificate: x509.Certificate) -> None:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            raise VerificationFailure("the certificate's key usage lacks digitalSignature")
    except x509.ExtensionNotFound:
        pass
    try:
        extended = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as err:
        raise VerificationFailure("the certificate has no extended key usage codeSigning") from err
    if ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise VerificationFailure("the certificate's extended key usage lacks codeSigning")


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


def subject_name(certificate: x509.Certificate) -> str:
    return _subject(certificate)


def certificate_identities(certificate: x509.Certificate) -> list[str]:
    """The identities Fulcio writes into a certificate: SAN email, URI, or Sigstore other-name."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    found: list[str] = [*names.get_values_for_type(x509.RFC822Name)]
    found += names.get_values_for_type(x509.UniformResourceIdentifier)
    for other in names.get_values_for_type(x509.OtherName):
        if other.type_id == OTHERNAME_IDENTITY:
            found.append(_der_utf8(other.value))
    return found


def certificate_issuer(certificate: x509.Certificate) -> str | None:
    """The OIDC issuer: the newer DER-encoded extension, else the older raw-string one."""
    for oid, der in ((OIDC_ISSUER_V2, True), (OIDC_ISSUER_V1, False)):
        try:
            extension = certificate.extensions.get_extension_for_oid(oid)
        except x509.ExtensionNotFound:
            continue
        value = extension.value
        raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
        return _der_utf8(raw) if der else raw.decode("utf-8", "replace")
    return None


def _der_utf8(raw: bytes) -> str:
    """The text of a DER UTF8String (tag 12), or the bytes as text when not one."""
    if len(raw) >= 2 and raw[0] == 0x0C:
        length = raw[1]
        offset = 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(raw[2 : 2 + count], "big")
            offset = 2 + count
        return raw[offset : offset + length].decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def log_id(key: PublicKey) -> str:
    """A transparency log's id: hex SHA-256 of its DER public key."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class LogEntry:
    """A transparency-log entry with its signed entry timestamp (the log's promise)."""

    body: str  # base64 of the canonicalized entry
    integrated_time: int
    log_index: int
    log_id: str  # hex
    signed_entry_timestamp: bytes

    @property
    def integrated_at(self) -> datetime:
        return datetime.fromtimestamp(self.integrated_time, UTC)

    def verify(self, rekor_keys: Sequence[NamedKey]) -> NamedKey:
        """Check the SET with the Rekor key whose log id matches; return that key."""
        for rekor in rekor_keys:
            if log_id(rekor.key) != self.log_id:
                continue
            payload = canonical_json(
                {
                    "body": self.body,
                    "integratedTime": self.integrated_time,
                    "logIndex": self.log_index,
                    "logID": self.log_id,
                }
            )
            if verify_signature(rekor.key, self.signed_entry_timestamp, payload):
                return rekor
            raise VerificationFailure(
                f"the transparency-log entry's signed entry timestamp does not verify with "
                f"Rekor key {rekor.name}"
            )
        raise VerificationFailure(
            f"the transparency-log entry is from log {self.log_id[:16]}…, not from a trusted "
            "Rekor key"
        )

    def entry(self) -> dict[str, Any]:
        try:
            document = json.loads(b64decode(self.body, what="the log entry body"))
        except json.JSONDecodeError as err:
            raise VerificationFailure("the log entry body is not JSON") from err
        if not isinstance(document, dict):
            raise VerificationFailure("the log entry body is not a JSON object")
        return document


def check_hashedrekord(
    entry: dict[str, Any], *, signature: bytes, artifact: bytes, certificate_der: bytes | None
) -> None:
    """The log entry must record this signature over this artifact (cosign `compareSigs`)."""
    spec = entry.get("spec") or {}
    kind = entry.get("kind")
    if kind != "hashedrekord":
        raise VerificationFailure(f"the log entry is of kind {kind!r}, expected 'hashedrekord'")
    recorded = _get(spec, "signature", "content")
    if not isinstance(recorded, str) or b64decode(recorded, what="logged signature") != signature:
        raise VerificationFailure("the log entry records a different signature")
    value = _get(spec, "data", "hash", "value")
    if value != hashlib.sha256(artifact).hexdigest():
        raise VerificationFailure("the log entry records the hash of a different payload")
    if certificate_der is not None:
        logged = _get(spec, "signature", "publicKey", "content")
        if isinstance(logged, str):
            pem = b64decode(logged, what="logged certificate")
            try:
                logged_der = x509.load_pem_x509_certificate(pem).public_bytes(
                    serialization.Encoding.DER
                )
            except ValueError as err:
                raise VerificationFailure("the log entry's certificate is not PEM") from err
            if logged_der != certificate_der:
                raise VerificationFailure("the log entry records a different certificate")


def check_dsse_entry(entry: dict[str, Any], *, signature: bytes, payload: bytes) -> None:
    """A `dsse` (or `intoto`) log entry must record this envelope's payload hash and signature."""
    kind = entry.get("kind")
    spec = entry.get("spec") or {}
    if kind == "dsse":
        value = _get(spec, "payloadHash", "value")
        if value != hashlib.sha256(payload).hexdigest():
            raise VerificationFailure("the log entry records the hash of a different payload")
        signatures = spec.get("signatures") or []
        logged = [
            b64decode(s["signature"], what="logged signature")
            for s in signatures
            if isinstance(s, dict) and isinstance(s.get("signature"), str)
        ]
        if signature not in logged:
            raise VerificationFailure("the log entry records a different signature")
        return
    raise VerificationFailure(f"the log entry is of kind {kind!r}, expected 'dsse'")


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def matches(value: str, *, exact: str | None, pattern: str | None) -> bool:
    if exact is not None:
        return value == exact
    return pattern is not None and re.fullmatch(pattern, value) is not None
