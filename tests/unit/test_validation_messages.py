"""Pydantic's validation errors reach users in Cove's words, naming the field as they wrote it."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exchange.datasets.metadata import DatasetMetadata
from exchange.datasets.schema import DatasetSchema
from exchange.errors import CoveError, InputError
from exchange.ml.spec import ModelSpec
from exchange.policy import parse_terms
from exchange.validation_messages import describe, location, sentence

PYDANTIC_PHRASES = ("should have at least", "after validation", "Input should be", "Field required", "type=",
                    "validation error", "String should", "Value error", "pydantic", "Tuple", "List should",
                    "unable to parse", "Extra inputs")  # fmt: skip

SPEC: dict[str, Any] = {
    "task": "classification", "features": ["age"], "target": "diagnosis",
    "layers": [{"type": "Linear", "out_features": 2}], "loss": "cross_entropy", "optimizer": "adam",
    "learning_rate": 0.01, "expected_batch_size": 64, "epochs": 2,
    "dp": {"target_epsilon": 2.0, "delta": 1e-5, "max_grad_norm": 1.0},
}  # fmt: skip
COLUMN = {"name": "age", "kind": "integer", "nullable": False, "minimum": 0, "maximum": 120}
POLICY = {"budget": "2", "per_job_cap": "1", "free_cap": 3}


def message_of(call: Any) -> str:
    with pytest.raises(CoveError) as refused:
        call()
    return str(refused.value)


BAD_SPECS = [
    ({"features": []}, "The model spec's features is invalid: it must have at least 1 entry."),
    ({"features": "age"}, "The model spec's features is invalid: it must be a list."),
    ({"epochs": "many"}, "The model spec's epochs is invalid: it must be a whole number."),
    ({"epochs": 2.5}, "The model spec's epochs is invalid: it must be a whole number."),
    ({"epochs": 0}, "The model spec's epochs is invalid: it must be at least 1."),
    ({"learning_rate": 1000}, "The model spec's learning_rate is invalid: it must be at most 100."),
    ({"learning_rate": "fast"}, "The model spec's learning_rate is invalid: it must be a number."),
    ({"task": "clustering"}, "The model spec's task is invalid: it must be 'classification' or 'regression'."),
    ({"layers": [{"type": "Linear", "out_features": "wide"}]},
     "The model spec's layers.0.out_features is invalid: it must be a whole number."),
    ({"layers": [{"out_features": 2}]}, "The model spec's layers.0 is invalid: it needs a 'type' field."),
    ({"layers": [{"type": "LayerNorm", "elementwise_affine": False}, {"type": "Linear", "out_features": 2}]},
     "The model spec's layers.0.elementwise_affine is invalid: it must be true."),
    ({"dp": {"target_epsilon": 2.0, "delta": 1e-5}}, "The model spec is missing the field 'dp.max_grad_norm'."),
    ({"dp": {"target_epsilon": -1, "delta": 1e-5, "max_grad_norm": 1}},
     "The model spec's dp.target_epsilon is invalid: it must be greater than 0."),
    ({"code": "import os"}, "The model spec has an unknown field 'code'; remove it."),
    ({"family": "transformer"}, "The model spec's family is invalid: it must be 'mlp'."),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "expected"), BAD_SPECS)
def test_spec_errors_in_coves_words(changes: dict[str, Any], expected: str) -> None:
    assert message_of(lambda: ModelSpec.parse({**SPEC, **changes})) == expected


BAD_SCHEMAS = [
    ({"columns": []}, "columns must have at least 1 entry"),
    ({"columns": [{**COLUMN, "kind": "int"}]},
     "columns.0.kind must be 'integer', 'float', 'boolean', 'categorical' or 'datetime'"),
    ({"columns": [{**COLUMN, "minimum": "low"}]}, "columns.0.minimum must be a number or an ISO 8601 date and time"),
    ({"columns": [{**COLUMN, "name": ""}]}, "columns.0.name must not be empty"),
    ({"columns": [{k: v for k, v in COLUMN.items() if k != "name"}]}, "the field 'columns.0.name' is missing"),
    ({"columns": [{**COLUMN, "nullable": "sometimes"}]}, "columns.0.nullable must be true or false"),
    ({"columns": [{**COLUMN, "unit": "years"}]}, "'columns.0.unit' is not a known field; remove it"),
    ({"columns": [{**COLUMN, "minimum": 200}]}, "column 'age' has a minimum above its maximum"),
    ({"columns": "age"}, "columns must be a list"),
]  # fmt: skip


@pytest.mark.parametrize(("document", "fragment"), BAD_SCHEMAS)
def test_schema_errors_in_coves_words(document: dict[str, Any], fragment: str) -> None:
    message = message_of(lambda: DatasetSchema.declared(document))
    assert message == f"The schema is not valid ({fragment})."


def test_schema_file_errors_in_coves_words(tmp_path: Any) -> None:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"columns": [{**COLUMN, "maximum": "high"}]}))
    message = message_of(lambda: DatasetSchema.load(path))
    assert message == f"The schema file {path} is not a valid schema (columns.0.maximum must be a number or an ISO 8601 date and time)."


BAD_POLICIES = [
    ({"max_epochs": "many"}, "The policy's max_epochs is invalid: it must be a whole number."),
    ({"compute_only": "maybe"}, "The policy's compute_only is invalid: it must be true or false."),
    ({"expiry": "soon"}, "The policy's expiry is invalid: it must be an ISO 8601 date and time."),
    ({"surprise": 1}, "The policy has an unknown field 'surprise'; remove it."),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "expected"), BAD_POLICIES)
def test_policy_errors_in_coves_words(changes: dict[str, Any], expected: str) -> None:
    assert message_of(lambda: parse_terms(**(POLICY | changes))) == expected
    fields = dict(POLICY)
    del fields["budget"]
    assert message_of(lambda: parse_terms(**fields)) == "The policy is missing the field 'budget'."


def test_metadata_errors_in_coves_words() -> None:
    message = message_of(lambda: DatasetMetadata.from_json_bytes(json.dumps({"name": "x", "rows": "many"}).encode()))
    assert message.startswith("The dataset metadata is invalid (") and isinstance(CoveError(), Exception)
    assert "check the CID or republish the dataset" in message


def every_message() -> list[str]:
    """The user-facing sentence of every bad input above."""
    messages = [message_of(lambda c=c: ModelSpec.parse({**SPEC, **c})) for c, _ in BAD_SPECS]  # type: ignore[misc]
    messages += [message_of(lambda d=d: DatasetSchema.declared(d)) for d, _ in BAD_SCHEMAS]  # type: ignore[misc]
    messages += [message_of(lambda c=c: parse_terms(**(POLICY | c))) for c, _ in BAD_POLICIES]  # type: ignore[misc]
    for document in ({"name": "x"}, {"name": "", "rows": 0}, {"name": "x", "rows": "many", "extra": 1}, {"name": "x" * 101}):
        messages.append(message_of(lambda d=document: DatasetMetadata.from_json_bytes(json.dumps(d).encode())))  # type: ignore[misc]
    return messages


def test_no_message_speaks_pydantic() -> None:
    for message in every_message():
        assert not any(phrase in message for phrase in PYDANTIC_PHRASES), message
        assert "\n" not in message and message.endswith("."), message
        assert message[0].isupper(), message


class _Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=3, max_length=5)
    code: str = Field(default="ab", pattern=r"^[a-z]+$")
    items: list[int] = Field(default_factory=list, max_length=2)
    ratio: float = Field(default=0.5, lt=1)
    count: int = Field(default=1, gt=0, multiple_of=2)
    mode: Literal["on", "off"] = "on"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "ab"}, "name must be at least 3 characters long"),
        ({"name": "abcdef"}, "name must be at most 5 characters long"),
        ({"name": "abc", "code": "AB"}, "code is not in the expected form (the pattern ^[a-z]+$)"),
        ({"name": "abc", "items": [1, 2, 3]}, "items must have at most 2 entries"),
        ({"name": "abc", "items": ["x"]}, "items.0 must be a whole number"),
        ({"name": "abc", "ratio": 1}, "ratio must be less than 1"),
        ({"name": "abc", "count": 0}, "count must be greater than 0"),
        ({"name": "abc", "count": 3}, "count must be a multiple of 2"),
        ({"name": "abc", "mode": "auto"}, "mode must be 'on' or 'off'"),
        ({"name": 5}, "name must be text"),
        ({}, "the field 'name' is missing"),
    ],
)
def test_describe_each_error_type(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as error:
        _Sample(**fields)
    assert describe(error.value) == expected
    text = sentence(error.value, "The sample")
    assert text.startswith("The sample") and text.endswith(".")
    assert not any(phrase in text for phrase in PYDANTIC_PHRASES), text


def test_locations_are_the_paths_the_user_wrote() -> None:
    assert location(("layers", 0, "Linear", "out_features"), drop={"Linear"}) == "layers.0.out_features"
    assert location(("columns", 2, "minimum", "int")) == "columns.2.minimum"
    assert location(("columns", 0, "fill", "function-after[_check(), float]")) == "columns.0.fill"
    assert location(()) == ""
    assert issubclass(InputError, CoveError)
