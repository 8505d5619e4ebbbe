"""Canonical JSON: one byte string per value, so equal values hash to equal CIDs."""

from __future__ import annotations

import json
from typing import Any

from exchange.errors import InputError


def canonical_json(obj: Any) -> bytes:
    """Encode `obj` as canonical JSON bytes (UTF-8).

    Keys are sorted, there is no whitespace, and non-ASCII text is written as UTF-8 rather
    than `\\u` escapes. NaN and infinities are refused because they are not JSON and would
    make the bytes (and so the CID) depend on the parser. Raises InputError for values
    JSON cannot represent.
    """
    try:
        text = json.dumps(
            obj,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        raise InputError(f"The value cannot be written as canonical JSON: {exc}.") from None
    return text.encode("utf-8")
