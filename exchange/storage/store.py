"""Content-addressed storage: bytes in, CID out, and back again, verified.

`ContentStore` is the interface the rest of Cove uses; `LocalDirectoryStore` is the default
backend. A store keyed by the same CIDs `ipfs add --cid-version 1` prints means an IPFS node
backend can be dropped in later without changing any stored reference.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from exchange.errors import ContentIntegrityError, ContentNotFound, InputError, StorageError
from exchange.storage.canonical import canonical_json
from exchange.storage.cid import Cid, compute_cid

_TEMP_PREFIX = ".tmp-"


@runtime_checkable
class ContentStore(Protocol):
    """A place that keeps whole pieces of content under their root CID."""

    def put(self, data: bytes) -> Cid:
        """Store `data` (idempotently) and return its CID."""
        ...

    def get(self, cid: Cid | str) -> bytes:
        """Return the content stored under `cid`, verified against it."""
        ...

    def has(self, cid: Cid | str) -> bool:
        """Whether content is stored under `cid`."""
        ...


def as_cid(cid: Cid | str) -> Cid:
    """Accept a Cid or its string form; raise InputError for a malformed string."""
    return cid if isinstance(cid, Cid) else Cid.parse(cid)


def put_json(store: ContentStore, obj: Any) -> Cid:
    """Store `obj` as canonical JSON in any ContentStore and return its CID."""
    return store.put(canonical_json(obj))


def get_json(store: ContentStore, cid: Cid | str) -> Any:
    """Load and parse JSON content stored under `cid` in any ContentStore."""
    data = store.get(cid)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"The content stored under {as_cid(cid)} is not JSON.") from None


class LocalDirectoryStore:
    """Stores each piece of content whole, in a file named by its CID under `root`.

    Layout: `root/<last two characters of the CID>/<CID>`, which spreads objects over
    up to 1024 directories. Writes go to a temporary file in the target directory and are
    renamed into place, so a crash never leaves a half-written object under a CID.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path_for(self, cid: Cid | str) -> Path:
        """Where the content for `cid` lives (whether or not it exists)."""
        text = str(as_cid(cid))
        return self.root / text[-2:] / text

    def put(self, data: bytes) -> Cid:
        """Store `data` and return its CID; storing the same bytes again is a no-op."""
        cid = compute_cid(data)
        path = self.path_for(cid)
        # Skip the write only if the existing object is intact; a damaged one is replaced.
        if not self._holds(path, data):
            self._write_atomically(path, data)
        return cid

    def get(self, cid: Cid | str) -> bytes:
        """Return the content stored under `cid`, after checking it still hashes to `cid`."""
        cid = as_cid(cid)
        path = self.path_for(cid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ContentNotFound(f"No content with CID {cid} is stored in {self.root}.") from None
        except OSError as exc:
            raise StorageError(f"Cannot read {path}: {exc.strerror}.") from None
        if compute_cid(data) != cid:
            raise ContentIntegrityError(
                f"The file {path} no longer matches its CID {cid}; it was modified or "
                "corrupted on disk, so remove it and store the content again."
            )
        return data

    def has(self, cid: Cid | str) -> bool:
        """Whether an object is stored under `cid` (existence only, not re-verified)."""
        return self.path_for(cid).is_file()

    def put_json(self, obj: Any) -> Cid:
        """Store `obj` as canonical JSON and return its CID."""
        return put_json(self, obj)

    def get_json(self, cid: Cid | str) -> Any:
        """Load and parse JSON content stored under `cid`."""
        return get_json(self, cid)

    @staticmethod
    def _holds(path: Path, data: bytes) -> bool:
        try:
            if path.stat().st_size != len(data):
                return False
            return path.read_bytes() == data
        except FileNotFoundError:
            return False

    def _write_atomically(self, path: Path, data: bytes) -> None:
        directory = path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=directory)
        except OSError as exc:
            raise StorageError(
                f"Cannot write to the store at {self.root}: {exc.strerror}."
            ) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, path)
        except BaseException as exc:
            # Never leave the temporary file behind, whatever interrupted us.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            if isinstance(exc, OSError):
                raise StorageError(f"Cannot write {path}: {exc.strerror}.") from None
            raise
        _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, so best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
