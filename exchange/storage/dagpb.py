"""Strict decoding (and canonical encoding) of dag-pb nodes and the UnixFS data they carry.

A dag-pb block is a protobuf `PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }`
with `PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }`
(https://ipld.io/specs/codecs/dag-pb/spec/). Blocks come from untrusted gateways, so the
decoder refuses anything the dag-pb spec's strict form does not allow: unknown fields, wrong
wire types, duplicated or out-of-order fields, truncated or overlong varints, and trailing
garbage. UnixFS `Data` (https://specs.ipfs.tech/unixfs/) is decoded as strictly.

Links are typed as `Cid`, so a node linking to a CID Cove cannot verify (CIDv0, identity or
non-sha2-256 hashes, other codecs) is refused rather than half-understood. `encode()` writes
the canonical bytes, byte-identical to what `exchange.storage.cid` and kubo produce.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from exchange.errors import MalformedContent
from exchange.storage.cid import CODEC_DAG_PB, CODEC_RAW, Cid

_WIRE_VARINT = 0
_WIRE_LEN = 2
_WIRE_FIXED32 = 5
_MAX_VARINT_BYTES = 10  # a uint64 needs at most 10 LEB128 bytes
_UINT64_LIMIT = 1 << 64

# Binary CIDv1 prefix for sha2-256: version 1, <codec>, multihash code 0x12, length 32.
_CID_SHA256_PREFIXES = {bytes([1, codec, 0x12, 0x20]): codec for codec in (CODEC_RAW, CODEC_DAG_PB)}
_CID_SHA256_LENGTH = 36


class UnixFSType(enum.IntEnum):
    """UnixFS `Data.DataType`."""

    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True)
class PBLink:
    """One dag-pb link. `name`/`tsize` are None when the field is absent (not just empty)."""

    hash: Cid
    name: str | None = None
    tsize: int | None = None


@dataclass(frozen=True)
class PBNode:
    """A decoded dag-pb block: its links in order and its opaque `Data` (None when absent)."""

    links: tuple[PBLink, ...] = ()
    data: bytes | None = None

    def encode(self) -> bytes:
        """Canonical dag-pb bytes: every Link (field 2) first, then Data (field 1)."""
        parts = [_len_field(2, _encode_link(link)) for link in self.links]
        if self.data is not None:
            parts.append(_len_field(1, self.data))
        return b"".join(parts)


@dataclass(frozen=True)
class UnixTime:
    """UnixFS `UnixTime`: seconds since the epoch, optional nanoseconds."""

    seconds: int
    fractional_nanoseconds: int | None = None


@dataclass(frozen=True)
class UnixFSData:
    """A decoded UnixFS `Data` message (the `Data` field of a UnixFS dag-pb node)."""

    type: UnixFSType
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = field(default_factory=tuple)
    hash_type: int | None = None
    fanout: int | None = None
    mode: int | None = None
    mtime: UnixTime | None = None

    def encode(self) -> bytes:
        """Protobuf bytes in field-number order, blocksizes unpacked (as kubo writes them)."""
        parts = [_varint_field(1, int(self.type))]
        if self.data is not None:
            parts.append(_len_field(2, self.data))
        if self.filesize is not None:
            parts.append(_varint_field(3, self.filesize))
        parts.extend(_varint_field(4, size) for size in self.blocksizes)
        if self.hash_type is not None:
            parts.append(_varint_field(5, self.hash_type))
        if self.fanout is not None:
            parts.append(_varint_field(6, self.fanout))
        if self.mode is not None:
            parts.append(_varint_field(7, self.mode))
        if self.mtime is not None:
            parts.append(_len_field(8, _encode_unixtime(self.mtime)))
        return b"".join(parts)


# --- decoding --------------------------------------------------------------------------


def decode_pbnode(block: bytes | memoryview) -> PBNode:
    """Decode one dag-pb block strictly; raise MalformedContent for anything malformed."""
    buf = bytes(block)
    links: list[PBLink] = []
    data: bytes | None = None
    pos = 0
    while pos < len(buf):
        field_number, wire_type, pos = _read_key(buf, pos, "PBNode")
        if wire_type != _WIRE_LEN:
            raise _malformed(f"PBNode field {field_number} has wire type {wire_type}, not bytes")
        value, pos = _read_len(buf, pos, "PBNode")
        if field_number == 2:
            # Canonical (and go/js strict) form: no Link may follow Data.
            if data is not None:
                raise _malformed("a PBNode Link comes after its Data")
            links.append(_decode_link(value))
        elif field_number == 1:
            if data is not None:
                raise _malformed("a PBNode has two Data fields")
            data = value
        else:
            raise _malformed(f"a PBNode has unknown field {field_number}")
    return PBNode(tuple(links), data)


def decode_unixfs(data: bytes | memoryview) -> UnixFSData:
    """Decode a UnixFS `Data` message strictly; raise MalformedContent if malformed."""
    buf = bytes(data)
    numbers: dict[int, int] = {}  # varint fields by field number
    blobs: dict[int, bytes] = {}  # length-delimited fields by field number
    blocksizes: list[int] = []
    pos = 0
    while pos < len(buf):
        field_number, wire_type, pos = _read_key(buf, pos, "UnixFS Data")
        if field_number == 4:
            # Repeated uint64: protobuf parsers must accept both unpacked and packed forms.
            if wire_type == _WIRE_VARINT:
                size, pos = _read_varint(buf, pos, "UnixFS blocksizes")
                blocksizes.append(size)
            elif wire_type == _WIRE_LEN:
                packed, pos = _read_len(buf, pos, "UnixFS blocksizes")
                blocksizes.extend(_read_packed_varints(packed))
            else:
                raise _malformed(f"UnixFS blocksizes have wire type {wire_type}")
            continue
        if field_number in numbers or field_number in blobs:
            raise _malformed(f"UnixFS Data repeats field {field_number}")
        if field_number in (1, 3, 5, 6, 7):
            _expect_wire(wire_type, _WIRE_VARINT, field_number)
            numbers[field_number], pos = _read_varint(buf, pos, "UnixFS Data")
        elif field_number in (2, 8):
            _expect_wire(wire_type, _WIRE_LEN, field_number)
            blobs[field_number], pos = _read_len(buf, pos, "UnixFS Data")
        else:
            raise _malformed(f"UnixFS Data has unknown field {field_number}")

    if 1 not in numbers:
        raise _malformed("UnixFS Data has no Type")
    try:
        kind = UnixFSType(numbers[1])
    except ValueError:
        raise _malformed(f"UnixFS Data has unknown Type {numbers[1]}") from None
    raw_mtime = blobs.get(8)
    return UnixFSData(
        type=kind,
        data=blobs.get(2),
        filesize=numbers.get(3),
        blocksizes=tuple(blocksizes),
        hash_type=numbers.get(5),
        fanout=numbers.get(6),
        mode=numbers.get(7),
        mtime=None if raw_mtime is None else _decode_unixtime(raw_mtime),
    )


def cid_from_bytes(raw: bytes) -> Cid:
    """Parse a binary CID; raise MalformedContent unless it is a CIDv1 Cove can verify."""
    codec = _CID_SHA256_PREFIXES.get(raw[:4])
    if codec is None or len(raw) != _CID_SHA256_LENGTH:
        raise _malformed(
            "a link points to a CID that is not a CIDv1 of a raw or dag-pb block with a "
            "sha2-256 hash"
        )
    return Cid(1, codec, raw[4:])


def _decode_link(buf: bytes) -> PBLink:
    hash_cid: Cid | None = None
    name: str | None = None
    tsize: int | None = None
    last_field = 0
    pos = 0
    while pos < len(buf):
        field_number, wire_type, pos = _read_key(buf, pos, "PBLink")
        if field_number not in (1, 2, 3):
            raise _malformed(f"a PBLink has unknown field {field_number}")
        # Fields must appear once each, in order Hash, Name, Tsize (the canonical form).
        if field_number <= last_field:
            raise _malformed("a PBLink has duplicated or out-of-order fields")
        last_field = field_number
        if field_number == 1:
            _expect_wire(wire_type, _WIRE_LEN, 1)
            raw, pos = _read_len(buf, pos, "PBLink")
            hash_cid = cid_from_bytes(raw)
        elif field_number == 2:
            _expect_wire(wire_type, _WIRE_LEN, 2)
            raw, pos = _read_len(buf, pos, "PBLink")
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _malformed("a PBLink Name is not UTF-8") from None
        else:
            _expect_wire(wire_type, _WIRE_VARINT, 3)
            tsize, pos = _read_varint(buf, pos, "PBLink")
    if hash_cid is None:
        raise _malformed("a PBLink has no Hash")
    return PBLink(hash_cid, name, tsize)


def _decode_unixtime(buf: bytes) -> UnixTime:
    seconds: int | None = None
    nanos: int | None = None
    pos = 0
    while pos < len(buf):
        field_number, wire_type, pos = _read_key(buf, pos, "UnixTime")
        if field_number == 1 and seconds is None:
            _expect_wire(wire_type, _WIRE_VARINT, 1)
            value, pos = _read_varint(buf, pos, "UnixTime")
            seconds = value - _UINT64_LIMIT if value >= 1 << 63 else value  # int64
        elif field_number == 2 and nanos is None:
            _expect_wire(wire_type, _WIRE_FIXED32, 2)
            if pos + 4 > len(buf):
                raise _malformed("UnixTime nanoseconds are truncated")
            (nanos,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        else:
            raise _malformed(f"UnixTime has an unknown or repeated field {field_number}")
    if seconds is None:
        raise _malformed("UnixTime has no Seconds")
    return UnixTime(seconds, nanos)


# --- protobuf wire primitives ------------------------------------------------------------


def _malformed(why: str) -> MalformedContent:
    return MalformedContent(f"A dag-pb block is malformed: {why}.")


def _read_varint(buf: bytes, pos: int, where: str) -> tuple[int, int]:
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if pos >= len(buf):
            raise _malformed(f"{where} ends inside a varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if value >= _UINT64_LIMIT:
                raise _malformed(f"{where} has a varint above 64 bits")
            return value, pos
    raise _malformed(f"{where} has a varint longer than 10 bytes")


def _read_key(buf: bytes, pos: int, where: str) -> tuple[int, int, int]:
    key, pos = _read_varint(buf, pos, where)
    field_number, wire_type = key >> 3, key & 0x7
    if field_number == 0:
        raise _malformed(f"{where} has field number 0")
    return field_number, wire_type, pos


def _read_len(buf: bytes, pos: int, where: str) -> tuple[bytes, int]:
    length, pos = _read_varint(buf, pos, where)
    end = pos + length
    if end > len(buf):
        raise _malformed(f"{where} has a field longer than the bytes left")
    return buf[pos:end], end


def _read_packed_varints(buf: bytes) -> list[int]:
    values = []
    pos = 0
    while pos < len(buf):
        value, pos = _read_varint(buf, pos, "UnixFS blocksizes")
        values.append(value)
    return values


def _expect_wire(actual: int, expected: int, field_number: int) -> None:
    if actual != expected:
        raise _malformed(f"field {field_number} has wire type {actual}, expected {expected}")


def _varint(value: int) -> bytes:
    if not 0 <= value < _UINT64_LIMIT:
        raise ValueError(f"{value} does not fit a protobuf uint64")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _varint_field(field_number: int, value: int) -> bytes:
    return _varint(field_number << 3 | _WIRE_VARINT) + _varint(value)


def _len_field(field_number: int, value: bytes) -> bytes:
    return _varint(field_number << 3 | _WIRE_LEN) + _varint(len(value)) + value


def _encode_link(link: PBLink) -> bytes:
    parts = [_len_field(1, link.hash.to_bytes())]
    if link.name is not None:
        parts.append(_len_field(2, link.name.encode("utf-8")))
    if link.tsize is not None:
        parts.append(_varint_field(3, link.tsize))
    return b"".join(parts)


def _encode_unixtime(mtime: UnixTime) -> bytes:
    parts = [_varint_field(1, mtime.seconds % _UINT64_LIMIT)]
    if mtime.fractional_nanoseconds is not None:
        parts.append(
            _varint(2 << 3 | _WIRE_FIXED32) + struct.pack("<I", mtime.fractional_nanoseconds)
        )
    return b"".join(parts)
