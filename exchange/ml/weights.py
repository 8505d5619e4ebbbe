"""Weights out and back in: `named_parameters()` only, as safetensors (no pickle).

Nothing but trained parameters leaves (DESIGN.md section 6): no buffers, no optimizer
state, no state_dict extras, no metadata. Opacus wraps the model (`_module.` prefixes);
those prefixes are stripped so the names are the ones a plain model built from the spec
has ("0.weight", "0.bias", ...).
"""

from __future__ import annotations

import json

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from exchange.ml.model import build_model
from exchange.ml.spec import ModelSpec
from exchange.datasets.schema import DatasetSchema
from exchange.errors import WeightsError

_WRAPPER_PREFIX = "_module."


def plain_name(name: str) -> str:
    """A parameter name without the prefixes Opacus' wrappers add."""
    while name.startswith(_WRAPPER_PREFIX):
        name = name[len(_WRAPPER_PREFIX):]
    return name


def parameters_of(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's parameters by plain name: detached, on the CPU, contiguous copies."""
    tensors: dict[str, torch.Tensor] = {}
    for name, param in module.named_parameters():
        key = plain_name(name)
        if key in tensors:
            raise WeightsError(f"Two parameters would both be exported as '{key}'.")
        tensors[key] = param.detach().to("cpu", copy=True).contiguous()
    return tensors


def export_weights(module: nn.Module) -> bytes:
    """The module's `named_parameters()` as safetensors bytes (deterministic for equal weights)."""
    return save_safetensors(parameters_of(module))


def load_weights(spec: ModelSpec, schema: DatasetSchema, data: bytes) -> nn.Module:
    """Rebuild the spec's model on `schema` and load exported weights into it (strictly).

    WeightsError if the bytes are not safetensors or do not hold exactly the model's
    parameters with the model's shapes.
    """
    try:
        tensors = load_safetensors(bytes(data))
    except (SafetensorError, Exception):  # whatever the parser trips on, the bytes are bad
        raise WeightsError("The weights are not a valid safetensors file.") from None
    model = build_model(spec, schema)
    expected = {name: p.shape for name, p in model.named_parameters()}
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(extra)}")
        raise WeightsError(
            f"The weights do not match the model the spec describes ({'; '.join(parts)})."
        )
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != tuple(shape):
            raise WeightsError(
                f"The weight '{name}' has shape {tuple(tensors[name].shape)} but the spec's "
                f"model needs {tuple(shape)}."
            )
        if not tensors[name].is_floating_point():
            raise WeightsError(f"The weight '{name}' is not a floating-point tensor.")
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model


_SPEC_KEY, _SCHEMA_KEY = "cove.spec", "cove.schema"


def model_file_bytes(weights: bytes, spec: ModelSpec, schema: DatasetSchema) -> bytes:
    """A self-describing model file: the weights plus the spec and schema that rebuild the model."""
    load_weights(spec, schema, weights)  # refuse to write a file that would not load
    metadata = {_SPEC_KEY: spec.to_json().decode(), _SCHEMA_KEY: schema.model_dump_json()}
    return save_safetensors(load_safetensors(weights), metadata=metadata)


def load_model_file(data: bytes) -> nn.Module:
    """The ready `torch.nn.Module` in a file written by `model_file_bytes` (e.g. `cove fetch`)."""
    try:
        header_size = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_size]).get("__metadata__", {})
        spec = ModelSpec.parse(metadata[_SPEC_KEY])
        schema = DatasetSchema.model_validate_json(metadata[_SCHEMA_KEY])
    except (ValueError, KeyError, TypeError):
        raise WeightsError("This is not a Cove model file (no spec and schema in its metadata).") from None
    return load_weights(spec, schema, data)
