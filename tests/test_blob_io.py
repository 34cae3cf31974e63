"""Objects stored as blob files (above the inline threshold) read back exactly,
whole and in byte ranges that straddle 4 KiB blocks, 1 MiB read chunks and the
unaligned tail (blobs are written and read with O_DIRECT in aligned blocks)."""

from __future__ import annotations

import os

import pytest

SIZE = 3 * 1024 * 1024 + 123


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def stored(s3, bucket: str, payload: bytes) -> str:
    s3.put_object(Bucket=bucket, Key="blob.bin", Body=payload)
    return bucket


def test_a_blob_object_reads_back_whole_and_byte_identical(s3, stored: str, payload: bytes) -> None:
    assert s3.get_object(Bucket=stored, Key="blob.bin")["Body"].read() == payload


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (0, 0),
        (4095, 4097),
        (1048575, 1048577),
        (5000, 2_100_000),
        (SIZE - 200, SIZE - 1),
        (3 * 1024 * 1024 - 1, SIZE - 1),
        (123, SIZE - 1),
    ],
)
def test_ranges_across_blocks_chunks_and_the_tail_are_exact(
    s3, stored: str, payload: bytes, first: int, last: int
) -> None:
    got = s3.get_object(Bucket=stored, Key="blob.bin", Range=f"bytes={first}-{last}")
    assert got["ContentRange"] == f"bytes {first}-{last}/{SIZE}"
    assert got["Body"].read() == payload[first : last + 1]


def test_suffix_range_of_a_blob_is_its_last_bytes(s3, stored: str, payload: bytes) -> None:
    got = s3.get_object(Bucket=stored, Key="blob.bin", Range="bytes=-5000")
    assert got["Body"].read() == payload[-5000:]


@pytest.mark.parametrize("size", [65537, 4096 * 17, 1024 * 1024, 1024 * 1024 + 1])
def test_sizes_around_block_and_chunk_boundaries_round_trip(s3, bucket: str, size: int) -> None:
    body = os.urandom(size)
    s3.put_object(Bucket=bucket, Key=f"s{size}", Body=body)
    assert s3.get_object(Bucket=bucket, Key=f"s{size}")["Body"].read() == body
    assert s3.head_object(Bucket=bucket, Key=f"s{size}")["ContentLength"] == size
