"""A deterministic corpus of OCI images, and a fast pusher that puts it into a registry.

Layer bytes come from a seeded PRNG wrapped in a gzip stream of stored (level 0) deflate
blocks: valid gzip, so no tool is tempted to recompress a layer it takes for uncompressed, and
generated at memory speed. The bytes are not tars; copying by digest never looks inside.

The same seed always gives the same digests, so every tool copies exactly the same content.
"""

from __future__ import annotations

import hashlib
import json
import random
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# Blobs above this size are spooled to a file instead of held in memory.
SPOOL_ABOVE = 64 * MiB
_GENERATE_CHUNK = 4 * MiB
PLATFORMS = ("amd64", "arm64")


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str
    data: bytes | None = None
    path: Path | None = None

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}

    def chunks(self, chunk_size: int = 1 * MiB) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
            return
        assert self.path is not None
        with self.path.open("rb") as handle:
            while chunk := handle.read(chunk_size):
                yield chunk


def _gzip_stream(seed: str, size: int) -> Iterator[bytes]:
    """``size`` seeded random bytes inside a stored-block gzip stream (a few bytes larger)."""
    rng = random.Random(seed)
    compressor = zlib.compressobj(0, zlib.DEFLATED, 31)
    remaining = size
    while remaining:
        count = min(_GENERATE_CHUNK, remaining)
        remaining -= count
        if out := compressor.compress(rng.randbytes(count)):
            yield out
    yield compressor.flush()


def make_layer(seed: str, size: int, spool_dir: Path) -> Blob:
    """A gzip-typed layer of about ``size`` bytes; large ones live in ``spool_dir``."""
    hasher = hashlib.sha256()
    if size <= SPOOL_ABOVE:
        data = b"".join(_gzip_stream(seed, size))
        hasher.update(data)
        return Blob("sha256:" + hasher.hexdigest(), len(data), OCI_LAYER_GZIP, data=data)
    spool_dir.mkdir(parents=True, exist_ok=True)
    partial = spool_dir / f"{hashlib.sha256(seed.encode()).hexdigest()}.partial"
    written = 0
    with partial.open("wb") as handle:
        for chunk in _gzip_stream(seed, size):
            hasher.update(chunk)
            handle.write(chunk)
            written += len(chunk)
    digest = "sha256:" + hasher.hexdigest()
    path = spool_dir / digest.removeprefix("sha256:")
    partial.replace(path)
    return Blob(digest, written, OCI_LAYER_GZIP, path=path)


def _json_blob(document: object, media_type: str) -> Blob:
    data = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return Blob("sha256:" + hashlib.sha256(data).hexdigest(), len(data), media_type, data=data)


@dataclass(frozen=True)
class Image:
    config: Blob
    layers: tuple[Blob, ...]
    manifest: Blob  # the manifest's own bytes, as a blob-like record (digest, size, data)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)


def make_image(
    name: str, platform: str, layers: Sequence[Blob], annotations: dict[str, str]
) -> Image:
    config = _json_blob(
        {
            "architecture": platform,
            "os": "linux",
            "config": {"Labels": {"bench.image": name}},
            # Stand-in diff_ids: copying by digest never decompresses a layer.
            "rootfs": {
                "type": "layers",
                "diff_ids": [
                    "sha256:" + hashlib.sha256(layer.digest.encode()).hexdigest()
                    for layer in layers
                ],
            },
        },
        OCI_CONFIG,
    )
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = annotations
    return Image(config, tuple(layers), _json_blob(manifest, OCI_MANIFEST))


@dataclass(frozen=True)
class TaggedContent:
    """What one tag points at: an image, or an index over per-platform images."""

    repository: str
    tag: str
    images: tuple[Image, ...]
    index: Blob | None = None

    @property
    def top(self) -> Blob:
        return self.index if self.index is not None else self.images[0].manifest

    @property
    def digest(self) -> str:
        return self.top.digest

    @property
    def size(self) -> int:
        return sum(b.size for image in self.images for b in image.blobs)


def make_index(images: Sequence[Image]) -> Blob:
    return _json_blob(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": image.manifest.digest,
                    "size": image.manifest.size,
                    "platform": {"architecture": platform, "os": "linux"},
                }
                for image, platform in zip(images, PLATFORMS, strict=False)
            ],
        },
        OCI_INDEX,
    )


@dataclass(frozen=True)
class CorpusSpec:
    """How many repositories and tags, and which layer sizes.

    Every image has the shared base layers of its platform (the same blobs in every
    repository) and one unique layer whose size cycles through ``unique_sizes``. Two tags in
    three are two-platform indexes, the third a plain image. ``large`` puts one extra unique
    layer of the given size into the image of (repository index, tag index).
    """

    repositories: int
    tags_per_repository: int
    shared_sizes: tuple[int, ...]
    unique_sizes: tuple[int, ...]
    large: dict[tuple[int, int], int] = field(default_factory=dict)
    seed: str = "regtopo-bench"

    @property
    def tag_count(self) -> int:
        return self.repositories * self.tags_per_repository


def repository_name(index: int) -> str:
    return f"app{index:03d}"  # one path component: skopeo sync keeps only the last one


def tag_name(index: int) -> str:
    return f"v1.{index}"


class Corpus:
    """The images of a :class:`CorpusSpec`, generated once and reused for every registry."""

    def __init__(self, spec: CorpusSpec, spool_dir: Path) -> None:
        self.spec = spec
        self.spool_dir = spool_dir
        shared = {
            platform: [
                make_layer(f"{spec.seed}/shared/{platform}/{i}", size, spool_dir)
                for i, size in enumerate(spec.shared_sizes)
            ]
            for platform in PLATFORMS
        }
        self.tags: list[TaggedContent] = []
        counter = 0
        for r in range(spec.repositories):
            for t in range(spec.tags_per_repository):
                platforms = PLATFORMS if t % 3 != 2 else PLATFORMS[:1]
                images = []
                for platform in platforms:
                    size = spec.unique_sizes[counter % len(spec.unique_sizes)]
                    counter += 1
                    name = f"{repository_name(r)}:{tag_name(t)}/{platform}"
                    layers = [*shared[platform], make_layer(f"{spec.seed}/{name}", size, spool_dir)]
                    if (r, t) in spec.large and platform == platforms[0]:
                        layers.append(
                            make_layer(f"{spec.seed}/{name}/large", spec.large[(r, t)], spool_dir)
                        )
                    images.append(make_image(name, platform, layers, {}))
                index = make_index(images) if len(images) > 1 else None
                self.tags.append(
                    TaggedContent(repository_name(r), tag_name(t), tuple(images), index)
                )

    @property
    def size(self) -> int:
        """Distinct blob bytes: what a cold copy has to send."""
        blobs = {b.digest: b.size for tagged in self.tags for i in tagged.images for b in i.blobs}
        return sum(blobs.values())

    def by_repository(self) -> dict[str, list[str]]:
        repositories: dict[str, list[str]] = {}
        for tagged in self.tags:
            repositories.setdefault(tagged.repository, []).append(tagged.tag)
        return repositories


def changed_content(repository: str, tag: str, generation: int, spool_dir: Path) -> TaggedContent:
    """A new single-platform image for one tag: a 1 MiB unique layer and a fresh config."""
    name = f"{repository}:{tag}/changed-{generation}"
    layer = make_layer(f"changed/{name}", 1 * MiB, spool_dir)
    return TaggedContent(repository, tag, (make_image(name, "amd64", [layer], {}),))


def single_layer_content(repository: str, tag: str, size: int, spool_dir: Path) -> TaggedContent:
    """One image whose only layer has ``size`` bytes (the memory scenario)."""
    layer = make_layer(f"single/{repository}/{size}", size, spool_dir)
    return TaggedContent(repository, tag, (make_image(repository, "amd64", [layer], {}),))


def many_tags(repositories: int, tags_per_repository: int) -> list[TaggedContent]:
    """Thousands of tags, each a distinct tiny manifest (annotations differ) over shared blobs.

    Distinct digests per tag keep any per-digest caching from flattering the count.
    """
    layer = _json_blob({"bench": "tiny layer"}, OCI_LAYER_GZIP)
    out = []
    for r in range(repositories):
        for t in range(tags_per_repository):
            image = make_image(
                "tiny", "amd64", [layer], {"bench.tag": f"{repository_name(r)}:{tag_name(t)}"}
            )
            out.append(TaggedContent(repository_name(r), tag_name(t), (image,)))
    return out


class Pusher:
    """Pushes tagged content to one registry: distinct blobs once, then mounts and manifests."""

    def __init__(self, url: str, workers: int = 8) -> None:
        self.url = url
        self.workers = workers
        self.client = httpx.Client(
            timeout=httpx.Timeout(300.0, connect=10.0),
            limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
        )
        self._home: dict[str, str] = {}  # blob digest -> first repository holding it

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Pusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def push(self, tagged: Sequence[TaggedContent]) -> None:
        first: dict[str, tuple[str, Blob]] = {}
        for content in tagged:
            for image in content.images:
                for blob in image.blobs:
                    if blob.digest not in self._home:
                        first.setdefault(blob.digest, (content.repository, blob))
        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(lambda item: self._upload(*item), first.values()))
        self._home.update({digest: repo for digest, (repo, _) in first.items()})

        by_repository: dict[str, list[TaggedContent]] = {}
        for content in tagged:
            by_repository.setdefault(content.repository, []).append(content)
        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(self._push_repository, by_repository.values()))

    def _push_repository(self, contents: list[TaggedContent]) -> None:
        repository = contents[0].repository
        linked: set[str] = set()
        for content in contents:
            for image in content.images:
                for blob in image.blobs:
                    home = self._home[blob.digest]
                    if home != repository and blob.digest not in linked:
                        self._mount(repository, blob.digest, home)
                    linked.add(blob.digest)
                self._put_manifest(repository, image.manifest.digest, image.manifest)
            if content.index is not None:
                self._put_manifest(repository, content.tag, content.index)
            else:
                self._put_manifest(repository, content.tag, content.images[0].manifest)

    def put_tags(self, contents: Sequence[TaggedContent]) -> None:
        """Only the tagged manifests, for content whose blobs and children are present."""
        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(lambda c: self._put_manifest(c.repository, c.tag, c.top), contents))

    def _upload(self, repository: str, blob: Blob) -> None:
        start = self.client.post(f"{self.url}/v2/{repository}/blobs/uploads/")
        start.raise_for_status()
        location = urljoin(f"{self.url}/", start.headers["Location"])
        separator = "&" if urlsplit(location).query else "?"
        done = self.client.put(
            f"{location}{separator}digest={blob.digest}",
            content=blob.chunks(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)},
        )
        done.raise_for_status()

    def _mount(self, repository: str, digest: str, home: str) -> None:
        response = self.client.post(
            f"{self.url}/v2/{repository}/blobs/uploads/", params={"mount": digest, "from": home}
        )
        if response.status_code != 201:
            raise RuntimeError(f"mounting {digest} from {home} into {repository}: {response.text}")

    def _put_manifest(self, repository: str, reference: str, manifest: Blob) -> None:
        assert manifest.data is not None
        response = self.client.put(
            f"{self.url}/v2/{repository}/manifests/{reference}",
            content=manifest.data,
            headers={"Content-Type": manifest.media_type},
        )
        response.raise_for_status()
        if response.headers.get("Docker-Content-Digest") != manifest.digest:
            raise RuntimeError(f"{repository}:{reference}: the registry changed the digest")
