"""Bad input through the CLI: one clear sentence on stderr, a non-zero exit, nothing half-written.

Every test here runs `cove` in-process (the `cove` fixture) against a real anvil where a
chain is needed, gives it one kind of bad input and checks three things:

* stderr holds exactly one line, "Error: <sentence>.", with a meaningful fragment, and no
  traceback appears anywhere;
* the exit code is non-zero;
* nothing was left behind: the on-chain dataset count, balances or policy are unchanged,
  and the Cove home directory (keystores, storage, deployments) holds the same files with
  the same bytes as before.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from eth_account import Account

from exchange.accounts import dev_account
from exchange.chain.anvil import ChainInfo
from exchange.chain.deployment import Deployment
from exchange.datasets.schema import ColumnSchema, DatasetSchema
from conftest import PATIENTS_SCHEMA, CliResult, make_table, write_schema

pytestmark = pytest.mark.chain

DEV0, DEV1, DEV2 = (dev_account(i).address for i in range(3))


@pytest.fixture
def cove(cove, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The conftest CLI, with a terminal wide enough that no error sentence is wrapped."""
    monkeypatch.setenv("COLUMNS", "2000")
    return cove


# --------------------------------------------------------------------------------------
# helpers


def fails(result: CliResult, *fragments: str, code: int | None = None) -> str:
    """Asserts `result` is a failure explained by one sentence containing `fragments`."""
    assert result.exit_code != 0, f"expected a failure, got exit 0: {result.stdout}"
    if code is not None:
        assert result.exit_code == code, (result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    [line] = lines
    assert line.startswith("Error: "), line
    sentence = line.removeprefix("Error: ").strip()
    assert not "a" <= sentence[0] <= "z" and sentence.endswith("."), sentence
    for fragment in fragments:
        assert fragment in sentence, f"{fragment!r} not in {sentence!r}"
    return sentence


def home_files(home: Path) -> dict[str, str]:
    """Every file Cove keeps (but the anvil state and the event cache), with its hash."""
    if not home.exists():
        return {}
    return {
        str(path.relative_to(home)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(home.rglob("*"))
        if path.is_file() and path.relative_to(home).parts[0] not in ("chain", "index")
    }


def dataset_count(client: Any) -> int:
    return int(client.cove.functions.datasetCount().call())


def publish_args(path: Path, *extra: str, schema: DatasetSchema = PATIENTS_SCHEMA) -> list[str]:
    """A publish command line that is valid but for `path` and whatever `extra` overrides;
    the declared `schema` is written next to the file."""
    schema_file = write_schema(path.parent / f"{path.name}.schema.json", schema)
    base = ["publish", str(path), "--name", "Bad input", "--schema", str(schema_file), "--budget", "2",
            "--per-job-cap", "1"]  # fmt: skip
    if not any(e.startswith("--price") or e == "--free-cap" for e in extra):
        base += ["--price", "1"]
    return [*base, *extra]


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def chain_now(client: Any) -> int:
    return int(client.session.w3.eth.get_block("latest")["timestamp"])


# --------------------------------------------------------------------------------------
# 1. publish


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """Unusable dataset files and what their error sentence must say."""
    folder = tmp_path / "bad"
    folder.mkdir()
    list_column = folder / "nested.parquet"
    pq.write_table(pa.table({"age": [31, 47], "visits": [[1, 2], [3]]}), list_column)
    return {
        "empty": (write(folder / "empty.csv", b""), ("is empty (0 bytes)",)),
        "ragged": (write(folder / "ragged.csv", "age,bmi\n31,22.5\n47,30.1,extra\n"),
                   ("Line 3", "has 3 fields but the header has 2")),
        "not utf-8": (write(folder / "latin1.csv", "name,age\nJos\xe9,31\n".encode("latin-1")),
                      ("is not valid UTF-8", "line 2")),
        "header-less": (write(folder / "headerless.csv", "31,22.5\n47,30.1\n"),
                        ("looks like data, not a header", "add a header line")),
        "missing": (folder / "does-not-exist.csv", ("does not exist",)),
        "list column": (list_column, ("Column 'visits'", "which Cove does not support")),
        "zero rows": (write(folder / "header-only.csv", "age,bmi\n"), ("has a header but no data rows",)),
        "unknown format": (write(folder / "table.xlsx", b"PK\x03\x04"), ("provide a .csv or .parquet file",)),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case", ["empty", "ragged", "not utf-8", "header-less", "missing", "list column", "zero rows", "unknown format"]
)
def test_publish_refuses_unusable_files(cove, client_for, cove_home: Path, bad_files, case: str) -> None:  # type: ignore[no-untyped-def]
    path, fragments = bad_files[case]
    client = client_for(0)
    before = home_files(cove_home)
    sentence = fails(cove(*publish_args(path)), *fragments, code=2)
    assert str(path) in sentence  # the sentence says which file
    assert dataset_count(client) == 0
    assert home_files(cove_home) == before


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (["--price=-1"], ["The price must not be negative"]),
        (["--price", "abc"], ["price must be a number, not 'abc'"]),
        (["--price", "nan"], ["price must be a finite number"]),
        (["--price", "0.0000000000000000001"], ["price has more decimals than the chain stores"]),
        (["--budget", "0"], ["The privacy budget must be greater than 0"]),
        (["--budget=-3"], ["The privacy budget must be greater than 0"]),
        (["--budget", "2", "--per-job-cap", "5"], ["per-job privacy cap (ε 5)", "at most the budget (ε 2)"]),
        (["--per-job-cap", "0"], ["per-job privacy cap (ε 0) must be positive"]),
        (["--budget", "1.0000001"], ["privacy budget has more decimals than the chain stores"]),
        (["--allow", "0x123"], ["Allowlist entry 1 ('0x123') is not a valid address"]),
        (["--allow", DEV2, "--allow", "bob"], ["Allowlist entry 2 ('bob') is not a valid address"]),
        (["--delta", "1"], ["δ must lie strictly between 0 and 1"]),
        (["--expiry", "next tuesday"], ["The expiry 'next tuesday' is not a date"]),
        (["--price", "0"], ["A free dataset needs a per-address credit cap above 0"]),
        (["--token", "0xnope"], ["The payment token '0xnope' is not a valid address"]),
        (["--budget", "1e999999999"], ["The privacy budget must be at most ε 4294.967295"]),
        (["--price", "1e999999999"], ["The price is too large for the chain to store"]),
        (["--price", "79228162514.264337593543950336"], ["The price is too large for the chain to store"]),
        (["--per-job-cap", "1e-999999999"], ["per-job privacy cap has more decimals than the chain stores"]),
    ],
)
def test_publish_refuses_invalid_policies(cove, client_for, cove_home: Path, dataset_csv: Path,
                                          options: list[str], fragments: list[str]) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    client = client_for(0)
    before = home_files(cove_home)
    fails(cove(*publish_args(dataset_csv, *options)), *fragments, code=2)
    assert dataset_count(client) == 0
    assert home_files(cove_home) == before


def test_publish_refuses_an_expiry_in_the_past(cove, client_for, cove_home: Path, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    client = client_for(0)
    before = home_files(cove_home)
    fails(cove(*publish_args(dataset_csv, "--expiry", "2001-01-01")), "expiry 2001-01-01 00:00:00 UTC is already past")
    assert dataset_count(client) == 0
    assert home_files(cove_home) == before


def test_publish_without_a_privacy_policy(cove, deployment: Deployment, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    schema = str(write_schema(dataset_csv.parent / "schema.json"))
    fails(cove("publish", str(dataset_csv), "--name", "P", "--schema", schema, "--per-job-cap", "1"), "pass --budget", code=2)
    fails(cove("publish", str(dataset_csv), "--name", "P", "--schema", schema, "--budget", "1"), "pass --per-job-cap",
          code=2)  # fmt: skip


def test_publishing_the_same_data_twice_names_the_existing_dataset(
    cove, client_for, cove_home: Path, dataset_csv: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(0)
    first = cove(*publish_args(dataset_csv), "--json")
    assert first.exit_code == 0, first.stderr
    assert first.json()["dataset_id"] == 1
    listing = cove("datasets", "--json").json()
    before = home_files(cove_home)

    fails(cove(*publish_args(dataset_csv, "--name", "Another name")), "already published as dataset #1", code=2)
    # The same table in another file format commits to the same bytes, so it is the same data.
    as_parquet = tmp_path / "patients.parquet"
    make_table().to_parquet(as_parquet, index=False)
    fails(cove(*publish_args(as_parquet)), "already published as dataset #1", code=2)
    # Even as another account: the data, not the publisher, is what is unique.
    fails(cove(*publish_args(dataset_csv, "--account", "dev1")), "already published as dataset #1", code=2)

    assert dataset_count(client) == 1
    assert home_files(cove_home) == before
    assert cove("datasets", "--json").json() == listing


SECRETS = ("Zanzibar", "918273", "4455.5", "Quixote", "1999-12-31", "Xylophone")


def test_error_messages_never_quote_private_cells(cove, client_for, cove_home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "private"
    folder.mkdir()
    numbers = "\n".join(str(20 + i) for i in range(30))
    files = {
        # a row with a field too many
        "ragged.csv": "city,score\nZanzibar,918273\nQuixote,4455.5,Xylophone\n",
        # numbers with one typo: the column and line are named, the cell is not
        "typo.csv": f"score\n{numbers}\nZanzibar\n",
        # a header-less file: its first line is data
        "headerless.csv": "918273,4455.5,1999-12-31\n1,2,2000-01-01\n",
        # dates with one impossible date
        "dates.csv": "day\n1999-12-31\n2000-01-01\n1999-19-39\n",
        # a quote that is never closed
        "quotes.csv": 'city,score\n"Zanzibar,918273\nQuixote,4455.5\n',
    }
    # Declared without the secrets: the cities are not among the declared labels.
    city = ColumnSchema(name="city", kind="categorical", nullable=False, categories=["Lyon", "Paris"])
    score = ColumnSchema(name="score", kind="float", nullable=False, minimum=0, maximum=10**6)
    day = ColumnSchema(name="day", kind="datetime", nullable=False, minimum="1990-01-01T00:00:00Z",
                       maximum="2030-01-01T00:00:00Z")  # fmt: skip
    city_score = DatasetSchema(columns=[city, score])
    schemas = {"typo.csv": DatasetSchema(columns=[score]), "dates.csv": DatasetSchema(columns=[day])}
    outputs = []
    for name, text in files.items():
        result = cove(*publish_args(write(folder / name, text), schema=schemas.get(name, city_score)))
        fails(result)
        outputs.append(result.stdout + result.stderr)
    bad = write(folder / "latin1.csv", "city,score\nZanzibar,918273\nQuix\xf6te,4455.5\n".encode("latin-1"))
    result = cove(*publish_args(bad, schema=city_score))
    fails(result, "is not valid UTF-8")
    outputs.append(result.stdout + result.stderr)

    # A duplicate is refused without quoting the data either.
    good = write(folder / "good.csv", "city,score\n" + "Zanzibar,918273\nQuixote,4455.5\n" * 6)
    published = cove(*publish_args(good, schema=city_score))
    assert published.exit_code == 0, published.stderr
    outputs.append(published.stdout + published.stderr)
    result = cove(*publish_args(good, schema=city_score))
    fails(result, "already published as dataset #1")
    outputs.append(result.stdout + result.stderr)

    for output in outputs:
        for secret in SECRETS:
            assert secret not in output, f"an error message quotes a private cell: {output}"
    assert dataset_count(client_for(0)) == 1


def test_markup_like_input_is_printed_verbatim(cove, deployment: Deployment, cove_home: Path, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    """Square brackets in user input are not Rich markup: no crash, nothing swallowed."""
    fails(cove(*publish_args(dataset_csv, "--allow", "[/red]")), "Allowlist entry 1 ('[/red]')", code=2)
    fails(cove(*publish_args(dataset_csv, "--allow", "[bold]x")), "('[bold]x')", code=2)
    fails(cove("account", "new", "[/x]"), "'[/x]' is not a usable account name")

    published = cove(*publish_args(dataset_csv, "--name", "Cohort [/b] [red]2024"))
    assert published.exit_code == 0, published.stderr
    assert "Cohort [/b] [red]2024" in published.stdout
    listing = cove("datasets")
    assert listing.exit_code == 0, listing.stderr
    assert "Cohort [/b] [red]2024" in listing.stdout


# --------------------------------------------------------------------------------------
# 2. accounts


def test_wrong_keystore_password(cove, deployment: Deployment, cove_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COVE_PASSWORD", "correct horse")
    created = cove("account", "new", "alice", "--json")
    assert created.exit_code == 0, created.stderr
    address = created.json()["address"]
    before = home_files(cove_home)

    monkeypatch.setenv("COVE_PASSWORD", "battery staple")
    fails(cove("balance", "--account", "alice"), "Wrong password for account 'alice'")
    fails(cove("faucet", "10", "--account", "alice"), "Wrong password for account 'alice'")
    assert home_files(cove_home) == before

    monkeypatch.setenv("COVE_PASSWORD", "correct horse")
    balance = cove("balance", "--account", "alice", "--json")
    assert balance.exit_code == 0, balance.stderr
    assert balance.json()["address"] == address
    assert balance.json()["payment_balance"] == "0"  # the failed faucet minted nothing


def test_unknown_account(cove, deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COVE_PASSWORD", "whatever")
    fails(cove("balance", "--account", "nobody"), "No account named 'nobody'", "cove account list")
    fails(cove("balance", "--account", "dev12"), "No account named 'dev12'")  # only dev0..dev9 are dev accounts


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("0x1234", "expected 64 hexadecimal characters"),
        ("zz" * 32, "expected 64 hexadecimal characters"),
        ("", "expected 64 hexadecimal characters"),
        ("0x" + "00" * 32, "not valid for secp256k1"),
        ("ff" * 32, "not valid for secp256k1"),
    ],
)
def test_importing_an_invalid_private_key(cove, cove_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          key: str, fragment: str) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    monkeypatch.setenv("COVE_PASSWORD", "pw")
    key_file = write(tmp_path / "key.txt", key + "\n")
    before = home_files(cove_home)
    result = cove("account", "import", "mallory", "--key-file", str(key_file))
    fails(result, fragment)
    if len(key) > 8:
        assert key.removeprefix("0x") not in result.stdout + result.stderr
    assert home_files(cove_home) == before  # no keystore file, not even a temporary one


def test_import_from_a_missing_key_file(cove, cove_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COVE_PASSWORD", "pw")
    fails(cove("account", "import", "mallory", "--key-file", str(tmp_path / "nope.txt")), "Cannot read the key file")
    assert home_files(cove_home) == {}


def test_duplicate_and_reserved_account_names(cove, cove_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COVE_PASSWORD", "pw")
    assert cove("account", "new", "bob").exit_code == 0
    before = home_files(cove_home)
    fails(cove("account", "new", "bob"), "An account named 'bob' already exists")
    key_file = write(tmp_path / "key.txt", Account.create().key.hex())
    fails(cove("account", "import", "bob", "--key-file", str(key_file)), "An account named 'bob' already exists")
    for reserved in ("dev0", "dev9"):
        fails(cove("account", "new", reserved), f"'{reserved}' is not a usable account name", "reserved")
    for invalid in ("../escape", "a/b", ".hidden", "x" * 65):
        fails(cove("account", "new", invalid), "is not a usable account name")
    assert home_files(cove_home) == before
    assert not list((cove_home / "keystores").glob("*.tmp"))


def test_without_a_terminal_the_password_must_come_from_the_environment(
    cove, cove_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert not sys.stdin.isatty()
    fails(cove("account", "new", "carol"), "A password is needed", "set COVE_PASSWORD")
    assert home_files(cove_home) == {}


def test_imported_key_is_never_printed(cove, cove_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COVE_PASSWORD", "pw")
    account = Account.create()
    key_hex = account.key.hex().removeprefix("0x")
    key_file = write(tmp_path / "key.txt", "0x" + key_hex + "\n")

    imported = cove("account", "import", "eve", "--key-file", str(key_file))
    assert imported.exit_code == 0, imported.stderr
    assert account.address in imported.stdout
    listed = cove("account", "list", "--json", "--no-dev")
    assert listed.exit_code == 0, listed.stderr
    assert listed.json() == [{"name": "eve", "address": account.address, "kind": "keystore"}]
    with_dev = cove("account", "list", "--json").json()
    assert {"name": "dev1", "address": DEV1, "kind": "dev"} in with_dev
    table = cove("account", "list")
    assert "eve" in table.stdout and account.address in table.stdout

    outputs = "".join(r.stdout + r.stderr for r in (imported, listed, table))
    assert key_hex.lower() not in outputs.lower()
    keystore_file = (cove_home / "keystores" / "eve.json").read_text()
    assert key_hex.lower() not in keystore_file.lower()
    assert cove_home.joinpath("keystores", "eve.json").stat().st_mode & 0o777 == 0o600


# --------------------------------------------------------------------------------------
# 3. chain


UNREACHABLE = "http://127.0.0.1:1"


def test_unreachable_rpc(cove, cove_home: Path, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    for command in (
        ["datasets"],
        ["chain", "status"],
        ["deploy"],
        ["balance", DEV0],
        ["buy", "1"],
        ["policy", "show", "1"],
        publish_args(dataset_csv),
    ):
        fails(cove(*command, "--rpc", UNREACHABLE), f"No Ethereum JSON-RPC node answers at {UNREACHABLE}", "cove chain up")
    assert home_files(cove_home) == {}


def test_contracts_not_deployed(cove, chain: ChainInfo, cove_home: Path, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    for command in (["datasets"], ["buy", "1"], ["policy", "show", "1"], ["balance"], publish_args(dataset_csv)):
        fails(cove(*command), "No Cove hub is known on chain 31337", "pass --hub ADDRESS", "run `cove deploy`")
    assert home_files(cove_home) == {}
    # after a deploy the same command works
    assert cove("deploy").exit_code == 0
    assert cove("datasets", "--json").json() == []


def test_unknown_hub_addresses(cove, chain: ChainInfo, cove_home: Path, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    deployed = cove("deploy", "--json").json()
    before = home_files(cove_home)
    nobody = "0x000000000000000000000000000000000000dEaD"
    for command in (["datasets"], ["buy", "1"], ["policy", "show", "1"], publish_args(dataset_csv)):
        fails(cove(*command, "--hub", nobody), f"There is no contract at {nobody} on chain 31337", "check the hub address")
        # A contract, but not a Cove hub: the test payment token (ERC-20, no ERC-165).
        fails(cove(*command, "--hub", deployed["payment_token"]), f"{deployed['payment_token']} on chain 31337 is not a Cove hub")
        fails(cove(*command, "--hub", "0x1234"), "'0x1234' is not a hub address", code=2)
    assert home_files(cove_home) == before
    # Control: the real hub, named explicitly, works.
    assert cove("datasets", "--json", "--hub", deployed["cove"]).json() == []


def test_deployment_record_without_contracts(cove, chain: ChainInfo, cove_home: Path) -> None:  # type: ignore[no-untyped-def]
    """A deployment file left from an earlier chain (reset since) is not trusted."""
    record = cove_home / "deployments" / "31337.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(Deployment(
        chain_id=31337, cove=DEV2, compute_jobs=DEV2, federated_rounds=DEV2, payment_token=None, block=1
    ).model_dump_json())
    fails(cove("datasets"), f"There is no contract at {DEV2}", "recorded by `cove deploy`", "the chain was reset?")


def test_no_chain_running_and_no_rpc(cove, cove_home: Path, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    for command in (["datasets"], ["deploy"], ["faucet"], ["buy", "1"], ["balance"], publish_args(dataset_csv)):
        fails(cove(*command), "No chain to talk to", "cove chain up", "--rpc URL")
    assert home_files(cove_home) == {}


# --------------------------------------------------------------------------------------
# 4. buy


def publish_priced(cove, dataset_csv: Path, *extra: str) -> int:  # type: ignore[no-untyped-def]
    result = cove(*publish_args(dataset_csv, "--price", "2.5", "--budget", "8", "--per-job-cap", "2", *extra), "--json")
    assert result.exit_code == 0, result.stderr
    return int(result.json()["dataset_id"])


def publish_free(cove, dataset_csv: Path, *extra: str) -> int:  # type: ignore[no-untyped-def]
    result = cove(*publish_args(dataset_csv, "--free-cap", "2", *extra), "--json")
    assert result.exit_code == 0, result.stderr
    return int(result.json()["dataset_id"])


def balances(cove, account: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    result = cove("balance", "--account", account, "--json")
    assert result.exit_code == 0, result.stderr
    return result.json()  # type: ignore[no-any-return]


def test_buy_with_too_little_balance(cove, deployment: Deployment, cove_home: Path, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    publish_priced(cove, dataset_csv)
    buyer, owner = balances(cove, "dev1"), balances(cove, "dev0")
    before = home_files(cove_home)
    fails(cove("buy", "1", "--credits", "2", "--account", "dev1"),
          "2 credit(s) cost 5 tUSD", f"{DEV1} holds 0 tUSD", "cove faucet", code=2)  # fmt: skip
    assert balances(cove, "dev1") == buyer and balances(cove, "dev0") == owner
    assert home_files(cove_home) == before


def test_buy_with_too_little_allowance(cove, deployment: Deployment, cove_home: Path, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    publish_priced(cove, dataset_csv)
    assert cove("faucet", "100", "--account", "dev1").exit_code == 0
    buyer = balances(cove, "dev1")
    fails(cove("buy", "1", "--credits", "2", "--no-approve", "--account", "dev1"),
          "The allowance for Cove is 0 tUSD but the purchase costs 5 tUSD", "--no-approve", code=2)  # fmt: skip
    assert balances(cove, "dev1") == buyer
    assert buyer["payment_balance"] == "100" and buyer["credits"] == []


def test_buy_when_not_on_the_allowlist(cove, deployment: Deployment, cove_home: Path, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    allowed = [dev_account(i).address for i in range(2, 7)]
    dataset_id = publish_free(cove, dataset_csv, *[a for address in allowed for a in ("--allow", address.lower())])
    assert cove("policy", "show", str(dataset_id), "--json").json()["allowlist"] == sorted(allowed)
    buyer = balances(cove, "dev1")
    fails(cove("buy", str(dataset_id), "--account", "dev1"),
          f"{DEV1} is not on the allowlist of dataset #{dataset_id}", "ask its owner", code=2)  # fmt: skip
    assert balances(cove, "dev1") == buyer
    # The members' Merkle proofs are accepted by the contract.
    for member in ("dev2", "dev5"):
        bought = cove("buy", str(dataset_id), "--account", member, "--json")
        assert bought.exit_code == 0, bought.stderr
        assert balances(cove, member)["credits"] == [{"dataset_id": dataset_id, "credits": "1"}]


def test_buy_after_expiry(cove, client_for, cove_home: Path, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    client = client_for(0)
    expiry = datetime.fromtimestamp(chain_now(client) + 600, UTC).replace(second=0)
    dataset_id = publish_free(cove, dataset_csv, "--expiry", expiry.isoformat())
    # before expiry, buying works
    assert cove("buy", str(dataset_id), "--account", "dev1").exit_code == 0
    w3 = client.session.w3
    w3.provider.make_request("evm_increaseTime", [3600])
    w3.provider.make_request("evm_mine", [])
    assert chain_now(client) > expiry.timestamp()
    buyer = balances(cove, "dev1")
    fails(cove("buy", str(dataset_id), "--account", "dev1"),
          f"Dataset #{dataset_id} stopped selling credits at {expiry:%Y-%m-%d %H:%M} UTC", code=2)  # fmt: skip
    assert balances(cove, "dev1") == buyer


@pytest.mark.parametrize("credits", ["0", "-3"])
def test_buy_zero_credits(cove, deployment: Deployment, dataset_csv: Path, credits: str) -> None:  # type: ignore[no-untyped-def]
    dataset_id = publish_free(cove, dataset_csv)
    buyer = balances(cove, "dev1")
    fails(cove("buy", str(dataset_id), f"--credits={credits}", "--account", "dev1"), "Buy at least one credit", code=2)
    assert balances(cove, "dev1") == buyer


@pytest.mark.parametrize(
    ("amount", "fragment"),
    [("0", "must be greater than 0"), ("-5", "must be greater than 0"), ("lots", "amount must be a number"),
     ("0.0000000000000000001", "amount has more decimals"), ("20000", "at most 10000 tokens per call"),
     ("1e100", "at most 10000 tokens per call"), ("1e999999999", "too large")],
)  # fmt: skip
def test_faucet_refuses_bad_amounts(cove, deployment: Deployment, amount: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    before = balances(cove, "dev1")
    fails(cove("faucet", "--account=dev1", "--", amount), fragment)
    assert balances(cove, "dev1") == before


@pytest.mark.parametrize("dataset_id", ["7", "0", "-1", str(2**256)])
def test_unknown_dataset_ids(cove, deployment: Deployment, dataset_id: str) -> None:  # type: ignore[no-untyped-def]
    expected = f"There is no dataset #{dataset_id}"
    fails(cove("buy", "--account=dev1", "--", dataset_id), expected, "cove datasets")
    fails(cove("policy", "show", "--", dataset_id), expected)
    fails(cove("dataset", "show", "--", dataset_id), expected)
    fails(cove("policy", "set", "--budget=3", "--", dataset_id), expected)


def test_buy_beyond_the_free_cap(cove, client_for, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    client = client_for(0)
    dataset_id = publish_free(cove, dataset_csv)  # --free-cap 2
    fails(cove("buy", str(dataset_id), "--credits", "3", "--account", "dev1"),
          f"Dataset #{dataset_id} gives at most 2 free credits per address and you already took 0", code=2)  # fmt: skip
    assert cove("buy", str(dataset_id), "--credits", "2", "--account", "dev1").exit_code == 0
    buyer = balances(cove, "dev1")
    fails(cove("buy", str(dataset_id), "--account", "dev1"),
          "gives at most 2 free credits per address and you already took 2", code=2)  # fmt: skip
    assert balances(cove, "dev1") == buyer
    assert buyer["credits"] == [{"dataset_id": dataset_id, "credits": "2"}]
    assert client.cove.functions.freeCreditsTaken(dataset_id, DEV1).call() == 2
    # the cap is per address: another buyer still gets its own
    assert cove("buy", str(dataset_id), "--credits", "2", "--account", "dev2").exit_code == 0


# --------------------------------------------------------------------------------------
# 5. policy


def test_policy_set_by_someone_else(cove, deployment: Deployment, cove_home: Path, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    dataset_id = publish_priced(cove, dataset_csv)
    policy = cove("policy", "show", str(dataset_id), "--json").json()
    before = home_files(cove_home)
    fails(cove("policy", "set", str(dataset_id), "--budget", "9", "--account", "dev1"),
          f"Only the policy controller of dataset #{dataset_id} ({DEV0}) may change it, not {DEV1}")  # fmt: skip
    # with a new allowlist too: its document must not be stored for a refused change
    fails(cove("policy", "set", str(dataset_id), "--allow", DEV2, "--account", "dev1"), "Only the policy controller")
    assert cove("policy", "show", str(dataset_id), "--json").json() == policy
    assert home_files(cove_home) == before


def test_invalid_policy_set_says_what_publish_says(cove, deployment: Deployment, cove_home: Path, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    at_publish = fails(cove(*publish_args(dataset_csv, "--budget", "2", "--per-job-cap", "5")), "per-job privacy cap")
    dataset_id = publish_priced(cove, dataset_csv, "--budget", "2", "--per-job-cap", "1")
    policy = cove("policy", "show", str(dataset_id), "--json").json()
    before = home_files(cove_home)
    at_set = fails(cove("policy", "set", str(dataset_id), "--per-job-cap", "5"), code=2)
    assert at_set == at_publish
    fails(cove("policy", "set", str(dataset_id), "--budget", "0.5"),
          "per-job privacy cap (ε 1) must be positive and at most the budget (ε 0.5)", code=2)  # fmt: skip
    fails(cove("policy", "set", str(dataset_id), "--allow", "0x123"), "Allowlist entry 1 ('0x123')", code=2)
    fails(cove("policy", "set", str(dataset_id), "--price=-2"), "The price must not be negative", code=2)
    assert cove("policy", "show", str(dataset_id), "--json").json() == policy
    assert home_files(cove_home) == before


def test_policy_set_without_options(cove, deployment: Deployment, dataset_csv: Path) -> None:  # type: ignore[no-untyped-def]
    dataset_id = publish_priced(cove, dataset_csv)
    policy = cove("policy", "show", str(dataset_id), "--json").json()
    fails(cove("policy", "set", str(dataset_id)), "Nothing to change", "pass at least one policy option", code=2)
    assert cove("policy", "show", str(dataset_id), "--json").json() == policy
    assert policy["version"] == 1
