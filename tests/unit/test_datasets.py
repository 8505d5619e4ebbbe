"""Tests for exchange.datasets: reading, commitment, schema inference, mock, metadata."""

from __future__ import annotations

import inspect
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.datasets import (
    KIND_DTYPES,
    MAX_CATEGORIES,
    ColumnSchema,
    CommitmentKey,
    DatasetCommitment,
    DatasetMetadata,
    DatasetSchema,
    canonical_bytes,
    check_frame,
    check_kinds,
    commit,
    departures,
    draft_schema,
    generate_mock,
    load_table,
    prepare_metadata,
)
from exchange.datasets.metadata import RowCount
from exchange.errors import DatasetError, InputError

# Distinctive cell values: if any of them shows up in an error message, a message leaked
# private data.
SECRETS = ["Zanzibar", "Quixote", "918273", "4455.5", "Xylophone", "1999-12-31"]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes(content)
    return path


def load_error(path: Path, *secrets: str) -> str:
    """Load `path`, expect a DatasetError, check it quotes no cell, return its message."""
    with pytest.raises(DatasetError) as info:
        load_table(path)
    # The path is the caller's (and pytest names directories after test ids).
    message = str(info.value).replace(str(path), "<path>")
    assert "\n" not in message and "Traceback" not in message
    for secret in (*SECRETS, *secrets):
        assert secret not in message, f"message leaks a cell value: {message}"
    return message


def write_parquet(tmp_path: Path, name: str, table: pa.Table) -> Path:
    path = tmp_path / name
    pq.write_table(table, path)
    return path


# ---------------------------------------------------------------------------------------
# A realistic synthetic dataset (scikit-learn is not available): a small patient table.


def synthetic_patients(rows: int = 400, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(19, 88, size=rows)
    bmi = np.round(rng.normal(26.3, 4.1, size=rows), 2)
    income = np.round(rng.lognormal(10.6, 0.4, size=rows), 2)
    income[rng.random(rows) < 0.08] = np.nan
    smoker = pd.array(rng.random(rows) < 0.23, dtype="boolean")
    smoker[rng.random(rows) < 0.05] = pd.NA
    region = rng.choice(["north", "south", "east", "west", "centre, city"], size=rows)
    start = pd.Timestamp("2019-02-03T04:05:06Z")
    visit = start + pd.to_timedelta(rng.integers(0, 4 * 365 * 86400, size=rows), unit="s")
    age_col = pd.array(age, dtype="Int64")
    age_col[rng.random(rows) < 0.03] = pd.NA
    return pd.DataFrame(
        {
            "age": age_col,
            "bmi": bmi,
            "income": income,
            "smoker": smoker,
            "region": pd.array(region, dtype="string"),
            "last_visit": pd.Series(visit).astype("datetime64[us, UTC]"),
        }
    )


KEY = CommitmentKey(bytes(range(32)))
NOISE = 20_000_000  # σ 20 for the row count


def declared_patients_schema() -> DatasetSchema:
    """What an owner knows of its patients without reading them: ages, BMIs, incomes and
    dates as the domain bounds them, the regions the hospital serves."""
    return DatasetSchema.declared({"columns": [
        {"name": "age", "kind": "integer", "nullable": True, "minimum": 0, "maximum": 120},
        {"name": "bmi", "kind": "float", "nullable": False, "minimum": 10.0, "maximum": 60.0},
        {"name": "income", "kind": "float", "nullable": True, "minimum": 0.0, "maximum": 1_000_000.0},
        {"name": "smoker", "kind": "boolean", "nullable": True},
        {"name": "region", "kind": "categorical", "nullable": False,
         "categories": ["centre, city", "east", "north", "south", "west"]},
        {"name": "last_visit", "kind": "datetime", "nullable": False,
         "minimum": "2000-01-01T00:00:00Z", "maximum": "2030-01-01T00:00:00Z"},
    ]})  # fmt: skip


@pytest.fixture
def patients() -> pd.DataFrame:
    return synthetic_patients()


@pytest.fixture
def patients_csv(tmp_path: Path, patients: pd.DataFrame) -> Path:
    path = tmp_path / "patients.csv"
    patients.to_csv(path, index=False)
    return path


@pytest.fixture
def patients_parquet(tmp_path: Path, patients: pd.DataFrame) -> Path:
    path = tmp_path / "patients.parquet"
    patients.to_parquet(path, index=False)
    return path


# ---------------------------------------------------------------------------------------
# Reader: happy paths


def test_csv_types_and_missing_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        "id, score ,flag,city,when\n"
        "1,2.5,true,Paris,2024-01-02\n"
        "2,,FALSE, Lyon ,2024-01-03T04:05:06+02:00\n"
        "3,1e3,,NA,\n",
    )
    df = load_table(path)
    assert list(df.columns) == ["id", "score", "flag", "city", "when"]
    for name, kind in zip(df.columns, ["integer", "float", "boolean", "categorical", "datetime"]):
        assert df[name].dtype == KIND_DTYPES[kind], name
    assert df["id"].tolist() == [1, 2, 3]
    assert df["score"].isna().tolist() == [False, True, False]
    assert df["city"].tolist()[:2] == ["Paris", "Lyon"]  # trimmed
    assert df["city"].isna().iloc[2]
    assert df["when"].iloc[1] == pd.Timestamp("2024-01-03T02:05:06Z")


def test_realistic_dataset_loads_from_csv_and_parquet(
    patients: pd.DataFrame, patients_csv: Path, patients_parquet: Path
) -> None:
    from_csv = load_table(patients_csv)
    from_parquet = load_table(patients_parquet)
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    pd.testing.assert_frame_equal(from_csv, patients, check_dtype=True)


def test_crlf_bom_and_quoted_newlines(tmp_path: Path) -> None:
    lf = write(tmp_path, "lf.csv", 'a,b\n1,"x\ny"\n2,"q,""r"""\n')
    crlf = write(tmp_path, "crlf.csv", b'\xef\xbb\xbfa,b\r\n1,"x\ny"\r\n2,"q,""r"""\r\n\r\n')
    assert commit(load_table(lf), KEY) == commit(load_table(crlf), KEY)
    assert load_table(lf)["b"].tolist() == ["x\ny", 'q,"r"']


def test_parquet_dictionary_date_and_timezones(tmp_path: Path) -> None:
    table = pa.table(
        {
            "cat": pa.array(["a", "b", None]).dictionary_encode(),
            "day": pa.array([datetime(2024, 1, 1).date(), None, datetime(2024, 1, 3).date()]),
            "ts": pa.array(
                [datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))), None, None],
                type=pa.timestamp("ns", tz="+02:00"),
            ),
            "small": pa.array([1, 2, None], type=pa.uint8()),
            "f32": pa.array([0.5, None, 1.25], type=pa.float32()),
        }
    )
    df = load_table(write_parquet(tmp_path, "t.parquet", table))
    assert df["cat"].dtype == KIND_DTYPES["categorical"]
    assert df["day"].iloc[0] == pd.Timestamp("2024-01-01T00:00:00Z")
    assert df["ts"].iloc[0] == pd.Timestamp("2024-01-01T00:00:00Z")
    assert df["small"].dtype == KIND_DTYPES["integer"]
    assert df["f32"].tolist()[2] == 1.25


def test_pandas_index_column_in_parquet_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "idx.parquet"
    pd.DataFrame({"a": [1, 2]}, index=[10, 20]).to_parquet(path)
    assert list(load_table(path).columns) == ["a"]


# ---------------------------------------------------------------------------------------
# Reader: every failure is one safe sentence


def test_missing_file(tmp_path: Path) -> None:
    assert "does not exist" in load_error(tmp_path / "nope.csv")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    assert "is a directory" in load_error(tmp_path / "dir.csv")


def test_unsupported_extension(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "data.xlsx", "Zanzibar"))
    assert ".xlsx" in message and ".csv" in message


@pytest.mark.parametrize("name", ["empty.csv", "empty.parquet"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    assert "empty (0 bytes)" in load_error(write(tmp_path, name, b""))


def test_whitespace_only_file(tmp_path: Path) -> None:
    assert "only whitespace" in load_error(write(tmp_path, "ws.csv", " \n\t\r\n  \n"))


def test_non_utf8_csv_reports_byte_offset(tmp_path: Path) -> None:
    content = "name,city\nQuixote,Z".encode() + b"\xfc" + b"rich\n"
    message = load_error(write(tmp_path, "latin1.csv", content), "rich")
    assert "not valid UTF-8" in message
    offset = content.index(b"\xfc")
    assert f"offset {offset}" in message
    assert "line 2" in message


def test_headerless_csv(tmp_path: Path) -> None:
    content = "918273,4455.5,1999-12-31\n1,2.0,2000-01-01\n"
    message = load_error(write(tmp_path, "nohdr.csv", content))
    assert "header" in message and "looks like data" in message


def test_blank_column_name(tmp_path: Path) -> None:
    # What df.to_csv() writes when the index is kept.
    message = load_error(write(tmp_path, "idx.csv", ",age\n0,918273\n1,5\n"))
    assert "Column 1" in message and "no name" in message and "index=False" in message


def test_duplicate_column_names(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "dup.csv", "Zanzibar,b,Zanzibar\n1,2,3\n"))
    assert "Columns 1 and 3" in message and "same name" in message


def test_duplicate_column_names_in_parquet(tmp_path: Path) -> None:
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["x", "x"])
    message = load_error(write_parquet(tmp_path, "dup.parquet", table))
    assert "same name" in message


@pytest.mark.parametrize(
    ("body", "line", "fields"),
    [
        ("Quixote,1,2\nZanzibar,3\nXylophone,4,5\n", 3, 2),  # short row: pandas would pad it
        ("Quixote,1,2\nZanzibar,3,4,918273\n", 3, 4),  # long row
        ('"Quixote\nZanzibar",1,2\nXylophone,4\n', 4, 2),  # line numbers count quoted newlines
    ],
)
def test_ragged_csv(tmp_path: Path, body: str, line: int, fields: int) -> None:
    message = load_error(write(tmp_path, "ragged.csv", "a,b,c\n" + body))
    assert f"Line {line}" in message
    assert f"has {fields} fields but the header has 3" in message


def test_malformed_quoting(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "q.csv", 'a,b\n"Zanzibar"x,1\n'))
    assert "cannot be parsed as CSV at line 2" in message


def test_zero_data_rows_csv(tmp_path: Path) -> None:
    assert "no data rows" in load_error(write(tmp_path, "hdr.csv", "a,b\n\n"))


def test_zero_data_rows_parquet(tmp_path: Path) -> None:
    table = pa.table({"a": pa.array([], type=pa.int64())})
    assert "no data rows" in load_error(write_parquet(tmp_path, "zero.parquet", table))


def test_entirely_empty_csv_column(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "e.csv", "a,gone\nZanzibar,\nQuixote,NA\n"))
    assert "'gone'" in message and "entirely empty" in message


@pytest.mark.parametrize(
    "array",
    [pa.array([None, None]), pa.array([None, None], type=pa.int64()), pa.array([np.nan, None])],
)
def test_entirely_empty_parquet_column(tmp_path: Path, array: pa.Array) -> None:
    table = pa.table({"a": pa.array([918273, 5]), "gone": array})
    message = load_error(write_parquet(tmp_path, "e.parquet", table))
    assert "'gone'" in message and "entirely empty" in message


@pytest.mark.parametrize(
    ("array", "type_word"),
    [
        (pa.array([[1, 2], [3]]), "list"),
        (pa.array([{"x": 1}, {"x": 2}]), "struct"),
        (pa.array([b"Zanzibar", b"Quixote"]), "binary"),
        (pa.array([Decimal("4455.5"), Decimal("1.0")]), "decimal"),
        (pa.array([[("k", 1)], []], type=pa.map_(pa.string(), pa.int64())), "map"),
    ],
)
def test_unsupported_parquet_types(tmp_path: Path, array: pa.Array, type_word: str) -> None:
    table = pa.table({"ok": pa.array([1, 2]), "bad": array})
    message = load_error(write_parquet(tmp_path, "nested.parquet", table))
    assert "'bad'" in message and type_word in message and "does not support" in message


def test_not_a_parquet_file(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "fake.parquet", "a,b\nZanzibar,1\n"))
    assert "not a readable Parquet file" in message


def test_numeric_column_with_stray_text(tmp_path: Path) -> None:
    rows = "".join(f"{i}\n" for i in range(30)) + "Zanzibar\n"
    message = load_error(write(tmp_path, "typo.csv", "age\n" + rows))
    assert "'age'" in message and "text at line 32" in message


def test_date_column_with_stray_text(tmp_path: Path) -> None:
    rows = "".join(f"2024-01-{i:02d}\n" for i in range(1, 29)) + "Zanzibar\n"
    message = load_error(write(tmp_path, "typo.csv", "day\n" + rows))
    assert "'day'" in message and "holds dates but has text at line 30" in message


def test_mixed_text_column_is_categorical(tmp_path: Path) -> None:
    df = load_table(write(tmp_path, "codes.csv", "code\nA1\n12\nB7\n"))
    assert df["code"].dtype == KIND_DTYPES["categorical"]


def test_infinite_values(tmp_path: Path) -> None:
    rows = "".join(f"{i}.5\n" for i in range(30)) + "inf\n"
    assert "infinite value" in load_error(write(tmp_path, "inf.csv", "x\n" + rows))
    table = pa.table({"x": pa.array([1.0, float("inf")])})
    assert "infinite" in load_error(write_parquet(tmp_path, "inf.parquet", table))


def test_invalid_date(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "d.csv", "d\n1999-12-31\n2024-13-45\n"))
    assert "invalid date at line 3" in message


def test_integer_overflow(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "big.csv", "n\n1\n99999999999999999999999\n"))
    assert "64 bits" in message and "line 3" in message


def test_semicolon_separated(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "semi.csv", "a;b\nZanzibar;1\n"))
    assert "comma" in message


# ---------------------------------------------------------------------------------------
# Commitment


def test_csv_and_parquet_commit_to_the_same_bytes(
    patients_csv: Path, patients_parquet: Path
) -> None:
    a, b = load_table(patients_csv), load_table(patients_parquet)
    assert canonical_bytes(a) == canonical_bytes(b)
    assert commit(a, KEY) == commit(b, KEY)


def test_commitment_is_stable_across_loads(patients_csv: Path) -> None:
    assert commit(load_table(patients_csv), KEY) == commit(load_table(patients_csv), KEY)


def test_row_order_changes_the_commitment(patients: pd.DataFrame) -> None:
    shuffled = patients.iloc[::-1].reset_index(drop=True)
    assert commit(patients, KEY) != commit(shuffled, KEY)


def test_any_value_change_changes_the_commitment(patients: pd.DataFrame) -> None:
    changed = patients.copy()
    changed.loc[5, "bmi"] = changed.loc[5, "bmi"] + 0.01
    assert commit(patients, KEY) != commit(changed, KEY)


def test_canonical_bytes_format(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "fmt.csv",
        'n,x,ok,label,"when, utc"\n'
        "7,0.1,True,plain,2024-01-02T03:04:05.120+01:00\n"
        ',1e-5,false,"has ""quotes"", comma",\n'
        "-3,2,,,2024-01-02\n",
    )
    expected = (
        'n,x,ok,label,"when, utc"\n'
        "7,0.1,true,plain,2024-01-02T02:04:05.12Z\n"
        ',1e-05,false,"has ""quotes"", comma",\n'
        "-3,2.0,,,2024-01-02T00:00:00Z\n"
    ).encode()
    assert canonical_bytes(load_table(path)) == expected


def test_commitment_format(patients: pd.DataFrame) -> None:
    c = commit(patients, KEY)
    assert c.scheme == "hmac-sha256-v1" and c.digest.startswith("0x") and len(c.digest) == 66
    with pytest.raises(Exception):
        DatasetCommitment(digest="0xABC")
    with pytest.raises(Exception):
        c.digest = "0x" + "00" * 32  # frozen


def test_the_commitment_depends_on_the_key(patients: pd.DataFrame) -> None:
    other = CommitmentKey(bytes(32))
    assert commit(patients, KEY) != commit(patients, other)
    # Control: with the same key, the same table commits alike.
    assert commit(patients, other) == commit(patients.copy(), other)


def test_commitment_keys_are_created_once_private_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "private" / "commitment.key"
    first = CommitmentKey.at(path)
    assert not path.exists()  # nothing is written until the key is kept
    first.keep(path)
    assert path.stat().st_mode & 0o077 == 0 and len(first.secret) == 32
    assert CommitmentKey.at(path).secret == first.secret  # kept
    CommitmentKey.at(path).keep(path)  # a second key never replaces the first
    assert CommitmentKey.load(path).secret == first.secret
    assert CommitmentKey.at(tmp_path / "other.key").secret != first.secret  # 256 random bits
    path.write_text("not hex")
    with pytest.raises(InputError, match="damaged or unreadable"):
        CommitmentKey.load(path)
    with pytest.raises(InputError, match="no commitment key at"):
        CommitmentKey.load(tmp_path / "missing.key")


def test_timezone_spellings_commit_alike(tmp_path: Path) -> None:
    a = write(tmp_path, "a.csv", "t\n2024-01-01T02:00:00+02:00\n")
    b = write(tmp_path, "b.csv", "t\n2024-01-01 00:00:00Z\n")
    c = write(tmp_path, "c.csv", "t\n2024-01-01T00:00:00\n")
    assert commit(load_table(a), KEY) == commit(load_table(b), KEY) == commit(load_table(c), KEY)


# ---------------------------------------------------------------------------------------
# Schema


def test_draft_schema_kinds_and_categories(patients: pd.DataFrame) -> None:
    schema = draft_schema(patients)
    assert [(c.name, c.kind) for c in schema.columns] == [
        ("age", "integer"),
        ("bmi", "float"),
        ("income", "float"),
        ("smoker", "boolean"),
        ("region", "categorical"),
        ("last_visit", "datetime"),
    ]
    assert schema.column("region").categories == sorted(
        ["north", "south", "east", "west", "centre, city"]
    )
    assert schema.column("income").nullable and not schema.column("bmi").nullable
    assert schema.column("region").minimum is None


def test_drafted_ranges_are_rounded_outward(patients: pd.DataFrame) -> None:
    schema = draft_schema(patients)
    for name in ["age", "bmi", "income", "last_visit"]:
        col = schema.column(name)
        true_min, true_max = patients[name].min(), patients[name].max()
        lo, hi = col.minimum, col.maximum
        if col.kind == "datetime":
            lo, hi = pd.Timestamp(lo), pd.Timestamp(hi)
        assert lo <= true_min and true_max <= hi, name
        assert lo != true_min and hi != true_max, f"{name} publishes an exact extreme"
    age = schema.column("age")
    assert isinstance(age.minimum, int) and isinstance(age.maximum, int)
    assert age.minimum % 10 == 0 and age.maximum % 10 == 0
    visit = schema.column("last_visit")
    assert visit.minimum.hour == 0 and visit.minimum.minute == 0 and visit.minimum.second == 0


@pytest.mark.parametrize(
    ("values", "bounds"),
    [
        ([34, 71], (30, 80)),  # two significant digits would publish 34 and 71 exactly
        ([52345, 61002], (52000, 62000)),
        ([0, 1], (0, 1)),
        ([0.0137, 0.9712], (0.0, 1.0)),
        ([-12.34, 38.71], (-20.0, 40.0)),
        ([3.14159, 3.14159], (3.1, 3.2)),
    ],
)
def test_widening_examples(values: list[float], bounds: tuple[float, float]) -> None:
    dtype = "Int64" if isinstance(values[0], int) else "float64"
    schema = draft_schema(pd.DataFrame({"v": pd.array(values, dtype=dtype)}))
    assert (schema.column("v").minimum, schema.column("v").maximum) == bounds


def test_too_many_categories(tmp_path: Path) -> None:
    labels = [f"Zanzibar{i:03d}" for i in range(MAX_CATEGORIES + 1)]
    df = load_table(write(tmp_path, "ids.csv", "who\n" + "\n".join(labels) + "\n"))
    with pytest.raises(DatasetError) as info:
        draft_schema(df)
    message = str(info.value)
    assert "'who'" in message and "65 distinct values" in message
    assert "drop the column or bucket" in message
    assert "Zanzibar" not in message


def test_exactly_max_categories_is_fine() -> None:
    labels = [f"v{i:02d}" for i in range(MAX_CATEGORIES)] * 2
    df = pd.DataFrame({"c": pd.array(labels, dtype="string")})
    assert len(draft_schema(df).column("c").categories) == MAX_CATEGORIES


def test_a_draft_shows_the_owner_even_rare_labels() -> None:
    # The draft is for the owner's eyes: it lists what is there, for the owner to decide.
    labels = ["common"] * 20 + ["rare"]
    df = pd.DataFrame({"name": pd.array(labels, dtype="string")})
    assert draft_schema(df).column("name").categories == ["common", "rare"]


def test_schema_column_lookup() -> None:
    schema = DatasetSchema(columns=[ColumnSchema(name="a", kind="boolean", nullable=False)])
    assert schema.column("a").kind == "boolean"
    with pytest.raises(InputError, match="no column named 'b'"):
        schema.column("b")


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "integer"},  # no range
        {"kind": "integer", "minimum": 5, "maximum": 1},
        {"kind": "integer", "minimum": 0.5, "maximum": 1},
        {"kind": "categorical", "categories": ["b", "a"]},
        {"kind": "categorical", "categories": []},
        {"kind": "boolean", "minimum": 0, "maximum": 1},
        {"kind": "float", "minimum": 0.0, "maximum": 1.0, "categories": ["a"]},
        {"kind": "datetime", "minimum": 0, "maximum": 1},
        {"kind": "text"},
        {"kind": "categorical", "categories": ["a", "b"], "fallback": "c"},  # not a category
        {"kind": "categorical", "categories": ["a"], "fill": "a"},  # labels take a fallback
        {"kind": "integer", "minimum": 0, "maximum": 9, "fill": 10},  # outside the range
        {"kind": "boolean", "fill": 1},
        {"kind": "float", "minimum": 0.0, "maximum": 1.0, "fallback": "x"},
    ],
)
def test_column_schema_rejects_inconsistent_fields(fields: dict) -> None:
    with pytest.raises(ValueError):
        ColumnSchema(name="c", nullable=False, **fields)


def test_schema_json_round_trip(patients: pd.DataFrame) -> None:
    schema = draft_schema(patients)
    again = DatasetSchema.model_validate_json(schema.model_dump_json())
    assert again == schema
    assert isinstance(again.column("bmi").minimum, float)
    assert isinstance(again.column("age").minimum, int)


# ---------------------------------------------------------------------------------------
# Mock


def test_mock_only_takes_the_schema() -> None:
    assert list(inspect.signature(generate_mock).parameters) == ["schema", "rows", "seed"]


def test_mock_is_deterministic(patients: pd.DataFrame) -> None:
    schema = draft_schema(patients)
    pd.testing.assert_frame_equal(generate_mock(schema, 30, 4), generate_mock(schema, 30, 4))
    assert not generate_mock(schema, 30, 4).equals(generate_mock(schema, 30, 5))


def test_mock_honours_the_schema(patients: pd.DataFrame) -> None:
    schema = draft_schema(patients)
    mock = generate_mock(schema, rows=500, seed=1)
    assert len(mock) == 500
    check_frame(mock, schema)
    for col in schema.columns:
        assert mock[col.name].dtype == KIND_DTYPES[col.kind]
        assert mock[col.name].isna().any() == col.nullable  # 500 rows: missing will show up
    assert set(mock["region"].dropna()) <= set(schema.column("region").categories)
    ages = mock["age"].dropna()
    assert ages.min() >= schema.column("age").minimum and ages.max() <= schema.column("age").maximum


def test_mock_rejects_bad_sizes(patients: pd.DataFrame) -> None:
    schema = draft_schema(patients)
    with pytest.raises(InputError):
        generate_mock(schema, rows=-1)
    assert len(generate_mock(schema, rows=0)) == 0


def test_check_frame_catches_violations(patients: pd.DataFrame) -> None:
    schema = draft_schema(patients)
    bad = patients.copy()
    bad.loc[3, "age"] = 10_000
    with pytest.raises(DatasetError, match="outside the schema's range \\(first at row 3\\)"):
        check_frame(bad, schema)
    bad = patients.copy()
    bad.loc[2, "region"] = "Zanzibar"
    with pytest.raises(DatasetError, match="not one of the schema's categories") as info:
        check_frame(bad, schema)
    assert "Zanzibar" not in str(info.value)


# Random schemas: any valid schema must give a mock that conforms to it and survives the
# metadata JSON round trip with its dtypes.

_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_label = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Zs", "Cc")), min_size=1, max_size=10
)


@st.composite
def column_schemas(draw: st.DrawFn, name: str) -> ColumnSchema:
    kind = draw(st.sampled_from(["integer", "float", "boolean", "categorical", "datetime"]))
    nullable = draw(st.booleans())
    if kind == "integer":
        a, b = sorted(draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=2, max_size=2)))
        return ColumnSchema(name=name, kind=kind, nullable=nullable, minimum=a, maximum=b)
    if kind == "float":
        floats = st.floats(allow_nan=False, allow_infinity=False)
        a, b = sorted(draw(st.lists(floats, min_size=2, max_size=2)))
        return ColumnSchema(name=name, kind=kind, nullable=nullable, minimum=a, maximum=b)
    if kind == "datetime":
        moments = st.datetimes(
            min_value=datetime(1, 1, 2),
            max_value=datetime(9999, 12, 30),
            timezones=st.just(timezone.utc),
        )
        a, b = sorted(draw(st.lists(moments, min_size=2, max_size=2)))
        return ColumnSchema(name=name, kind=kind, nullable=nullable, minimum=a, maximum=b)
    if kind == "categorical":
        labels = draw(st.sets(_label, min_size=1, max_size=MAX_CATEGORIES))
        cats = sorted({label.strip() for label in labels if label.strip()} or {"x"})
        return ColumnSchema(name=name, kind=kind, nullable=nullable, categories=cats)
    return ColumnSchema(name=name, kind=kind, nullable=nullable)


@st.composite
def dataset_schemas(draw: st.DrawFn) -> DatasetSchema:
    names = draw(st.lists(_names, min_size=1, max_size=6, unique=True))
    return DatasetSchema(columns=[draw(column_schemas(name)) for name in names])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=dataset_schemas(), rows=st.integers(0, 40), seed=st.integers(0, 2**32))
def test_mock_from_random_schemas_always_validates(
    schema: DatasetSchema, rows: int, seed: int
) -> None:
    mock = generate_mock(schema, rows=rows, seed=seed)
    assert len(mock) == rows
    check_frame(mock, schema)
    for col in schema.columns:
        assert mock[col.name].dtype == KIND_DTYPES[col.kind]
    metadata = DatasetMetadata(
        name="random",
        schema=schema,
        rows=max(rows, 1),
        row_count=RowCount(sigma=20.0),
        commitment=commit(mock, KEY),
        mock=mock_records(mock),
        created_at="2024-01-01T00:00:00Z",
    )
    again = DatasetMetadata.from_json_bytes(metadata.to_json_bytes())
    assert again == metadata
    assert canonical_bytes(again.mock_frame()) == canonical_bytes(mock)


def mock_records(mock: pd.DataFrame) -> list[dict]:
    from exchange.datasets import frame_to_records

    return frame_to_records(mock)


# ---------------------------------------------------------------------------------------
# Metadata


def test_prepare_metadata_end_to_end(patients_csv: Path, patients: pd.DataFrame) -> None:
    schema = declared_patients_schema()
    read: list[int] = []
    metadata, scan = prepare_metadata(
        patients_csv, "Patients 2019-2023", schema, KEY, NOISE, "Synthetic patients.", tags=["health"], seed=3,
        progress=read.append,
    )  # fmt: skip
    # The scan keeps the true count, on the owner's machine only; the metadata has the noisy one.
    assert scan.rows == 400 and scan.commitment == commit(patients, KEY) and read[-1] == 400
    assert scan.kinds == ["integer", "float", "float", "boolean", "categorical", "datetime"]
    assert metadata.schema_ == schema and metadata.schema_origin == "declared"
    assert metadata.row_count == RowCount(sigma=20.0) and metadata.neighbouring == "add-remove-one-row"
    assert abs(metadata.rows - 400) < 20 * 8  # the true count plus N_Z(0, 20²)
    assert metadata.commitment == commit(patients, KEY)
    assert metadata.license == "proprietary" and metadata.privacy_unit == "row"
    assert len(metadata.mock) == 20
    datetime.fromisoformat(metadata.created_at)

    raw = metadata.to_json_bytes()
    doc = json.loads(raw)
    assert "schema" in doc and "schema_" not in doc
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert raw == canonical.encode()
    again = DatasetMetadata.from_json_bytes(raw)
    assert again == metadata and again.to_json_bytes() == raw

    mock = again.mock_frame()
    for col in metadata.schema_.columns:
        assert mock[col.name].dtype == KIND_DTYPES[col.kind]
    pd.testing.assert_frame_equal(mock, generate_mock(metadata.schema_, rows=20, seed=3))


def test_the_published_schema_is_the_declared_one_whatever_the_rows(patients_csv: Path) -> None:
    metadata, _ = prepare_metadata(patients_csv, "p", declared_patients_schema(), KEY, NOISE)
    doc = json.loads(metadata.to_json_bytes())
    assert doc["schema"] == json.loads(declared_patients_schema().model_dump_json())


def test_publishing_refuses_a_table_whose_kinds_do_not_fit_the_declaration(patients_csv: Path) -> None:
    wrong = declared_patients_schema().model_dump(mode="json")
    wrong["columns"][1] = {"name": "bmi", "kind": "boolean", "nullable": False}
    with pytest.raises(DatasetError, match="Column 'bmi' holds float values but the declared schema says boolean"):
        prepare_metadata(patients_csv, "p", DatasetSchema.declared(wrong), KEY, NOISE)
    renamed = declared_patients_schema().model_dump(mode="json")
    renamed["columns"][0]["name"] = "years"
    with pytest.raises(DatasetError, match="do not match the declared schema"):
        check_kinds(load_table(patients_csv), DatasetSchema.declared(renamed))


def test_departures_are_told_to_the_owner_only(patients: pd.DataFrame) -> None:
    narrow = declared_patients_schema().model_dump(mode="json")
    narrow["columns"][0].update(maximum=50)  # ages go up to 87
    narrow["columns"][4]["categories"] = ["east", "north", "south", "west"]  # not "centre, city"
    notes = departures(patients, DatasetSchema.declared(narrow))
    assert any("column 'age'" in n and "outside its declared range (clipped)" in n for n in notes)
    assert any("column 'region'" in n and "they become 'east'" in n for n in notes)
    assert not departures(patients, declared_patients_schema())  # control: a fitting declaration


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe", b"not json", b"[1, 2]", b'{"name": "x"}', b'{"name": ""}'],
)
def test_from_json_bytes_rejects_bad_documents(data: bytes) -> None:
    with pytest.raises(InputError):
        DatasetMetadata.from_json_bytes(data)


def test_from_json_bytes_rejects_inconsistent_content(patients_csv: Path) -> None:
    metadata, _ = prepare_metadata(patients_csv, "p", declared_patients_schema(), KEY, NOISE)
    doc = json.loads(metadata.to_json_bytes())

    def broken(change) -> bytes:
        copy = json.loads(json.dumps(doc))
        change(copy)
        return json.dumps(copy).encode()

    cases = [
        lambda d: d.update(rows=0),
        lambda d: d.update(format_version=1),
        lambda d: d.update(neighbouring="replace-one"),
        lambda d: d["row_count"].update(sigma=0),
        lambda d: d.update(privacy_unit="user"),
        lambda d: d.update(extra_field=1),
        lambda d: d["mock"][0].update(age=10**6),
        lambda d: d["mock"][0].update(region="Zanzibar"),
        lambda d: d["mock"][0].update(smoker="yes"),
        lambda d: d["mock"][0].pop("bmi"),
        lambda d: d["commitment"].update(digest="0x12"),
    ]
    for change in cases:
        with pytest.raises(InputError, match="metadata is invalid"):
            DatasetMetadata.from_json_bytes(broken(change))


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_prepare_metadata_validates_name(patients_csv: Path, name: str) -> None:
    with pytest.raises(InputError, match="name"):
        prepare_metadata(patients_csv, name, declared_patients_schema(), KEY, NOISE)


def test_prepare_metadata_propagates_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError):
        prepare_metadata(tmp_path / "missing.csv", "x", declared_patients_schema(), KEY, NOISE)
