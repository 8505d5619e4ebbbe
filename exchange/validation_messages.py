"""Pydantic's validation errors in Cove's words.

Pydantic describes a problem in its own vocabulary ("Tuple should have at least 1 item
after validation", "Input should be a valid integer", "Field required") and locates it by
its internal path (`layers.0.Linear.out_features`, `minimum.int`). Every place that turns a
`ValidationError` into a user-facing sentence goes through `describe` or `sentence`, so the
user reads which field (by the name they wrote) is wrong and what it must be, never
pydantic's phrasing or the offending input (which could be long, or private).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

# What a value must be, per pydantic type error: the noun after "must be".
_TYPE_NOUNS: dict[str, str] = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "int_parsing_size": "a whole number of reasonable size",
    "float_type": "a number", "float_parsing": "a number", "decimal_type": "a number",
    "decimal_parsing": "a number", "finite_number": "a finite number", "decimal_whole_digits": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "text", "string_unicode": "text", "bytes_type": "text",
    "list_type": "a list", "tuple_type": "a list", "set_type": "a list", "iterable_type": "a list",
    "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
    "dataclass_type": "an object", "mapping_type": "an object",
    "datetime_type": "an ISO 8601 date and time", "datetime_parsing": "an ISO 8601 date and time",
    "datetime_from_date_parsing": "an ISO 8601 date and time", "datetime_object_invalid": "an ISO 8601 date and time",
    "date_type": "an ISO 8601 date", "date_parsing": "an ISO 8601 date", "date_from_datetime_parsing": "an ISO 8601 date",
    "none_required": "empty (null)", "url_type": "a URL", "url_parsing": "a URL",
    "uuid_type": "a UUID", "uuid_parsing": "a UUID",
}  # fmt: skip

# Location parts that are pydantic's union members, not keys the user wrote (`minimum.int`).
_MEMBER_PARTS = frozenset({"int", "float", "str", "bool", "bytes", "datetime", "date", "decimal", "none", "list", "dict"})

# Python's spelling of a literal, as the JSON the user wrote spells it.
_JSON_WORDS = {"True": "true", "False": "false", "None": "null"}

# Our own validators' messages: shown as they are (they are Cove's sentences already).
_OWN = frozenset({"value_error", "assertion_error"})


@dataclass(frozen=True)
class Problem:
    """The first problem of a ValidationError: where (as the user names it) and what."""

    where: str  # e.g. "dp.target_epsilon" or "columns.2.name"; "" for the whole document
    kind: str  # pydantic's error type
    text: str  # a predicate ("must be at least 1") or, for `own`, our validator's message
    own: bool  # a message Cove's own validators wrote


def location(loc: Sequence[Any], drop: Collection[str] = ()) -> str:
    """A pydantic location as the path of keys and list positions the user wrote, dotted:
    `layers.0.out_features` (union members and `drop`ped tags such as a layer's type left out)."""
    parts = [
        str(part) for part in loc
        if isinstance(part, int) or not (part in drop or part in _MEMBER_PARTS or "[" in str(part))
    ]  # fmt: skip
    return ".".join(parts)


def _number(value: Any) -> str:
    """A bound as people write it: 100, not 100.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def predicate(error: dict[str, Any]) -> str:
    """What the value must be, as a clause after the field's name ("must be at least 1")."""
    kind = str(error["type"])
    ctx = error.get("ctx") or {}
    if kind in _TYPE_NOUNS:
        return f"must be {_TYPE_NOUNS[kind]}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field; remove it"
    if kind == "too_short":
        return f"must have at least {_plural(int(ctx.get('min_length', 1)), 'entry', 'entries')}"
    if kind == "too_long":
        return f"must have at most {_plural(int(ctx.get('max_length', 0)), 'entry', 'entries')}"
    if kind == "string_too_short":
        minimum = int(ctx.get("min_length", 1))
        return "must not be empty" if minimum == 1 else f"must be at least {minimum} characters long"
    if kind == "string_too_long":
        return f"must be at most {_plural(int(ctx.get('max_length', 0)), 'character', 'characters')} long"
    if kind == "string_pattern_mismatch":
        return f"is not in the expected form (the pattern {ctx.get('pattern', '')})"
    bounds = {"greater_than": ("greater than", "gt"), "greater_than_equal": ("at least", "ge"),
              "less_than": ("less than", "lt"), "less_than_equal": ("at most", "le")}  # fmt: skip
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {_number(ctx.get(key))}"
    if kind == "multiple_of":
        return f"must be a multiple of {_number(ctx.get('multiple_of'))}"
    if kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", "one of the allowed values"))
        return f"must be {_JSON_WORDS.get(expected, expected)}"
    if kind == "union_tag_invalid":
        tags = str(ctx.get("expected_tags", ""))
        return f"has a {ctx.get('discriminator', 'type')} that is not allowed" + (f"; use one of {tags}" if tags else "")
    if kind == "union_tag_not_found":
        return f"needs a {ctx.get('discriminator', 'type')} field"
    if kind == "json_invalid":
        return "is not valid JSON"
    if kind == "frozen_instance" or kind == "frozen_field":
        return "cannot be changed"
    return "is not valid"


def _own_message(error: dict[str, Any]) -> str:
    cause = (error.get("ctx") or {}).get("error")
    text = str(cause) if cause is not None else str(error.get("msg", ""))
    return text.removeprefix("Value error, ").removeprefix("Assertion failed, ").rstrip(".")


def first_problem(error: ValidationError, *, drop: Collection[str] = ()) -> Problem:
    """The first problem, with the other members of the same union folded into it (a value
    that is neither a number nor a date must be "a number or an ISO 8601 date and time")."""
    errors = error.errors()
    first = errors[0]
    where = location(first["loc"], drop)
    kind = str(first["type"])
    if kind in _OWN:
        return Problem(where, kind, _own_message(first), own=True)
    nouns = [_TYPE_NOUNS[str(e["type"])] for e in errors if str(e["type"]) in _TYPE_NOUNS and location(e["loc"], drop) == where]
    if kind in _TYPE_NOUNS and len(set(nouns)) > 1:
        unique = list(dict.fromkeys(n for n in nouns if not (n == "a whole number" and "a number" in nouns)))
        text = "must be " + (", ".join(unique[:-1]) + " or " + unique[-1] if len(unique) > 1 else unique[0])
        return Problem(where, kind, text, own=False)
    return Problem(where, kind, predicate(first), own=False)


def describe(error: ValidationError, *, drop: Collection[str] = ()) -> str:
    """The first problem as one clause, without a final period, to put inside a sentence:
    "columns.0.kind must be 'integer', 'float', ..." or our own validator's message."""
    problem = first_problem(error, drop=drop)
    where = problem.where
    if problem.own:
        return problem.text  # Cove's validators name what they refuse ("column 'age' has ...")
    if problem.kind == "missing":
        return f"the field '{where}' is missing"
    if problem.kind == "extra_forbidden":
        return f"'{where}' is not a known field; remove it"
    return f"{where or 'the value'} {problem.text}"


def sentence(error: ValidationError, subject: str, *, drop: Collection[str] = ()) -> str:
    """The first problem as one sentence about `subject` (e.g. "The model spec"):
    "The model spec's features is invalid: it must have at least 1 entry."."""
    problem = first_problem(error, drop=drop)
    where = problem.where
    if problem.kind == "missing":
        return f"{subject} is missing the field '{where}'."
    if problem.kind == "extra_forbidden":
        return f"{subject} has an unknown field '{where}'; remove it."
    if problem.own:
        return f"{subject}'s {where} is invalid: {problem.text}." if where else f"{subject} is invalid: {problem.text}."
    return f"{subject}'s {where} is invalid: it {problem.text}." if where else f"{subject} is invalid: it {problem.text}."
