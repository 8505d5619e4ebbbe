"""Build the torch model a spec describes, encode a table for it, and vet modules.

The encoding is a function of the spec and the dataset's *public* schema only (ranges and
categories as published), never of statistics of the private rows; see
`exchange.ml.spec` for the rules. The model is a plain `nn.Sequential` of allow-listed
layers whose parameter names ("0.weight", "0.bias", ...) are the names export uses.

`validate_module` is the runner's own gate, stricter than Opacus' validator: it refuses any
module with buffers (BatchNorm's running statistics, or any registered tensor, can carry a
training row out verbatim), frozen parameters, hooks, stray tensor attributes, or a layer
type off the allow-list.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import torch
from torch import nn

from exchange.ml.spec import GELU, LayerNorm, Linear, ModelSpec, ReLU, Sigmoid, Tanh
from exchange.datasets.schema import ColumnSchema, DatasetSchema
from exchange.errors import ModuleRefused

# Exact types only: a subclass could override forward() and stash what it sees.
ALLOWED_MODULES: tuple[type[nn.Module], ...] = (
    nn.Sequential, nn.Linear, nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.LayerNorm,
)
_LAYER_BUILDERS = {ReLU: nn.ReLU, GELU: nn.GELU, Tanh: nn.Tanh, Sigmoid: nn.Sigmoid}
_HOOK_DICTS = (
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
    "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)
_EPOCH = pd.Timestamp(0, tz="UTC")


# ---------------------------------------------------------------------------------------
# The model


def build_model(spec: ModelSpec, schema: DatasetSchema) -> nn.Sequential:
    """The untrained model of `spec` on `schema` (float32, CPU); SpecError if they do not fit.

    Initialisation draws from torch's global generator; seed it (or fork it) for a
    reproducible start.
    """
    spec.check_against(schema)
    width = spec.input_width(schema)
    layers: list[nn.Module] = []
    for layer in spec.layers:
        if isinstance(layer, Linear):
            layers.append(nn.Linear(width, layer.out_features, bias=layer.bias))
            width = layer.out_features
        elif isinstance(layer, LayerNorm):
            layers.append(nn.LayerNorm(width, elementwise_affine=True))
        else:
            layers.append(_LAYER_BUILDERS[type(layer)]())
    model = nn.Sequential(*layers)
    validate_module(model)
    return model


def validate_module(module: nn.Module) -> None:
    """ModuleRefused unless every part of `module` is safe to train next to private data.

    Refused, whatever Opacus' own validator says: any buffer (persistent or not), any
    parameter with requires_grad=False, any registered hook, any tensor attribute that is
    not a registered parameter, and any module whose exact type is not on the allow-list.
    Messages name module paths and types, never values.
    """
    for path, sub in module.named_modules():
        where = f"'{path}'" if path else "the top-level module"
        kind = type(sub).__name__
        buffers = [name for name, _ in sub.named_buffers(recurse=False)]
        if buffers:
            raise ModuleRefused(
                f"The module {where} ({kind}) holds buffers ({', '.join(buffers)}); modules with "
                "buffers are refused because a buffer can carry training rows out verbatim."
            )
        frozen = [name for name, p in sub.named_parameters(recurse=False) if not p.requires_grad]
        if frozen:
            raise ModuleRefused(
                f"The module {where} ({kind}) has frozen parameters ({', '.join(frozen)}); "
                "every parameter must be trained with differential privacy."
            )
        if any(getattr(sub, hooks, None) for hooks in _HOOK_DICTS):
            raise ModuleRefused(
                f"The module {where} ({kind}) has hooks registered; the runner refuses modules "
                "with hooks because a hook can copy what the model sees."
            )
        stray = [
            name for name, value in vars(sub).items()
            if isinstance(value, torch.Tensor) and name not in ("_parameters", "_buffers")
        ]
        if stray:
            raise ModuleRefused(
                f"The module {where} ({kind}) keeps tensors outside its parameters "
                f"({', '.join(stray)}); they are refused because they could hold training data."
            )
        if type(sub) not in ALLOWED_MODULES:
            allowed = ", ".join(t.__name__ for t in ALLOWED_MODULES)
            raise ModuleRefused(
                f"The module {where} is a {kind}, which is not on the runner's allow-list "
                f"({allowed})."
            )


# ---------------------------------------------------------------------------------------
# Encoding


def encode_features(spec: ModelSpec, schema: DatasetSchema, frame: pd.DataFrame) -> torch.Tensor:
    """The model input for every row of `frame`: float32, shape (rows, spec.input_width).

    Uses only public schema information; see `exchange.ml.spec` for the rules.
    """
    blocks: list[np.ndarray] = []
    for name in spec.features:
        column = schema.column(name)
        blocks.extend(_encode_column(frame[name], column))
    matrix = np.column_stack(blocks) if blocks else np.zeros((len(frame), 0))
    return torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))


def encode_target(
    spec: ModelSpec, schema: DatasetSchema, frame: pd.DataFrame, *, fill_missing: bool = False
) -> tuple[torch.Tensor, np.ndarray]:
    """(targets, usable): the targets and which rows have a usable target.

    cross_entropy: class indices (int64, see spec.target_classes); bce: 0/1 (float32);
    mse: the target scaled to [-1, 1] over the schema's range (float32, undo with
    `decode_regression`). A row whose target is missing (or not one of the schema's
    categories) is unusable and left out, unless `fill_missing` (training: no row is ever
    dropped, so the work never depends on which rows are missing): then a missing target
    takes the column's declared `fill`, an unknown or missing label its `fallback`.
    """
    column = schema.column(spec.target)
    series = frame[spec.target]
    if spec.task == "regression":
        numbers = _numbers(series, column)
        if fill_missing:
            numbers = np.where(np.isnan(numbers), _as_number(column.fill_value), numbers)
        values = _scaled(numbers, column)
        usable = ~np.isnan(values)
        return torch.from_numpy(values[usable].astype(np.float32)), usable
    if column.kind == "boolean":
        flags = _booleans(series)
        if fill_missing:
            flags = np.where(np.isnan(flags), float(bool(column.fill_value)), flags)
        usable = ~np.isnan(flags)
        codes = flags[usable].astype(np.int64)
    else:
        all_codes = _category_codes(series, column)
        if fill_missing:
            all_codes = np.where(all_codes < 0, (column.categories or []).index(column.fallback_label), all_codes)
        usable = all_codes >= 0
        codes = all_codes[usable].astype(np.int64)
    if spec.loss == "bce":
        return torch.from_numpy(codes.astype(np.float32)), usable
    return torch.from_numpy(codes), usable


def decode_regression(spec: ModelSpec, schema: DatasetSchema, outputs: torch.Tensor) -> np.ndarray:
    """A regression model's outputs back in the target column's own units."""
    column = schema.column(spec.target)
    low, high = _bounds(column)
    values = outputs.detach().cpu().double().numpy().reshape(-1)
    return values * (high - low) / 2 + (high + low) / 2


def _encode_column(series: pd.Series, column: ColumnSchema) -> list[np.ndarray]:
    if column.kind == "categorical":
        codes = _category_codes(series, column)
        # A label the schema does not declare is its declared fallback; a missing one stays
        # all zeros (the encoding of "missing").
        unknown = (codes < 0) & series.notna().to_numpy(dtype=bool)
        codes = np.where(unknown, (column.categories or []).index(column.fallback_label), codes)
        onehot = np.zeros((len(series), len(column.categories or [])), dtype=np.float64)
        present = codes >= 0
        onehot[np.flatnonzero(present), codes[present]] = 1.0
        return [onehot]
    if column.kind == "boolean":
        values = _booleans(series)
    else:
        values = _scaled(_numbers(series, column), column)
    missing = np.isnan(values)
    blocks = [np.where(missing, 0.0, values)]
    if column.nullable:
        blocks.append(missing.astype(np.float64))
    return blocks


def _numbers(series: pd.Series, column: ColumnSchema) -> np.ndarray:
    if column.kind == "datetime":
        stamps = pd.to_datetime(series, utc=True)
        return (stamps - _EPOCH).dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)
    return series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _as_number(value: object) -> float:
    if isinstance(value, datetime):
        return (pd.Timestamp(value) - _EPOCH).total_seconds()
    return float(value)  # type: ignore[arg-type]


def _booleans(series: pd.Series) -> np.ndarray:
    return series.astype("boolean").to_numpy(dtype=np.float64, na_value=np.nan)


def _category_codes(series: pd.Series, column: ColumnSchema) -> np.ndarray:
    """Index of each value among the schema's categories; -1 if missing or unknown."""
    values = series.astype(object).where(series.notna(), None)
    return np.asarray(pd.Categorical(values, categories=column.categories).codes, dtype=np.int64)


def _bounds(column: ColumnSchema) -> tuple[float, float]:
    low, high = column.minimum, column.maximum
    if isinstance(low, datetime) and isinstance(high, datetime):
        return low.timestamp(), high.timestamp()
    return float(low), float(high)  # type: ignore[arg-type]


def _scaled(values: np.ndarray, column: ColumnSchema) -> np.ndarray:
    """Map the schema's [minimum, maximum] to [-1, 1], clipping what lies outside."""
    low, high = _bounds(column)
    half = (high - low) / 2
    if half == 0:
        return np.where(np.isnan(values), np.nan, 0.0)
    with np.errstate(invalid="ignore"):
        return np.clip((values - (high + low) / 2) / half, -1.0, 1.0)
