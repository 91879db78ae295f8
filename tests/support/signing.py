"""Signatures the tests make themselves, in each format, and pushing them to a real registry.

Everything here follows the formats as the real tools write them (oci-brief §4, §5): cosign's
`.sig`/`.att` tag manifests with simple-signing or DSSE layers, cosign v3 bundles stored as
referrers, keyless certificates from a test CA acting as Fulcio with a test Rekor key signing
the entry timestamp, and notation JWS envelopes with an x5c chain to a test root. Distribution
2.8 has no referrers API, so referrers are listed in the `sha256-<hex>` fallback-tag index, as
ORAS and cosign do against such registries.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from tests.support.registries import Registry, _auth_headers, _upload_blob

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature"
NOTATION_PAYLOAD = "application/vnd.cncf.notary.payload.v1+json"
JWS = "application/jose+json"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    return base64.b64decode(text)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_public_key(path: Path, key: PrivateKey) -> Path:
    path.write_bytes(public_pem(key))
    return path


def sign(
    key: PrivateKey,
    data: bytes,
    *,
    raw: bool = False,
    algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    """cosign's signing: SHA-256 whatever the key (unless `algorithm`); ECDSA DER unless
    `raw` (r||s)."""
    algorithm = algorithm or hashes.SHA256()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), algorithm)
    der = key.sign(data, ec.ECDSA(algorithm))
    if not raw:
        return der
    r, s = utils.decode_dss_signature(der)
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def simple_signing_payload(digest: str, reference: str = "example.test/app") -> bytes:
    document = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def statement(digest: str, predicate_type: str, predicate: dict[str, Any]) -> bytes:
    algorithm, encoded = digest.split(":", 1)
    document = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "example.test/app", "digest": {algorithm: encoded}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(document).encode()


def pae(payload_type: str, body: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def dsse_envelope(key: PrivateKey, body: bytes) -> tuple[dict[str, Any], bytes]:
    signature = sign(key, pae(IN_TOTO, body))
    envelope = {
        "payloadType": IN_TOTO,
        "payload": b64(body),
        "signatures": [{"keyid": "", "sig": b64(signature)}],
    }
    return envelope, signature


# --- a test CA acting as Fulcio, and a test Rekor ----------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class TestCA:
    """A root CA that issues code-signing leaves: Fulcio for keyless, a root for notation."""

    common_name: str = "regtopo test root"
    key: ec.EllipticCurvePrivateKey = field(default_factory=ec_key)
    certificate: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        now = _now()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(self.common_name))
            .issuer_name(_name(self.common_name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        key: PrivateKey,
        *,
        email: str | None = None,
        oidc_issuer: str | None = None,
        subject: x509.Name | None = None,
        valid_minutes: int = 10,
    ) -> x509.Certificate:
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject or x509.Name([]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(minutes=valid_minutes))
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
        )
        if email is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True
            )
        if oidc_issuer is not None:
            text = oidc_issuer.encode()
            # Fulcio's newer extension: a DER UTF8String (tag 12).
            builder = builder.add_extension(
                x509.UnrecognizedExtension(
                    ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), bytes([12, len(text)]) + text
                ),
                critical=False,
            )
        return builder.sign(self.key, hashes.SHA256())


@dataclass
class TestRekor:
    """A transparency log's key: signs entry timestamps as Rekor does."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=ec_key)
    index: int = 1000

    @property
    def pem(self) -> bytes:
        return public_pem(self.key)

    @property
    def log_id(self) -> str:
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return sha256_hex(der)

    def promise(self, body: dict[str, Any], when: dt.datetime | None = None) -> dict[str, Any]:
        """{body, integratedTime, logIndex, logID} and its signed entry timestamp."""
        self.index += 1
        payload = {
            "body": b64(json.dumps(body).encode()),
            "integratedTime": int((when or _now()).timestamp()),
            "logIndex": self.index,
            "logID": self.log_id,
        }
        signature = sign(self.key, rfc8785.dumps(payload))
        return {"SignedEntryTimestamp": b64(signature), "Payload": payload}


def hashedrekord(signature: bytes, payload: bytes, certificate: x509.Certificate) -> dict[str, Any]:
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": sha256_hex(payload)}},
            "signature": {"content": b64(signature), "publicKey": {"content": b64(pem)}},
        },
    }


def keyless_signature_layer(
    ca: TestCA,
    rekor: TestRekor,
    digest: str,
    *,
    email: str,
    issuer: str,
    when: dt.datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A legacy keyless `.sig` layer: payload and its annotations (cert, chain, Rekor bundle)."""
    key = ec_key()
    certificate = ca.issue(key, email=email, oidc_issuer=issuer)
    payload = simple_signing_payload(digest)
    signature = sign(key, payload)
    bundle = rekor.promise(hashedrekord(signature, payload, certificate), when)
    annotations = {
        "dev.cosignproject.cosign/signature": b64(signature),
        "dev.sigstore.cosign/certificate": certificate.public_bytes(
            serialization.Encoding.PEM
        ).decode(),
        "dev.sigstore.cosign/chain": ca.pem.decode(),
        "dev.sigstore.cosign/bundle": json.dumps(bundle),
    }
    return payload, annotations


def keyless_bundle(ca: TestCA, rekor: TestRekor, digest: str, *, email: str, issuer: str) -> bytes:
    """cosign v3 `sign`: a v0.3 bundle with a DSSE envelope and one tlog entry."""
    key = ec_key()
    certificate = ca.issue(key, email=email, oidc_issuer=issuer)
    body = statement(digest, COSIGN_SIGN_PREDICATE, {})
    envelope, signature = dsse_envelope(key, body)
    entry = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "payloadHash": {"algorithm": "sha256", "value": sha256_hex(body)},
            "signatures": [
                {
                    "signature": b64(signature),
                    "verifier": b64(certificate.public_bytes(serialization.Encoding.PEM)),
                }
            ],
        },
    }
    promise = rekor.promise(entry)
    payload = promise["Payload"]
    bundle = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "certificate": {"rawBytes": b64(certificate.public_bytes(serialization.Encoding.DER))},
            "tlogEntries": [
                {
                    "logIndex": str(payload["logIndex"]),
                    "logId": {"keyId": b64(bytes.fromhex(payload["logID"]))},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": str(payload["integratedTime"]),
                    "inclusionPromise": {"signedEntryTimestamp": promise["SignedEntryTimestamp"]},
                    "canonicalizedBody": payload["body"],
                }
            ],
        },
        "dsseEnvelope": envelope,
    }
    return json.dumps(bundle).encode()


def key_bundle(key: PrivateKey, digest: str, predicate_type: str = COSIGN_SIGN_PREDICATE) -> bytes:
    """cosign v3 `sign --key`: a v0.3 bundle with a public-key hint and a DSSE envelope."""
    envelope, _ = dsse_envelope(key, statement(digest, predicate_type, {}))
    bundle = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": "test-key"}, "tlogEntries": []},
        "dsseEnvelope": envelope,
    }
    return json.dumps(bundle).encode()


def notation_jws(
    key: ec.EllipticCurvePrivateKey,
    chain: list[x509.Certificate],
    subject: dict[str, Any],
    *,
    headers: dict[str, Any] | None = None,
) -> bytes:
    """A notation JWS envelope over `targetArtifact` = the subject descriptor (ES256).

    The protected header is notation's for the `notary.x509` scheme; `headers` changes it before
    signing (a value of None removes that header), to make envelopes that break the spec.
    """
    protected: dict[str, Any] = {
        "alg": "ES256",
        "crit": ["io.cncf.notary.signingScheme"],
        "cty": NOTATION_PAYLOAD,
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": _now().isoformat(timespec="seconds"),
    }
    for name, value in (headers or {}).items():
        if value is None:
            protected.pop(name, None)
        else:
            protected[name] = value
    protected_b64 = b64url(json.dumps(protected).encode())
    payload_b64 = b64url(json.dumps({"targetArtifact": subject}).encode())
    # The hash the header's `alg` names, so an envelope may name another algorithm than the
    # key's and still verify as a signature (an algorithm-substitution envelope).
    hashed = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}
    signature = sign(
        key,
        f"{protected_b64}.{payload_b64}".encode(),
        raw=True,
        algorithm=hashed.get(str(protected["alg"]), hashes.SHA256()),
    )
    envelope = {
        "payload": payload_b64,
        "protected": protected_b64,
        "header": {
            "x5c": [b64(c.public_bytes(serialization.Encoding.DER)) for c in chain],
            "io.cncf.notary.signingAgent": "regtopo-tests",
        },
        "signature": b64url(signature),
    }
    return json.dumps(envelope).encode()


# --- pushing to a real registry ----------------------------------------------------------------


class Pusher:
    """Pushes blobs and manifests to one repository with plain httpx."""

    def __init__(self, registry: Registry, repository: str) -> None:
        self.registry = registry
        self.repository = repository
        self.client = httpx.Client(timeout=30)
        self.client.headers.update(_auth_headers(self.client, registry, repository))

    def __enter__(self) -> Pusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def blob(
        self, data: bytes, media_type: str, annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        digest = _upload_blob(self.client, self.registry.url, self.repository, data)
        descriptor: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if annotations:
            descriptor["annotations"] = annotations
        return descriptor

    def manifest(self, document: dict[str, Any], reference: str | None = None) -> dict[str, Any]:
        body = json.dumps(document).encode()
        digest = "sha256:" + sha256_hex(body)
        media_type = document["mediaType"]
        response = self.client.put(
            f"{self.registry.url}/v2/{self.repository}/manifests/{reference or digest}",
            content=body,
            headers={"Content-Type": media_type},
        )
        response.raise_for_status()
        descriptor: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(body)}
        if document.get("artifactType"):
            descriptor["artifactType"] = document["artifactType"]
        return descriptor

    def descriptor(self, reference: str) -> dict[str, Any]:
        response = self.client.get(
            f"{self.registry.url}/v2/{self.repository}/manifests/{reference}",
            headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
        )
        response.raise_for_status()
        return {
            "mediaType": response.headers["content-type"].split(";")[0],
            "digest": "sha256:" + sha256_hex(response.content),
            "size": len(response.content),
        }

    def cosign_tag(
        self,
        digest: str,
        suffix: str,
        layers: list[tuple[bytes, str, dict[str, str]]],
        *,
        docker_media_types: bool = False,
    ) -> dict[str, Any]:
        """A cosign `sha256-<hex>.<suffix>` manifest with one layer per (blob, type, annotations).

        `docker_media_types` writes it as cosign does with `COSIGN_DOCKER_MEDIA_TYPES` set.
        """
        config = json.dumps(
            {
                "architecture": "",
                "os": "",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
            }
        ).encode()
        manifest_type, config_type = (
            (DOCKER_MANIFEST, DOCKER_CONFIG) if docker_media_types else (OCI_MANIFEST, OCI_CONFIG)
        )
        document = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": self.blob(config, config_type),
            "layers": [self.blob(data, kind, notes) for data, kind, notes in layers],
        }
        tag = digest.replace(":", "-") + "." + suffix
        return self.manifest(document, tag)

    def referrer(
        self,
        subject: dict[str, Any],
        artifact_type: str,
        layers: list[tuple[bytes, str]],
        annotations: dict[str, str] | None = None,
        *,
        bare_fallback_entry: bool = False,
    ) -> dict[str, Any]:
        """An artifact with `subject`, pushed by digest and listed in the fallback-tag index.

        `bare_fallback_entry` lists it without artifactType and annotations, as cosign through
        go-containerregistry did (case C28).
        """
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": self.blob(b"{}", OCI_EMPTY),
            "layers": [self.blob(data, kind) for data, kind in layers],
            "subject": subject,
        }
        if annotations:
            document["annotations"] = annotations
        descriptor = self.manifest(document)
        if annotations:
            descriptor["annotations"] = annotations
        if bare_fallback_entry:
            entry = {k: descriptor[k] for k in ("mediaType", "digest", "size")}
        else:
            entry = descriptor
        self._list_in_fallback(subject["digest"], entry)
        return descriptor

    def _list_in_fallback(self, subject_digest: str, descriptor: dict[str, Any]) -> None:
        tag = subject_digest.replace(":", "-")
        response = self.client.get(
            f"{self.registry.url}/v2/{self.repository}/manifests/{tag}",
            headers={"Accept": OCI_INDEX},
        )
        if response.status_code == 200:
            index = response.json()
        else:
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        index["manifests"].append(descriptor)
        self.manifest(index, tag)


# --- material the sigstore package accepts: SCTs, inclusion proofs, a trusted_root.json ---------


@dataclass
class TestCTLog:
    """A certificate-transparency log's key: signs the SCT Fulcio embeds in its certificates."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=ec_key)

    @property
    def log_id(self) -> bytes:
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).digest()


def _sct_extension(sct: bytes) -> x509.UnrecognizedExtension:
    listed = len(sct).to_bytes(2, "big") + sct
    tls_list = len(listed).to_bytes(2, "big") + listed
    octets = bytes([0x04]) + _der_length(len(tls_list)) + tls_list
    return x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2"), octets)


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def fulcio_certificate(
    ca: TestCA, ct: TestCTLog, key: PrivateKey, *, email: str, issuer: str
) -> x509.Certificate:
    """A leaf as Fulcio issues it: identity, issuer, code signing, and an embedded SCT.

    The SCT signs the precertificate (the certificate without its SCT extension), so the
    leaf is built twice with the same fields: once to learn those bytes, once with the SCT.
    """
    now = _now()
    serial = x509.random_serial_number()
    text = issuer.encode()

    def build(sct_extension: x509.UnrecognizedExtension) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(ca.certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(minutes=10))
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.UnrecognizedExtension(
                    ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), bytes([12, len(text)]) + text
                ),
                critical=False,
            )
            .add_extension(sct_extension, critical=False)
            .sign(ca.key, hashes.SHA256())
        )

    placeholder = build(_sct_extension(b"\x00" * 100))
    timestamp = int(now.timestamp() * 1000)
    tbs = placeholder.tbs_precertificate_bytes
    issuer_key_id = hashlib.sha256(
        ca.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).digest()
    signed = (
        bytes([0, 0])
        + timestamp.to_bytes(8, "big")
        + (1).to_bytes(2, "big")
        + issuer_key_id
        + len(tbs).to_bytes(3, "big")
        + tbs
        + (0).to_bytes(2, "big")
    )
    signature = sign(ct.key, signed)
    sct = (
        bytes([0])
        + ct.log_id
        + timestamp.to_bytes(8, "big")
        + (0).to_bytes(2, "big")
        + bytes([4, 3])
        + len(signature).to_bytes(2, "big")
        + signature
    )
    return build(_sct_extension(sct))


def checkpoint(rekor: TestRekor, root_hash: bytes, tree_size: int) -> str:
    """A signed note as Rekor writes its checkpoints, signed by `rekor`'s key."""
    origin = "rekor.test - 1"
    note = f"{origin}\n{tree_size}\n{b64(root_hash)}\n"
    key_hint = bytes.fromhex(rekor.log_id)[:4]
    signature = sign(rekor.key, note.encode())
    return f"{note}\n\u2014 rekor.test {b64(key_hint + signature)}\n"


def sigstore_bundle(
    ca: TestCA, rekor: TestRekor, ct: TestCTLog, digest: str, *, email: str, issuer: str
) -> bytes:
    """A v0.3 bundle as cosign v3 writes it, with the inclusion proof sigstore demands."""
    key = ec_key()
    certificate = fulcio_certificate(ca, ct, key, email=email, issuer=issuer)
    body = statement(digest, COSIGN_SIGN_PREDICATE, {})
    envelope, signature = dsse_envelope(key, body)
    entry = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": sha256_hex(json.dumps(envelope).encode()),
            },
            "payloadHash": {"algorithm": "sha256", "value": sha256_hex(body)},
            "signatures": [
                {
                    "signature": b64(signature),
                    "verifier": b64(certificate.public_bytes(serialization.Encoding.PEM)),
                }
            ],
        },
    }
    promise = rekor.promise(entry)
    payload = promise["Payload"]
    # A tree of one entry: the root is the leaf hash, the proof has no hashes.
    leaf_hash = hashlib.sha256(b"\x00" + base64.b64decode(payload["body"])).digest()
    bundle = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "certificate": {"rawBytes": b64(certificate.public_bytes(serialization.Encoding.DER))},
            "tlogEntries": [
                {
                    "logIndex": str(payload["logIndex"]),
                    "logId": {"keyId": b64(bytes.fromhex(payload["logID"]))},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": str(payload["integratedTime"]),
                    "inclusionPromise": {"signedEntryTimestamp": promise["SignedEntryTimestamp"]},
                    "inclusionProof": {
                        "logIndex": "0",
                        "rootHash": b64(leaf_hash),
                        "treeSize": "1",
                        "hashes": [],
                        "checkpoint": {"envelope": checkpoint(rekor, leaf_hash, 1)},
                    },
                    "canonicalizedBody": payload["body"],
                }
            ],
        },
        "dsseEnvelope": envelope,
    }
    return json.dumps(bundle).encode()


def trusted_root(ca: TestCA, rekor: TestRekor, ct: TestCTLog) -> bytes:
    """A Sigstore trusted_root.json naming the test Fulcio, Rekor and CT log."""

    def log(url: str, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "baseUrl": url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": b64(der),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            },
            "logId": {"keyId": b64(hashlib.sha256(der).digest())},
        }

    document = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [log("https://rekor.test", rekor.key)],
        "certificateAuthorities": [
            {
                "subject": {"organization": "regtopo tests", "commonName": ca.common_name},
                "uri": "https://fulcio.test",
                "certChain": {
                    "certificates": [
                        {"rawBytes": b64(ca.certificate.public_bytes(serialization.Encoding.DER))}
                    ]
                },
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }
        ],
        "ctlogs": [log("https://ct.test", ct.key)],
        "timestampAuthorities": [],
    }
    return json.dumps(document).encode()
