"""What an owner's node serves: exactly the content the chain names for its runner.

The node answers a CID only when the chain makes it public and this node's runner serves
it: the metadata and the allowlist/model-family documents of the datasets whose runner is
this node's account, and the provenance records and encrypted weights of the jobs that
runner completed. Everything else in the store, and every other file on the machine,
is outside this set and gets 404, whatever its CID: being public is decided by the chain,
never by what happens to be on disk.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from exchange.client import CoveClient
from exchange.errors import StorageError
from exchange.storage import CODEC_DAG_PB, CODEC_RAW, Cid, build_dag

_REFRESH_AT_MOST_EVERY_S = 1.0


@dataclass(frozen=True)
class ServedRoot:
    """One published content root and what it is."""

    cid: Cid
    kind: str  # "metadata", "lists", "provenance", "weights"
    dataset_id: int
    job_id: int | None = None


class PublishedContent:
    """The BlockSource of an owner's node: blocks of the chain-named content of one runner."""

    def __init__(self, client: CoveClient, runner: str):
        self.client = client
        self.runner = runner.lower()
        self._roots: dict[bytes, ServedRoot] = {}  # by digest (raw and dag-pb roots alike)
        # The blocks below each served dag-pb root: a leaf as (root, offset, length) of the
        # stored content, an internal node as its bytes. Computed once per root (immutable).
        self._dags: dict[Cid, dict[Cid, tuple[int, int] | bytes]] = {}
        self._refreshed_at = 0.0
        self._refreshed_block = -1
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ BlockSource

    def block(self, cid: Cid) -> bytes | None:
        """The block `cid` if it belongs to served content, else None (the gateway's 404)."""
        with self._lock:
            found = self._lookup(cid)
            if found is None and self._stale():
                self._refresh()
                found = self._lookup(cid)
            return found

    def _stale(self) -> bool:
        """Whether a miss should re-read the chain: at most once a second, or at once when a
        block has been mined since the last read (a job just completed: its buyer asks now)."""
        if time.monotonic() - self._refreshed_at >= _REFRESH_AT_MOST_EVERY_S:
            return True
        return self.client.session.w3.eth.block_number != self._refreshed_block

    def roots(self) -> list[ServedRoot]:
        """Every served root (after a refresh)."""
        with self._lock:
            self._refresh()
            return list(self._roots.values())

    # ------------------------------------------------------------------ inside

    def _lookup(self, cid: Cid) -> bytes | None:
        root = self._roots.get(cid.digest)
        if root is not None and root.cid.codec == cid.codec:
            return self._read(root.cid) if cid.codec == CODEC_RAW else self._dag_block(root.cid, cid)
        for root_cid, blocks in self._dags.items():
            if cid in blocks:
                return self._dag_block(root_cid, cid)
        return None

    def _read(self, cid: Cid) -> bytes | None:
        try:
            return self.client.store.get(cid)
        except StorageError:  # not (or no longer intact) in the store: not served
            return None

    def _dag_block(self, root: Cid, cid: Cid) -> bytes | None:
        entry = self._dags.get(root, {}).get(cid)
        if isinstance(entry, bytes):
            return entry
        data = self._read(root)
        if entry is None or data is None:
            return None
        offset, length = entry
        return data[offset : offset + length]

    def _index_dag(self, root: Cid) -> None:
        """Maps the blocks of the stored content under dag-pb `root` (once; roots never change)."""
        if root in self._dags:
            return
        data = self._read(root)
        if data is None:
            return
        built, blocks = build_dag(data)
        if built != root:
            return
        entries: dict[Cid, tuple[int, int] | bytes] = {}
        offset = 0
        for cid, block in blocks:
            if cid.codec == CODEC_RAW:  # leaves come first, in file order
                entries[cid] = (offset, len(block))
                offset += len(block)
            else:
                entries[cid] = block
        self._dags[root] = entries

    def _refresh(self) -> None:
        index = self.client.index
        self._refreshed_block = self.client.session.w3.eth.block_number
        index.sync()
        roots: dict[bytes, ServedRoot] = {}
        for dataset in index.datasets_served_by(self.runner):
            dataset_id = int(dataset["id"])
            self._add(roots, ServedRoot(_raw(dataset["metadata_digest"]), "metadata", dataset_id))
            for policy in index.policies(dataset_id):
                if int(policy["lists_digest"], 16):
                    self._add(roots, ServedRoot(_raw(policy["lists_digest"]), "lists", dataset_id))
        for job in index.jobs(runner=self.runner):
            completion = job["completion"]
            if job["status"] != "completed" or completion is None:
                continue
            self._add(roots, ServedRoot(_raw(completion["provenanceDigest"]), "provenance", job["dataset_id"], job["id"]))
            weights = self._stored_root(bytes.fromhex(completion["weightsDigest"][2:]))
            if weights is not None:
                self._add(roots, ServedRoot(weights, "weights", job["dataset_id"], job["id"]))
        self._roots = roots
        served_dags = {root.cid for root in roots.values() if root.cid.codec == CODEC_DAG_PB}
        self._dags = {cid: blocks for cid, blocks in self._dags.items() if cid in served_dags}
        for cid in served_dags:
            self._index_dag(cid)
        self._refreshed_at = time.monotonic()

    def _add(self, roots: dict[bytes, ServedRoot], root: ServedRoot) -> None:
        if self.client.store.has(root.cid):
            roots[root.cid.digest] = root

    def _stored_root(self, digest: bytes) -> Cid | None:
        """The CID the store holds for a root digest: one chunk is raw, more is dag-pb."""
        for codec in (CODEC_RAW, CODEC_DAG_PB):
            cid = Cid(version=1, codec=codec, digest=digest)
            if self.client.store.has(cid):
                return cid
        return None


def _raw(digest_hex: str) -> Cid:
    return Cid.from_raw_digest(bytes.fromhex(digest_hex.removeprefix("0x")))
