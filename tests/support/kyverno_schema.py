"""A SUBSET JSON Schema of Kyverno's `ClusterPolicy` (kyverno.io/v1), for `verifyImages` rules.

Written for regtopo's tests from the Kyverno API types (`api/kyverno/v1`: Spec, Rule,
ImageVerification, AttestorSet, Attestor, StaticKeyAttestor, CertificateAttestor,
KeylessAttestor, Rekor, CTLog, Attestation) and Kyverno's verifyImages documentation. It is not
Kyverno's CRD schema: it covers only the fields `regtopo export kyverno` writes, refuses any
other (`additionalProperties: false`), and adds the checks Kyverno makes in Go when a policy is
admitted (ImageVerification.Validate and friends), which a CRD schema alone does not:

- an attestor entry holds exactly one of keys, certificates, keyless (or a nested attestor);
- `keys` needs publicKeys (or kms, or a secret); `certificates` needs cert or certChain;
- `keyless` needs `roots` or `rekor`, and a `rekor` needs a `url`;
- `type: Notary` admits neither keys nor keyless attestors;
- `mutateDigest` must be false when `failureAction` is Audit.

Two checks are ours, stricter than Kyverno's: PEM fields must hold PEM blocks (an empty or
whitespace-only block would be accepted by the schema above and then fail, or be ignored, at
admission), and an attestor set's `count` is checked against its entries in
:func:`validate_cluster_policy`.
"""

from __future__ import annotations

from typing import Any

import jsonschema

_CERTIFICATES_PEM = {"type": "string", "pattern": r"-----BEGIN CERTIFICATE-----"}
_PUBLIC_KEY_PEM = {"type": "string", "pattern": r"-----BEGIN PUBLIC KEY-----"}

_REKOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "url": {"type": "string", "minLength": 1},
        "pubkey": _PUBLIC_KEY_PEM,
        "ignoreTlog": {"type": "boolean"},
    },
}

_CTLOG = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "ignoreSCT": {"type": "boolean"},
        "pubkey": _PUBLIC_KEY_PEM,
        "tsaCertChain": _CERTIFICATES_PEM,
    },
}

_KEYS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "publicKeys": _PUBLIC_KEY_PEM,
        "signatureAlgorithm": {"enum": ["sha224", "sha256", "sha384", "sha512"]},
        "kms": {"type": "string", "minLength": 1},
        "secret": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}},
        },
        "rekor": _REKOR,
        "ctlog": _CTLOG,
    },
    "anyOf": [{"required": ["publicKeys"]}, {"required": ["kms"]}, {"required": ["secret"]}],
}

_CERTIFICATES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "cert": _CERTIFICATES_PEM,
        "certChain": _CERTIFICATES_PEM,
        "rekor": _REKOR,
        "ctlog": _CTLOG,
    },
    "anyOf": [{"required": ["cert"]}, {"required": ["certChain"]}],
}

_KEYLESS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "issuer": {"type": "string", "minLength": 1},
        "issuerRegExp": {"type": "string", "minLength": 1},
        "subject": {"type": "string", "minLength": 1},
        "subjectRegExp": {"type": "string", "minLength": 1},
        "roots": _CERTIFICATES_PEM,
        "rekor": {**_REKOR, "required": ["url"]},
        "ctlog": _CTLOG,
        "additionalExtensions": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "anyOf": [{"required": ["roots"]}, {"required": ["rekor"]}],
}

_ATTESTOR_KINDS = ["keys", "certificates", "keyless", "attestor"]

_ATTESTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "keys": _KEYS,
        "certificates": _CERTIFICATES,
        "keyless": _KEYLESS,
        "attestor": {"type": "object"},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "repository": {"type": "string"},
        "signatureAlgorithm": {"enum": ["sha224", "sha256", "sha384", "sha512"]},
    },
    "oneOf": [{"required": [kind]} for kind in _ATTESTOR_KINDS],
}

_ATTESTOR_SET = {
    "type": "object",
    "additionalProperties": False,
    "required": ["entries"],
    "properties": {
        "count": {"type": "integer", "minimum": 1},
        "entries": {"type": "array", "minItems": 1, "items": _ATTESTOR},
    },
}

_CONDITION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["key", "operator"],
    "properties": {
        "key": {},
        "operator": {"type": "string"},
        "value": {},
        "message": {"type": "string"},
    },
}

_ATTESTATION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "type": {"type": "string", "minLength": 1},
        "predicateType": {"type": "string", "minLength": 1},
        "attestors": {"type": "array", "items": _ATTESTOR_SET},
        "conditions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "all": {"type": "array", "items": _CONDITION},
                    "any": {"type": "array", "items": _CONDITION},
                },
            },
        },
    },
    "anyOf": [{"required": ["type"]}, {"required": ["predicateType"]}],
}

_VERIFY_IMAGES = {
    "type": "object",
    "additionalProperties": False,
    "required": ["imageReferences"],
    "properties": {
        "failureAction": {"enum": ["Audit", "Enforce"]},
        "type": {"enum": ["Cosign", "SigstoreBundle", "Notary"]},
        "imageReferences": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "minLength": 1},
        },
        "skipImageReferences": {"type": "array", "items": {"type": "string"}},
        "attestors": {"type": "array", "items": _ATTESTOR_SET},
        "attestations": {"type": "array", "items": _ATTESTATION},
        "repository": {"type": "string"},
        "mutateDigest": {"type": "boolean"},
        "verifyDigest": {"type": "boolean"},
        "required": {"type": "boolean"},
        "useCache": {"type": "boolean"},
    },
    "allOf": [
        {
            # Kyverno: "mutateDigest must be set to false for 'Audit' failure action".
            "if": {
                "required": ["failureAction"],
                "properties": {"failureAction": {"const": "Audit"}},
            },
            "then": {
                "properties": {"mutateDigest": {"const": False}},
                "required": ["mutateDigest"],
            },
        },
        {
            # Kyverno: "Keyless field is not allowed for type notary" (and Keys likewise).
            "if": {"required": ["type"], "properties": {"type": {"const": "Notary"}}},
            "then": {
                "properties": {
                    "attestors": {
                        "items": {
                            "properties": {
                                "entries": {
                                    "items": {
                                        "not": {
                                            "anyOf": [
                                                {"required": ["keys"]},
                                                {"required": ["keyless"]},
                                            ]
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            },
        },
    ],
}

_RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "match", "verifyImages"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 63},
        "match": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "any": {"type": "array", "items": {"type": "object"}},
                "all": {"type": "array", "items": {"type": "object"}},
            },
        },
        "verifyImages": {"type": "array", "minItems": 1, "items": _VERIFY_IMAGES},
    },
}

CLUSTER_POLICY_SUBSET: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Kyverno ClusterPolicy, verifyImages subset (regtopo tests; not Kyverno's schema)",
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "kyverno.io/v1"},
        "kind": {"const": "ClusterPolicy"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["rules"],
            "properties": {
                "background": {"type": "boolean"},
                "webhookConfiguration": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "failurePolicy": {"enum": ["Ignore", "Fail"]},
                        "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 30},
                    },
                },
                "rules": {"type": "array", "minItems": 1, "items": _RULE},
            },
        },
    },
}


def _attestor_sets(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for r, rule in enumerate(document["spec"]["rules"]):
        for v, verify in enumerate(rule["verifyImages"]):
            for a, attestors in enumerate(verify.get("attestors", [])):
                found.append((f"rules[{r}].verifyImages[{v}].attestors[{a}]", attestors))
            for t, attestation in enumerate(verify.get("attestations", [])):
                for a, attestors in enumerate(attestation.get("attestors", [])):
                    where = f"rules[{r}].verifyImages[{v}].attestations[{t}].attestors[{a}]"
                    found.append((where, attestors))
    return found


def validate_cluster_policy(document: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError (or AssertionError) where the document breaks the subset."""
    jsonschema.Draft202012Validator(CLUSTER_POLICY_SUBSET).validate(document)
    for where, attestors in _attestor_sets(document):
        count = attestors.get("count")
        # Kyverno: "Count cannot exceed length of entries".
        assert count is None or count <= len(attestors["entries"]), f"{where}: count > entries"
