"""Signing policies of a topology, loaded with their trust material and evaluated on a digest.

A policy holds when at least one signature by its signers verifies for the subject, and each of
its requirements (a signed SBOM, a signed SLSA provenance with a matching builder) is met.
Every result says why, in a sentence a plan can show.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509

from regtopo.errors import RegtopoError
from regtopo.oci import mediatype as mt
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.plan.signing.crypto import (
    NamedKey,
    VerificationFailure,
    load_certificates,
    load_public_key,
    matches,
)
from regtopo.plan.signing.discovery import (
    Attachment,
    Attachments,
    Carrier,
    RegistrySignatureSource,
    SignatureSource,
)
from regtopo.plan.signing.verifiers import (
    COSE,
    COSIGN_SIGN_PREDICATE,
    DSSE_ENVELOPE,
    JWS,
    CosignKeylessVerifier,
    CosignKeyVerifier,
    IdentityRule,
    NotationVerifier,
    Proof,
    check_statement,
    is_bundle,
    read_trusted_root,
)
from regtopo.registry.store import Repository
from regtopo.topology.models import PolicySpec, ReplicationSpec, Topology

log = logging.getLogger(__name__)

SLSA_PROVENANCE_PREFIX = "https://slsa.dev/provenance/"

# In-toto predicate types and artifact media types of each SBOM format (prefixes).
SBOM_FORMATS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "cyclonedx": (
        ("https://cyclonedx.org/bom",),
        ("application/vnd.cyclonedx",),
        "CycloneDX",
    ),
    "spdx": (
        ("https://spdx.dev/Document",),
        ("text/spdx", "application/spdx"),
        "SPDX",
    ),
}


class SigningPolicyError(RegtopoError):
    """A policy whose trust material cannot be read."""


class Verifier(Protocol):
    def verify(self, attachment: Attachment, subject: Descriptor) -> Proof:
        """A proof that `attachment` signs `subject`, the descriptor of the signed manifest as
        its registry serves it (notation's signed descriptor must equal it field by field)."""
        ...


@dataclass(frozen=True)
class PolicyResult:
    policy: str
    ok: bool
    reason: str

    def __str__(self) -> str:
        verdict = "satisfied" if self.ok else "not satisfied"
        return f"policy {self.policy!r} {verdict}: {self.reason}"


def _resolve(base_dir: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base_dir / path


def _read(base_dir: Path, name: str, policy: str) -> bytes:
    try:
        return _resolve(base_dir, name).read_bytes()
    except OSError as err:
        raise SigningPolicyError(
            f"loading signing policy {policy!r}: reading {name}: {err.strerror or err}"
        ) from err


class Policy:
    def __init__(self, spec: PolicySpec, verifier: Verifier) -> None:
        self.spec = spec
        self.verifier = verifier

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def load(cls, spec: PolicySpec, base_dir: Path) -> Policy:
        try:
            return cls(spec, _make_verifier(spec, base_dir))
        except VerificationFailure as err:
            raise SigningPolicyError(f"loading signing policy {spec.name!r}: {err.reason}") from err

    def is_candidate(self, item: Attachment) -> bool:
        """Whether `item` is a signature of this policy's kind (others are not its business)."""
        media_type = item.media_type
        if self.spec.kind == "notation":
            return media_type in (JWS, COSE)
        return media_type in (mt.COSIGN_SIMPLESIGNING, DSSE_ENVELOPE) or is_bundle(media_type)

    def proofs(self, found: Attachments, subject: Descriptor) -> tuple[list[Proof], list[str]]:
        proofs: list[Proof] = []
        failures: list[str] = []
        for item in found.items:
            if not self.is_candidate(item):
                continue
            try:
                proofs.append(self.verifier.verify(item, subject))
            except VerificationFailure as err:
                failures.append(f"{item.origin}: {err.reason}")
        return proofs, failures

    def evaluate(
        self, repository: Repository, subject: Descriptor, source: SignatureSource
    ) -> PolicyResult:
        """Whether the policy holds for `subject`, a manifest of `repository` (its descriptor:
        media type, digest and size, as signatures must name all three)."""
        found = source.attachments(repository, subject.digest)
        proofs, failures = self.proofs(found, subject)
        signatures = [
            p for p in proofs if p.statement is None or p.predicate_type == COSIGN_SIGN_PREDICATE
        ]
        if not signatures:
            return PolicyResult(self.name, False, self._unsigned_reason(found, failures))

        notes = [f"signed by {signatures[0].signer} ({signatures[0].origin})"]
        requirements = self.spec.requirements
        problems: list[str] = []
        if requirements.sbom is not None:
            ok, text = self._sbom(requirements.sbom.format, proofs, found, repository, source)
            (notes if ok else problems).append(text)
        if requirements.provenance is not None:
            ok, text = self._provenance(proofs, found, repository, source)
            (notes if ok else problems).append(text)
        if problems:
            return PolicyResult(self.name, False, "; ".join(problems))
        return PolicyResult(self.name, True, "; ".join(notes))

    def _unsigned_reason(self, found: Attachments, failures: Sequence[str]) -> str:
        if failures:
            return "no valid signature: " + "; ".join(failures)
        kind = "notation" if self.spec.kind == "notation" else "cosign"
        looked = f"{len(found.carriers)} attachment(s) of other kinds" if found.carriers else "none"
        return f"unsigned: no {kind} signature found for {found.subject} (attachments: {looked})"

    def _signed_carrier(
        self, repository: Repository, carrier: Carrier, source: SignatureSource
    ) -> Proof | str:
        """A signature of this policy on the carrier manifest itself (an attached artifact)."""
        found = source.attachments(repository, carrier.manifest.digest)
        proofs, failures = self.proofs(found, carrier.manifest.descriptor())
        for proof in proofs:
            if proof.statement is None or proof.predicate_type == COSIGN_SIGN_PREDICATE:
                return proof
        kind = "notation" if self.spec.kind == "notation" else "cosign"
        return "; ".join(failures) or f"it carries no {kind} signature"

    def _attached_statements(
        self, found: Attachments, repository: Repository, source: SignatureSource
    ) -> tuple[list[Proof], list[str]]:
        """In-toto statements attached as artifacts of their own, each signed separately."""
        proofs: list[Proof] = []
        problems: list[str] = []
        for item in found.items:
            if item.media_type != mt.IN_TOTO:
                continue
            signed = self._signed_carrier(repository, item.carrier, source)
            if isinstance(signed, str):
                problems.append(f"{item.origin}: {signed}")
                continue
            try:
                statement = check_statement(mt.IN_TOTO, item.content, found.subject)
            except VerificationFailure as err:
                problems.append(f"{item.origin}: {err.reason}")
                continue
            proofs.append(Proof(signed.signer, item.origin, statement))
        return proofs, problems

    def _sbom(
        self,
        format_name: str,
        proofs: list[Proof],
        found: Attachments,
        repository: Repository,
        source: SignatureSource,
    ) -> tuple[bool, str]:
        predicates, media_types, label = SBOM_FORMATS[format_name]
        attached, problems = self._attached_statements(found, repository, source)
        for proof in [*proofs, *attached]:
            if (proof.predicate_type or "").startswith(predicates):
                return True, f"{label} SBOM attestation signed by {proof.signer}"

        for item in found.items:
            artifact_type = item.artifact_type or ""
            if not (
                item.media_type.startswith(media_types) or artifact_type.startswith(media_types)
            ):
                continue
            signed = self._signed_carrier(repository, item.carrier, source)
            if isinstance(signed, Proof):
                return True, f"{label} SBOM {item.carrier.origin} signed by {signed.signer}"
            problems.append(f"{label} SBOM {item.carrier.origin}: {signed}")
        detail = f" ({'; '.join(problems)})" if problems else ""
        return False, f"no signed {label} SBOM found{detail}"

    def _provenance(
        self,
        proofs: list[Proof],
        found: Attachments,
        repository: Repository,
        source: SignatureSource,
    ) -> tuple[bool, str]:
        rule = self.spec.requirements.provenance
        assert rule is not None
        attached, problems = self._attached_statements(found, repository, source)
        for proof in [*proofs, *attached]:
            if not (proof.predicate_type or "").startswith(SLSA_PROVENANCE_PREFIX):
                continue
            builder = _builder_id(proof.statement or {})
            if rule.builder is None and rule.builder_regex is None:
                return True, f"SLSA provenance signed by {proof.signer}"
            if builder is not None and matches(
                builder, exact=rule.builder, pattern=rule.builder_regex
            ):
                return True, f"SLSA provenance from builder {builder} signed by {proof.signer}"
            wanted = rule.builder if rule.builder is not None else f"/{rule.builder_regex}/"
            problems.append(f"the provenance's builder is {builder or 'absent'}, expected {wanted}")
        detail = f" ({'; '.join(problems)})" if problems else ""
        return False, f"no signed SLSA provenance with a matching builder found{detail}"


def _builder_id(statement: dict[str, Any]) -> str | None:
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        return None
    # SLSA v0.2 keeps it under builder, v1 under runDetails.builder.
    for holder in (predicate, predicate.get("runDetails")):
        if isinstance(holder, dict) and isinstance(holder.get("builder"), dict):
            value = holder["builder"].get("id")
            if isinstance(value, str):
                return value
    return None


def _make_verifier(spec: PolicySpec, base_dir: Path) -> Verifier:
    def keys(names: list[str]) -> list[NamedKey]:
        return [load_public_key(_read(base_dir, n, spec.name), name=n) for n in names]

    def certificates(names: list[str]) -> list[x509.Certificate]:
        return [c for n in names for c in load_certificates(_read(base_dir, n, spec.name), name=n)]

    identities = [IdentityRule(i.subject, i.subject_regex) for i in spec.identities]
    if spec.kind == "cosign-key":
        return CosignKeyVerifier(keys(spec.keys))
    if spec.kind == "cosign-keyless":
        assert spec.issuer is not None
        roots, rekor = certificates(spec.roots), keys(spec.rekor_keys)
        trusted_root = None
        if spec.trusted_root is not None:
            # Bundles go through the sigstore package; `.sig` layers use the same root's
            # Fulcio certificates and Rekor keys on the manual path.
            trusted_root = _resolve(base_dir, spec.trusted_root)
            more_roots, more_keys = read_trusted_root(trusted_root)
            roots, rekor = roots + more_roots, rekor + more_keys
        return CosignKeylessVerifier(roots, rekor, identities, spec.issuer, trusted_root)
    return NotationVerifier(certificates(spec.roots), identities)


class PolicySet:
    """The topology's policies, loaded once, with results cached per subject for the run."""

    def __init__(
        self, topology: Topology, base_dir: Path, source: SignatureSource | None = None
    ) -> None:
        specs = topology.signing.policies if topology.signing else []
        self.policies = {spec.name: Policy.load(spec, base_dir) for spec in specs}
        self.source = CachingSource(source or RegistrySignatureSource())
        self._results: dict[tuple[str, str, Digest, str, int, str], PolicyResult] = {}
        self._lock = threading.Lock()

    def evaluate(
        self, replication: ReplicationSpec, repository: Repository, subject: Descriptor
    ) -> list[PolicyResult]:
        results = []
        for name in replication.verify:
            key = (
                repository.registry_id,
                repository.name,
                subject.digest,
                subject.media_type,
                subject.size,
                name,
            )
            with self._lock:
                cached = self._results.get(key)
            if cached is None:
                cached = self.policies[name].evaluate(repository, subject, self.source)
                log.info("%s@%s: %s", repository, subject.digest, cached)
                with self._lock:
                    self._results[key] = cached
            results.append(cached)
        return results

    def attachments(self, repository: Repository, digest: Digest) -> Attachments:
        return self.source.attachments(repository, digest)

    def forget(self, repository: Repository) -> None:
        """Drop what was read from `repository` (it was written to since)."""
        with self._lock:
            for key in [
                k for k in self._results if k[:2] == (repository.registry_id, repository.name)
            ]:
                del self._results[key]
        self.source.forget(repository)


class CachingSource:
    """Reads each subject's attachments once per run (manifests by digest never change)."""

    def __init__(self, inner: SignatureSource) -> None:
        self.inner = inner
        self._cache: dict[tuple[str, str, Digest], Attachments] = {}
        self._lock = threading.Lock()

    def attachments(self, repository: Repository, digest: Digest) -> Attachments:
        key = (repository.registry_id, repository.name, digest)
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            cached = self.inner.attachments(repository, digest)
            with self._lock:
                self._cache[key] = cached
        return cached

    def forget(self, repository: Repository) -> None:
        with self._lock:
            for key in [
                k for k in self._cache if k[:2] == (repository.registry_id, repository.name)
            ]:
                del self._cache[key]
        self.inner.forget(repository)
