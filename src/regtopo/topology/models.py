"""The topology file's models: registries, replications, and what flows between them.

Every field here is part of the file format users write; `regtopo schema` prints the JSON
Schema generated from these models.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from regtopo.oci.attachments import SELECTION_KINDS, Selection
from regtopo.oci.reference import is_valid_repository, is_valid_tag
from regtopo.topology.retention import RetentionSpec

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


class Model(BaseModel):
    # `x-` keys are the user's own (anchors, notes); everything else must be known.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_user_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))
            }
        return data


class CredentialsSpec(Model):
    """Credentials for a registry. Values may be `${env:NAME}`, resolved at use, never printed."""

    username: str = Field(description="user name, or `${env:NAME}`")
    password: str = Field(description="password or token, normally `${env:NAME}`")


class TLSSpec(Model):
    insecure: bool = Field(False, description="skip certificate verification (only when stated)")
    ca_bundle: str | None = Field(None, description="PEM file of CA certificates to trust")
    client_cert: str | None = Field(None, description="PEM client certificate for mutual TLS")
    client_key: str | None = Field(None, description="PEM private key of the client certificate")


class RegistrySpec(Model):
    """A registry: a host serving the distribution API, or an OCI layout directory."""

    host: str | None = Field(
        None,
        description="host[:port]; prefix `http://` for a registry without TLS",
        examples=[
            "ghcr.io",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "http://127.0.0.1:5000",
        ],
    )
    path: str | None = Field(
        None, description="an OCI layout directory; each repository is a sub-directory"
    )
    provider: str | None = Field(None, description="the registry product; inferred from the host")
    credentials: CredentialsSpec | None = None
    tls: TLSSpec | None = None
    max_connections: Annotated[int, Field(ge=1, le=256)] = Field(
        8, description="concurrent requests to this registry"
    )

    @model_validator(mode="after")
    def _host_or_path(self) -> RegistrySpec:
        if (self.host is None) == (self.path is None):
            raise ValueError("a registry needs exactly one of 'host' or 'path'")
        return self

    @property
    def is_layout(self) -> bool:
        return self.path is not None


class RepositoryRef(Model):
    """A repository in a registry of this topology."""

    registry: str
    repository: str

    @field_validator("repository")
    @classmethod
    def _valid_repository(cls, value: str) -> str:
        if not is_valid_repository(value):
            raise ValueError(
                f"{value!r} is not a valid repository name (lower-case components separated by '/')"
            )
        return value

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


def _parse_repository_ref(value: Any) -> Any:
    """Accept `registry/repository` as shorthand for the mapping form."""
    if isinstance(value, str):
        registry, slash, repository = value.partition("/")
        if not slash or not repository:
            raise ValueError(f"{value!r}: expected 'registry/repository'")
        return {"registry": registry, "repository": repository}
    return value


class ReplicationSpec(Model):
    """Tags of one source repository, copied by digest to one or more target repositories."""

    name: str | None = Field(None, pattern=_NAME, description="defaults to the source reference")
    source: RepositoryRef
    targets: list[RepositoryRef] = Field(min_length=1)
    tags: list[str] = Field(min_length=1, description="tags to replicate, by exact name")
    referrers: Selection = Field(
        "all",
        description="what comes along with each tag: `all`, `none`, or a list of `signatures`, "
        "`sboms`, `attestations` and artifact types such as `application/vnd.example+json`",
    )
    verify: list[str] = Field(
        default_factory=list, description="signing policies the source digest must satisfy"
    )
    enforce: Literal["block", "warn"] = Field(
        "block", description="block: a failing tag is not copied; warn: copied with a warning"
    )
    mode: Literal["mirror", "sync"] = Field(
        "mirror",
        description="mirror adds and updates; sync also deletes target tags the source lost",
    )

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, value: Any) -> Any:
        return _parse_repository_ref(value)

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, value: Any) -> Any:
        if isinstance(value, str | dict):
            value = [value]
        return [_parse_repository_ref(v) for v in value] if isinstance(value, list) else value

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not is_valid_tag(tag):
                raise ValueError(f"{tag!r} is not a valid tag")
        return value

    @field_validator("referrers")
    @classmethod
    def _valid_referrers(cls, value: Selection) -> Selection:
        if isinstance(value, list):
            for item in value:
                if item not in SELECTION_KINDS and "/" not in item:
                    raise ValueError(
                        f"{item!r} is neither {', '.join(SELECTION_KINDS)} nor an artifact type "
                        "(a media type such as application/vnd.example+json)"
                    )
        return value

    @property
    def label(self) -> str:
        return self.name or str(self.source)


class IdentitySpec(Model):
    """A signer identity: the certificate SAN (keyless) or subject DN (notation)."""

    subject: str | None = Field(None, description="the identity, exactly")
    subject_regex: str | None = Field(None, description="a regular expression it must match fully")

    @model_validator(mode="after")
    def _one_form(self) -> IdentitySpec:
        if (self.subject is None) == (self.subject_regex is None):
            raise ValueError("an identity needs exactly one of 'subject' or 'subject_regex'")
        if self.subject_regex is not None:
            try:
                re.compile(self.subject_regex)
            except re.error as err:
                raise ValueError(f"subject_regex is not a regular expression: {err}") from err
        return self


class SbomRequirement(Model):
    format: Literal["cyclonedx", "spdx"]


class ProvenanceRequirement(Model):
    builder: str | None = Field(None, description="the SLSA builder id, exactly")
    builder_regex: str | None = Field(None, description="a regular expression for the builder id")


class RequirementsSpec(Model):
    sbom: SbomRequirement | None = Field(None, description="an SBOM of this format, signed")
    provenance: ProvenanceRequirement | None = Field(
        None, description="a signed in-toto statement with a SLSA provenance predicate"
    )


class PolicySpec(Model):
    """Who must have signed: a cosign key, a keyless identity, or a notation trust store."""

    name: str = Field(pattern=_NAME)
    kind: Literal["cosign-key", "cosign-keyless", "notation"]
    keys: list[str] = Field(default_factory=list, description="cosign-key: PEM public key files")
    roots: list[str] = Field(
        default_factory=list,
        description="cosign-keyless: Fulcio root/intermediate PEM files; notation: trust store",
    )
    rekor_keys: list[str] = Field(
        default_factory=list, description="cosign-keyless: Rekor public key PEM files"
    )
    trusted_root: str | None = Field(
        None,
        description="cosign-keyless: a Sigstore trusted_root.json (instead of roots and "
        "rekor_keys); bundles are then verified by the sigstore package",
    )
    identities: list[IdentitySpec] = Field(default_factory=list)
    issuer: str | None = Field(None, description="cosign-keyless: the OIDC issuer, exactly")
    requirements: RequirementsSpec = Field(default_factory=RequirementsSpec)

    @model_validator(mode="after")
    def _material(self) -> PolicySpec:
        needs = {
            "cosign-key": ["keys"],
            "cosign-keyless": ["roots", "rekor_keys", "identities", "issuer"],
            "notation": ["roots"],
        }[self.kind]
        if self.kind == "cosign-keyless" and self.trusted_root is not None:
            needs = ["identities", "issuer"]
        missing = [f for f in needs if not getattr(self, f)]
        if missing:
            raise ValueError(f"a {self.kind} policy needs {', '.join(repr(m) for m in missing)}")
        return self


class SigningSpec(Model):
    policies: list[PolicySpec] = Field(default_factory=list)


class Topology(Model):
    """The whole file."""

    version: int = Field(1, description="format version of this file")
    registries: dict[Annotated[str, Field(pattern=_NAME)], RegistrySpec] = Field(min_length=1)
    replications: list[ReplicationSpec] = Field(default_factory=list)
    signing: SigningSpec | None = None
    retention: RetentionSpec | None = Field(
        None, description="what registries keep and delete; see docs/retention.md"
    )
