"""A Kyverno `verifyImages` ClusterPolicy from the topology's signing policies.

Each replication with `verify` becomes one rule per policy, matching the images of its target
repositories, so that admission demands the same signers regtopo demanded before copying.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from regtopo.errors import RegtopoError
from regtopo.topology.models import PolicySpec, Topology

log = logging.getLogger(__name__)

PREDICATES = {
    "cyclonedx": "https://cyclonedx.org/bom",
    "spdx": "https://spdx.dev/Document",
}
SLSA_V1 = "https://slsa.dev/provenance/v1"


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
    block: str = LiteralScalarString("\n".join(texts) + "\n")
    return block


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
        roots = _pem(base_dir, spec.roots, "Fulcio root")
        rekor = _pem(base_dir, spec.rekor_keys, "Rekor key")
        entries = []
        for identity in spec.identities:
            keyless: dict[str, Any] = {"issuer": spec.issuer}
            if identity.subject is not None:
                keyless["subject"] = identity.subject
            else:
                keyless["subjectRegExp"] = identity.subject_regex
            keyless["roots"] = roots
            keyless["rekor"] = {"pubkey": rekor}
            entries.append({"keyless": keyless})
    else:
        entries = [{"certificates": {"cert": _pem(base_dir, spec.roots, "trust store")}}]
    return [{"count": 1, "entries": entries}]


def _attestations(spec: PolicySpec, attestors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    requirements = spec.requirements
    if requirements.sbom is not None:
        out.append({"type": PREDICATES[requirements.sbom.format], "attestors": attestors})
    if requirements.provenance is not None:
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
            verify: dict[str, Any] = {
                "imageReferences": references,
                "failureAction": "Enforce" if replication.enforce == "block" else "Audit",
                "mutateDigest": True,
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
