"""Chunked uploads regroup the source's reads into exact chunk sizes without joining them."""

from __future__ import annotations

from regtopo.registry.client import _one_shot, _rechunk


def test_reads_are_regrouped_into_runs_of_exactly_the_chunk_size_in_order() -> None:
    reads = [b"abcde", b"fghijkl", b"mno", b"pqrstuvwxy", b"z"]

    runs = list(_rechunk(iter(reads), 8))

    assert [b"".join(run) for run in runs] == [b"abcdefgh", b"ijklmnop", b"qrstuvwx", b"yz"]
    assert runs[0] == [b"abcde", b"fgh"]  # pieces as read, split only at a chunk boundary


def test_a_body_factory_replays_the_same_parts_for_each_attempt() -> None:
    factory = _one_shot([b"ab", b"cd"])

    assert list(factory()) == [b"ab", b"cd"]
    assert list(factory()) == [b"ab", b"cd"]
