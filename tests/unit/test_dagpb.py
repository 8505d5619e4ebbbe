"""dag-pb and UnixFS decoding: round trips with cid.py's encoder, and strict refusals."""

from __future__ import annotations

import hashlib

import pytest

from exchange.errors import MalformedContent
from exchange.storage.cid import CHUNK_SIZE, CODEC_DAG_PB, CODEC_RAW, Cid, build_dag
from exchange.storage.dagpb import (
    PBLink,
    PBNode,
    UnixFSData,
    UnixFSType,
    UnixTime,
    cid_from_bytes,
    decode_pbnode,
    decode_unixfs,
)

LEAF = Cid.of_block(CODEC_RAW, b"leaf")
LEAF_BYTES = LEAF.to_bytes()


def content(size: int) -> bytes:
    return hashlib.shake_256(b"cove-dagpb-test").digest(size)


def field(number: int, wire: int) -> bytes:
    return bytes([number << 3 | wire])


def length_delimited(number: int, value: bytes) -> bytes:
    assert len(value) < 128
    return field(number, 2) + bytes([len(value)]) + value


def link(*parts: bytes) -> bytes:
    return length_delimited(2, b"".join(parts))


HASH = length_delimited(1, LEAF_BYTES)
NAME = length_delimited(2, b"")
TSIZE = field(3, 0) + b"\x04"
FILE_DATA = length_delimited(1, field(1, 0) + b"\x02")


# --- round trips with exchange.storage.cid ----------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17, 175 * CHUNK_SIZE + 5]
)
def test_every_dagpb_block_of_a_dag_round_trips(size: int) -> None:
    data = content(size)
    root, blocks = build_dag(data)
    by_cid = dict(blocks)
    internal = [(cid, block) for cid, block in blocks if cid.codec == CODEC_DAG_PB]
    if size <= CHUNK_SIZE:
        assert root.codec == CODEC_RAW and internal == []
    for cid, block in internal:
        node = decode_pbnode(block)
        assert node.encode() == block
        assert node.data is not None
        unixfs = decode_unixfs(node.data)
        assert unixfs.encode() == node.data
        assert unixfs.type is UnixFSType.FILE
        assert unixfs.data is None
        assert unixfs.filesize == sum(unixfs.blocksizes)
        assert len(unixfs.blocksizes) == len(node.links)
        for pb_link in node.links:
            assert pb_link.name == ""  # kubo and js write an empty, present Name
            assert pb_link.hash in by_cid
            child = by_cid[pb_link.hash]
            if pb_link.hash.codec == CODEC_RAW:
                assert pb_link.tsize == len(child)
            else:
                assert pb_link.tsize is not None and pb_link.tsize > len(child)
    if internal:
        assert decode_unixfs(decode_pbnode(by_cid[root]).data or b"").filesize == size


def test_two_level_dag_shape() -> None:
    root, blocks = build_dag(content(175 * CHUNK_SIZE + 5))
    top = decode_pbnode(dict(blocks)[root])
    assert [pb_link.hash.codec for pb_link in top.links] == [CODEC_DAG_PB, CODEC_DAG_PB]
    sizes = decode_unixfs(top.data or b"").blocksizes
    assert sizes == (174 * CHUNK_SIZE, CHUNK_SIZE + 5)


def test_encode_decode_of_every_optional_field() -> None:
    node = PBNode(
        links=(PBLink(LEAF), PBLink(LEAF, "név ☃", 0), PBLink(LEAF, None, 2**40)),
        data=UnixFSData(
            type=UnixFSType.FILE,
            data=b"inline",
            filesize=6 + 10,
            blocksizes=(4, 6, 0),
            hash_type=0x22,
            fanout=256,
            mode=0o644,
            mtime=UnixTime(-5, 999_999_999),
        ).encode(),
    )
    encoded = node.encode()
    decoded = decode_pbnode(encoded)
    assert decoded == node
    unixfs = decode_unixfs(decoded.data or b"")
    assert unixfs.mtime == UnixTime(-5, 999_999_999)
    assert unixfs.blocksizes == (4, 6, 0)
    assert unixfs.encode() == node.data


def test_absent_and_empty_fields_differ() -> None:
    assert decode_pbnode(b"") == PBNode((), None)
    assert decode_pbnode(length_delimited(1, b"")) == PBNode((), b"")
    assert decode_pbnode(link(HASH)).links == (PBLink(LEAF, None, None),)
    assert decode_pbnode(link(HASH, NAME, TSIZE)).links == (PBLink(LEAF, "", 4),)


def test_packed_blocksizes_are_accepted() -> None:
    packed = field(1, 0) + b"\x02" + field(4, 2) + b"\x03" + b"\x01\x02\x03"
    assert decode_unixfs(packed).blocksizes == (1, 2, 3)


def test_cid_from_bytes() -> None:
    assert cid_from_bytes(LEAF_BYTES) == LEAF
    node_cid = Cid.of_block(CODEC_DAG_PB, b"x")
    assert cid_from_bytes(node_cid.to_bytes()) == node_cid
    with pytest.raises(MalformedContent):
        cid_from_bytes(b"\x12\x20" + LEAF.digest)  # CIDv0
    with pytest.raises(MalformedContent):
        cid_from_bytes(LEAF_BYTES[:-1])


# --- strict refusals --------------------------------------------------------------------------

MALFORMED_NODES = {
    "truncated varint": b"\x12\x80",
    "field past the end": b"\x0a\x05ab",
    "unknown field": length_delimited(3, b"x"),
    "field number zero": b"\x02\x00",
    "Data with varint wire type": field(1, 0) + b"\x01",
    "Data before Links": FILE_DATA + link(HASH),
    "Links after Data interleaved": link(HASH) + FILE_DATA + link(HASH),
    "two Data fields": FILE_DATA + FILE_DATA,
    "link without Hash": link(NAME, TSIZE),
    "link Name before Hash": link(NAME, HASH),
    "link Tsize before Name": link(HASH, TSIZE, NAME),
    "link with two Hashes": link(HASH, HASH),
    "link with unknown field": link(HASH, length_delimited(4, b"")),
    "link Tsize as bytes": link(HASH, length_delimited(3, b"\x01")),
    "link Name not UTF-8": link(HASH, length_delimited(2, b"\xff\xfe")),
    "link to a CIDv0": link(length_delimited(1, b"\x12\x20" + LEAF.digest)),
    "link to a dag-cbor CID": link(length_delimited(1, b"\x01\x71\x12\x20" + LEAF.digest)),
    "varint over 10 bytes": b"\x12" + b"\xff" * 10 + b"\x01",
    "varint over 64 bits": b"\x12" + b"\xff" * 9 + b"\x7f",
}


@pytest.mark.parametrize("block", MALFORMED_NODES.values(), ids=MALFORMED_NODES.keys())
def test_malformed_nodes_are_refused(block: bytes) -> None:
    with pytest.raises(MalformedContent) as info:
        decode_pbnode(block)
    message = str(info.value)
    assert message.startswith("A dag-pb block is malformed: ")
    assert message.endswith(".") and "\n" not in message


MALFORMED_UNIXFS = {
    "no Type": field(3, 0) + b"\x05",
    "unknown Type": field(1, 0) + b"\x09",
    "Type twice": field(1, 0) + b"\x02" + field(1, 0) + b"\x02",
    "filesize twice": field(1, 0) + b"\x02" + field(3, 0) + b"\x01" + field(3, 0) + b"\x01",
    "unknown field": field(1, 0) + b"\x02" + field(9, 0) + b"\x01",
    "Type as bytes": length_delimited(1, b"\x02"),
    "blocksizes as fixed32": field(1, 0) + b"\x02" + field(4, 5) + b"\x00\x00\x00\x00",
    "truncated packed blocksizes": field(1, 0) + b"\x02" + field(4, 2) + b"\x02\x80",
    "mtime without seconds": field(1, 0) + b"\x02" + length_delimited(8, b""),
    "truncated mtime nanoseconds": field(1, 0)
    + b"\x02"
    + length_delimited(8, field(1, 0) + b"\x01" + field(2, 5) + b"\x00\x00"),
    "data past the end": field(1, 0) + b"\x02" + field(2, 2) + b"\x09ab",
}


@pytest.mark.parametrize("data", MALFORMED_UNIXFS.values(), ids=MALFORMED_UNIXFS.keys())
def test_malformed_unixfs_is_refused(data: bytes) -> None:
    with pytest.raises(MalformedContent):
        decode_unixfs(data)


def test_decoding_accepts_memoryview() -> None:
    root, blocks = build_dag(content(2 * CHUNK_SIZE))
    block = dict(blocks)[root]
    assert decode_pbnode(memoryview(block)) == decode_pbnode(block)
