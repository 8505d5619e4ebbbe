"""CARv1 streams (https://ipld.io/specs/transport/car/carv1/): write, read and verify, walk.

- Writing: `write_car(roots, blocks)` yields a CAR piece by piece (header, then one section
  per block), so a server can stream a DAG without holding it in memory.
- Reading: `read_car(chunks)` parses a CAR from untrusted bytes under hard limits (total
  size, block size), verifies every block it can against its CID and keeps the verified
  ones. The header's roots are returned for information only: the trustless gateway spec
  says clients must ignore them, so trust comes only from the CID the caller asked for.
- Reassembling: `reassemble_file(root, blocks)` walks a UnixFS file DAG depth-first from the
  expected root and returns its bytes, checking sizes against UnixFS `filesize` and
  `blocksizes`. Blocks not reachable from the root are ignored, as the spec requires.
- Serving: `walk_dag(root, lookup)` yields a DAG's blocks in DFS order, for `dag-scope`
  block/entity/all and `entity-bytes` ranges.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exchange.errors import (
    ContentMismatch,
    ContentNotFound,
    ContentTooLarge,
    InputError,
    MalformedContent,
)
from exchange.storage.cid import CODEC_DAG_PB, CODEC_RAW, Cid
from exchange.storage.dagpb import PBNode, UnixFSData, UnixFSType, decode_pbnode, decode_unixfs

CAR_VERSION = 1
# Bitswap and kubo cap blocks at 1 MiB (kubo's own leaves are 256 KiB); the slack leaves
# room for the section's CID, so no honest kubo-made section is ever refused.
MAX_BLOCK_BYTES = 1 << 20
_SECTION_SLACK = 1024
DEFAULT_MAX_CAR_BYTES = 1 << 30
# Visiting a node is cheap but a tiny CAR can link one block millions of times; this bounds
# the work of a reassembly whatever the DAG's shape.
DEFAULT_MAX_DAG_NODES = 1_000_000

_MAX_UVARINT_BYTES = 9  # the multiformats unsigned-varint spec's practical maximum
_CID_V0_PREFIX = b"\x12\x20"
_SHA2_256 = 0x12
_IDENTITY = 0x00
_CBOR_CID_TAG = 42
_CBOR_MAX_DEPTH = 8

BlockLookup = Callable[[Cid], bytes | None]


class DagScope(str, enum.Enum):
    """The trustless gateway's `dag-scope`: how much of the DAG below the root to send."""

    BLOCK = "block"
    ENTITY = "entity"
    ALL = "all"


@dataclass(frozen=True)
class CarContents:
    """What a CAR held: the header's roots (binary CIDs, untrusted) and its verified blocks."""

    roots: tuple[bytes, ...]
    blocks: dict[Cid, bytes]


# --- writing ---------------------------------------------------------------------------


def encode_car_header(roots: Sequence[Cid | bytes]) -> bytes:
    """The length-prefixed header: dag-cbor `{"roots": [CID...], "version": 1}`.

    Roots are Cids or binary CIDs (the identity probe CID `bafkqaaa` is not a `Cid`).
    Keys are in dag-cbor's canonical order (shorter first), so the bytes are canonical.
    """
    body = bytearray(b"\xa2")  # map of two entries
    body += _cbor_text("roots")
    body += _cbor_head(4, len(roots))
    for root in roots:
        raw = root.to_bytes() if isinstance(root, Cid) else bytes(root)
        body += _cbor_head(6, _CBOR_CID_TAG)
        body += _cbor_head(2, len(raw) + 1) + b"\x00" + raw  # 0x00: the identity multibase
    body += _cbor_text("version")
    body += _cbor_head(0, CAR_VERSION)
    return encode_uvarint(len(body)) + bytes(body)


def encode_car_section(cid: Cid, block: bytes) -> bytes:
    """One data section: varint(len(CID + block)), the binary CID, the block."""
    raw = cid.to_bytes()
    return encode_uvarint(len(raw) + len(block)) + raw + block


def write_car(roots: Sequence[Cid | bytes], blocks: Iterable[tuple[Cid, bytes]]) -> Iterator[bytes]:
    """Yield a CARv1 piece by piece: the header, then one section per (CID, block)."""
    yield encode_car_header(roots)
    for cid, block in blocks:
        yield encode_car_section(cid, block)


# --- reading ---------------------------------------------------------------------------


def read_car(
    chunks: Iterable[bytes] | bytes,
    *,
    max_car_bytes: int = DEFAULT_MAX_CAR_BYTES,
    max_block_bytes: int = MAX_BLOCK_BYTES,
) -> CarContents:
    """Parse and verify a CARv1 from `chunks` (an iterable of bytes, or bytes).

    Raises ContentTooLarge as soon as more than `max_car_bytes` arrive (nothing more is
    read), MalformedContent for a truncated or malformed CAR, and ContentMismatch for a
    block that does not hash to its CID. Blocks under CIDs Cove cannot verify (CIDv0,
    identity or other hashes, other codecs) are skipped: no DAG Cove reads can link to them.
    """
    reader = _ChunkReader([chunks] if isinstance(chunks, bytes) else chunks, max_car_bytes)
    max_section = max_block_bytes + _SECTION_SLACK
    header_length = reader.read_uvarint()
    if header_length is None:
        raise MalformedContent("The CAR is empty: it has no header.")
    if not 0 < header_length <= max_section:
        raise MalformedContent(
            f"The CAR header claims {header_length} bytes, which is not plausible."
        )
    roots = _parse_header(reader.read_exact(header_length))

    blocks: dict[Cid, bytes] = {}
    while (section_length := reader.read_uvarint()) is not None:
        if section_length == 0:
            raise MalformedContent("The CAR has an empty section.")
        if section_length > max_section:
            raise MalformedContent(
                f"The CAR has a {section_length}-byte section, above the {max_section}-byte limit."
            )
        section = reader.read_exact(section_length)
        cid_length, cid = _parse_section_cid(section)
        if cid is None:
            continue
        block = section[cid_length:]
        if hashlib.sha256(block).digest() != cid.digest:
            raise ContentMismatch(f"Block {cid} in the CAR does not hash to its CID.")
        blocks[cid] = block
    return CarContents(roots, blocks)


def reassemble_file(
    root: Cid,
    blocks: Mapping[Cid, bytes],
    *,
    max_size: int,
    max_nodes: int = DEFAULT_MAX_DAG_NODES,
) -> bytes:
    """The bytes of the UnixFS file whose root is `root`, from verified `blocks`.

    Walks depth-first from `root` (a raw root is the file itself); raw leaves and any
    UnixFS `data` are concatenated in link order. Refuses a missing block, sizes that
    disagree with `filesize`/`blocksizes`, anything that is not a file, and content above
    `max_size`. Blocks the walk never reaches are ignored.
    """
    out = bytearray()
    decoded: dict[Cid, tuple[PBNode, UnixFSData]] = {}
    stack: list[tuple[Cid, int | None]] = [(root, None)]  # (block, size its parent declared)
    visits = 0
    while stack:
        cid, declared = stack.pop()
        visits += 1
        if visits > max_nodes:
            raise MalformedContent(f"The DAG of {root} needs more than {max_nodes} node visits.")
        block = blocks.get(cid)
        if block is None:
            which = "root block" if cid == root else f"block {cid}, which the file links to"
            raise MalformedContent(f"The CAR for {root} lacks its {which}.")
        if cid.codec == CODEC_RAW:
            _check_declared(root, cid, declared, len(block))
            _append_bounded(out, block, root, max_size)
            continue
        if cid not in decoded:
            decoded[cid] = _decode_file_node(root, cid, block)
        node, unixfs = decoded[cid]
        own = unixfs.data or b""
        total = len(own) + sum(unixfs.blocksizes)
        _check_declared(root, cid, declared, total)
        if len(out) + total > max_size:
            raise _too_large(root, max_size)
        _append_bounded(out, own, root, max_size)
        for link, size in reversed(list(zip(node.links, unixfs.blocksizes, strict=True))):
            stack.append((link.hash, size))
    return bytes(out)


def read_file_from_car(
    chunks: Iterable[bytes] | bytes,
    root: Cid,
    *,
    max_size: int,
    max_car_bytes: int | None = None,
) -> bytes:
    """Read, verify and reassemble the UnixFS file `root` from a CAR stream."""
    if max_car_bytes is None:
        max_car_bytes = car_byte_budget(max_size)
    contents = read_car(chunks, max_car_bytes=max_car_bytes)
    return reassemble_file(root, contents.blocks, max_size=max_size)


def car_byte_budget(max_size: int) -> int:
    """A CAR byte limit for files up to `max_size`: their bytes plus generous DAG overhead."""
    return max_size + max_size // 8 + (1 << 20)


def _decode_file_node(root: Cid, cid: Cid, block: bytes) -> tuple[PBNode, UnixFSData]:
    node = decode_pbnode(block)
    if node.data is None:
        raise InputError(f"{root} is not a UnixFS file: its block {cid} carries no UnixFS data.")
    unixfs = decode_unixfs(node.data)
    if unixfs.type not in (UnixFSType.FILE, UnixFSType.RAW):
        raise InputError(
            f"{root} is not a UnixFS file (block {cid} is a {unixfs.type.name.lower()}); "
            "Cove reads only files."
        )
    if len(node.links) != len(unixfs.blocksizes):
        raise MalformedContent(
            f"Block {cid} of {root} has {len(node.links)} links but "
            f"{len(unixfs.blocksizes)} blocksizes."
        )
    total = len(unixfs.data or b"") + sum(unixfs.blocksizes)
    if unixfs.filesize is not None and unixfs.filesize != total:
        raise MalformedContent(
            f"Block {cid} of {root} declares a filesize of {unixfs.filesize} but its data and "
            f"blocksizes add up to {total}."
        )
    return node, unixfs


def _check_declared(root: Cid, cid: Cid, declared: int | None, actual: int) -> None:
    if declared is not None and declared != actual:
        raise MalformedContent(
            f"Block {cid} of {root} holds {actual} bytes of the file but its parent declares {declared}."
        )


def _append_bounded(out: bytearray, data: bytes, root: Cid, max_size: int) -> None:
    if len(out) + len(data) > max_size:
        raise _too_large(root, max_size)
    out += data


def _too_large(root: Cid, max_size: int) -> ContentTooLarge:
    return ContentTooLarge(f"The content {root} is larger than the {max_size}-byte limit.")


def _parse_section_cid(section: bytes) -> tuple[int, Cid | None]:
    """(length of the section's CID, the CID if Cove can verify its block, else None)."""
    if section[:2] == _CID_V0_PREFIX:
        if len(section) < 34:
            raise MalformedContent("The CAR has a section whose CIDv0 is truncated.")
        return 34, None
    version, pos = _read_uvarint_at(section, 0)
    codec, pos = _read_uvarint_at(section, pos)
    hash_code, pos = _read_uvarint_at(section, pos)
    hash_length, pos = _read_uvarint_at(section, pos)
    if version != 1:
        raise MalformedContent(f"The CAR has a section whose CID has version {version}.")
    end = pos + hash_length
    if end > len(section):
        raise MalformedContent("The CAR has a section whose CID is truncated.")
    if hash_code == _IDENTITY:
        if section[pos:end] != section[end:]:
            raise ContentMismatch("An identity block in the CAR does not match its CID.")
        return end, None
    if hash_code != _SHA2_256 or hash_length != 32 or codec not in (CODEC_RAW, CODEC_DAG_PB):
        return end, None
    return end, Cid(1, codec, section[pos:end])


def _parse_header(raw: bytes) -> tuple[bytes, ...]:
    try:
        header, end = _cbor_decode(raw, 0, 0)
    except (IndexError, ValueError) as exc:
        raise MalformedContent(f"The CAR header is not valid dag-cbor ({exc}).") from None
    if end != len(raw):
        raise MalformedContent("The CAR header has trailing bytes.")
    if not isinstance(header, dict) or "version" not in header:
        raise MalformedContent("The CAR header is not a map with a version.")
    version = header["version"]
    if type(version) is not int or version != CAR_VERSION:
        raise MalformedContent(f"The CAR is version {version!r}; only CARv1 is read.")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, _CidLink) for r in roots):
        raise MalformedContent("The CAR header's roots are not a list of CIDs.")
    return tuple(r.raw for r in roots)


# --- serving: DAG walks ----------------------------------------------------------------


def walk_dag(
    root: Cid,
    lookup: BlockLookup,
    *,
    scope: DagScope = DagScope.ALL,
    byte_range: tuple[int, int] | None = None,
    duplicates: bool = False,
) -> Iterator[tuple[Cid, bytes]]:
    """Yield (CID, block) for the DAG under `root` in depth-first, pre-order link order.

    `scope`: BLOCK yields the root alone; ALL every block reachable through dag-pb links;
    ENTITY equals ALL for a UnixFS file (and a raw block), and the root alone for anything
    else (directories, symlinks, non-UnixFS nodes: Cove serves only files).
    `byte_range` (first, last), inclusive, implies ENTITY and yields only the blocks needed
    to verify those bytes of a UnixFS file. `duplicates=False` yields each block once.
    Raises ContentNotFound when `lookup` lacks a block; a streaming server must then abort.
    """
    if byte_range is not None:
        scope = DagScope.ENTITY
    emitted: set[Cid] = set()
    stack: list[tuple[Cid, int]] = [(root, 0)]  # (block, offset of its bytes in the file)
    while stack:
        cid, offset = stack.pop()
        block = lookup(cid)
        if block is None:
            raise ContentNotFound(f"Block {cid} of {root} is missing from this node's store.")
        seen = cid in emitted
        if duplicates or not seen:
            emitted.add(cid)
            yield cid, block
        if cid.codec != CODEC_DAG_PB or scope is DagScope.BLOCK:
            continue
        if seen and not duplicates and byte_range is None:
            continue  # its whole subtree went out the first time
        stack.extend(reversed(_children_to_walk(decode_pbnode(block), scope, offset, byte_range)))


def unixfs_file_size(cid: Cid, block: bytes) -> int | None:
    """The size of the file rooted at this block, or None if it is not a UnixFS file."""
    if cid.codec == CODEC_RAW:
        return len(block)
    unixfs = _file_unixfs(decode_pbnode(block))
    if unixfs is None:
        return None
    if unixfs.filesize is not None:
        return unixfs.filesize
    return len(unixfs.data or b"") + sum(unixfs.blocksizes)


def _file_unixfs(node: PBNode) -> UnixFSData | None:
    if node.data is None:
        return None
    try:
        unixfs = decode_unixfs(node.data)
    except MalformedContent:
        return None  # dag-pb that is not UnixFS
    return unixfs if unixfs.type in (UnixFSType.FILE, UnixFSType.RAW) else None


def _children_to_walk(
    node: PBNode, scope: DagScope, offset: int, byte_range: tuple[int, int] | None
) -> list[tuple[Cid, int]]:
    unixfs = _file_unixfs(node)
    if unixfs is None:
        # Not a file: ALL still follows every link; ENTITY stops at this block.
        return [(link.hash, 0) for link in node.links] if scope is DagScope.ALL else []
    if len(unixfs.blocksizes) != len(node.links):
        return [(link.hash, 0) for link in node.links]  # sizes unknown: send every child
    children = []
    start = offset + len(unixfs.data or b"")
    for link, size in zip(node.links, unixfs.blocksizes, strict=True):
        end = start + size - 1
        if byte_range is None or (size > 0 and start <= byte_range[1] and end >= byte_range[0]):
            children.append((link.hash, start))
        start += size
    return children


# --- multiformats varints and the stream reader ----------------------------------------


def encode_uvarint(value: int) -> bytes:
    """Unsigned LEB128, as multiformats and CAR use it."""
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _read_uvarint_at(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for index in range(_MAX_UVARINT_BYTES):
        if pos >= len(buf):
            raise MalformedContent("The CAR ends inside a varint.")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index > 0:
                raise MalformedContent("The CAR has a varint that is not minimally encoded.")
            return value, pos
    raise MalformedContent("The CAR has a varint longer than 9 bytes.")


class _ChunkReader:
    """Exact reads over an iterable of byte chunks, refusing to pull more than `limit` bytes."""

    def __init__(self, chunks: Iterable[bytes], limit: int) -> None:
        self._chunks = iter(chunks)
        self._limit = limit
        self._buffer = bytearray()
        self._received = 0

    def _fill(self, wanted: int) -> bool:
        while len(self._buffer) < wanted:
            chunk = next(self._chunks, None)
            if chunk is None:
                return False
            self._received += len(chunk)
            if self._received > self._limit:
                raise ContentTooLarge(f"The CAR is larger than the {self._limit}-byte limit.")
            self._buffer += chunk
        return True

    def read_exact(self, count: int) -> bytes:
        if not self._fill(count):
            raise MalformedContent("The CAR is truncated: it ends in the middle of a section.")
        out = bytes(self._buffer[:count])
        del self._buffer[:count]
        return out

    def read_uvarint(self) -> int | None:
        """The next varint, or None at a clean end of the stream."""
        if not self._fill(1):
            return None
        for length in range(1, _MAX_UVARINT_BYTES + 1):
            if not self._fill(length):
                raise MalformedContent("The CAR is truncated: it ends inside a varint.")
            if not self._buffer[length - 1] & 0x80:
                value, _ = _read_uvarint_at(bytes(self._buffer[:length]), 0)
                del self._buffer[:length]
                return value
        raise MalformedContent("The CAR has a varint longer than 9 bytes.")


# --- the little dag-cbor the CAR header needs ------------------------------------------


@dataclass(frozen=True)
class _CidLink:
    raw: bytes  # binary CID, without the 0x00 multibase prefix


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * width):
            return bytes([major << 5 | info]) + value.to_bytes(width, "big")
    raise ValueError("CBOR integers are at most 64 bits")


def _cbor_text(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _cbor_head(3, len(raw)) + raw


def _cbor_decode(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    """Decode one dag-cbor item: definite lengths only, tag 42 only, no floats."""
    if depth > _CBOR_MAX_DEPTH:
        raise ValueError("nested too deeply")
    initial = buf[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if major == 7:
        simple = {20: False, 21: True, 22: None}
        if info not in simple:
            raise ValueError(f"unsupported simple value or float {info}")
        return simple[info], pos
    if info < 24:
        value = info
    elif info <= 27:
        width = 1 << (info - 24)
        if pos + width > len(buf):
            raise ValueError("truncated")
        value = int.from_bytes(buf[pos : pos + width], "big")
        pos += width
    else:
        raise ValueError("indefinite lengths are not dag-cbor")
    if major == 0:
        return value, pos
    if major == 1:
        return -1 - value, pos
    if major in (2, 3):
        end = pos + value
        if end > len(buf):
            raise ValueError("truncated string")
        raw = buf[pos:end]
        return (raw if major == 2 else raw.decode("utf-8")), end
    if major == 4:
        items = []
        for _ in range(value):
            item, pos = _cbor_decode(buf, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        mapping: dict[str, Any] = {}
        for _ in range(value):
            key, pos = _cbor_decode(buf, pos, depth + 1)
            if not isinstance(key, str) or key in mapping:
                raise ValueError("map keys must be distinct strings")
            mapping[key], pos = _cbor_decode(buf, pos, depth + 1)
        return mapping, pos
    # major 6: a tag; dag-cbor allows only 42, a CID as bytes behind a 0x00 prefix.
    if value != _CBOR_CID_TAG:
        raise ValueError(f"tag {value} is not dag-cbor")
    raw, pos = _cbor_decode(buf, pos, depth + 1)
    if not isinstance(raw, bytes) or raw[:1] != b"\x00" or len(raw) < 2:
        raise ValueError("a CID tag must hold bytes starting with 0x00")
    return _CidLink(raw[1:]), pos
