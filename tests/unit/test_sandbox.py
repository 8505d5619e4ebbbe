"""The sandbox: what code inside can and cannot do, proved by code that tries.

Each probe below runs inside the sandbox, attempts something, and reports what happened;
the test asserts the attempt failed (or, for the dataset, succeeded). Probes run under
every mechanism this machine supports; unshare is the one Cove's CI machines have.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from compute_to_data import sandbox
from compute_to_data.sandbox import SandboxPolicy, run_sandboxed, sandbox_available
from exchange.errors import SandboxError

PROBE = textwrap.dedent(
    '''
    import json, os, socket, sys, time
    from pathlib import Path


    def _json(value):
        return json.dumps(value).encode()


    def echo(payload, dataset):
        return _json({"payload": payload.decode(), "dataset": dataset.read_text()})


    def environment(payload, dataset):
        return _json(dict(os.environ))


    def try_read(payload, dataset):
        results = {}
        for path in json.loads(payload):
            try:
                with open(path, "rb") as handle:
                    handle.read(1)
                results[path] = "read"
            except OSError as err:
                results[path] = type(err).__name__
        return _json(results)


    def try_write(payload, dataset):
        results = {}
        for path in json.loads(payload):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                os.close(fd)  # opened only: nothing is ever written
                results[path] = "opened"
            except OSError as err:
                results[path] = err.strerror
        return _json(results)


    def try_connect(payload, dataset):
        target = json.loads(payload)
        results = {}
        attempts = {
            "tcp": (socket.AF_INET, ("127.0.0.1", target["tcp_port"])),
            "abstract_unix": (socket.AF_UNIX, "\\0" + target["abstract"]),
            "internet": (socket.AF_INET, ("1.1.1.1", 53)),
        }
        for name, (family, address) in attempts.items():
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(3)
            try:
                sock.connect(address)
                results[name] = "connected"
            except OSError as err:
                results[name] = type(err).__name__
            finally:
                sock.close()
        return _json(results)


    def capabilities(payload, dataset):
        lines = Path("/proc/self/status").read_text().splitlines()
        return _json({l.split(":")[0]: l.split()[1] for l in lines if l.startswith("Cap")})


    def sleep_forever(payload, dataset):
        time.sleep(3600)


    def orphan_then_sleep(payload, dataset):
        # A grandchild in its own session, writing to the log until someone kills it.
        if os.fork() == 0:
            os.setsid()
            while True:
                print("orphan alive", file=sys.stderr, flush=True)
                time.sleep(0.2)
        time.sleep(3600)


    def orphan_holding_result(payload, dataset):
        # A grandchild that inherits the result pipe and outlives the work for a while.
        if os.fork() == 0:
            os.setsid()
            time.sleep(4)
            os._exit(0)
        return b"done"


    def hog_memory(payload, dataset):
        chunks = []
        while True:
            chunks.append(bytearray(64 * 1024 * 1024))


    def burn_cpu(payload, dataset):
        while True:
            pass


    def leak_in_error(payload, dataset):
        raise ValueError("row 17: " + dataset.read_text())


    def noisy(payload, dataset):
        print("progress that must not reach the caller")
        return b"result"


    def huge(payload, dataset):
        return b"x" * (2 * 1024 * 1024)


    def not_bytes(payload, dataset):
        return "a string"


    def exit_without_result(payload, dataset):
        os._exit(0)


    def abort(payload, dataset):
        os.abort()
    '''
)

SECRET = "owner-secret-do-not-leak"
ROWS = "age,diagnosis\n41,benign\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sandbox")
    (root / "code").mkdir()
    (root / "code" / "cove_probe.py").write_text(PROBE)
    (root / "data").mkdir()
    (root / "data" / "patients.csv").write_text(ROWS)
    (root / "data" / "secret.txt").write_text(SECRET)
    (root / "home" / ".ssh").mkdir(parents=True)
    (root / "home" / ".ssh" / "id_ed25519").write_text(SECRET)
    (root / "data-other").mkdir()
    (root / "data-other" / "other.csv").write_text(SECRET)
    return {
        "root": root,
        "code": root / "code",
        "dataset": root / "data" / "patients.csv",
        "secret": root / "data" / "secret.txt",
        "ssh": root / "home" / ".ssh" / "id_ed25519",
        "other": root / "data-other" / "other.csv",
    }


def _usable(mechanism: str) -> bool:
    return sandbox._works(mechanism)  # type: ignore[arg-type]


@pytest.fixture(params=["unshare", "bwrap"])
def mechanism(request: pytest.FixtureRequest) -> str:
    if not _usable(request.param):
        pytest.skip(f"the {request.param} sandbox is not available on this machine")
    return str(request.param)


def policy(files: dict[str, Path], tmp_path: Path, **changes: Any) -> SandboxPolicy:
    fields: dict[str, Any] = {
        "dataset": files["dataset"],
        "cpu_seconds": 20,
        "memory_bytes": 1 << 30,
        "wall_seconds": 30,
        "python_path": (files["code"],),
        "log_path": tmp_path / "sandbox.log",
    }
    fields.update(changes)
    return SandboxPolicy(**fields)


def run(function: str, files: dict[str, Path], tmp_path: Path, mechanism: str,
        payload: bytes = b"", **changes: Any) -> Any:
    result = run_sandboxed("cove_probe", function, payload, policy(files, tmp_path, **changes),
                           mechanism=mechanism, allow_unsandboxed=mechanism == "none")
    assert result.mechanism == mechanism
    return json.loads(result.output)


# --- what the work can do ------------------------------------------------------------------


def test_this_machine_has_a_sandbox() -> None:
    # Cove's own test machines must: otherwise every proof below is skipped.
    assert sandbox_available() in ("bwrap", "unshare")


def test_it_reads_the_dataset_and_gets_the_payload(files, tmp_path, mechanism) -> None:
    out = run("echo", files, tmp_path, mechanism, b"hello")
    assert out == {"payload": "hello", "dataset": ROWS}


def test_what_it_prints_goes_to_the_log_not_the_result(files, tmp_path, mechanism) -> None:
    result = run_sandboxed("cove_probe", "noisy", b"", policy(files, tmp_path), mechanism=mechanism)
    assert result.output == b"result"
    assert "must not reach the caller" in result.log_path.read_text()


# --- what it cannot do ---------------------------------------------------------------------


@pytest.fixture
def listeners() -> Iterator[dict[str, Any]]:
    """A TCP server on the host's loopback and a host abstract Unix socket, both listening."""
    tcp = socket.create_server(("127.0.0.1", 0))
    tcp.setblocking(False)
    abstract = f"cove-sandbox-test-{os.getpid()}-{time.monotonic_ns()}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind("\0" + abstract)
    unix.listen()
    unix.setblocking(False)
    yield {"tcp": tcp, "unix": unix, "tcp_port": tcp.getsockname()[1], "abstract": abstract}
    tcp.close()
    unix.close()


def _nobody_connected(server: socket.socket) -> bool:
    try:
        server.accept()
    except BlockingIOError:
        return True
    return False


def test_no_network_not_even_the_hosts_loopback(files, tmp_path, mechanism, listeners) -> None:
    # Sanity: the host's own listeners do accept connections from outside the sandbox.
    probe = socket.create_connection(("127.0.0.1", listeners["tcp_port"]), timeout=3)
    probe.close()
    listeners["tcp"].setblocking(True)
    listeners["tcp"].accept()[0].close()
    listeners["tcp"].setblocking(False)

    target = {"tcp_port": listeners["tcp_port"], "abstract": listeners["abstract"]}
    out = run("try_connect", files, tmp_path, mechanism, json.dumps(target).encode())
    assert out["tcp"] != "connected"
    assert out["abstract_unix"] != "connected"
    assert out["internet"] != "connected"
    assert _nobody_connected(listeners["tcp"])
    assert _nobody_connected(listeners["unix"])


def _host_files(files: dict[str, Path]) -> list[str]:
    """Files that exist outside and must be invisible inside."""
    candidates = [
        files["secret"], files["ssh"], files["other"],
        Path("/etc/passwd"), Path("/etc/hostname"), Path("/etc/shadow"),
        Path.home() / ".bashrc", Path.home() / ".gitconfig", Path.home() / ".ssh" / "id_rsa",
        Path(sandbox.__file__).resolve().parent.parent / "pyproject.toml",
    ]
    return [str(p) for p in candidates if p.exists()]


def test_only_the_dataset_is_readable(files, tmp_path, mechanism) -> None:
    paths = _host_files(files)
    assert str(files["secret"]) in paths and len(paths) >= 5
    targets = json.dumps([*paths, str(files["dataset"])]).encode()
    out = run("try_read", files, tmp_path, mechanism, targets)
    assert out.pop(str(files["dataset"])) == "read"
    assert out == {p: "FileNotFoundError" for p in paths}


def test_nothing_outside_scratch_is_writable(files, tmp_path, mechanism) -> None:
    venv_file = str(Path(sys.prefix) / "cove-sandbox-probe")
    code_file = str(files["code"] / "cove_probe.py")
    targets = [str(files["dataset"]), venv_file, code_file, "/usr/cove-probe",
               "/cove-probe", "/proc/sys/kernel/hostname", "/tmp/scratch-file"]
    out = run("try_write", files, tmp_path, mechanism, json.dumps(targets).encode())
    assert out.pop("/tmp/scratch-file") == "opened"
    assert set(out.values()) == {"Read-only file system"}, out
    assert not Path(venv_file).exists()


def test_the_environment_is_clean(files, tmp_path, mechanism, monkeypatch) -> None:
    monkeypatch.setenv("COVE_PASSWORD", "parent-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "parent-secret")
    env = run("environment", files, tmp_path, mechanism, env={"OMP_NUM_THREADS": "2"})
    assert set(env) == {"PATH", "HOME", "LANG", "OMP_NUM_THREADS"}
    assert env["HOME"] == "/tmp" and env["OMP_NUM_THREADS"] == "2"
    assert "parent-secret" not in json.dumps(env)


def test_it_has_no_capabilities(files, tmp_path, mechanism) -> None:
    caps = run("capabilities", files, tmp_path, mechanism)
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == "0" * 16


# --- limits ------------------------------------------------------------------------------------


def _failure(  # type: ignore[no-untyped-def]
    function: str, files, tmp_path, mechanism, **changes: Any
) -> SandboxError:
    with pytest.raises(SandboxError) as caught:
        run_sandboxed("cove_probe", function, b"", policy(files, tmp_path, **changes),
                      mechanism=mechanism, allow_unsandboxed=mechanism == "none", stage="training")
    assert caught.value.log_path == str(tmp_path / "sandbox.log")
    return caught.value


def test_wall_clock_limit_kills_it(files, tmp_path, mechanism) -> None:
    started = time.monotonic()
    error = _failure("sleep_forever", files, tmp_path, mechanism, wall_seconds=1.5)
    assert error.reason == "timeout"
    assert "wall-clock limit" in str(error) and str(error).startswith("The training step")
    assert time.monotonic() - started < 10


def test_every_process_it_started_dies_with_it(files, tmp_path, mechanism) -> None:
    error = _failure("orphan_then_sleep", files, tmp_path, mechanism, wall_seconds=1.5)
    assert error.reason == "timeout"
    log = tmp_path / "sandbox.log"
    time.sleep(0.5)
    before = log.read_text().count("orphan alive")
    assert before > 0  # it did run
    time.sleep(1.5)
    assert log.read_text().count("orphan alive") == before  # and nothing writes any more


def test_a_lingering_grandchild_does_not_delay_the_result(files, tmp_path, mechanism) -> None:
    started = time.monotonic()
    result = run_sandboxed("cove_probe", "orphan_holding_result", b"", policy(files, tmp_path),
                           mechanism=mechanism)
    assert result.output == b"done"
    assert time.monotonic() - started < 3  # the namespace died with the work


def test_memory_limit_stops_a_hog(files, tmp_path, mechanism) -> None:
    error = _failure("hog_memory", files, tmp_path, mechanism, memory_bytes=512 << 20)
    assert error.reason == "memory"
    assert "memory limit" in str(error)


def test_cpu_limit_stops_a_busy_loop(files, tmp_path, mechanism) -> None:
    started = time.monotonic()
    error = _failure("burn_cpu", files, tmp_path, mechanism, cpu_seconds=1, wall_seconds=30)
    assert error.reason == "cpu"
    assert time.monotonic() - started < 15


# --- failures say nothing about the data ---------------------------------------------------------


def test_errors_are_generic_and_details_stay_in_the_log(files, tmp_path, mechanism) -> None:
    error = _failure("leak_in_error", files, tmp_path, mechanism)
    assert error.reason == "error"
    assert "benign" not in str(error) and "row 17" not in str(error)
    assert "benign" in (tmp_path / "sandbox.log").read_text()  # the owner can still debug


@pytest.mark.parametrize(
    ("function", "reason", "changes"),
    [
        ("huge", "output", {"max_output_bytes": 1 << 20}),
        ("not_bytes", "output", {}),
        ("exit_without_result", "output", {}),
        ("no_such_function", "import", {}),
        ("abort", "crash", {}),
    ],
)
def test_failure_reasons(files, tmp_path, mechanism, function, reason, changes) -> None:
    assert _failure(function, files, tmp_path, mechanism, **changes).reason == reason


def test_a_missing_module_is_an_import_failure(files, tmp_path, mechanism) -> None:
    with pytest.raises(SandboxError) as caught:
        run_sandboxed("cove_no_such_module", "f", b"", policy(files, tmp_path), mechanism=mechanism)
    assert caught.value.reason == "import"


# --- without a sandbox ------------------------------------------------------------------------


@pytest.fixture
def no_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "sandbox_available", lambda: None)


def test_refuses_to_run_unconfined_unless_allowed(files, tmp_path, no_sandbox) -> None:
    with pytest.raises(SandboxError, match="No sandbox") as caught:
        run_sandboxed("cove_probe", "echo", b"", policy(files, tmp_path))
    assert caught.value.reason == "unavailable"
    with pytest.raises(SandboxError, match="No sandbox"):
        run_sandboxed("cove_probe", "echo", b"", policy(files, tmp_path), mechanism="none")


def test_unconfined_run_says_so(files, tmp_path, no_sandbox, monkeypatch) -> None:
    monkeypatch.setenv("COVE_PASSWORD", "parent-secret")
    result = run_sandboxed("cove_probe", "environment", b"", policy(files, tmp_path),
                           allow_unsandboxed=True)
    assert result.mechanism == "none"  # what provenance records
    assert set(json.loads(result.output)) == {"PATH", "HOME", "LANG"}  # still a clean env


def test_unconfined_run_still_has_time_and_memory_limits(files, tmp_path) -> None:
    assert _failure("sleep_forever", files, tmp_path, "none", wall_seconds=1).reason == "timeout"
    hog = _failure("hog_memory", files, tmp_path, "none", memory_bytes=512 << 20)
    assert hog.reason == "memory"


def test_unconfined_run_is_not_held_past_its_deadline_by_a_grandchild(files, tmp_path) -> None:
    # Unconfined, a grandchild in its own session escapes the kill and holds the result
    # pipe; the parent gives up at the deadline instead of waiting for it.
    started = time.monotonic()
    error = _failure("orphan_holding_result", files, tmp_path, "none", wall_seconds=1.5)
    assert error.reason == "timeout"
    assert time.monotonic() - started < 3.5


def test_forcing_an_unusable_mechanism_is_refused(files, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sandbox, "_works", lambda mechanism: mechanism == "none")
    with pytest.raises(SandboxError, match="cannot be used"):
        run_sandboxed("cove_probe", "echo", b"", policy(files, tmp_path), mechanism="unshare")


# --- the policy ---------------------------------------------------------------------------------


def test_policy_refuses_a_missing_dataset(files, tmp_path) -> None:
    with pytest.raises(ValidationError, match="not a readable file"):
        policy(files, tmp_path, dataset=tmp_path / "absent.csv")


@pytest.mark.parametrize("name", ["PATH", "HOME", "LANG", "BAD-NAME", "1X"])
def test_policy_refuses_reserved_or_odd_environment_names(files, tmp_path, name) -> None:
    with pytest.raises(ValidationError):
        policy(files, tmp_path, env={name: "x"})


@pytest.mark.parametrize(("module", "function"), [("cove_probe", "a.b"), ("os;rm", "f"), ("", "f")])
def test_bad_names_are_refused(files, tmp_path, module, function) -> None:
    with pytest.raises(SandboxError, match="not a module and function name"):
        run_sandboxed(module, function, b"", policy(files, tmp_path))
