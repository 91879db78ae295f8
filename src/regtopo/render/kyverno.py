"""A Kyverno `verifyImages` ClusterPolicy from the topology's signing policies.

Each replication with `verify` becomes one rule per policy, matching the images of its target
repositories, so that admission demands the same signers regtopo demanded before copying.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from regtopo.errors import RegtopoError
from regtopo.plan.signing.crypto import VerificationFailure
from regtopo.plan.signing.verifiers import read_trusted_root
from regtopo.topology.models import PolicySpec, Topology

log = logging.getLogger(__name__)

PREDICATES = {
    "cyclonedx": "https://cyclonedx.org/bom",
    "spdx": "https://spdx.dev/Document",
}
# Kyverno's Notary mode matches an attestation by the referrer's artifact type, exactly: the
# media types the SBOM tools push (regtopo itself accepts any type with the format's prefix).
NOTARY_SBOM_ARTIFACT_TYPES = {
    "cyclonedx": "application/vnd.cyclonedx+json",
    "spdx": "application/spdx+json",
}
SLSA_V1 = "https://slsa.dev/provenance/v1"
# Kyverno refuses a keyless attestor whose `rekor` has no `url`; this is its documented default.
# With `pubkey` set, the Rekor bundle stored with the signature is checked against that key.
DEFAULT_REKOR_URL = "https://rekor.sigstore.dev"


def _literal(texts: list[str]) -> str:
    block: str = LiteralScalarString("\n".join(t.strip() for t in texts) + "\n")
    return block


def _pem(base_dir: Path, names: list[str], what: str) -> str:
    """The PEM files' text, as a YAML literal block."""
    texts = []
    for name in names:
        path = Path(name) if Path(name).is_absolute() else base_dir / name
        try:
            texts.append(path.read_text(encoding="ascii").strip())
        except (OSError, UnicodeDecodeError) as err:
            raise RegtopoError(
                f"exporting the Kyverno policy: reading {what} {name}: {err}"
            ) from err
    return _literal(texts)


def _trusted_root(spec: PolicySpec, base_dir: Path) -> tuple[list[str], list[str], str | None]:
    """The Fulcio certificates and Rekor keys (PEM) of the policy's trusted_root.json."""
    assert spec.trusted_root is not None
    path = Path(spec.trusted_root)
    path = path if path.is_absolute() else base_dir / path
    try:
        certificates, keys = read_trusted_root(path)
        logs = json.loads(path.read_bytes()).get("tlogs") or []
    except (VerificationFailure, OSError, ValueError) as err:
        reason = err.reason if isinstance(err, VerificationFailure) else str(err)
        raise RegtopoError(f"exporting the Kyverno policy: policy {spec.name}: {reason}") from err
    roots = [c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certificates]
    pems = [
        k.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
        for k in keys
    ]
    url = logs[0].get("baseUrl") if logs and isinstance(logs[0], dict) else None
    return roots, pems, url


def _host(topology: Topology, registry: str) -> str | None:
    spec = topology.registries[registry]
    if spec.host is None:
        return None
    return spec.host.removeprefix("http://").removeprefix("https://").rstrip("/")


def _attestors(spec: PolicySpec, base_dir: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]]
    if spec.kind == "cosign-key":
        # regtopo checks key-based signatures without a transparency log; so does this rule.
        entries = [
            {
                "keys": {
                    "publicKeys": _pem(base_dir, [key], "public key"),
                    "rekor": {"ignoreTlog": True},
                    "ctlog": {"ignoreSCT": True},
                }
            }
            for key in spec.keys
        ]
    elif spec.kind == "cosign-keyless":
        root_pems: list[str] = []
        rekor_pems: list[str] = []
        rekor_url = None
        if spec.trusted_root is not None:
            root_pems, rekor_pems, rekor_url = _trusted_root(spec, base_dir)
        if spec.roots:
            root_pems.append(_pem(base_dir, spec.roots, "Fulcio root"))
        if spec.rekor_keys:
            rekor_pems.append(_pem(base_dir, spec.rekor_keys, "Rekor key"))
        if len(rekor_pems) > 1:
            # Kyverno takes one Rekor key per attestor; the first is kept (stricter, not weaker).
            log.warning(
                "policy %s: Kyverno takes one Rekor public key per attestor; only the first of "
                "%d is exported, so signatures logged under the others are refused at admission",
                spec.name,
                len(rekor_pems),
            )
        roots = _literal(root_pems)
        rekor = _literal(rekor_pems[:1])
        entries = []
        for identity in spec.identities:
            keyless: dict[str, Any] = {"issuer": spec.issuer}
            if identity.subject is not None:
                keyless["subject"] = identity.subject
            else:
                # regtopo matches the whole identity; Kyverno (cosign) searches the pattern in
                # it, so anchor it: otherwise any SAN merely containing a match would pass.
                keyless["subjectRegExp"] = f"^(?:{identity.subject_regex})$"
            keyless["roots"] = roots
            keyless["rekor"] = {"url": rekor_url or DEFAULT_REKOR_URL, "pubkey": rekor}
            entries.append({"keyless": keyless})
    else:
        if spec.identities:
            # Kyverno's Notary verifier trusts every identity ("*") under the trust store.
            wanted = ", ".join(
                f"subject {i.subject}" if i.subject is not None else f"subject /{i.subject_regex}/"
                for i in spec.identities
            )
            log.warning(
                "policy %s: Kyverno's Notary verification has no signer identity constraint; "
                "admission accepts any signature chaining to the trust store, not only %s",
                spec.name,
                wanted,
            )
        entries = [{"certificates": {"cert": _pem(base_dir, spec.roots, "trust store")}}]
    return [{"count": 1, "entries": entries}]


def _attestations(spec: PolicySpec, attestors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    requirements = spec.requirements
    if requirements.sbom is not None:
        if spec.kind == "notation":
            kind = NOTARY_SBOM_ARTIFACT_TYPES[requirements.sbom.format]
        else:
            kind = PREDICATES[requirements.sbom.format]
        out.append({"type": kind, "attestors": attestors})
    if requirements.provenance is not None and spec.kind == "notation":
        log.warning(
            "policy %s: Kyverno's Notary mode finds attestations by the referrer's artifact "
            "type; regtopo's notation provenance is a signed in-toto statement, so the "
            "provenance requirement is not exported and admission does not check it",
            spec.name,
        )
    elif requirements.provenance is not None:
        attestation: dict[str, Any] = {"type": SLSA_V1, "attestors": attestors}
        builder = requirements.provenance.builder
        if builder is not None:
            attestation["conditions"] = [
                {
                    "all": [
                        {
                            "key": "{{ runDetails.builder.id }}",
                            "operator": "Equals",
                            "value": builder,
                        }
                    ]
                }
            ]
        elif requirements.provenance.builder_regex is not None:
            log.warning(
                "policy %s: Kyverno conditions have no regular expressions; the provenance "
                "attestation is required without a builder condition",
                spec.name,
            )
        out.append(attestation)
    return out


def kyverno_policy(
    topology: Topology, base_dir: Path, name: str = "regtopo-signing"
) -> dict[str, Any]:
    policies = {p.name: p for p in (topology.signing.policies if topology.signing else [])}
    rules: list[dict[str, Any]] = []
    for index, replication in enumerate(topology.replications):
        if not replication.verify:
            continue
        references: list[str] = []
        for target in replication.targets:
            host = _host(topology, target.registry)
            if host is None:
                log.info("%s is an OCI layout: nothing is admitted from it", target)
                continue
            references.append(f"{host}/{target.repository}:*")
            references.append(f"{host}/{target.repository}@*")
        if not references:
            continue
        for policy_name in replication.verify:
            spec = policies[policy_name]
            attestors = _attestors(spec, base_dir)
            enforce = replication.enforce == "block"
            verify: dict[str, Any] = {
                "imageReferences": references,
                "failureAction": "Enforce" if enforce else "Audit",
                # Kyverno refuses a rule that rewrites images while it only audits.
                "mutateDigest": enforce,
                "verifyDigest": True,
                "required": True,
            }
            if spec.kind == "notation":
                verify["type"] = "Notary"
            verify["attestors"] = attestors
            attestations = _attestations(spec, attestors)
            if attestations:
                verify["attestations"] = attestations
            label = (replication.name or f"replication-{index + 1}").lower()
            rules.append(
                {
                    "name": f"{label}-{spec.name}".lower()[:63],
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [verify],
                }
            )
    if not rules:
        raise RegtopoError(
            "exporting the Kyverno policy: no replication to a registry host names a policy "
            "under 'verify'",
            hint="add `verify: [POLICY]` to a replication whose targets are registries",
        )
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": name,
            "annotations": {
                "policies.kyverno.io/title": "Signatures required by the regtopo topology",
                "policies.kyverno.io/description": "Generated by `regtopo export kyverno`; "
                "edit the topology and export again instead of editing this file.",
            },
        },
        "spec": {
            "background": False,
            "webhookConfiguration": {"failurePolicy": "Fail", "timeoutSeconds": 30},
            "rules": rules,
        },
    }


def dump_yaml(document: dict[str, Any]) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()
