"""A model as Flower carries it: its parameters as float32 arrays, in the module's order.

Aggregator and runners hash the same arrays the same way (`model_digest`), so a runner can
check the model a round sends it against the digest the aggregator committed on-chain.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from exchange.errors import WeightsError

DIGEST_DOMAIN = b"cove.federated.model.v1"
UPDATE_DIGEST = "update-digest"  # the one metric a runner reports: its update's digest (0x hex)


def model_arrays(module: nn.Module) -> list[np.ndarray]:
    """The module's parameters, in `named_parameters()` order, as float32 copies."""
    return [p.detach().to("cpu", dtype=torch.float32).numpy().copy() for p in module.parameters()]


def as_float32(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The arrays as contiguous little-endian float32 (SecAgg+ hands back float64)."""
    return [np.ascontiguousarray(a, dtype="<f4") for a in arrays]


def load_arrays(module: nn.Module, arrays: Sequence[np.ndarray]) -> nn.Module:
    """`module` with its parameters set from `arrays`; WeightsError if they do not fit."""
    params = list(module.parameters())
    if len(params) != len(arrays):
        raise WeightsError(f"The round's model has {len(arrays)} arrays; the spec's model has {len(params)} parameters.")
    with torch.no_grad():
        for param, array in zip(params, arrays, strict=True):
            if tuple(param.shape) != tuple(np.shape(array)):
                raise WeightsError(
                    f"The round's model has an array of shape {tuple(np.shape(array))} where the spec's model "
                    f"has {tuple(param.shape)}."
                )
            if not np.all(np.isfinite(array)):
                raise WeightsError("The round's model holds a value that is not a finite number.")
            param.copy_(torch.from_numpy(np.asarray(array, dtype=np.float32)))
    return module


def model_digest(arrays: Sequence[np.ndarray]) -> bytes:
    """sha256 over the arrays' shapes and float32 bytes: what FederatedRounds records."""
    digest = hashlib.sha256(DIGEST_DOMAIN)
    digest.update(struct.pack(">I", len(arrays)))
    for array in as_float32(arrays):
        digest.update(struct.pack(">I", array.ndim))
        digest.update(struct.pack(f">{array.ndim}I", *array.shape))
        digest.update(array.tobytes())
    return digest.digest()


def updates_root(digests: Sequence[bytes]) -> bytes:
    """The Merkle root (OpenZeppelin's leaves and sorted pairs) of a round's update digests."""
    from exchange.merkle import MerkleTree, bytes32_leaf

    return MerkleTree([bytes32_leaf(d) for d in digests]).root
