"""Compiled contract artifacts (ABI + bytecode) shipped with the package.

Python users need no Solidity compiler: `npm run compile` writes these files and they
are committed; a test fails when they no longer match the sources.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import function_signature_to_4byte_selector

ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "artifacts"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


@cache
def load_artifact(name: str) -> Artifact:
    data = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
    return Artifact(name=data["contractName"], abi=data["abi"], bytecode=data["bytecode"])


def artifact_names() -> list[str]:
    return sorted(p.stem for p in ARTIFACTS_DIR.glob("*.json") if p.stem != "manifest")


@dataclass(frozen=True)
class ErrorSpec:
    name: str
    input_names: tuple[str, ...]
    input_types: tuple[str, ...]


def _abi_type(entry: dict[str, Any]) -> str:
    if entry["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in entry["components"])
        return f"({inner}){entry['type'][5:]}"
    return str(entry["type"])


@cache
def error_specs() -> dict[bytes, ErrorSpec]:
    """Every custom error of every artifact, by 4-byte selector."""
    specs: dict[bytes, ErrorSpec] = {}
    for name in artifact_names():
        for entry in load_artifact(name).abi:
            if entry["type"] != "error":
                continue
            types = tuple(_abi_type(i) for i in entry["inputs"])
            selector = function_signature_to_4byte_selector(f"{entry['name']}({','.join(types)})")
            specs[selector] = ErrorSpec(entry["name"], tuple(i["name"] for i in entry["inputs"]), types)
    return specs
