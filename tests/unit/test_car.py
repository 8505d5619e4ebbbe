"""CARv1 writing, verified reading, UnixFS reassembly and DAG walks; interop with js IPFS."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange.errors import (
    ContentMismatch,
    ContentNotFound,
    ContentTooLarge,
    InputError,
    MalformedContent,
)
from exchange.storage.car import (
    DagScope,
    encode_car_header,
    encode_car_section,
    encode_uvarint,
    read_car,
    read_file_from_car,
    reassemble_file,
    unixfs_file_size,
    walk_dag,
    write_car,
)
from exchange.storage.cid import CHUNK_SIZE, CODEC_DAG_PB, CODEC_RAW, Cid, build_dag, compute_cid
from exchange.storage.dagpb import PBLink, PBNode, UnixFSData, UnixFSType, decode_pbnode

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_SCRIPT = REPO_ROOT / "tests" / "js" / "car_interop.mjs"

SIZES = [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17, 175 * CHUNK_SIZE + 5]
BIG = 1 << 30


def content(size: int, seed: bytes = b"cove-car-test") -> bytes:
    return hashlib.shake_256(seed).digest(size)


def car_of(data: bytes) -> tuple[Cid, bytes]:
    root, blocks = build_dag(data)
    return root, b"".join(write_car([root], blocks))


def sections(data: bytes) -> tuple[Cid, list[tuple[Cid, bytes]]]:
    root, blocks = build_dag(data)
    return root, blocks


def car_from(roots: list[Cid | bytes], blocks: list[tuple[Cid, bytes]]) -> bytes:
    return b"".join(write_car(roots, blocks))


def dag_pb_file(children: list[tuple[Cid, int]], *, filesize: int | None = None) -> bytes:
    """A UnixFS File node over `children` (cid, content size), optionally lying about filesize."""
    sizes = tuple(size for _, size in children)
    unixfs = UnixFSData(
        UnixFSType.FILE, filesize=sum(sizes) if filesize is None else filesize, blocksizes=sizes
    )
    links = tuple(PBLink(cid, "", size) for cid, size in children)
    return PBNode(links, unixfs.encode()).encode()


# --- the writer ---------------------------------------------------------------------------


def test_header_is_canonical_dag_cbor() -> None:
    root = compute_cid(b"hello world\n")
    raw = root.to_bytes()
    body = (
        b"\xa2"  # map(2)
        + b"\x65roots"
        + b"\x81"  # array(1)
        + b"\xd8\x2a"  # tag 42
        + b"\x58\x25\x00"  # bytes(37): 0x00 multibase prefix + 36-byte CID
        + raw
        + b"\x67version\x01"
    )
    assert encode_car_header([root]) == bytes([len(body)]) + body


def test_probe_header_holds_the_identity_cid() -> None:
    header = encode_car_header([b"\x01\x55\x00\x00"])
    assert header == bytes.fromhex("19a265726f6f747381d82a4500015500006776657273696f6e01")
    assert read_car(header).roots == (b"\x01\x55\x00\x00",)


def test_writer_streams_one_piece_per_section() -> None:
    root, blocks = sections(content(3 * CHUNK_SIZE))
    pieces = list(write_car([root], blocks))
    assert len(pieces) == 1 + len(blocks)
    assert pieces[0] == encode_car_header([root])
    cid, block = blocks[0]
    assert pieces[1] == encode_uvarint(36 + len(block)) + cid.to_bytes() + block
    assert pieces[1] == encode_car_section(cid, block)


def test_uvarint() -> None:
    assert encode_uvarint(0) == b"\x00"
    assert encode_uvarint(127) == b"\x7f"
    assert encode_uvarint(128) == b"\x80\x01"
    assert encode_uvarint(300) == b"\xac\x02"


# --- reading and reassembly -----------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(size: int) -> None:
    data = content(size)
    root, car = car_of(data)
    contents = read_car(car)
    assert contents.roots == (root.to_bytes(),)
    assert set(contents.blocks) == {cid for cid, _ in build_dag(data)[1]}
    assert reassemble_file(root, contents.blocks, max_size=BIG) == data
    assert read_file_from_car(car, root, max_size=size) == data


def test_reads_from_tiny_chunks() -> None:
    data = content(CHUNK_SIZE + 100)
    root, car = car_of(data)
    small = iter(car[i : i + 7] for i in range(0, len(car), 7))
    assert read_file_from_car(small, root, max_size=BIG) == data


def test_tampered_block_is_refused() -> None:
    root, blocks = sections(content(3 * CHUNK_SIZE))
    cid, block = blocks[1]
    tampered = bytearray(block)
    tampered[100] ^= 1
    blocks[1] = (cid, bytes(tampered))
    with pytest.raises(ContentMismatch) as info:
        read_car(car_from([root], blocks))
    assert str(cid) in str(info.value)


def test_tampered_unrelated_block_is_refused_too() -> None:
    # Every block is verified, reachable or not: a lying gateway is not trusted further.
    root, blocks = sections(content(CHUNK_SIZE + 1))
    stranger = compute_cid(b"stranger")
    with pytest.raises(ContentMismatch):
        read_car(car_from([root], [*blocks, (stranger, b"not the stranger")]))


def test_truncation_inside_any_part_is_refused() -> None:
    root, car = car_of(content(CHUNK_SIZE + 1))
    header_length = len(encode_car_header([root]))
    for cut in (0, 1, header_length - 1, header_length + 1, header_length + 20, len(car) - 1):
        with pytest.raises(MalformedContent):
            read_file_from_car(car[:cut], root, max_size=BIG)


def test_truncation_at_a_section_boundary_is_a_missing_block() -> None:
    root, blocks = sections(content(3 * CHUNK_SIZE))
    car = car_from([root], blocks[:-2])  # ends cleanly, one leaf and the root missing
    contents = read_car(car)
    with pytest.raises(MalformedContent) as info:
        reassemble_file(root, contents.blocks, max_size=BIG)
    assert "root block" in str(info.value)


def test_missing_leaf_is_refused() -> None:
    root, blocks = sections(content(3 * CHUNK_SIZE + 17))
    missing = blocks[2][0]
    car = car_from([root], [b for b in blocks if b[0] != missing])
    with pytest.raises(MalformedContent) as info:
        read_file_from_car(car, root, max_size=BIG)
    assert str(missing) in str(info.value) and str(root) in str(info.value)


def test_unrelated_blocks_are_ignored() -> None:
    data = content(2 * CHUNK_SIZE + 5)
    root, blocks = sections(data)
    _, others = sections(content(CHUNK_SIZE + 9, seed=b"other"))
    car = car_from([root], others[:1] + blocks + others[1:])
    contents = read_car(car)
    assert len(contents.blocks) == len(blocks) + len(others)
    assert reassemble_file(root, contents.blocks, max_size=BIG) == data


def test_header_roots_are_not_trusted() -> None:
    data = content(2 * CHUNK_SIZE)
    root, blocks = sections(data)
    liar = compute_cid(b"somebody else")
    # A header naming another root changes nothing: only the CID asked for counts.
    assert read_file_from_car(car_from([liar], blocks), root, max_size=BIG) == data
    # Asking for a root whose blocks are absent fails, whatever the header says.
    with pytest.raises(MalformedContent):
        read_file_from_car(car_from([liar], blocks), liar, max_size=BIG)


def test_wrong_root_is_refused() -> None:
    root_a, blocks_a = sections(content(2 * CHUNK_SIZE, seed=b"a"))
    root_b, _ = sections(content(2 * CHUNK_SIZE, seed=b"b"))
    with pytest.raises(MalformedContent) as info:
        read_file_from_car(car_from([root_b], blocks_a), root_b, max_size=BIG)
    assert str(root_b) in str(info.value)
    assert root_a != root_b


def test_duplicate_blocks_are_accepted() -> None:
    data = bytes(3 * CHUNK_SIZE)  # all-zero: three identical leaves, one CID
    root, blocks = sections(data)
    assert len({cid for cid, _ in blocks}) == 2
    car = car_from([root], blocks + blocks)
    assert read_file_from_car(car, root, max_size=BIG) == data


def test_raw_root_is_the_file_itself() -> None:
    data = b"one small chunk"
    root = compute_cid(data)
    assert root.codec == CODEC_RAW
    assert read_file_from_car(car_from([root], [(root, data)]), root, max_size=100) == data


def test_max_car_bytes_stops_reading() -> None:
    _, car = car_of(content(4 * CHUNK_SIZE))
    pulled = []

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(car), 65536):
            pulled.append(start)
            yield car[start : start + 65536]

    with pytest.raises(ContentTooLarge):
        read_car(chunks(), max_car_bytes=CHUNK_SIZE)
    assert len(pulled) == CHUNK_SIZE // 65536 + 1  # nothing read past the limit


def test_max_size_is_enforced_on_the_file() -> None:
    data = content(3 * CHUNK_SIZE)
    root, car = car_of(data)
    with pytest.raises(ContentTooLarge):
        read_file_from_car(car, root, max_size=len(data) - 1)
    raw_root, raw_car = car_of(b"12345")
    with pytest.raises(ContentTooLarge):
        read_file_from_car(raw_car, raw_root, max_size=4)


def test_oversized_section_is_refused() -> None:
    block = bytes(70_000)
    cid = compute_cid(block)
    with pytest.raises(MalformedContent):
        read_car(car_from([cid], [(cid, block)]), max_block_bytes=65_536)


def framed(header_body: bytes) -> bytes:
    return encode_uvarint(len(header_body)) + header_body


V1_BODY = b"\xa2\x65roots\x80\x67version\x01"  # {"roots": [], "version": 1}


@pytest.mark.parametrize(
    ("car", "why"),
    [
        (b"", "is empty"),
        (b"\x00", "not plausible"),
        (b"\x05\xa0", "truncated"),
        (framed(b"\xa0"), "not a map with a version"),
        (framed(b"\xa1\x00\x01"), "not valid dag-cbor"),  # a non-string key
        (framed(b"\xa1\x67version\x02"), "version 2"),  # the CARv2 pragma
        (framed(b"\xa1\x67version\xf5"), "version True"),
        (framed(b"\xa1\x67version\x01") + b"", "roots are not a list"),
        (framed(b"\xa2\x65roots\x01\x67version\x01"), "roots are not a list"),
        (framed(b"\xa2\x65roots\x81\x01\x67version\x01"), "roots are not a list"),
        (framed(b"\xa2\x65roots\x81\xd8\x2b\x40\x67version\x01"), "not valid dag-cbor"),
        (framed(b"\xa2\x65roots\x9f\xff\x67version\x01"), "not valid dag-cbor"),  # indefinite
        (framed(V1_BODY + b"\x00"), "trailing bytes"),
        (framed(V1_BODY)[:-1], "truncated"),
        (framed(V1_BODY) + b"\x00", "empty section"),
        (framed(V1_BODY) + b"\x05\x01\x55", "truncated"),
        (framed(V1_BODY) + b"\x04\x00\x55\x12\x00", "version 0"),
        (framed(V1_BODY) + b"\x05\x01\x55\x12\x20\x00", "CID is truncated"),
        (framed(V1_BODY) + b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", "longer than 9 bytes"),
    ],
)
def test_malformed_cars_are_refused(car: bytes, why: str) -> None:
    with pytest.raises(MalformedContent) as info:
        read_car(car)
    message = str(info.value)
    assert why in message
    assert message.endswith(".") and message.startswith("The CAR")


def test_an_empty_car_body_is_valid() -> None:
    assert read_car(framed(V1_BODY)).blocks == {}


def test_non_minimal_varint_is_refused() -> None:
    root, blocks = sections(b"x")
    header = encode_car_header([root])
    cid, block = blocks[0]
    section = cid.to_bytes() + block
    padded = bytes([len(section) | 0x80, 0x00]) + section  # same length, two bytes
    with pytest.raises(MalformedContent):
        read_car(header + padded)


def test_unverifiable_cids_are_skipped_not_trusted() -> None:
    root, blocks = sections(b"payload")
    header = encode_car_header([root])
    cidv0 = b"\x12\x20" + bytes(32)
    sha512 = b"\x01\x55\x13\x40" + bytes(64)
    identity = b"\x01\x55\x00\x03abc"
    extra = b"".join(
        encode_uvarint(len(c) + len(b)) + c + b
        for c, b in ((cidv0, b"x"), (sha512, b"y"), (identity, b"abc"))
    )
    car = header + extra + b"".join(encode_car_section(c, b) for c, b in blocks)
    contents = read_car(car)
    assert list(contents.blocks) == [root]
    with pytest.raises(ContentMismatch):
        read_car(header + encode_uvarint(len(identity) + 3) + identity + b"abd")


def test_inconsistent_filesize_is_refused() -> None:
    leaf_a, leaf_b = b"a" * 10, b"b" * 20
    cid_a, cid_b = compute_cid(leaf_a), compute_cid(leaf_b)
    blocks = {cid_a: leaf_a, cid_b: leaf_b}
    honest = dag_pb_file([(cid_a, 10), (cid_b, 20)])
    honest_cid = Cid.of_block(CODEC_DAG_PB, honest)
    assert (
        reassemble_file(honest_cid, {**blocks, honest_cid: honest}, max_size=100) == leaf_a + leaf_b
    )
    lying_total = dag_pb_file([(cid_a, 10), (cid_b, 20)], filesize=31)
    lying_child = dag_pb_file([(cid_a, 10), (cid_b, 21)])
    for node in (lying_total, lying_child):
        cid = Cid.of_block(CODEC_DAG_PB, node)
        with pytest.raises(MalformedContent):
            reassemble_file(cid, {**blocks, cid: node}, max_size=100)


def test_links_and_blocksizes_must_pair_up() -> None:
    leaf = b"leaf"
    leaf_cid = compute_cid(leaf)
    unixfs = UnixFSData(UnixFSType.FILE, filesize=4, blocksizes=(4, 0))
    node = PBNode((PBLink(leaf_cid, "", 4),), unixfs.encode()).encode()
    cid = Cid.of_block(CODEC_DAG_PB, node)
    with pytest.raises(MalformedContent):
        reassemble_file(cid, {cid: node, leaf_cid: leaf}, max_size=100)


def test_a_directory_is_not_a_file() -> None:
    node = PBNode((), UnixFSData(UnixFSType.DIRECTORY).encode()).encode()
    cid = Cid.of_block(CODEC_DAG_PB, node)
    with pytest.raises(InputError) as info:
        reassemble_file(cid, {cid: node}, max_size=100)
    assert "directory" in str(info.value)


def test_a_node_without_unixfs_data_is_not_a_file() -> None:
    node = PBNode(()).encode()
    cid = Cid.of_block(CODEC_DAG_PB, node)
    with pytest.raises(InputError):
        reassemble_file(cid, {cid: node}, max_size=100)


def test_inline_unixfs_data_comes_before_children() -> None:
    leaf = b"-tail"
    leaf_cid = compute_cid(leaf)
    unixfs = UnixFSData(UnixFSType.FILE, data=b"head", filesize=9, blocksizes=(5,))
    node = PBNode((PBLink(leaf_cid, "", 5),), unixfs.encode()).encode()
    cid = Cid.of_block(CODEC_DAG_PB, node)
    assert reassemble_file(cid, {cid: node, leaf_cid: leaf}, max_size=100) == b"head-tail"


def test_a_dag_bomb_is_bounded() -> None:
    # Each level links its child 174 times: 3 blocks describe 174**2 leaves of 1 MiB.
    leaf = bytes(1 << 20)
    leaf_cid = compute_cid(leaf)
    middle = dag_pb_file([(leaf_cid, len(leaf))] * 174)
    middle_cid = Cid.of_block(CODEC_DAG_PB, middle)
    top = dag_pb_file([(middle_cid, 174 * len(leaf))] * 174)
    top_cid = Cid.of_block(CODEC_DAG_PB, top)
    blocks = {leaf_cid: leaf, middle_cid: middle, top_cid: top}
    with pytest.raises(ContentTooLarge):
        reassemble_file(top_cid, blocks, max_size=BIG)
    empty_cid = compute_cid(b"")
    nothing = dag_pb_file([(empty_cid, 0)] * 174)
    nothing_cid = Cid.of_block(CODEC_DAG_PB, nothing)
    zero_top = dag_pb_file([(nothing_cid, 0)] * 174)
    zero_cid = Cid.of_block(CODEC_DAG_PB, zero_top)
    zero_blocks = {empty_cid: b"", nothing_cid: nothing, zero_cid: zero_top}
    with pytest.raises(MalformedContent):
        reassemble_file(zero_cid, zero_blocks, max_size=BIG, max_nodes=1000)


# --- DAG walks (the server's side) ------------------------------------------------------------


def test_walk_is_depth_first_in_link_order() -> None:
    data = content(175 * CHUNK_SIZE + 5)
    root, blocks = sections(data)
    store = dict(blocks)
    walked = [cid for cid, _ in walk_dag(root, store.get)]
    top = decode_pbnode(store[root])
    first, second = (link.hash for link in top.links)
    first_leaves = [link.hash for link in decode_pbnode(store[first]).links]
    second_leaves = [link.hash for link in decode_pbnode(store[second]).links]
    assert walked == [root, first, *first_leaves, second, *second_leaves]
    assert len(walked) == len(set(walked)) == 179


def test_walk_sends_each_block_once_unless_asked() -> None:
    data = bytes(3 * CHUNK_SIZE)
    root, blocks = sections(data)
    store = dict(blocks)
    assert len(list(walk_dag(root, store.get))) == 2
    assert len(list(walk_dag(root, store.get, duplicates=True))) == 4
    car = b"".join(write_car([root], walk_dag(root, store.get)))
    assert read_file_from_car(car, root, max_size=BIG) == data


@pytest.mark.parametrize("scope", list(DagScope))
def test_walk_scopes(scope: DagScope) -> None:
    root, blocks = sections(content(3 * CHUNK_SIZE))
    store = dict(blocks)
    walked = [cid for cid, _ in walk_dag(root, store.get, scope=scope)]
    # For a UnixFS file, entity is the whole file, like all; block is the root alone.
    assert walked == ([root] if scope is DagScope.BLOCK else [root, *(c for c, _ in blocks[:-1])])


def test_walk_of_a_raw_root() -> None:
    root = compute_cid(b"tiny")
    assert list(walk_dag(root, {root: b"tiny"}.get)) == [(root, b"tiny")]


def test_walk_entity_bytes_selects_the_covering_leaves() -> None:
    data = content(175 * CHUNK_SIZE + 5)
    root, blocks = sections(data)
    store = dict(blocks)
    leaves = [cid for cid, _ in blocks if cid.codec == CODEC_RAW]
    top = decode_pbnode(store[root])
    first, second = (link.hash for link in top.links)

    def walked(first_byte: int, last_byte: int) -> list[Cid]:
        return [cid for cid, _ in walk_dag(root, store.get, byte_range=(first_byte, last_byte))]

    assert walked(0, 0) == [root, first, leaves[0]]
    assert walked(CHUNK_SIZE - 1, CHUNK_SIZE) == [root, first, leaves[0], leaves[1]]
    assert walked(len(data) - 1, len(data) - 1) == [root, second, leaves[-1]]
    assert walked(173 * CHUNK_SIZE, 174 * CHUNK_SIZE) == [
        root,
        first,
        leaves[173],
        second,
        leaves[174],
    ]


def test_walk_reports_a_missing_block() -> None:
    root, blocks = sections(content(2 * CHUNK_SIZE))
    store = dict(blocks[1:])
    with pytest.raises(ContentNotFound):
        list(walk_dag(root, store.get))


def test_unixfs_file_size() -> None:
    data = content(2 * CHUNK_SIZE + 3)
    root, blocks = sections(data)
    assert unixfs_file_size(root, dict(blocks)[root]) == len(data)
    raw = compute_cid(b"abc")
    assert unixfs_file_size(raw, b"abc") == 3
    directory = PBNode((), UnixFSData(UnixFSType.DIRECTORY).encode()).encode()
    assert unixfs_file_size(Cid.of_block(CODEC_DAG_PB, directory), directory) is None


# --- interop with the js IPFS implementation ------------------------------------------------------


def run_js(*args: str) -> str:
    node = shutil.which("node")
    assert node is not None, "node is not on PATH"
    result = subprocess.run(
        [node, str(JS_SCRIPT), *args], capture_output=True, text=True, check=True, timeout=300
    )
    return result.stdout.strip()


INTEROP_SIZES = [0, 1, CHUNK_SIZE + 1, 175 * CHUNK_SIZE + 5]


@pytest.mark.node
@pytest.mark.parametrize("size", INTEROP_SIZES)
def test_js_reads_and_exports_our_car(size: int, tmp_path: Path) -> None:
    data = content(size)
    root, car = car_of(data)
    path = tmp_path / "ours.car"
    path.write_bytes(car)
    report = json.loads(run_js("read", str(path), str(root)))
    assert report == {
        "roots": [str(root)],
        "blocks": len({cid for cid, _ in build_dag(data)[1]}),
        "size": size,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


@pytest.mark.node
@pytest.mark.parametrize("size", INTEROP_SIZES)
def test_we_read_a_car_written_by_js(size: int, tmp_path: Path) -> None:
    data = content(size)
    source, car_path = tmp_path / "input.bin", tmp_path / "theirs.car"
    source.write_bytes(data)
    root_text = run_js("write", str(source), str(car_path))
    root = compute_cid(data)
    assert root_text == str(root)
    car = car_path.read_bytes()
    assert car.startswith(encode_car_header([root]))  # @ipld/car writes the same header bytes
    assert read_file_from_car(car, root, max_size=BIG) == data
    assert read_car(car).blocks == dict(build_dag(data)[1])


@pytest.mark.node
def test_js_refuses_a_tampered_car(tmp_path: Path) -> None:
    data = content(CHUNK_SIZE + 1)
    root, blocks = sections(data)
    cid, block = blocks[0]
    blocks[0] = (cid, bytes([block[0] ^ 1]) + block[1:])
    path = tmp_path / "tampered.car"
    path.write_bytes(car_from([root], blocks))
    with pytest.raises(subprocess.CalledProcessError) as info:
        run_js("read", str(path), str(root))
    assert "does not match its CID" in info.value.stderr
