"""An OCI image layout directory as a registry: each repository is a layout directory.

A registry of kind `oci-layout` at `PATH` keeps repository `team/app` in `PATH/team/app/`,
with `oci-layout`, `index.json` and `blobs/<alg>/<encoded>` (image-spec `image-layout.md`).
Tags are `org.opencontainers.image.ref.name` annotations on `index.json` entries; untagged
manifests (referrers pushed by digest) are entries without one. The layout has no referrers
API, but every manifest is listed in `index.json`, so `referrers` reads their `subject` fields.

Writes are crash-safe: blobs land in a temporary file and are renamed into place only after
their digest verified; `index.json` is replaced atomically under a lock.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from regtopo.errors import RegtopoError
from regtopo.oci import mediatype as mt
from regtopo.oci.attachments import referrer_artifact_type
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest, DigestVerifier
from regtopo.oci.manifest import Manifest
from regtopo.oci.reference import is_valid_repository, is_valid_tag
from regtopo.registry.store import BlobOpener, PushResult, Repository

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'
READ_CHUNK = 1024 * 1024

_index_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()
# index.json path -> (its inode, mtime and size, the manifests it lists by the subject they name)
_subject_maps: dict[Path, tuple[tuple[int, int, int], dict[Digest, dict[Digest, Descriptor]]]] = {}


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _index_locks.setdefault(path, threading.Lock())


def list_layout_repositories(root: Path) -> list[str]:
    """The repositories of a layout registry: sub-directories holding an `oci-layout` file."""
    if not root.is_dir():
        return []
    found = []
    for marker in root.rglob("oci-layout"):
        name = marker.parent.relative_to(root).as_posix()
        if name != "." and is_valid_repository(name) and "blobs" not in name.split("/"):
            found.append(name)
    return sorted(found)


class LayoutRepository(Repository):
    """One OCI layout directory."""

    def __init__(self, registry_name: str, root: Path, name: str) -> None:
        self.registry_name = registry_name
        self.name = name
        self.root = root / name if name not in ("", ".") else root
        self.registry_id = f"layout:{root.resolve()}"
        # Each repository is a layout directory of its own: its blobs are written, not mounted.
        self.mounts = False
        self._lock = _lock_for(self.root.resolve())

    # index.json

    def _read_index(self) -> dict[str, Any]:
        path = self.root / "index.json"
        if not path.exists():
            return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
        try:
            document = json.loads(path.read_bytes())
        except ValueError as err:
            raise RegtopoError(f"reading {path}: not valid JSON ({err})") from err
        if not isinstance(document, dict) or not isinstance(document.get("manifests", []), list):
            raise RegtopoError(f"reading {path}: not an OCI image index")
        document.setdefault("manifests", [])
        return document

    def _write_index(self, document: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            _atomic_write(layout, LAYOUT_VERSION)
        _atomic_write(self.root / "index.json", json.dumps(document, indent=2).encode())

    def _entries(self) -> list[dict[str, Any]]:
        return [e for e in self._read_index()["manifests"] if isinstance(e, dict)]

    def _blob_path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.encoded

    # manifests

    def _resolve(self, reference: str) -> Descriptor | None:
        if ":" in reference:
            digest = Digest.parse(reference)
            for entry in self._entries():
                if entry.get("digest") == reference:
                    return Descriptor.from_json(entry, where=f"{self.root}/index.json")
            path = self._blob_path(digest)
            if path.exists():
                manifest = Manifest.parse(path.read_bytes(), None, expected=digest)
                return manifest.descriptor()
            return None
        for entry in self._entries():
            if (entry.get("annotations") or {}).get(REF_NAME) == reference:
                return Descriptor.from_json(entry, where=f"{self.root}/index.json")
        return None

    def head_manifest(self, reference: str) -> Descriptor | None:
        descriptor = self._resolve(reference)
        if descriptor is None or not self._blob_path(descriptor.digest).exists():
            return None
        return Descriptor(descriptor.media_type, descriptor.digest, descriptor.size)

    def get_manifest(self, reference: str, expected: Digest | None = None) -> Manifest | None:
        descriptor = self._resolve(reference)
        if descriptor is None:
            return None
        path = self._blob_path(descriptor.digest)
        if not path.exists():
            return None
        return Manifest.parse(
            path.read_bytes(), descriptor.media_type or None, expected=expected or descriptor.digest
        )

    def put_manifest(self, manifest: Manifest, reference: str) -> PushResult:
        path = self._blob_path(manifest.digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, manifest.raw)

        entry = manifest.descriptor().to_json()
        with self._lock:
            document = self._read_index()
            entries = [e for e in document["manifests"] if isinstance(e, dict)]
            if ":" in reference:
                # Untagged: listed once, so `referrers` and garbage collection can see it.
                if not any(e.get("digest") == str(manifest.digest) for e in entries):
                    entries.append(entry)
            else:
                entries = [
                    e for e in entries if (e.get("annotations") or {}).get(REF_NAME) != reference
                ]
                entry["annotations"] = {**entry.get("annotations", {}), REF_NAME: reference}
                entries.append(entry)
            document["manifests"] = entries
            self._write_index(document)
        # The layout answers referrers queries itself, as a referrers API would.
        return PushResult(manifest.digest, subject_recorded=manifest.subject is not None)

    def delete_manifest(self, digest: Digest) -> None:
        with self._lock:
            document = self._read_index()
            document["manifests"] = [
                e for e in document["manifests"] if e.get("digest") != str(digest)
            ]
            self._write_index(document)

    # blobs

    def blob_exists(self, descriptor: Descriptor) -> bool:
        path = self._blob_path(descriptor.digest)
        return path.exists() and path.stat().st_size == descriptor.size

    @contextmanager
    def _read_blob(self, descriptor: Descriptor) -> Iterator[Iterator[bytes]]:
        path = self._blob_path(descriptor.digest)
        if not path.exists():
            raise RegtopoError(f"fetching blob {self}@{descriptor.digest.short}: not in the layout")
        with path.open("rb") as handle:
            yield iter(lambda: handle.read(READ_CHUNK), b"")

    def open_blob(self, descriptor: Descriptor) -> AbstractContextManager[Iterator[bytes]]:
        return self._read_blob(descriptor)

    def push_blob(
        self, descriptor: Descriptor, opener: BlobOpener, *, mount_from: str | None = None
    ) -> str:
        path = self._blob_path(descriptor.digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        verifier = DigestVerifier(
            descriptor.digest, descriptor.size, what=f"blob {descriptor.digest}"
        )
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as out, opener() as chunks:
                for chunk in chunks:
                    verifier.update(chunk)
                    out.write(chunk)
            verifier.finish()
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return "uploaded"

    # tags and referrers

    def exists(self) -> bool:
        return (self.root / "index.json").is_file()

    def list_tags(self) -> list[str]:
        tags = {
            str((e.get("annotations") or {}).get(REF_NAME))
            for e in self._entries()
            if (e.get("annotations") or {}).get(REF_NAME)
        }
        return sorted(t for t in tags if is_valid_tag(t))

    def referrers(
        self, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        found = self._subjects().get(digest, {})
        return sorted(
            (
                d
                for d in found.values()
                if artifact_type is None or d.artifact_type == artifact_type
            ),
            key=lambda d: str(d.digest),
        )

    def _subjects(self) -> dict[Digest, dict[Digest, Descriptor]]:
        """Every listed manifest by the subject it names, read once per version of index.json.

        A plan asks about every manifest of every tag; scanning the whole layout each time
        would grow with the square of its size.
        """
        path = self.root / "index.json"
        try:
            stat = path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        key = path.resolve()
        with _locks_guard:
            cached = _subject_maps.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]

        subjects: dict[Digest, dict[Digest, Descriptor]] = {}
        for entry in self._entries():
            if entry.get("mediaType") not in mt.MANIFEST_TYPES:
                continue
            try:
                candidate = Digest.parse(str(entry.get("digest")))
            except RegtopoError:
                continue
            blob = self._blob_path(candidate)
            if not blob.exists():
                continue
            manifest = Manifest.parse(blob.read_bytes(), entry.get("mediaType"), expected=candidate)
            subject = manifest.subject
            if subject is None or subject.digest == candidate:
                continue
            # A referrers list names the artifact type by the spec's rule, with no exception:
            # `artifactType`, else the config's media type (an image config's too).
            subjects.setdefault(subject.digest, {})[candidate] = replace(
                manifest.descriptor(), artifact_type=referrer_artifact_type(manifest)
            )
        with _locks_guard:
            _subject_maps[key] = (stamp, subjects)
        return subjects


def _atomic_write(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
