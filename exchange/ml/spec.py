"""The declarative model spec a buyer hands in, and its checks against a dataset's schema.

A spec names the task, the feature and target columns, a stack of layers from a short
allow-list, the loss, the optimizer and the differential-privacy parameters. It is data,
not code: the runner builds the model from it (see `exchange.ml.model`) and owns the
training loop, so no buyer code ever runs next to private rows (DESIGN.md section 6).

Encoding of features is fixed by the spec and the dataset's *public* schema alone:

- integer, float and datetime columns are scaled to [-1, 1] over the schema's published
  range (never statistics of the private rows), values outside are clipped;
- boolean columns become 0/1;
- categorical columns are one-hot over the schema's categories. The schema allows at most
  64 labels, and a Linear layer over a one-hot block is exactly an embedding lookup, so
  there is no separate Embedding layer;
- a nullable column gets an extra 0/1 "missing" indicator (its value reads 0 when missing;
  a missing categorical is all zeros and needs no indicator).

The spec hash is keccak256 of the canonical JSON of the full spec (defaults included), so a
spec written with or without its defaults spelled out hashes the same.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeAlias

from eth_utils import keccak
from pydantic import (
    BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationError, field_validator, model_serializer,
    model_validator,
)

from exchange.datasets.schema import ColumnSchema, DatasetSchema
from exchange.errors import SpecError
from exchange.storage.canonical import canonical_json
from exchange.units import scaled
from exchange.validation_messages import first_problem, sentence

Task: TypeAlias = Literal["classification", "regression"]
Loss: TypeAlias = Literal["cross_entropy", "bce", "mse"]
OptimizerName: TypeAlias = Literal["sgd", "adam"]

SPEC_VERSION = 1

# Resource limits: the runner trains inside a sandbox with CPU, memory and time limits, and a
# spec that cannot fit is better refused before any credit is spent on it.
MAX_LAYERS = 64
MAX_WIDTH = 8192
MAX_PARAMETERS = 50_000_000
MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 1_000_000
MAX_NOISE_MULTIPLIER = 1000.0
MAX_CLIP_NORM = 4294.967295  # the chain stores C as a uint32 of millionths
MAX_ROUNDS = 100  # a federated job's rounds: each is a Flower round and an on-chain commitment
MAX_SPEC_JSON_BYTES = 65_536  # a spec's canonical JSON; the compressed form must fit 16 KiB on-chain

# Which losses fit which task, and the target kinds each task accepts.
TASK_LOSSES: dict[str, tuple[str, ...]] = {
    "classification": ("cross_entropy", "bce"),
    "regression": ("mse",),
}
TASK_TARGET_KINDS: dict[str, tuple[str, ...]] = {
    "classification": ("boolean", "categorical"),
    "regression": ("integer", "float"),
}
# Every schema kind a feature may have; each has exactly one encoding (see the module doc).
ENCODED_KINDS: tuple[str, ...] = ("integer", "float", "datetime", "boolean", "categorical")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Linear(_Strict):
    """A fully connected layer; its input width is whatever the previous layer produces."""

    type: Literal["Linear"]
    out_features: int = Field(ge=1, le=MAX_WIDTH)
    bias: bool = True


class ReLU(_Strict):
    type: Literal["ReLU"]


class GELU(_Strict):
    type: Literal["GELU"]


class Tanh(_Strict):
    type: Literal["Tanh"]


class Sigmoid(_Strict):
    type: Literal["Sigmoid"]


class LayerNorm(_Strict):
    """Layer normalisation over the previous layer's width, with its affine parameters.

    It normalises each row by that row's own statistics and keeps no running state, unlike
    BatchNorm, whose running mean/variance buffers are computed from private rows.
    """

    type: Literal["LayerNorm"]
    elementwise_affine: Literal[True] = True


LayerSpec: TypeAlias = Annotated[
    Linear | ReLU | GELU | Tanh | Sigmoid | LayerNorm, Field(discriminator="type")
]
LAYER_TYPES: tuple[str, ...] = ("Linear", "ReLU", "GELU", "Tanh", "Sigmoid", "LayerNorm")


class DpSpec(_Strict):
    """The DP parameters: a target ε or a noise multiplier (exactly one), δ and the clip norm.

    Values must be representable on chain exactly: the noise multiplier and the clip norm in
    millionths, δ in 1e-18 units.
    """

    target_epsilon: float | None = Field(default=None, gt=0, le=1000)
    noise_multiplier: float | None = Field(default=None, gt=0, le=MAX_NOISE_MULTIPLIER)
    delta: float = Field(gt=0, lt=1)
    max_grad_norm: float = Field(gt=0, le=MAX_CLIP_NORM)

    @field_validator("noise_multiplier", "max_grad_norm")
    @classmethod
    def _millionths(cls, value: float | None) -> float | None:
        if value is not None:
            _on_grid(value, 10**6, "a multiple of 0.000001")
        return value

    @field_validator("delta")
    @classmethod
    def _delta_grid(cls, value: float) -> float:
        _on_grid(value, 10**18, "a multiple of 1e-18")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> DpSpec:
        if (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise ValueError("give exactly one of target_epsilon and noise_multiplier")
        return self


def _on_grid(value: float, scale: int, what: str) -> None:
    try:
        scaled(repr(float(value)), scale, "the value")
    except ValueError:
        raise ValueError(f"must be {what}, the precision the chain stores") from None


class FederationSpec(_Strict):
    """The federated part of a spec: one model trained over several datasets in rounds.

    Each round, every dataset's runner trains `epochs` local epochs (the spec's own) from the
    round's model; the aggregator sums the updates with SecAgg+. A dataset's job therefore
    trains `rounds × epochs` epochs in all, which its DP parameters and its ledger charge
    count (`ModelSpec.total_epochs`).
    """

    rounds: int = Field(ge=1, le=MAX_ROUNDS)
    # The aggregator's Flower SuperLink, host:port: runners dial it (outbound) to join.
    superlink: str = Field(min_length=3, max_length=255)

    @field_validator("superlink")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535 or any(c in host for c in "/@ "):
            raise ValueError("the superlink must be host:port, e.g. 127.0.0.1:9092")
        return value


class ModelSpec(_Strict):
    """A buyer's declarative description of the model to train with differential privacy."""

    version: Literal[1] = SPEC_VERSION
    family: Literal["mlp"] = "mlp"
    task: Task
    features: tuple[str, ...] = Field(min_length=1)
    target: str = Field(min_length=1)
    layers: tuple[LayerSpec, ...] = Field(min_length=1, max_length=MAX_LAYERS)
    loss: Loss
    optimizer: OptimizerName
    learning_rate: float = Field(gt=0, le=100)
    expected_batch_size: int = Field(ge=1, le=MAX_BATCH_SIZE)
    epochs: int = Field(ge=1, le=MAX_EPOCHS)
    dp: DpSpec
    federation: FederationSpec | None = None  # None: a single-dataset job

    @field_validator("features")
    @classmethod
    def _unique_features(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name for name in value):
            raise ValueError("feature names must not be empty")
        if len(set(value)) != len(value):
            raise ValueError("each feature column may be listed only once")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.loss not in TASK_LOSSES[self.task]:
            allowed = " or ".join(TASK_LOSSES[self.task])
            raise ValueError(f"a {self.task} task needs the {allowed} loss, not {self.loss}")
        if not any(isinstance(layer, Linear) for layer in self.layers):
            raise ValueError("the layers need at least one Linear layer")
        if not isinstance(self.layers[-1], Linear):
            raise ValueError("the last layer must be a Linear layer that produces the outputs")
        return self

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def parse(cls, data: Mapping[str, Any] | str | bytes) -> ModelSpec:
        """A spec from a mapping or JSON text; SpecError with one sentence if it is invalid."""
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except (ValueError, UnicodeDecodeError):
                raise SpecError("The model spec is not valid JSON; check its syntax.") from None
        if not isinstance(data, Mapping):
            raise SpecError("The model spec must be a JSON object.")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as error:
            raise SpecError(_sentence(error)) from None

    @model_serializer(mode="wrap")
    def _without_empty_federation(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A single-dataset spec has no `federation` key at all, so it hashes as it did
        # before federated jobs existed.
        data = handler(self)
        if data.get("federation", 0) is None:
            del data["federation"]
        return data

    def to_json(self) -> bytes:
        """The canonical JSON bytes of the spec (sorted keys, no whitespace, defaults in)."""
        return canonical_json(self.model_dump(mode="json"))

    @property
    def rounds(self) -> int:
        """Federated rounds (1 for a single-dataset job)."""
        return 1 if self.federation is None else self.federation.rounds

    @property
    def total_epochs(self) -> int:
        """Epochs over the whole job: `epochs` per round, in every round."""
        return self.epochs * self.rounds

    def spec_hash(self) -> str:
        """keccak256 of the canonical JSON, as 0x-prefixed hex (what the chain records)."""
        return "0x" + keccak(self.to_json()).hex()

    def to_wire(self) -> bytes:
        """The spec as a job request carries it on-chain: its canonical JSON, zlib-compressed
        (RFC 1950, level 9), about half the calldata and log bytes of the JSON itself."""
        return zlib.compress(self.to_json(), 9)

    @classmethod
    def from_wire(cls, data: bytes) -> ModelSpec:
        """The spec of a job request (see `to_wire`); SpecError for anything else, including
        data that inflates beyond MAX_SPEC_JSON_BYTES (a compression bomb)."""
        inflater = zlib.decompressobj()
        try:
            text = inflater.decompress(bytes(data), MAX_SPEC_JSON_BYTES + 1)
        except zlib.error:
            raise SpecError("The job's spec is not zlib-compressed JSON.") from None
        if len(text) > MAX_SPEC_JSON_BYTES or inflater.unconsumed_tail or not inflater.eof:
            raise SpecError(f"The job's spec is not a complete zlib stream of at most {MAX_SPEC_JSON_BYTES} bytes of JSON.")
        return cls.parse(text)

    # -- checks against a dataset ----------------------------------------------------------

    def check_against(self, schema: DatasetSchema) -> None:
        """SpecError naming the first way this spec does not fit `schema`.

        Checks that every named column exists, the target is not a feature, every feature
        has an encoding, the target's kind fits the task and loss, the last Linear layer has
        as many outputs as the task needs and the model stays within the size limits.
        Messages name columns and kinds, never values.
        """
        columns = {c.name: c for c in schema.columns}
        for name in self.features:
            if name not in columns:
                raise SpecError(
                    f"The spec uses a feature column '{name}' that the dataset does not have; "
                    f"its columns are: {', '.join(schema.names)}."
                )
        if self.target not in columns:
            raise SpecError(
                f"The spec's target column '{self.target}' is not in the dataset; "
                f"its columns are: {', '.join(schema.names)}."
            )
        if self.target in self.features:
            raise SpecError(
                f"The target column '{self.target}' is also listed as a feature; "
                "remove it from the features."
            )
        for name in self.features:
            if columns[name].kind not in ENCODED_KINDS:
                raise SpecError(
                    f"The feature column '{name}' is of kind {columns[name].kind}, which has "
                    "no encoding; drop it from the features."
                )
        self._check_target(columns[self.target])
        needed = self.output_width(schema)
        last = self.layers[-1]
        assert isinstance(last, Linear)  # checked when the spec was built
        if last.out_features != needed:
            raise SpecError(
                f"The last Linear layer has {last.out_features} outputs but this "
                f"{self.task} task on '{self.target}' with the {self.loss} loss needs "
                f"{needed}; set its out_features to {needed}."
            )
        count = self.parameter_count(schema)
        if count > MAX_PARAMETERS:
            raise SpecError(
                f"The model would have {count:,} parameters, more than the {MAX_PARAMETERS:,} "
                "a runner trains; use fewer or narrower layers."
            )

    def _check_target(self, column: ColumnSchema) -> None:
        kinds = TASK_TARGET_KINDS[self.task]
        if column.kind not in kinds:
            raise SpecError(
                f"The target column '{column.name}' is of kind {column.kind}, which does not "
                f"fit a {self.task} task; it needs a {' or '.join(kinds)} target."
            )
        if self.task == "classification":
            classes = len(target_classes(column))
            if classes < 2:
                raise SpecError(
                    f"The target column '{column.name}' has only {classes} category; "
                    "classification needs at least two."
                )
            if self.loss == "bce" and classes != 2:
                raise SpecError(
                    f"The bce loss needs a target with two classes, but '{column.name}' has "
                    f"{classes}; use the cross_entropy loss."
                )

    # -- shapes ----------------------------------------------------------------------------

    def input_columns(self, schema: DatasetSchema) -> list[str]:
        """Names of the encoded input columns, in the order the model sees them."""
        names: list[str] = []
        for feature in self.features:
            column = schema.column(feature)
            if column.kind == "categorical":
                names.extend(f"{feature}={label}" for label in column.categories or [])
            else:
                names.append(feature)
                if column.nullable:
                    names.append(f"{feature}:missing")
        return names

    def input_width(self, schema: DatasetSchema) -> int:
        return len(self.input_columns(schema))

    def output_width(self, schema: DatasetSchema) -> int:
        """How many outputs the last Linear layer must produce for this task and loss."""
        if self.task == "regression" or self.loss == "bce":
            return 1
        return len(target_classes(schema.column(self.target)))

    def parameter_count(self, schema: DatasetSchema) -> int:
        """The number of trainable parameters of the model this spec builds on `schema`."""
        width, total = self.input_width(schema), 0
        for layer in self.layers:
            if isinstance(layer, Linear):
                total += width * layer.out_features + (layer.out_features if layer.bias else 0)
                width = layer.out_features
            elif isinstance(layer, LayerNorm):
                total += 2 * width
        return total


def target_classes(column: ColumnSchema) -> list[str]:
    """The class labels of a classification target, in the order of the model's outputs.

    A boolean target has classes "false" (output 0) and "true" (output 1); a categorical
    target has the schema's sorted categories.
    """
    if column.kind == "boolean":
        return ["false", "true"]
    return list(column.categories or [])


def _sentence(error: ValidationError) -> str:
    problem = first_problem(error, drop=LAYER_TYPES)
    if problem.kind == "union_tag_invalid":
        return (
            f"The model spec's {problem.where} names a layer type that is not allowed; "
            f"use one of {', '.join(LAYER_TYPES)}."
        )
    return sentence(error, "The model spec", drop=LAYER_TYPES)
