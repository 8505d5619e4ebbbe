"""`frame_records`: the listing typed as the DataFrame `cove datasets` used to print."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import pytest

from exchange.cli.output import frame_records

CASES: list[list[dict[str, Any]]] = [
    [{"id": 1, "price": 0, "columns": 4, "name": "a"}, {"id": 2, "price": 1.5, "columns": 4, "name": "b"}],
    [{"id": 1, "price": 0, "columns": 4, "name": "a"}, {"id": 2, "price": 0, "columns": None, "name": "b"}],
    [{"id": 1, "price": 2.5, "columns": None, "name": "a"}],
    [{"id": 1, "price": 0, "columns": 3, "name": "a", "flag": True}, {"id": 2, "price": 0, "columns": 3, "name": "b", "flag": False}],
    [{"id": 1, "runner": None, "tags": ""}, {"id": 2, "runner": None, "tags": "x, y"}],
    [],
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("rows", CASES)
def test_records_are_typed_as_pandas_types_them(rows: list[dict[str, Any]]) -> None:
    ours = frame_records(rows)
    theirs = pd.DataFrame(rows).to_dict(orient="records")
    assert len(ours) == len(theirs)
    for mine, expected in zip(ours, theirs, strict=True):
        assert list(mine) == list(expected)
        assert all(_same(mine[k], expected[k]) for k in mine), (mine, expected)
    # and they print as the same JSON
    assert json.dumps(ours) == json.dumps(theirs)


def test_the_input_is_not_changed() -> None:
    rows = [{"price": 0}, {"price": 1.5}]
    frame_records(rows)
    assert rows == [{"price": 0}, {"price": 1.5}] and isinstance(rows[0]["price"], int)


JSON_CASES: list[Any] = [
    [], {}, 3, "text ✓",
    {"ε": 1.5, "nan": math.nan, "mixed": [1, 2.0, None, True], "long": "x" * 500, "nested": [{"a": {"b": []}}]},
    [{"id": i, "name": f"dataset {i} [bold]", "price": i / 3} for i in range(50)],
]


@pytest.mark.parametrize("value", JSON_CASES)
def test_json_off_a_terminal_is_what_rich_prints(value: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from rich.console import Console

    from exchange.cli import output

    rich_printed = io.StringIO()
    Console(file=rich_printed, width=80).print_json(json.dumps(output._plain(value)))
    output.print_json(value)
    assert capsys.readouterr().out == rich_printed.getvalue()
