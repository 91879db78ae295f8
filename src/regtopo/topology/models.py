"""The topology file's models: registries, replications, and what flows between them.

Every field here is part of the file format users write; `regtopo schema` prints the JSON
Schema generated from these models.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from regtopo.oci.reference import is_valid_repository, is_valid_tag

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
    create_repositories: bool = Field(
        False,
        description="create missing target repositories through the provider's API first "
        "(ECR does not create them on push)",
    )
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
    include_non_distributable: bool = Field(
        False,
        description="also upload non-distributable (foreign) layers; the manifest and its "
        "digest stay unchanged",
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

    @property
    def label(self) -> str:
        return self.name or str(self.source)


class Topology(Model):
    """The whole file."""

    version: int = Field(1, description="format version of this file")
    registries: dict[Annotated[str, Field(pattern=_NAME)], RegistrySpec] = Field(min_length=1)
    replications: list[ReplicationSpec] = Field(default_factory=list)
