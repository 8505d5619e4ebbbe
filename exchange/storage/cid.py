"""CIDv1 computation matching `ipfs add --cid-version 1` with kubo's default settings.

Kubo's defaults for `--cid-version 1`: a fixed-size chunker of 262144 bytes, raw leaves
(codec raw, 0x55), a balanced DAG with at most 174 links per node, and dag-pb (0x70)
internal nodes carrying UnixFS `Data{Type=File, filesize, blocksizes}`. A file that fits in
one chunk (including the empty file) is reduced to its raw leaf, so its CID is simply
`raw + sha2-256(bytes)`.

Only the few protobuf features dag-pb and UnixFS use are implemented here (varints and
length-delimited fields); there is no third-party IPFS/multiformats dependency.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from exchange.errors import InputError

CHUNK_SIZE = 262_144
MAX_LINKS_PER_NODE = 174

CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
_SHA2_256 = 0x12
_SHA2_256_LENGTH = 32
_CID_VERSION = 1
_MULTIBASE_BASE32 = "b"
_UNIXFS_TYPE_FILE = 2

_BASE32_LOWER = re.compile(r"[a-z2-7]+")
_CODEC_NAMES = {CODEC_RAW: "raw", CODEC_DAG_PB: "dag-pb"}


# --- protobuf / multiformats primitives ------------------------------------------------


def _varint(value: int) -> bytes:
    """Unsigned LEB128, the varint of both protobuf and multiformats."""
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one varint at `pos`; return (value, position after it)."""
    value = 0
    shift = 0
    while pos < len(buf):
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    raise ValueError("truncated or oversized varint")


def _field_varint(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _field_bytes(field: int, value: bytes) -> bytes:
    return _varint((field << 3) | 2) + _varint(len(value)) + value


# --- CID ---------------------------------------------------------------------------------


def _reject(text: str, why: str) -> InputError:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return InputError(
        f"{shown!r} is not a valid content ID: {why} "
        "(expected a CIDv1 in base32, like 'bafkrei...' or 'bafybei...')."
    )


@dataclass(frozen=True)
class Cid:
    """A CIDv1 with a sha2-256 multihash, codec raw (0x55) or dag-pb (0x70)."""

    version: int
    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.version != _CID_VERSION:
            raise ValueError(f"only CIDv1 is supported, got version {self.version}")
        if self.codec not in _CODEC_NAMES:
            raise ValueError(f"unsupported codec 0x{self.codec:x}")
        if len(self.digest) != _SHA2_256_LENGTH:
            raise ValueError("a sha2-256 digest is 32 bytes")

    @classmethod
    def from_raw_digest(cls, digest: bytes) -> Cid:
        """The CID of a raw block whose sha2-256 digest is `digest`."""
        return cls(_CID_VERSION, CODEC_RAW, bytes(digest))

    @classmethod
    def of_block(cls, codec: int, block: bytes | memoryview) -> Cid:
        """The CID of one encoded block under `codec`."""
        return cls(_CID_VERSION, codec, hashlib.sha256(block).digest())

    @classmethod
    def parse(cls, text: str) -> Cid:
        """Parse a base32 CIDv1 string; raise InputError for anything else."""
        if not isinstance(text, str) or not text:
            raise _reject(str(text), "it is empty")
        if text.startswith("Qm") and len(text) == 46:
            raise _reject(text, "CIDv0 ('Qm...') is not accepted")
        if text[0] != _MULTIBASE_BASE32:
            raise _reject(text, "it is not in lowercase base32 (multibase prefix 'b')")
        body = text[1:]
        if not _BASE32_LOWER.fullmatch(body):
            raise _reject(text, "it contains characters outside lowercase base32")
        try:
            raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        except ValueError:
            raise _reject(text, "its base32 encoding is malformed") from None
        return cls._from_bytes(raw, text)

    @classmethod
    def _from_bytes(cls, raw: bytes, text: str) -> Cid:
        try:
            version, pos = _read_varint(raw, 0)
            codec, pos = _read_varint(raw, pos)
            hash_code, pos = _read_varint(raw, pos)
            hash_len, pos = _read_varint(raw, pos)
        except ValueError:
            raise _reject(text, "its binary form is truncated") from None
        if version != _CID_VERSION:
            raise _reject(text, f"CID version {version} is not supported")
        if codec not in _CODEC_NAMES:
            raise _reject(text, f"codec 0x{codec:x} is neither raw nor dag-pb")
        if hash_code != _SHA2_256 or hash_len != _SHA2_256_LENGTH:
            raise _reject(text, "its hash is not sha2-256")
        digest = raw[pos:]
        if len(digest) != _SHA2_256_LENGTH:
            raise _reject(text, "its digest has the wrong length")
        cid = cls(version, codec, digest)
        # Non-canonical spellings (e.g. stray trailing bits) must not alias a real CID.
        if str(cid) != text:
            raise _reject(text, "it is not in canonical form")
        return cid

    def to_bytes(self) -> bytes:
        """Binary CID: version, codec, multihash (code, length, digest)."""
        return (
            _varint(self.version)
            + _varint(self.codec)
            + _varint(_SHA2_256)
            + _varint(_SHA2_256_LENGTH)
            + self.digest
        )

    def __str__(self) -> str:
        encoded = base64.b32encode(self.to_bytes()).decode("ascii").rstrip("=").lower()
        return _MULTIBASE_BASE32 + encoded

    def __repr__(self) -> str:
        return f"Cid({str(self)!r})"


# --- DAG building ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """What a parent needs to know about a child: its CID and two sizes."""

    cid: Cid
    filesize: int  # bytes of file content below this node
    tsize: int  # encoded bytes of this node's whole subtree (the link's Tsize)


def _encode_link(child: _Node) -> bytes:
    # PBLink field order is Hash(1), Name(2), Tsize(3); kubo and js always write an empty Name.
    return (
        _field_bytes(1, child.cid.to_bytes()) + _field_bytes(2, b"") + _field_varint(3, child.tsize)
    )


def _encode_unixfs_file(children: list[_Node]) -> bytes:
    # UnixFS Data: Type(1)=File, filesize(3), blocksizes(4, repeated, unpacked); no data(2).
    parts = [_field_varint(1, _UNIXFS_TYPE_FILE)]
    parts.append(_field_varint(3, sum(c.filesize for c in children)))
    parts.extend(_field_varint(4, c.filesize) for c in children)
    return b"".join(parts)


def _encode_file_node(children: list[_Node]) -> bytes:
    """dag-pb PBNode in canonical order: every Link (field 2), then Data (field 1)."""
    links = [_field_bytes(2, _encode_link(c)) for c in children]
    return b"".join(links) + _field_bytes(1, _encode_unixfs_file(children))


def _chunks(view: memoryview) -> list[memoryview]:
    # An empty input still yields one (empty) chunk, as kubo's and js's chunkers do.
    if len(view) == 0:
        return [view]
    return [view[i : i + CHUNK_SIZE] for i in range(0, len(view), CHUNK_SIZE)]


def _build(view: memoryview, blocks: list[tuple[Cid, bytes]] | None) -> Cid:
    """Build the DAG over `view` and return its root; append blocks to `blocks` if given."""
    level: list[_Node] = []
    for chunk in _chunks(view):
        cid = Cid.of_block(CODEC_RAW, chunk)
        if blocks is not None:
            blocks.append((cid, bytes(chunk)))
        level.append(_Node(cid, len(chunk), len(chunk)))

    # A single chunk is its own root: no wrapping dag-pb node (reduceSingleLeafToSelf).
    if len(level) == 1:
        return level[0].cid

    # Balanced layout: group up to 174 siblings under a parent, repeat until one root.
    # A trailing group of one still gets a parent, matching the js importer and kubo.
    while len(level) > 1:
        parents: list[_Node] = []
        for start in range(0, len(level), MAX_LINKS_PER_NODE):
            children = level[start : start + MAX_LINKS_PER_NODE]
            block = _encode_file_node(children)
            cid = Cid.of_block(CODEC_DAG_PB, block)
            if blocks is not None:
                blocks.append((cid, block))
            filesize = sum(c.filesize for c in children)
            parents.append(_Node(cid, filesize, len(block) + sum(c.tsize for c in children)))
        level = parents
    return level[0].cid


def build_dag(data: bytes | bytearray | memoryview) -> tuple[Cid, list[tuple[Cid, bytes]]]:
    """Chunk `data` into a UnixFS file DAG exactly as `ipfs add --cid-version 1` does.

    Returns the root CID and every block of the DAG (raw leaves first, then internal
    nodes level by level, bottom-up), each paired with its CID. The root's block is last.
    """
    blocks: list[tuple[Cid, bytes]] = []
    root = _build(memoryview(data).cast("B"), blocks)
    return root, blocks


def compute_cid(data: bytes | bytearray | memoryview) -> Cid:
    """The root CID `ipfs add --cid-version 1` would print for `data`."""
    # No block list: leaf bytes are hashed in place through memoryviews, never copied.
    return _build(memoryview(data).cast("B"), None)
