"""Descriptors: `mediaType`, `digest`, `size` and the optional fields, kept as read."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from regtopo.errors import ManifestError
from regtopo.oci.digest import Digest


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Platform:
        return cls(str(data.get("os", "")), str(data.get("architecture", "")), data.get("variant"))

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


@dataclass(frozen=True)
class Descriptor:
    """A pointer to content. `raw` holds the JSON object as read, for fields we don't model."""

    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    data: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, data: Any, *, where: str = "descriptor") -> Descriptor:
        if not isinstance(data, dict):
            raise ManifestError(f"parsing {where}: expected an object, got {type(data).__name__}")
        try:
            digest = Digest.parse(str(data["digest"]))
            size = int(data["size"])
            media_type = str(data.get("mediaType", ""))
        except (KeyError, TypeError, ValueError) as err:
            raise ManifestError(f"parsing {where}: missing or invalid digest or size") from err
        if size < 0:
            raise ManifestError(f"parsing {where}: negative size {size}")
        platform = data.get("platform")
        annotations = data.get("annotations") or {}
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            artifact_type=data.get("artifactType"),
            annotations={str(k): str(v) for k, v in annotations.items()},
            platform=Platform.from_json(platform) if isinstance(platform, dict) else None,
            urls=tuple(str(u) for u in data.get("urls") or ()),
            data=data.get("data"),
        )

    def to_json(self) -> dict[str, Any]:
        """The descriptor as an OCI index entry (referrers lists use this shape)."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = {"os": self.platform.os, "architecture": self.platform.architecture}
            if self.platform.variant:
                out["platform"]["variant"] = self.platform.variant
        return out

    def inline_data(self) -> bytes | None:
        """Embedded `data`, only when it hashes to the descriptor's digest (otherwise untrusted)."""
        if self.data is None:
            return None
        try:
            payload = base64.b64decode(self.data, validate=True)
        except ValueError:
            return None
        if len(payload) != self.size or Digest.of(payload, self.digest.algorithm) != self.digest:
            return None
        return payload
