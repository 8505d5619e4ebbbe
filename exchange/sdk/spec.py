"""`Spec`: model specs built in one call, checked against the dataset before anything is sent.

`Spec.mlp(features, target, dataset=ds)` reads the target's kind in the dataset's public
schema to pick the task (categorical or boolean: classification with cross-entropy and one
output per class; integer or float: regression with MSE and one output), takes δ from the
dataset's policy, and checks the spec exactly as the runner will (`ModelSpec.check_against`,
same sentences), so a spec that could not train is refused before any credit is spent.
The result is an ordinary `ModelSpec`: declarative JSON, hashed canonically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exchange.datasets import DatasetMetadata, DatasetSchema
from exchange.errors import SpecError
from exchange.jobs import check_spec_policy
from exchange.ml.spec import ENCODED_KINDS, TASK_TARGET_KINDS, ModelSpec, target_classes
from exchange.units import delta_text

if TYPE_CHECKING:
    from exchange.sdk.dataset import Dataset

ACTIVATIONS: dict[str, str] = {"relu": "ReLU", "gelu": "GELU", "tanh": "Tanh", "sigmoid": "Sigmoid"}
DEFAULT_DELTA = 1e-5  # the policy default, used when no dataset is given


def _schema_of(dataset: Any) -> DatasetSchema | None:
    """The public schema of a Dataset, DatasetMetadata or DatasetSchema (None for None)."""
    if dataset is None:
        return None
    if isinstance(dataset, DatasetSchema):
        return dataset
    schema = getattr(dataset, "schema_", None)  # a Dataset or its DatasetMetadata
    if isinstance(schema, DatasetSchema):
        return schema
    raise SpecError("The dataset= argument must be a Dataset (from cove.dataset(id)) or its schema.")


def _policy_delta(policy: Any) -> float | None:
    delta = getattr(policy, "delta", None)
    return float(delta) if isinstance(delta, (Decimal, float, int)) else None


def infer_task(schema: DatasetSchema, target: str) -> str:
    """classification for a categorical/boolean target, regression for a number.

    A target that is missing or of another kind gets "regression" here; the schema check
    that follows then refuses it with the runner's own sentence.
    """
    names = {c.name: c for c in schema.columns}
    column = names.get(target)
    if column is not None and column.kind in TASK_TARGET_KINDS["classification"]:
        return "classification"
    return "regression"


class Spec:
    """Builders for `ModelSpec` (an MLP, or a spec from JSON)."""

    parse = staticmethod(ModelSpec.parse)

    @staticmethod
    def mlp(
        features: Sequence[str] | str | None,
        target: str,
        *,
        hidden: Sequence[int] | int = (64, 32),
        epsilon: float = 1.0,
        delta: float | None = None,
        epochs: int = 5,
        batch_size: int = 64,
        learning_rate: float = 0.01,
        max_grad_norm: float = 1.0,
        activation: str = "relu",
        optimizer: str = "adam",
        dataset: Dataset | DatasetMetadata | DatasetSchema | None = None,
        task: str | None = None,
        noise_multiplier: float | None = None,
    ) -> ModelSpec:
        """A multi-layer perceptron spec, checked against `dataset` when one is given.

        `features`: the input columns (a name, a list, or None for every other encodable
        column). `hidden`: the widths of the hidden Linear layers, each followed by
        `activation`. `epsilon`: the target ε of this one job (the runner picks the noise
        that reaches it); pass `noise_multiplier` instead to fix the noise. δ defaults to
        the dataset policy's δ. Without a dataset, pass `task` ("classification" needs
        the dataset to count classes, so give the dataset whenever you can).
        """
        schema = _schema_of(dataset)
        if isinstance(features, str):
            features = [features]
        if features is None:
            if schema is None:
                raise SpecError("Name the feature columns, or pass dataset= to use every other column.")
            features = [c.name for c in schema.columns if c.name != target and c.kind in ENCODED_KINDS]
        features = list(features)
        if isinstance(hidden, int):
            hidden = (hidden,)
        key = str(activation).strip().lower()
        if key not in ACTIVATIONS:
            raise SpecError(
                f"The activation {activation!r} is not allowed; use one of {', '.join(ACTIVATIONS)}."
            )

        if task is None:
            if schema is None:
                raise SpecError("Pass dataset= (or task=) so the task can be read off the target column.")
            task = infer_task(schema, target)
        if task not in TASK_TARGET_KINDS:
            raise SpecError(f"The task must be classification or regression, not {task!r}.")
        if task == "classification":
            if schema is None:
                raise SpecError("A classification spec needs dataset= to count the target's classes.")
            column = next((c for c in schema.columns if c.name == target), None)
            outputs = max(1, len(target_classes(column))) if column is not None else 2
            loss = "cross_entropy"
        else:
            outputs, loss = 1, "mse"

        if delta is None:
            delta = _policy_delta(getattr(dataset, "policy", None)) or DEFAULT_DELTA
        layers: list[dict[str, Any]] = []
        for width in hidden:
            layers += [{"type": "Linear", "out_features": width}, {"type": ACTIVATIONS[key]}]
        layers.append({"type": "Linear", "out_features": outputs})
        dp: dict[str, Any] = {"delta": delta, "max_grad_norm": max_grad_norm}
        if noise_multiplier is not None:
            dp["noise_multiplier"] = noise_multiplier
        else:
            dp["target_epsilon"] = epsilon
        spec = ModelSpec.parse({
            "task": task, "features": features, "target": target, "layers": layers, "loss": loss,
            "optimizer": str(optimizer).strip().lower(), "learning_rate": learning_rate,
            "expected_batch_size": batch_size, "epochs": epochs, "dp": dp,
        })  # fmt: skip
        if dataset is not None:
            check_spec(spec, dataset)
        return spec

    @staticmethod
    def from_json(source: str | bytes | Path | Mapping[str, Any]) -> ModelSpec:
        """A spec from JSON text, a JSON file, or a mapping (SpecError with one sentence)."""
        if isinstance(source, Path) or (isinstance(source, str) and source.strip().endswith(".json")
                                        and not source.lstrip().startswith("{")):  # fmt: skip
            path = Path(source)
            try:
                source = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                raise SpecError(f"Cannot read the spec file {path}; check the path (UTF-8 JSON).") from None
        return ModelSpec.parse(source)


def check_spec(spec: ModelSpec, dataset: Any) -> None:
    """The checks a spec must pass before it is sent: the runner's schema check, then the
    dataset's policy (δ, epochs, model family) and its row count (batch size). SpecError on
    the first."""
    schema = _schema_of(dataset)
    assert schema is not None
    spec.check_against(schema)
    policy = getattr(dataset, "policy", None)
    if policy is not None:
        check_spec_policy(spec, policy, dataset.id)
    rows = getattr(dataset, "rows", None)
    if isinstance(rows, int) and spec.expected_batch_size > rows:
        raise SpecError(
            f"The expected batch size ({spec.expected_batch_size}) is larger than the dataset's "
            f"{rows} rows; choose at most {rows}."
        )


def spec_of(value: ModelSpec | Mapping[str, Any] | str | bytes | Path) -> ModelSpec:
    """A ModelSpec from whatever a user hands in."""
    if isinstance(value, ModelSpec):
        return value
    return Spec.from_json(value)


def spec_summary(spec: ModelSpec) -> str:
    """One line: task, layers, ε target or noise, epochs."""
    widths = [str(layer.out_features) for layer in spec.layers if getattr(layer, "type", "") == "Linear"]
    privacy = (f"ε ≤ {spec.dp.target_epsilon:g}" if spec.dp.target_epsilon is not None
               else f"σ {spec.dp.noise_multiplier:g}")  # fmt: skip
    return (f"{spec.task} of '{spec.target}' from {len(spec.features)} feature(s), "
            f"MLP {'→'.join(widths)}, {spec.epochs} epoch(s), {privacy}, δ {delta_text(spec.dp.delta)}")  # fmt: skip


__all__ = ["ModelSpec", "Spec", "check_spec", "infer_task", "spec_of", "spec_summary"]
