"""The topology file's models: registries, replications, and what flows between them.

Every field here is part of the file format users write; `regtopo schema` prints the JSON
Schema generated from these models, and docs/topology.md describes each one.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import (
    Discriminator,
    Field,
    Tag,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from regtopo.oci.attachments import SELECTION_KINDS, Selection
from regtopo.oci.digest import Digest
from regtopo.oci.reference import (
    canonical_host,
    canonical_repository,
    is_valid_repository,
    is_valid_tag,
)
from regtopo.providers import profiles
from regtopo.topology.base import Model
from regtopo.topology.retention import RetentionSpec

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?\.?)+(?::[0-9]{1,5})?$")
_HOST_V6 = re.compile(r"^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
PLACEHOLDERS = ("name", "repository")
_PLATFORM = r"^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?$"


# The JSON Schema lets editors accept the user's own `x-` keys, which the models drop.
def _checked_tags(tags: list[str]) -> list[str]:
    """Every invalid tag of a list in one message, so a file is fixed in one round."""
    invalid = [tag for tag in tags if not is_valid_tag(tag)]
    if len(invalid) == 1:
        raise ValueError(f"{invalid[0]!r} is not a valid tag")
    if invalid:
        raise ValueError(
            f"{', '.join(repr(t) for t in invalid)} are not valid tags (a tag is up to 128 "
            "letters, digits, '_', '.' and '-', not starting with '.' or '-')"
        )
    return tags


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
    provider: str | None = Field(
        None,
        description="the registry product (a profile under providers/); inferred from the host",
        json_schema_extra={"enum": [*profiles.names(), None]},
    )
    credentials: CredentialsSpec | None = Field(
        None, description="default: the docker/containers credential stores for the host"
    )
    tls: TLSSpec | None = None
    create_repositories: bool = Field(
        False,
        description="create missing target repositories through the provider's API first "
        "(ECR does not create them on push)",
    )
    max_connections: Annotated[int, Field(ge=1, le=256)] = Field(
        8,
        description="concurrent requests to this registry (a copy inside one registry "
        "needs two, so 1 allows a second connection for its upload)",
    )
    requests_per_second: Annotated[float, Field(gt=0, le=10000)] | None = Field(
        None, description="most requests per second sent to this registry (default: no limit)"
    )

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str | None) -> str | None:
        if value is None:
            return value
        bare = value.removeprefix("https://").removeprefix("http://").rstrip("/")
        if not (_HOST.fullmatch(bare) or _HOST_V6.fullmatch(bare)):
            if "@" in bare.split("/")[0]:
                # user:password@host: the error must not repeat the password.
                shown = value.replace(bare.split("/")[0].rsplit("@", 1)[0], "<credentials>", 1)
                raise ValueError(
                    f"{shown!r} is not a registry host: credentials go under `credentials:` "
                    "(username, password: ${env:NAME}), not in the host"
                )
            raise ValueError(
                f"{value!r} is not a registry host; expected host[:port], optionally after "
                "http:// or https://, without a path"
            )
        return value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str | None) -> str | None:
        if value is not None and value not in profiles.profiles():
            raise ValueError(
                f"unknown provider {value!r}; expected one of: {', '.join(profiles.names())}"
            )
        return value

    @model_validator(mode="after")
    def _host_or_path(self) -> RegistrySpec:
        if (self.host is None) == (self.path is None):
            raise ValueError("a registry needs exactly one of 'host' or 'path'")
        if self.path is not None and self.provider is not None:
            raise ValueError("'provider' applies to a host; a 'path' is an OCI layout directory")
        return self

    @property
    def is_layout(self) -> bool:
        return self.path is not None

    @property
    def profile(self) -> profiles.Profile | None:
        """The provider profile: named, or inferred from the host; None for a layout."""
        return profiles.profile_for(self.host, self.provider)


def _check_repository(value: str) -> None:
    if not is_valid_repository(value):
        raise ValueError(
            f"{value!r} is not a valid repository name (lower-case components separated by '/')"
        )


class SourceRef(Model):
    """The source: one repository, or a pattern `prefix*` covering every repository under it."""

    registry: str
    repository: str = Field(
        description="a repository, or `prefix*`: every repository whose name starts with prefix",
        examples=["library/nginx", "team/*", "*"],
    )

    @field_validator("repository")
    @classmethod
    def _valid_repository(cls, value: str) -> str:
        if "*" in value:
            if value.count("*") > 1 or not value.endswith("*"):
                raise ValueError(
                    f"{value!r}: a repository pattern has one '*', at the end (as in 'team/*')"
                )
            prefix = value[:-1]
            if prefix and not is_valid_repository(prefix + "a"):
                raise ValueError(f"{value!r}: {prefix!r} cannot start a repository name")
            return value
        _check_repository(value)
        return value

    @property
    def is_pattern(self) -> bool:
        return self.repository.endswith("*")

    @property
    def prefix(self) -> str:
        return self.repository.removesuffix("*")

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


class TargetRef(Model):
    """A target repository; with a pattern source, a template using `{name}` or `{repository}`."""

    registry: str
    repository: str = Field(
        description="a repository name; `{name}` is what the source pattern's '*' matched, "
        "`{repository}` the whole source repository",
        examples=["myorg/nginx", "mirror/{name}", "mirror/{repository}"],
    )

    @field_validator("repository")
    @classmethod
    def _valid_repository(cls, value: str) -> str:
        unknown = [p for p in _PLACEHOLDER.findall(value) if p not in PLACEHOLDERS]
        if unknown:
            raise ValueError(
                f"{value!r}: unknown placeholder {{{unknown[0]}}}; expected {{name}} or "
                "{repository}"
            )
        _check_repository(_PLACEHOLDER.sub("a", value) if "{" in value else value)
        return value

    @property
    def placeholders(self) -> set[str]:
        return set(_PLACEHOLDER.findall(self.repository))

    def render(self, source_repository: str, name: str) -> str:
        return self.repository.replace("{name}", name).replace("{repository}", source_repository)

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


# The walking skeleton's name, kept for callers that speak of a repository in a registry.
RepositoryRef = TargetRef


def _parse_repository_ref(value: Any) -> Any:
    """Accept `registry/repository` as shorthand for the mapping form."""
    if isinstance(value, str):
        registry, slash, repository = value.partition("/")
        if not slash or not repository:
            raise ValueError(f"{value!r}: expected 'registry/repository'")
        return {"registry": registry, "repository": repository}
    return value


class Mode(StrEnum):
    MIRROR = "mirror"  # add and update target tags
    SYNC = "sync"  # also delete target tags the source selection no longer has


class TagOrder(StrEnum):
    SEMVER = "semver"
    CREATED = "created"


def _compile(pattern: str, field: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as err:
        raise ValueError(
            f"{field} pattern {pattern!r} is not a valid regular expression: {err}"
        ) from None


class TagSelector(Model):
    """Tags chosen from the source's tag list. Filters apply in order: include, exclude,
    semver, latest; `names` and `digests` are added to what they leave."""

    names: list[str] = Field(default_factory=list, description="exact tag names, always planned")
    include: list[str] = Field(
        default_factory=list,
        description="regular expressions matched against the whole tag (anchored); "
        "none given: every tag",
    )
    exclude: list[str] = Field(
        default_factory=list, description="regular expressions (anchored) of tags to leave out"
    )
    semver: str | None = Field(
        None,
        description="a version range in PEP 440 specifier syntax, as '>=1.2,<2' or '~=1.4'; "
        "tags that are not versions are left out",
        examples=[">=1.2,<2", "~=3.1", "==1.*"],
    )
    latest: Annotated[int, Field(ge=1, le=100000)] | None = Field(
        None, description="keep only the newest N of the tags selected so far"
    )
    order: TagOrder | None = Field(
        None,
        description="how `latest` ranks tags: semver (default; non-versions left out) or "
        "created (the image config's creation time)",
    )
    digests: dict[str, str] = Field(
        default_factory=dict,
        description="pins: tag -> digest; the target tag gets this digest from the source "
        "repository wherever the source tag points",
    )

    @field_validator("names")
    @classmethod
    def _valid_names(cls, value: list[str]) -> list[str]:
        return _checked_tags(value)

    @field_validator("include", "exclude")
    @classmethod
    def _valid_patterns(cls, value: list[str], info: Any) -> list[str]:
        for pattern in value:
            _compile(pattern, info.field_name)
        return value

    @field_validator("semver")
    @classmethod
    def _valid_range(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                SpecifierSet(value)
            except InvalidSpecifier as err:
                raise ValueError(
                    f"semver range {value!r} is not valid: {err}; write it as '>=1.2,<2' "
                    "(comma means and)"
                ) from None
        return value

    @field_validator("digests")
    @classmethod
    def _valid_pins(cls, value: dict[str, str]) -> dict[str, str]:
        for tag, digest in value.items():
            if not is_valid_tag(tag):
                raise ValueError(f"digests: {tag!r} is not a valid tag")
            try:
                Digest.parse(digest)
            except Exception as err:  # noqa: BLE001 - any parse failure is the user's input
                raise ValueError(f"digests: {tag}: {digest!r} is not a digest") from err
        return value

    @model_validator(mode="after")
    def _coherent(self) -> TagSelector:
        if self.order is not None and self.latest is None:
            raise ValueError("'order' ranks tags for 'latest'; set 'latest' too")
        if not (self.names or self.include or self.exclude or self.semver or self.latest) and (
            not self.digests
        ):
            raise ValueError(
                "an empty tag selector selects nothing; give names, include, exclude, semver, "
                "latest or digests (include: ['.*'] selects every tag)"
            )
        clash = sorted(set(self.names) & set(self.digests))
        if clash:
            raise ValueError(
                f"tag {clash[0]!r} is both in 'names' and pinned in 'digests'; keep one"
            )
        excluded = [_compile(p, "exclude") for p in self.exclude]
        for tag in [*self.names, *self.digests]:
            for pattern in excluded:
                if pattern.fullmatch(tag):
                    raise ValueError(
                        f"tag {tag!r} is named explicitly but excluded by {pattern.pattern!r}"
                    )
        return self

    @property
    def specifier(self) -> SpecifierSet | None:
        return SpecifierSet(self.semver) if self.semver is not None else None


def _tags_kind(value: Any) -> str:
    return "exact-names" if isinstance(value, list) else "selector"


TagsSpec = Annotated[
    Annotated[list[str], Tag("exact-names")] | Annotated[TagSelector, Tag("selector")],
    Discriminator(_tags_kind),
]
Platform = Annotated[str, Field(pattern=_PLATFORM)]


class ReplicationSpec(Model):
    """Tags of one source repository (or of each repository a pattern covers), copied by digest
    to one or more target repositories."""

    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_./:-]*$",
        description="how plans, reports and --target name it; defaults to the source "
        "(registry/repository)",
    )
    source: SourceRef
    targets: list[TargetRef] = Field(min_length=1)
    tags: TagsSpec = Field(
        description="a list of exact tag names, or a selector (names, include, exclude, "
        "semver, latest, order, digests)"
    )
    platforms: Literal["all"] | Annotated[list[Platform], Field(min_length=1)] = Field(
        "all",
        description="'all' copies indexes digest-exact; a list (os/arch[/variant]) selects "
        "platforms, which makes a new index with another digest",
    )
    mode: Mode = Field(
        Mode.MIRROR,
        description="mirror: add and update target tags; sync: also delete target tags the "
        "tags selector matches that it no longer selects at the source",
    )
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

    @field_validator("platforms", mode="before")
    @classmethod
    def _platforms_shape(cls, value: Any) -> Any:
        if value == "all":
            return value
        if not isinstance(value, list) or not value:
            raise ValueError("expected 'all' or a list of platforms such as [linux/amd64]")
        for item in value:
            if not isinstance(item, str) or not re.fullmatch(_PLATFORM, item):
                raise ValueError(
                    f"{item!r} is not a platform; expected os/architecture[/variant], "
                    "as linux/amd64 or linux/arm64/v8"
                )
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_shape(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("an empty tag list selects nothing")
        if not isinstance(value, list | dict):
            raise ValueError(
                "expected a list of tag names (as [latest]) or a selector mapping "
                "(names, include, exclude, semver, latest, order, digests)"
            )
        return value

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, value: list[str] | TagSelector) -> list[str] | TagSelector:
        return _checked_tags(value) if isinstance(value, list) else value

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

    @model_validator(mode="after")
    def _templates_need_patterns(self) -> ReplicationSpec:
        for target in self.targets:
            if "name" in target.placeholders and not self.source.is_pattern:
                raise ValueError(
                    f"target {target} uses {{name}}, which needs a source pattern such as "
                    f"'{self.source.repository}/*'"
                )
            if self.source.is_pattern and not target.placeholders:
                raise ValueError(
                    f"the source {self.source} covers many repositories, so target {target} "
                    "needs {name} or {repository} to keep them apart"
                )
        return self

    @property
    def label(self) -> str:
        return self.name or str(self.source)

    @property
    def exact_tags(self) -> list[str] | None:
        """The tags when given as exact names; None when a selector decides at plan time."""
        return self.tags if isinstance(self.tags, list) else None


def _optional(info: FieldInfo) -> Any:
    # Keep constraints and discriminators (they live in the metadata) and allow None.
    annotation: Any = info.annotation
    if info.metadata:
        annotation = Annotated[(annotation, *info.metadata)]
    return annotation | None


# The `defaults` block: every replication field except what names one replication, optional.
_PER_REPLICATION = {"name", "source", "targets"}
_DEFAULT_FIELDS: dict[str, Any] = {
    field: (_optional(info), Field(None, description=info.description))
    for field, info in ReplicationSpec.model_fields.items()
    if field not in _PER_REPLICATION
}
ReplicationDefaults = create_model(
    "ReplicationDefaults",
    __base__=Model,
    __doc__="Values every replication takes unless it sets the field itself.",
    **_DEFAULT_FIELDS,
)


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

    version: Literal[1] = Field(1, description="format version of this file")
    registries: dict[Annotated[str, Field(pattern=_NAME)], RegistrySpec] = Field(min_length=1)
    defaults: ReplicationDefaults | None = Field(
        None, description="values for every replication that does not set them"
    )
    replications: list[ReplicationSpec] = Field(default_factory=list)
    signing: SigningSpec | None = None
    retention: RetentionSpec | None = Field(
        None, description="what registries keep and delete; see docs/retention.md"
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        # Defaults are merged before validation, so each replication is checked as written out.
        if not isinstance(data, dict):
            return data
        defaults = data.get("defaults")
        replications = data.get("replications")
        if not isinstance(defaults, dict) or not isinstance(replications, list):
            return data
        usable = {
            k: v
            for k, v in defaults.items()
            if isinstance(k, str) and k in ReplicationDefaults.model_fields and v is not None
        }
        merged = [{**usable, **item} if isinstance(item, dict) else item for item in replications]
        return {**data, "replications": merged}

    def identity(self, registry: str, repository: str) -> tuple[str, str]:
        """The repository as the world knows it, for telling whether two references meet.

        Two registry names for one host (`docker.io` and `index.docker.io`, say) are one
        registry, and Docker Hub's single-component names live under `library/`: comparing
        registry names as written would miss that two replications write the same tag.
        """
        spec = self.registries.get(registry)
        if spec is None:
            return (registry, repository)
        if spec.path is not None:
            return (f"layout:{spec.path.rstrip('/')}", repository)
        host = canonical_host(spec.host or "")
        return (host, canonical_repository(host, repository))
