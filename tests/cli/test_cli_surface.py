"""The CLI's surface for scripts and people (issue 12): `--json` errors, one exit-code rule,
`--json` on every command, tags as lists, δ as people write it, whole addresses in tables,
Ctrl-C during start-up, and a read-only state directory."""

from __future__ import annotations

import errno
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from rich.console import Console

from conftest import CliResult, make_table, run_cove, write_schema
from exchange import __version__, errors
from exchange.cli import app as app_module
from exchange.cli import dataset_cmd, output
from exchange.cli.app import wants_json
from exchange.units import delta_text

OWNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
REPO = Path(__file__).resolve().parents[2]


def error_object(result: CliResult) -> dict[str, Any]:
    """The one JSON error object a `--json` failure leaves on stderr (and nothing on stdout)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    document = json.loads(lines[0])
    assert set(document) == {"error"} and set(document["error"]) == {"message", "code"}, document
    assert result.stdout == ""
    return document["error"]  # type: ignore[no-any-return]


def one_sentence(result: CliResult) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0].removeprefix("Error: ")


def all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *all_subclasses(sub)]
    return list(dict.fromkeys(found))


def leaf_commands() -> list[tuple[tuple[str, ...], Any]]:
    """(path, command) of every leaf of `cove`, the plugins' included."""
    root = typer.main.get_command(app_module.app)

    def walk(group: Any, ctx: Any, path: tuple[str, ...]) -> Any:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            inner = command.context_class(command, parent=ctx)
            if hasattr(command, "list_commands") and command.list_commands(inner):
                yield from walk(command, inner, (*path, name))
            else:  # a command, or a group that is one (`cove audit`: a callback, no subcommands)
                yield (*path, name), command

    return list(walk(root, root.context_class(root), ()))


# --------------------------------------------------------------------------------------
# 1. --json errors


def test_a_json_error_is_one_object_with_the_same_exit_code(cove_home: Path) -> None:
    as_text = run_cove("schema", "check", "/nonexistent/schema.json")
    as_json = run_cove("schema", "check", "/nonexistent/schema.json", "--json")
    assert as_text.exit_code == as_json.exit_code == 2
    sentence = one_sentence(as_text)  # control: without --json, the sentence
    assert error_object(as_json) == {"message": sentence, "code": "input"}


def test_a_chain_failure_as_json(cove_home: Path) -> None:
    result = run_cove("datasets", "--json")  # no chain running for this home, none named
    assert result.exit_code == 1
    error = error_object(result)
    assert error["code"] == "chain" and "No chain to talk to" in error["message"]


def test_a_usage_error_as_json(cove_home: Path) -> None:
    result = run_cove("datasets", "--json", "--bogus")
    assert result.exit_code == 2
    assert error_object(result) == {"message": "No such option '--bogus'.", "code": "usage"}
    missing = run_cove("account", "new", "--json")
    assert missing.exit_code == 2 and error_object(missing) == {"message": "Missing argument 'NAME'.", "code": "usage"}
    # Control: without --json, Typer's usage panel, same exit code.
    plain = run_cove("datasets", "--bogus")
    assert plain.exit_code == 2 and "No such option '--bogus'" in plain.stderr and not plain.stderr.startswith("{")


def test_json_is_asked_for_only_before_the_separator() -> None:
    assert wants_json(["datasets", "--json"]) and wants_json(["--json", "x", "--", "y"])
    assert not wants_json(["schema", "check", "--", "--json"]) and not wants_json(["datasets"])


def test_every_error_class_has_a_stable_code_of_its_own() -> None:
    import exchange.sdk.errors  # CoveErrors defined outside exchange.errors

    own = [c for c in all_subclasses(errors.CoveError) if c.__module__ == "exchange.errors"]
    assert len(own) >= 30
    assert [c.__name__ for c in own if "error_code" not in c.__dict__] == []  # each spelled out
    codes = [c.error_code for c in all_subclasses(errors.CoveError)]
    assert len(codes) == len(set(codes)), sorted(codes)
    assert errors.ContentNotFound.error_code == "not_found" and errors.ChainError.error_code == "chain"
    assert exchange.sdk.errors.JobFailed.error_code == "job_failed"  # derived from the name


# --------------------------------------------------------------------------------------
# 2. exit codes: 2 for a user mistake, 1 for a failure, 130 for Ctrl-C

MISTAKES = [errors.InputError, errors.DatasetError, errors.PolicyError, errors.SpecError, errors.WeightsError,
            errors.AccountError, errors.HomeNotWritable, errors.EpsilonAboveCap, errors.BudgetExceeded]  # fmt: skip
FAILURES = [errors.ChainError, errors.RpcUnreachable, errors.TransactionReverted, errors.StorageError,
            errors.ContentUnavailable, errors.TrainingError, errors.SandboxError, errors.PrivacyError,
            errors.ProvenanceError, errors.NodeError]  # fmt: skip


@pytest.mark.parametrize("kind", MISTAKES + FAILURES, ids=lambda kind: kind.__name__)
def test_the_exit_code_follows_the_one_rule(kind: type[errors.CoveError], monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: Any, **kwargs: Any) -> None:
        raise kind("Something is wrong; do this.")

    monkeypatch.setattr(app_module, "app", failing)
    expected = 2 if kind in MISTAKES else 1
    text, as_json = run_cove("version"), run_cove("version", "--json")
    assert text.exit_code == as_json.exit_code == expected
    assert one_sentence(text) == "Something is wrong; do this."
    assert error_object(as_json) == {"message": "Something is wrong; do this.", "code": kind.error_code}


def test_ctrl_c_in_a_command_or_at_a_prompt_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    def prompt_cut(*args: Any, **kwargs: Any) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise click.Abort() from None  # what click.prompt raises on Ctrl-C

    for stub in (interrupted, prompt_cut):
        monkeypatch.setattr(app_module, "app", stub)
        result = run_cove("version")
        assert (result.exit_code, result.stderr) == (130, "")


def test_a_job_over_the_per_job_cap_is_a_user_mistake() -> None:
    from exchange.jobs import check_job_cap

    spec = SimpleNamespace(dp=SimpleNamespace(target_epsilon=None))
    with pytest.raises(errors.EpsilonAboveCap) as refused:
        check_job_cap(spec, 4_000_001, Decimal(4))  # type: ignore[arg-type]
    assert refused.value.exit_code == 2 and isinstance(refused.value, errors.PrivacyError)  # still a PrivacyError
    check_job_cap(spec, 4_000_000, Decimal(4))  # type: ignore[arg-type]  # control: at the cap, accepted


def test_the_readme_documents_the_rule_and_every_code() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Exit codes and errors"):]
    section = section[: section.index("\n## ")]
    for words in ("`2`", "`1`", "`130`", '{"error": {"message":', "`usage`"):
        assert words in section, words
    for kind in [errors.CoveError, *all_subclasses(errors.CoveError)]:
        if kind.__module__ == "exchange.errors":
            assert f"`{kind.error_code}`" in section, kind.__name__


# --------------------------------------------------------------------------------------
# 4. --json on every command

KNOWN_WITHOUT_JSON: set[tuple[str, ...]] = set()


def test_every_command_takes_json() -> None:
    commands = leaf_commands()
    paths = {path for path, _ in commands}
    assert len(commands) >= 35 and {("runner", "start"), ("node", "start"), ("audit",)} <= paths  # plugins walked
    missing = {path for path, command in commands if not any("--json" in p.opts for p in command.params)}
    assert missing <= KNOWN_WITHOUT_JSON, missing - KNOWN_WITHOUT_JSON
    assert {("demo",), ("version",), ("schema", "draft"), ("runner", "start"), ("ui",)} <= paths - missing


def test_version_json() -> None:
    assert run_cove("version", "--json").json() == {"version": __version__}
    assert run_cove("version").stdout == f"{__version__}\n"  # control: people get the bare version


def test_schema_draft_json(tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    make_table(20).to_csv(data, index=False)
    result = run_cove("schema", "draft", str(data), "--json")
    assert result.exit_code == 0 and result.stderr == ""
    document = result.json()
    assert [c["name"] for c in document["schema"]["columns"]] == ["age", "bmi", "smoker", "diagnosis"]
    assert "read off your private rows" in document["warning"] and document["out"] is None
    plain = run_cove("schema", "draft", str(data))  # control: the warning on stderr, the draft on stdout
    assert "read off your private rows" in plain.stderr and json.loads(plain.stdout) == document["schema"]


# --------------------------------------------------------------------------------------
# 5 and 7. `cove datasets`: tags as lists, whole owner addresses


LISTING = [
    {"id": 1, "name": "Patients of the northern hospital network, 2019 to 2024", "rows": 1234567, "columns": 12,
     "price": 2.5, "currency": "tUSD", "budget_epsilon": 8.0, "per_job_epsilon": 2.0, "policy_version": 1,
     "owner": OWNER, "tags": ["health", "oncology", "x, y"]},  # a tag may hold ", "
    {"id": 2, "name": "(metadata out of reach)", "rows": 120, "columns": None, "price": 0, "currency": "free",
     "budget_epsilon": 1.0, "per_job_epsilon": 1.0, "policy_version": 1,
     "owner": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "tags": []},
]  # fmt: skip


@pytest.fixture
def listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """`cove datasets` over a fixed listing of the catalog's rows, no chain (the chain test
    below lists real ones)."""
    import exchange.catalog

    monkeypatch.setattr(dataset_cmd, "open_client", lambda *args, **kwargs: SimpleNamespace())
    monkeypatch.setattr(exchange.catalog, "dataset_listing", lambda _: [dict(r) for r in LISTING])


def test_tags_are_a_list_in_json(listing: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    rows = run_cove("datasets", "--json").json()
    assert [r["tags"] for r in rows] == [["health", "oncology", "x, y"], []]
    assert all(isinstance(tag, str) for r in rows for tag in r["tags"])
    shown = run_cove("datasets")  # control: people still read them joined
    assert "health, oncology, x, y" in " ".join(shown.stdout.replace("│", " ").split())


@pytest.mark.parametrize("width", [120, 100, 80])
def test_the_owner_column_is_never_cut(listing: None, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    shown = run_cove("datasets")
    assert shown.exit_code == 0, shown.stderr
    for row in LISTING:
        assert row["owner"] in shown.stdout  # on one line, whole
    assert max(len(line) for line in shown.stdout.splitlines()) <= width  # and the table still fits
    screen = io.StringIO()
    monkeypatch.setattr(dataset_cmd, "console", Console(width=width, file=screen))
    assert run_cove("datasets").exit_code == 0
    assert all(row["owner"] in screen.getvalue() for row in LISTING)


def hub_of(count: int) -> list[dict[str, Any]]:
    """`count` datasets, every tenth one tagged "cardiology" and priced."""
    return [LISTING[1] | {"id": i, "name": f"Cohort {i}", "tags": ["cardiology"] if i % 10 == 0 else [],
                          "price": 2.5 if i % 10 == 0 else 0} for i in range(1, count + 1)]  # fmt: skip


@pytest.fixture
def big_hub(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import exchange.catalog

    rows = hub_of(120)
    monkeypatch.setattr(dataset_cmd, "open_client", lambda *args, **kwargs: SimpleNamespace())
    monkeypatch.setattr(exchange.catalog, "dataset_listing", lambda _: [dict(r) for r in rows])
    monkeypatch.setenv("COLUMNS", "250")
    return rows


def shown_ids(stdout: str) -> list[int]:
    return [int(cells[1]) for line in stdout.splitlines() if (cells := line.split("│"))[1:] and cells[1].strip().isdigit()]


def test_the_table_shows_a_page_at_a_time_and_says_what_is_left(big_hub: list[dict[str, Any]]) -> None:
    first = run_cove("datasets")
    assert first.exit_code == 0, first.stderr
    assert shown_ids(first.stdout) == list(range(1, 51))
    assert "datasets 1 to 50 of 120 (page 1 of 3); --page 2 for the next, --limit 0 for every one" in first.stdout
    last = run_cove("datasets", "--page", "3")
    assert shown_ids(last.stdout) == list(range(101, 121)) and "--page 4" not in last.stdout
    assert shown_ids(run_cove("datasets", "--limit", "0").stdout) == list(range(1, 121))  # control: every one
    assert shown_ids(run_cove("datasets", "--limit", "7", "--page", "2").stdout) == list(range(8, 15))
    beyond = run_cove("datasets", "--page", "4")
    assert beyond.exit_code == 2 and "There are 3 pages of 50 datasets; ask for --page 1 to 3." in beyond.stderr


def test_json_lists_every_dataset_unless_a_limit_is_given(big_hub: list[dict[str, Any]]) -> None:
    assert [r["id"] for r in run_cove("datasets", "--json").json()] == list(range(1, 121))
    page = run_cove("datasets", "--json", "--limit", "50", "--page", "3").json()
    assert [r["id"] for r in page] == list(range(101, 121))
    assert {type(r["price"]) for r in page} == {float}  # typed over the whole listing, as before


def test_search_and_tag_narrow_the_listing(big_hub: list[dict[str, Any]]) -> None:
    tagged = run_cove("datasets", "--tag", "cardiology", "--json").json()
    assert [r["id"] for r in tagged] == list(range(10, 121, 10))
    assert [r["id"] for r in run_cove("datasets", "--search", "COHORT 11", "--json").json()] == [11, *range(110, 120)]
    both = run_cove("datasets", "--search", "cohort 11", "--tag", "cardiology")
    assert shown_ids(both.stdout) == [110] and "page 1 of" not in both.stdout  # one page: no pager line
    none = run_cove("datasets", "--search", "[red]oncology", "--tag", "x")
    assert none.exit_code == 0 and "No dataset contains '[red]oncology' and has the tag 'x'." in none.stdout


def test_without_a_whole_column_rich_cuts_the_owner_at_120() -> None:
    """Control: the same table without the owner kept whole is what the issue showed."""
    rows = [[r["id"], r["name"], r["rows"], r["columns"], "2.5 tUSD", "8", "2", r["tags"], r["owner"]] for r in LISTING]
    columns = ["id", "name", "rows", "columns", "price", "budget ε", "per-job ε", "tags", "owner"]
    cut, whole = io.StringIO(), io.StringIO()
    Console(width=120, file=cut).print(output.table("Datasets", columns, rows))
    Console(width=120, file=whole).print(output.table("Datasets", columns, rows, whole={"owner"}))
    assert OWNER not in cut.getvalue() and "0xf39Fd6e51a" in cut.getvalue()  # cut: a prefix is left
    assert OWNER in whole.getvalue()


# --------------------------------------------------------------------------------------
# 6. δ


@pytest.mark.parametrize(("delta", "shown"), [(Decimal("0.00001"), "1e-5"), (1e-5, "1e-5"), (2.5e-6, "2.5e-6"),
                                              (Decimal("0.0001"), "0.0001"), (1e-10, "1e-10")])  # fmt: skip
def test_delta_is_written_as_people_write_it(delta: Any, shown: str) -> None:
    assert delta_text(delta) == shown
    assert f"{Decimal('0.00001'):.2E}" == "1.00E-5"  # control: what the policy table printed


def test_the_policy_table_shows_delta_plainly() -> None:
    from exchange.policy import parse_terms

    terms = parse_terms(price="0", free_cap=1, budget="8", per_job_cap="2", delta="0.00001")
    pairs = dict(dataset_cmd._policy_pairs(terms, 1, "tUSD"))
    assert pairs["δ"] == "1e-5"


# --------------------------------------------------------------------------------------
# 2, 5 and 6 on a real chain: a past expiry, tags, δ


@pytest.mark.chain
def test_on_a_chain_a_past_expiry_tags_and_delta(cove, deployment, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "patients.csv"
    make_table().to_csv(data, index=False)
    schema = str(write_schema(tmp_path / "schema.json"))
    base = ["publish", str(data), "--name", "P", "--schema", schema, "--budget", "2", "--per-job-cap", "1", "--free-cap", "3"]
    past = cove(*base, "--expiry", "2001-01-01")
    assert past.exit_code == 2
    assert one_sentence(past) == "The expiry 2001-01-01 00:00:00 UTC is already past; choose a later one."
    assert error_object(cove(*base, "--expiry", "2001-01-01", "--json"))["code"] == "policy"
    assert cove("datasets", "--json").json() == []  # nothing was published

    published = cove(*base, "--expiry", "2099-01-01", "--tag", "health", "--tag", "x, y", "--json")  # control
    assert published.exit_code == 0, published.stderr
    [row] = cove("datasets", "--json").json()
    assert row["tags"] == ["health", "x, y"]
    assert cove("dataset", "show", "1", "--json").json()["metadata"]["tags"] == ["health", "x, y"]
    refused = cove("policy", "set", "1", "--expiry", "2001-01-01")
    assert refused.exit_code == 2 and "already past" in one_sentence(refused)
    shown = " ".join(cove("policy", "show", "1").stdout.replace("│", " ").split())
    assert "δ 1e-5 " in shown and "E-" not in shown


# --------------------------------------------------------------------------------------
# 8. Ctrl-C during start-up


# What a shell reports as 130: exit status 130, or death by SIGINT, which CPython picks itself
# at exit when the interrupt had landed inside an eval() or exec() (a namedtuple or dataclass
# being made) even though Cove caught it.
INTERRUPTED = (130, -signal.SIGINT)


def _started_at(command: list[str], marker: str) -> float:
    """Seconds from starting `command` to its printing `marker` on stdout."""
    begun = time.monotonic()
    done = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert done.stdout is not None
    for line in done.stdout:
        if line.strip() == marker:
            seen = time.monotonic() - begun
            done.communicate()
            return seen
    raise AssertionError(f"{marker!r} never printed")


def _interrupt(command: list[str], delay: float) -> tuple[bool, int, str]:
    """(still running when signalled, exit code, stderr) of `command` sent SIGINT after `delay` s."""
    running = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    alive = running.poll() is None
    running.send_signal(signal.SIGINT)
    _, stderr = running.communicate(timeout=60)
    return alive, running.returncode, stderr


def test_ctrl_c_while_cove_imports_ends_quietly_with_130(tmp_path: Path) -> None:
    python = sys.executable
    data = tmp_path / "rows.csv"
    make_table(20).to_csv(data, index=False)
    # `schema draft` imports pandas once started: a SIGINT that comes late still lands in the
    # command (never in the interpreter's shutdown, where Python dies of the signal itself).
    arguments = ["schema", "draft", str(data)]
    probe = "import sys, exchange.cli.entry; print('entry', flush=True); import exchange.cli.app; print('app', flush=True)"
    # When the entry point's guard is in place and when the app's imports are done: SIGINT
    # between the two lands during the imports (Python's own start-up before is out of reach).
    ready = max(_started_at([python, "-c", probe], "entry") for _ in range(3))
    imported = min(_started_at([python, "-c", probe.replace("print('entry', flush=True); ", "")], "app") for _ in range(3))
    assert imported - ready > 0.05, (ready, imported)  # control: there is an import phase to hit
    delays = [ready + (imported - ready) * share for share in (0.4, 0.6, 0.8)]
    script = Path(python).with_name("cove")
    forms = [[python, "-m", "exchange.cli", *arguments]]
    if script.exists() and "exchange.cli.entry" in script.read_text():
        forms.append([str(script), *arguments])
    for form in forms:
        for delay in delays:
            alive, code, stderr = _interrupt(form, delay)
            assert alive, (form, delay)  # control: the signal came before the command was done
            assert code in INTERRUPTED and "Traceback" not in stderr, (form, delay, code, stderr[-800:])
    # Control: importing the app before any guard, as `cove = "exchange.cli.app:main"` did, a
    # SIGINT at the same moments ends in a KeyboardInterrupt traceback.
    unguarded = [python, "-c", "from exchange.cli.app import main; main()", *arguments]
    tracebacks = [_interrupt(unguarded, delay)[2] for delay in delays]
    assert any("KeyboardInterrupt" in stderr and "Traceback" in stderr for stderr in tracebacks)


# --------------------------------------------------------------------------------------
# 9. a read-only state directory
#
# Tests run as root, whom a chmod 0o555 does not stop (CAP_DAC_OVERRIDE). A read-only tmpfs
# mounted in a user and mount namespace of its own (`unshare -rm`) refuses root as well:
# the write fails with EROFS (errno 30), as on a read-only disk.


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return done.returncode == 0


needs_unshare = pytest.mark.skipif(not _unshare_works(), reason="needs `unshare -rm` (user and mount namespaces)")


def _in_namespace(directory: Path, setup: str, *cove_args: str) -> subprocess.CompletedProcess[str]:
    """`cove ARGS` in a namespace where `directory` is a tmpfs prepared by `setup` (shell)."""
    command = [sys.executable, "-m", "exchange.cli", *cove_args]
    script = f"{setup} && exec {shlex.join(command)}"
    env = {**os.environ, "COVE_PASSWORD": "pw", "COLUMNS": "2000"}
    env.pop("COVE_HOME", None)
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env,
                          timeout=120, check=False)  # fmt: skip


@needs_unshare
@pytest.mark.parametrize("args", [["account", "new", "alice"], ["chain", "up"], ["publish"]], ids=" ".join)
def test_a_read_only_home_is_one_sentence(tmp_path: Path, args: list[str]) -> None:
    directory = tmp_path / "mnt"
    directory.mkdir()
    home = directory / "home"
    if args == ["publish"]:
        make_table().to_csv(tmp_path / "p.csv", index=False)
        args = ["publish", str(tmp_path / "p.csv"), "--name", "P", "--schema", str(write_schema(tmp_path / "s.json")),
                "--budget", "2", "--per-job-cap", "1", "--free-cap", "3"]  # fmt: skip
    read_only = f"mount -t tmpfs -o ro tmpfs {directory}"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"{read_only} && mkdir {home}"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr  # control: root is refused there
    for extra, check in (([], one_line_sentence), (["--json"], json_error)):
        done = _in_namespace(directory, read_only, *args, "--home", str(home), *extra)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "Errno 30" not in done.stderr
        check(done.stderr, f"Cove's state directory {home} is not writable (read-only file system); pass a "
                           "writable directory with --home DIR or set COVE_HOME.")  # fmt: skip


def one_line_sentence(stderr: str, sentence: str) -> None:
    assert stderr.strip() == f"Error: {sentence}"


def json_error(stderr: str, sentence: str) -> None:
    assert json.loads(stderr) == {"error": {"message": sentence, "code": "home_not_writable"}}


@needs_unshare
def test_a_home_made_read_only_after_it_was_created(tmp_path: Path) -> None:
    """The keystore directory exists, so the refused write is the keystore file's own (in
    exchange.accounts): still one sentence."""
    directory = tmp_path / "mnt"
    directory.mkdir()
    home = directory / "home"
    prepare = f"mount -t tmpfs tmpfs {directory} && mkdir -p {home}/keystores"
    refused = _in_namespace(directory, f"{prepare} && mount -o remount,ro {directory}", "account", "new", "alice", "--home", str(home))
    assert refused.returncode == 2 and refused.stderr.startswith(f"Error: Cove's state directory {home} is not writable")
    created = _in_namespace(directory, prepare, "account", "new", "alice", "--home", str(home))  # control: writable
    assert created.returncode == 0 and "account 'alice' created" in created.stdout, created.stderr


def test_a_refused_write_outside_any_home_is_not_blamed_on_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from exchange.paths import HomeLayout

    home = HomeLayout(tmp_path / "home").root

    def refused(path: Path) -> Any:
        def fail(*args: Any, **kwargs: Any) -> None:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

        return fail

    monkeypatch.setattr(app_module, "app", refused(home / "keystores" / "alice.json"))
    inside = run_cove("version")
    assert inside.exit_code == 2 and one_sentence(inside).startswith(f"Cove's state directory {home} is not writable")
    monkeypatch.setattr(app_module, "app", refused(tmp_path / "elsewhere" / "model.safetensors"))
    with pytest.raises(PermissionError):  # control: not disguised as the home's
        run_cove("version")


@pytest.mark.chain
def test_runner_start_json_prints_one_object_a_line(cove, deployment) -> None:  # type: ignore[no-untyped-def]
    result = cove("runner", "start", "--once", "--json", "--account", "dev5")
    assert result.exit_code == 0, result.stderr
    (started,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert started["event"] == "started" and started["runner"] == "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"
    assert started["hub"] == deployment.cove and started["endpoint"] is None
    plain = cove("runner", "start", "--once", "--account", "dev5")  # control: a person reads a sentence
    assert plain.exit_code == 0 and "runner 0x9965" in plain.stdout and "{" not in plain.stdout
