"""The sandbox: what code inside can and cannot do, proved by code that tries.

Each probe below runs inside the sandbox, attempts something, and reports what happened;
the test asserts the attempt failed (or, for the dataset, succeeded). Probes run under
every mechanism this machine supports (unshare is the one Cove's CI machines have), and
both ways the runner runs work: a fresh sandbox per job ("cold", `run_sandboxed`) and a
fresh fork of a warm sandbox's zygote ("warm", `WarmSandbox`; its own properties, what one
job cannot leave for the next, are proved in test_warm_sandbox.py).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from compute_to_data import sandbox, seccomp_filter
from compute_to_data import sandbox_entry as entry
from compute_to_data.sandbox import SandboxPolicy, SandboxResult, run_sandboxed, sandbox_available
from compute_to_data.warm_sandbox import WarmSandbox
from exchange.errors import SandboxError

PROBE = textwrap.dedent(
    '''
    import ctypes, errno, json, os, socket, subprocess, sys, tempfile, threading, time
    from pathlib import Path


    def _json(value):
        return json.dumps(value).encode()


    def echo(payload, dataset):
        return _json({"payload": payload.decode(), "dataset": dataset.read_text()})


    def environment(payload, dataset):
        return _json(dict(os.environ))


    def _target(path, dataset):
        # "DATASET": the path the work was given (the owner's path cold, a link warm).
        return str(dataset) if path == "DATASET" else path


    def try_read(payload, dataset):
        results = {}
        for path in json.loads(payload):
            try:
                with open(_target(path, dataset), "rb") as handle:
                    handle.read(1)
                results[path] = "read"
            except OSError as err:
                results[path] = type(err).__name__
        return _json(results)


    def try_write(payload, dataset):
        results = {}
        for path in json.loads(payload):
            try:
                fd = os.open(_target(path, dataset), os.O_WRONLY | os.O_CREAT, 0o600)
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
            sock = None
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)  # refused by the filter
                sock.settimeout(3)
                sock.connect(address)
                results[name] = "connected"
            except OSError as err:
                results[name] = type(err).__name__
            finally:
                if sock is not None:
                    sock.close()
        return _json(results)


    def capabilities(payload, dataset):
        lines = Path("/proc/self/status").read_text().splitlines()
        return _json({l.split(":")[0]: l.split()[1] for l in lines if l.startswith("Cap")})


    _libc = ctypes.CDLL(None, use_errno=True)
    CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x4000000, 0x10000000, 0x40000000
    KEY_SPEC_PROCESS_KEYRING = -2


    def _c(result):
        """A libc or syscall() result: 'ok', or raise its errno."""
        if result == -1:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return "ok"


    def _isolated(call):
        """`call()` in a forked child, so what it changes dies with it: 'ok' or the errno's name."""
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                result = call()
            except OSError as err:
                result = errno.errorcode.get(err.errno, str(err.errno))
            except BaseException as err:
                result = type(err).__name__
            os.write(write, str(result).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as out:
            result = out.read().decode()
        os.waitpid(pid, 0)
        return result


    def _private(flags):
        # Outside the sandbox this makes the probe's own namespaces, so that the control
        # changes nothing on the host; inside it fails, and the probe tries all the same.
        _libc.unshare(CLONE_NEWUSER | flags)


    def _raw_fork(nr, *args):
        pid = _libc.syscall(nr, *args)
        if pid == 0:
            os._exit(0)  # the new child: nothing to do
        _c(pid)
        os.waitpid(pid, 0)
        return "ok"


    def _mount():
        _private(CLONE_NEWNS)
        target = tempfile.mkdtemp()
        result = _c(_libc.mount(b"none", target.encode(), b"tmpfs", ctypes.c_ulong(0), None))
        _libc.umount2(target.encode(), 2)
        return result


    def _setns():
        _private(CLONE_NEWNET)
        fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        return _c(_libc.setns(fd, CLONE_NEWNET))


    def _sethostname():
        _private(CLONE_NEWUTS)
        name = os.uname().nodename.encode()  # its own name again: no change, even if it works
        return _c(_libc.sethostname(name, ctypes.c_size_t(len(name))))


    def _read_keys(nr):
        # The control adds a key to its own process keyring, so /proc/keys has a line.
        _libc.syscall(nr["add_key"], b"user", b"cove-probe", b"x", ctypes.c_size_t(1),
                      KEY_SPEC_PROCESS_KEYRING)
        lines = Path("/proc/keys").read_text().splitlines()
        return f"{len(lines)} lines" if lines else "empty"


    def _process_vm_readv(nr):
        class IoVec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

        source, target = ctypes.create_string_buffer(b"x" * 8), ctypes.create_string_buffer(8)
        local = IoVec(ctypes.cast(target, ctypes.c_void_p), 8)
        remote = IoVec(ctypes.cast(source, ctypes.c_void_p), 8)
        got = _libc.syscall(nr["process_vm_readv"], os.getpid(), ctypes.byref(local),
                            ctypes.c_ulong(1), ctypes.byref(remote), ctypes.c_ulong(1),
                            ctypes.c_ulong(0))
        return _c(-1 if got != 8 else 0)


    def _os_fork():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        return "ok"


    def _socket(family, kind=socket.SOCK_STREAM):
        socket.socket(family, kind).close()
        return "ok"


    def _thread():
        done = []
        worker = threading.Thread(target=lambda: done.append(1))
        worker.start()
        worker.join()
        return "ok" if done else "not run"


    def _command(argv):
        code = subprocess.run(argv, capture_output=True).returncode
        return "ok" if code == 0 else f"exit {code}"


    def kernel_probes(payload, dataset):
        nr = json.loads(payload)  # syscall numbers, from the host's libseccomp
        clone3_args = (ctypes.c_uint64 * 11)(CLONE_NEWUSER, 0, 0, 0, 17)  # exit signal SIGCHLD
        probes = {
            "unshare(CLONE_NEWUSER)": lambda: _c(_libc.unshare(CLONE_NEWUSER)),
            "unshare(CLONE_NEWNET)": lambda: _c(_libc.unshare(CLONE_NEWNET)),
            "clone(CLONE_NEWUSER)": lambda: _raw_fork(
                nr["clone"], ctypes.c_ulong(CLONE_NEWUSER | 17), *[ctypes.c_ulong(0)] * 4),
            "clone3(CLONE_NEWUSER)": lambda: _raw_fork(
                nr["clone3"], ctypes.byref(clone3_args), ctypes.c_size_t(88)),
            "unshare -U": lambda: _command(["unshare", "-U", "true"]),
            "setns": _setns,
            "mount": _mount,
            "ptrace(PTRACE_TRACEME)": lambda: _c(_libc.ptrace(0, 0, None, None)),
            "process_vm_readv": lambda: _process_vm_readv(nr),
            "keyctl": lambda: _c(_libc.syscall(nr["keyctl"], 0, KEY_SPEC_PROCESS_KEYRING, 1)),
            "add_key": lambda: _c(_libc.syscall(
                nr["add_key"], b"user", b"cove-probe", b"x", ctypes.c_size_t(1),
                KEY_SPEC_PROCESS_KEYRING)),
            "/proc/keys": lambda: _read_keys(nr),
            "sethostname": _sethostname,
            "personality(ADDR_NO_RANDOMIZE)": lambda: _c(_libc.personality(0x0040000)),
            "socket(AF_INET)": lambda: _socket(socket.AF_INET),
            "socket(AF_INET6)": lambda: _socket(socket.AF_INET6),
            "socket(AF_NETLINK)": lambda: _socket(socket.AF_NETLINK, socket.SOCK_RAW),
            "socket(AF_PACKET)": lambda: _socket(socket.AF_PACKET, socket.SOCK_RAW),
            "bpf": lambda: _c(_libc.syscall(nr["bpf"], 0, None, ctypes.c_ulong(0))),
            "perf_event_open": lambda: _c(_libc.syscall(nr["perf_event_open"], None, 0, -1, -1,
                                                        ctypes.c_ulong(0))),
            "userfaultfd": lambda: _c(_libc.syscall(nr["userfaultfd"], 1)),  # UFFD_USER_MODE_ONLY
            "io_uring_setup": lambda: _c(_libc.syscall(nr["io_uring_setup"], 1, None)),
            # What the work does need, under the filter too.
            "socket(AF_UNIX)": lambda: _socket(socket.AF_UNIX),
            "socketpair(AF_UNIX)": lambda: [s.close() for s in socket.socketpair()] and "ok",
            "fork": _os_fork,
            "thread": _thread,
            "exec": lambda: _command(["true"]),
            "personality(query)": lambda: "ok" if _libc.personality(0xFFFFFFFF) >= 0 else "failed",
        }
        results = {name: _isolated(call) for name, call in probes.items()}
        status = dict(line.split(":\\t", 1) for line in Path("/proc/self/status").read_text().splitlines()
                      if line.startswith("Seccomp"))
        results["seccomp mode"] = status.get("Seccomp", "?").strip()
        results["hostname"] = socket.gethostname()
        results["uname nodename"] = os.uname().nodename
        results["/proc/sys/kernel/hostname"] = Path("/proc/sys/kernel/hostname").read_text().strip()
        return _json(results)


    def open_fds(payload, dataset):
        return _json(sorted(int(fd) for fd in os.listdir("/proc/self/fd")))


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


@pytest.fixture(scope="module")
def warm_pool() -> Iterator[dict[tuple[str, str], WarmSandbox]]:
    """The warm sandboxes of this module's tests, one per module and mechanism."""
    pool: dict[tuple[str, str], WarmSandbox] = {}
    yield pool
    for warm in pool.values():
        warm.close()


@dataclass
class Way:
    """How a test's work runs: in a fresh sandbox ("cold") or a warm zygote's fork ("warm")."""

    path: str
    mechanism: str
    pool: dict[tuple[str, str], WarmSandbox]

    def warm(self, module: str = "cove_probe") -> WarmSandbox:
        key = (module, self.mechanism)
        if key not in self.pool:
            self.pool[key] = WarmSandbox(module, "echo", mechanism=self.mechanism)  # type: ignore[arg-type]
        return self.pool[key]

    def __call__(self, function: str, payload: bytes, rules: SandboxPolicy, *,
                 module: str = "cove_probe", stage: str = "sandboxed") -> SandboxResult:
        if self.path == "cold":
            result = run_sandboxed(module, function, payload, rules, mechanism=self.mechanism,  # type: ignore[arg-type]
                                   allow_unsandboxed=self.mechanism == "none", stage=stage)
        else:
            result = self.warm(module).run(payload, rules, function=function, stage=stage)
        assert result.mechanism == self.mechanism
        assert result.warm == (self.path == "warm"), "the warm sandbox fell back to a cold one"
        return result

    def check_log(self, log: Path) -> None:
        """The job's log names the way it ran (for failures, which return no result)."""
        header = [line for line in log.read_text().splitlines() if line.startswith("cove sandbox: ")]
        assert header and ("warm:" in header[-1]) == (self.path == "warm"), header


@pytest.fixture(params=["cold", "warm"])
def way(request: pytest.FixtureRequest, mechanism: str, warm_pool) -> Way:  # type: ignore[no-untyped-def]
    return Way(str(request.param), mechanism, warm_pool)


def run(function: str, files: dict[str, Path], tmp_path: Path, way: Way,
        payload: bytes = b"", **changes: Any) -> Any:
    return json.loads(way(function, payload, policy(files, tmp_path, **changes)).output)


# --- what the work can do ------------------------------------------------------------------


def test_this_machine_has_a_sandbox() -> None:
    # Cove's own test machines must: otherwise every proof below is skipped.
    assert sandbox_available() in ("bwrap", "unshare")


def test_it_reads_the_dataset_and_gets_the_payload(files, tmp_path, way) -> None:
    out = run("echo", files, tmp_path, way, b"hello")
    assert out == {"payload": "hello", "dataset": ROWS}


def test_what_it_prints_goes_to_the_log_not_the_result(files, tmp_path, way) -> None:
    result = way("noisy", b"", policy(files, tmp_path))
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


@pytest.mark.parametrize("layers", ["all", "namespaces alone"])
def test_no_network_not_even_the_hosts_loopback(
    files, tmp_path, way, listeners, layers, monkeypatch
) -> None:
    if layers == "namespaces alone" and way.path == "warm":
        pytest.skip("a warm sandbox never runs without the filter (it runs the job cold instead)")
    if layers == "namespaces alone":
        # The seccomp filter refuses AF_INET sockets outright; without it, the network
        # namespace alone must still keep the work off the host's loopback.
        monkeypatch.setattr(sandbox, "_filter_program", lambda chosen: None)
    # Sanity: the host's own listeners do accept connections from outside the sandbox.
    probe = socket.create_connection(("127.0.0.1", listeners["tcp_port"]), timeout=3)
    probe.close()
    listeners["tcp"].setblocking(True)
    listeners["tcp"].accept()[0].close()
    listeners["tcp"].setblocking(False)

    target = {"tcp_port": listeners["tcp_port"], "abstract": listeners["abstract"]}
    out = run("try_connect", files, tmp_path, way, json.dumps(target).encode())
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


def test_only_the_dataset_is_readable(files, tmp_path, way) -> None:
    paths = _host_files(files)
    assert str(files["secret"]) in paths and len(paths) >= 5
    targets = json.dumps([*paths, str(files["dataset"]), "DATASET"]).encode()
    out = run("try_read", files, tmp_path, way, targets)
    assert out.pop("DATASET") == "read"
    # Cold, the file is bound at the owner's path; warm, only its descriptor reaches the work.
    assert out.pop(str(files["dataset"])) == ("read" if way.path == "cold" else "FileNotFoundError")
    assert out == {p: "FileNotFoundError" for p in paths}


def test_nothing_outside_scratch_is_writable(files, tmp_path, way) -> None:
    venv_file = str(Path(sys.prefix) / "cove-sandbox-probe")
    code_file = str(files["code"] / "cove_probe.py")
    targets = ["DATASET", venv_file, code_file, "/usr/cove-probe",
               "/cove-probe", "/proc/sys/kernel/hostname", "/tmp/scratch-file"]
    if way.path == "cold":
        targets.append(str(files["dataset"]))  # warm, no file is at the owner's path
    out = run("try_write", files, tmp_path, way, json.dumps(targets).encode())
    assert out.pop("/tmp/scratch-file") == "opened"
    assert set(out.values()) == {"Read-only file system"}, out
    assert not Path(venv_file).exists()


def test_the_environment_is_clean(files, tmp_path, way, monkeypatch) -> None:
    monkeypatch.setenv("COVE_PASSWORD", "parent-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "parent-secret")
    env = run("environment", files, tmp_path, way, env={"OMP_NUM_THREADS": "2"})
    assert set(env) == {"PATH", "HOME", "LANG", "OMP_NUM_THREADS"}
    assert env["HOME"] == "/tmp" and env["OMP_NUM_THREADS"] == "2"
    assert "parent-secret" not in json.dumps(env)


def test_it_has_no_capabilities(files, tmp_path, way) -> None:
    caps = run("capabilities", files, tmp_path, way)
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == "0" * 16


# --- the kernel: seccomp filter, keyrings, host name ---------------------------------------------

_SYSCALLS = ("clone", "clone3", "keyctl", "add_key", "bpf", "perf_event_open", "userfaultfd",
             "io_uring_setup", "process_vm_readv")

# What each probe gets inside the sandbox ("ok": allowed, else the errno's name).
REFUSED_INSIDE = {
    "unshare(CLONE_NEWUSER)": "EPERM",
    "unshare(CLONE_NEWNET)": "EPERM",
    "clone(CLONE_NEWUSER)": "EPERM",
    "clone3(CLONE_NEWUSER)": "ENOSYS",  # so that the C library falls back to clone()
    "unshare -U": "exit 1",  # util-linux's unshare, nested: refused
    "setns": "EPERM",
    "mount": "EPERM",
    "ptrace(PTRACE_TRACEME)": "EPERM",
    "process_vm_readv": "EPERM",
    "keyctl": "EPERM",
    "add_key": "EPERM",
    "/proc/keys": "EACCES",  # covered by a nodev bind of /dev/null
    "sethostname": "EPERM",
    "personality(ADDR_NO_RANDOMIZE)": "EPERM",
    "socket(AF_INET)": "EAFNOSUPPORT",
    "socket(AF_INET6)": "EAFNOSUPPORT",
    "socket(AF_NETLINK)": "EAFNOSUPPORT",
    "socket(AF_PACKET)": "EAFNOSUPPORT",
    "bpf": "EPERM",
    "perf_event_open": "EPERM",
    "userfaultfd": "EPERM",
    "io_uring_setup": "EPERM",
}
# What the work needs, allowed inside.
ALLOWED_INSIDE = ("socket(AF_UNIX)", "socketpair(AF_UNIX)", "fork", "thread", "exec",
                  "personality(query)")
# Refused by the kernel's own checks outside the sandbox too when not run by root.
_ROOT_ONLY_CONTROLS = ("bpf", "perf_event_open", "io_uring_setup", "socket(AF_PACKET)")


def _numbers() -> bytes:
    import pyseccomp

    numbers = {name: pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) for name in _SYSCALLS}
    return json.dumps(numbers).encode()


@pytest.fixture
def filtered() -> None:
    if sandbox.seccomp_problem() is not None:
        pytest.fail(f"the seccomp filter cannot be built here: {sandbox.seccomp_problem()}")


def test_the_kernel_surface_training_never_needs_is_refused(
    files, tmp_path, way, filtered
) -> None:
    result = way("kernel_probes", _numbers(), policy(files, tmp_path))
    assert result.seccomp == seccomp_filter.FILTER_NAME
    assert seccomp_filter.FILTER_NAME in result.details
    out = json.loads(result.output)
    assert {name: out[name] for name in REFUSED_INSIDE} == REFUSED_INSIDE
    assert {name: out[name] for name in ALLOWED_INSIDE} == dict.fromkeys(ALLOWED_INSIDE, "ok")
    assert out["seccomp mode"] == "2"  # filtered, by the kernel's own account


def test_the_same_probes_succeed_outside_the_sandbox(files, tmp_path) -> None:
    # The control: unconfined, the very same probes get through, so the test above can fail.
    result = run_sandboxed("cove_probe", "kernel_probes", _numbers(), policy(files, tmp_path),
                           mechanism="none", allow_unsandboxed=True)
    assert result.seccomp is None and result.details.startswith("none: unconfined")
    out = json.loads(result.output)
    assert out["seccomp mode"] == "0"
    assert out["/proc/keys"].endswith("lines")  # at least the probe's own key
    assert out["hostname"] != entry.HOSTNAME
    for name, inside in REFUSED_INSIDE.items():
        if name == "/proc/keys" or (name in _ROOT_ONLY_CONTROLS and os.geteuid() != 0):
            continue
        # "ok", or a complaint about the probe's own dummy arguments (EINVAL, EFAULT).
        assert out[name] != inside and out[name] in ("ok", "EINVAL", "EFAULT"), name


def test_host_name_and_keyrings_are_hidden(files, tmp_path, way) -> None:
    out = run("kernel_probes", files, tmp_path, way, _numbers())
    assert out["hostname"] == out["uname nodename"] == entry.HOSTNAME
    assert out["/proc/sys/kernel/hostname"] == entry.HOSTNAME
    targets = [p for p in entry.MASKED_PROC_FILES if Path(p).exists()]
    assert "/proc/keys" in targets and "/proc/key-users" in targets
    assert set(run("try_read", files, tmp_path, way, json.dumps(targets).encode()).values()) \
        == {"PermissionError"}


def test_no_descriptor_but_the_pipes_reaches_the_work(files, tmp_path, way) -> None:
    # The filter's descriptor is read (by bwrap, or the init) and closed before the work;
    # warm, the zygote's control socket and the job's socket are closed in the child.
    fds = run("open_fds", files, tmp_path, way)
    if way.path == "cold":
        assert fds == [0, 1, 2, 3, 4]  # stdin, stdout, stderr, the result pipe, listdir's own
    else:
        assert fds == [0, 1, 2, 3, 4, 5]  # the same, and the dataset's descriptor (4)


def test_the_filter_allows_no_other_abi(filtered) -> None:
    # A call through another ABI (i386's int 0x80, x32) would bypass rules written for the
    # native numbers: the filter kills instead.
    pfc = seccomp_filter.pseudo_code()
    assert "invalid architecture action\naction KILL_PROCESS" in pfc
    assert pfc.count("filter for arch") == 1


def test_an_older_libseccomp_still_refuses_the_newer_calls(filtered, monkeypatch) -> None:
    # A libseccomp that does not know clone3 by name must not drop its rule.
    import pyseccomp

    known = pyseccomp.resolve_syscall
    monkeypatch.setattr(pyseccomp, "resolve_syscall",
                        lambda arch, name: -1 if name == "clone3" else known(arch, name))
    pfc = seccomp_filter.pseudo_code()
    assert "if ($syscall == 435)\n    action ERRNO(38);" in pfc


def test_without_libseccomp_it_refuses_unless_the_policy_allows(
    files, tmp_path, mechanism, monkeypatch
) -> None:
    monkeypatch.setattr(sandbox, "seccomp_problem", lambda: "libseccomp cannot be loaded (test)")
    monkeypatch.setattr(seccomp_filter, "program", _no_filter)
    assert sandbox_available() is None  # a default policy could not run here
    with pytest.raises(SandboxError, match="seccomp filter cannot be made") as caught:
        run_sandboxed("cove_probe", "echo", b"", policy(files, tmp_path), mechanism=mechanism)
    assert caught.value.reason == "unavailable"
    # Allowed to run unsandboxed, it does not pretend: it runs, and says, "none".
    assert run_sandboxed("cove_probe", "echo", b"", policy(files, tmp_path),
                         allow_unsandboxed=True).mechanism == "none"
    # A policy that accepts namespaces without the filter gets them, and the result says so.
    result = run_sandboxed("cove_probe", "kernel_probes", _numbers(),
                           policy(files, tmp_path, require_seccomp=False), mechanism=mechanism)
    assert result.mechanism == mechanism and result.seccomp is None
    assert "no seccomp filter (libseccomp cannot be loaded (test))" in result.details
    assert json.loads(result.output)["seccomp mode"] == "0"
    assert "no seccomp filter" in result.log_path.read_text()


def _no_filter() -> bytes:
    raise seccomp_filter.FilterUnavailable("libseccomp cannot be loaded (test)")


def test_filter_unavailable_reasons(monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pyseccomp(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "pyseccomp":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyseccomp)
    monkeypatch.setattr(seccomp_filter, "_cached", None)
    assert seccomp_filter.unavailable_reason() == "the pyseccomp package is not installed"
    monkeypatch.setattr(seccomp_filter, "_cached", None)
    monkeypatch.setattr(seccomp_filter, "_kernel_supports_seccomp", lambda: False)
    assert seccomp_filter.unavailable_reason() == "the kernel has no seccomp support"
    monkeypatch.setattr(seccomp_filter, "_cached", None)  # and the next caller rebuilds it


# --- DP training under the filter --------------------------------------------------------------


def test_dp_training_completes_in_the_filtered_sandbox(tmp_path, way, filtered) -> None:
    # The runner's own job (torch + Opacus, Poisson sampling, worker threads) under the filter;
    # warm, in a fork of a zygote that imported them (torch's thread pool starts in the fork).
    import base64

    from conftest import make_table
    from safetensors.torch import load as load_safetensors

    from compute_to_data.job_training import TrainingOrder, TrainingOutput
    from exchange.datasets import CommitmentKey, commit, draft_schema, load_table
    from exchange.ml.accounting import DpParams
    from exchange.ml.model import build_model
    from exchange.ml.spec import ModelSpec

    spec = ModelSpec.parse({
        "task": "classification", "features": ["age", "bmi", "smoker"], "target": "diagnosis",
        "layers": [{"type": "Linear", "out_features": 4}, {"type": "ReLU"},
                   {"type": "Linear", "out_features": 2}],
        "loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.01,
        "expected_batch_size": 32, "epochs": 1,
        "dp": {"noise_multiplier": 1.5, "delta": 1e-5, "max_grad_norm": 1.0},
    })  # fmt: skip
    data = tmp_path / "patients.csv"
    make_table(rows=300).to_csv(data, index=False)
    frame = load_table(data)
    schema = draft_schema(frame)
    key = CommitmentKey(bytes(range(32)))
    params = DpParams.for_spec(spec, 300)
    order = TrainingOrder(spec=spec.to_json().decode(), dataset_schema=schema, public_rows=300,
                          commitment=commit(frame, key).digest, commitment_key=key.secret.hex(),
                          dp=params.to_onchain(), delta=params.delta_fixed, device="cpu")
    rules = SandboxPolicy(dataset=data, cpu_seconds=300, memory_bytes=6 << 30, wall_seconds=300,
                          log_path=tmp_path / "training.log")
    result = way("train_job", order.model_dump_json().encode(), rules,
                 module="compute_to_data.job_training", stage="training")
    assert result.seccomp == seccomp_filter.FILTER_NAME
    output = TrainingOutput.model_validate_json(result.output)
    weights = load_safetensors(base64.b64decode(output.weights))
    assert set(weights) == {name for name, _ in build_model(spec, schema).named_parameters()}
    assert output.run["epsilon"] > 0 and output.run["device"] == "cpu"


# --- limits ------------------------------------------------------------------------------------


def _failure(  # type: ignore[no-untyped-def]
    function: str, files, tmp_path, way: Way | str, **changes: Any
) -> SandboxError:
    if isinstance(way, str):  # a mechanism: cold
        way = Way("cold", way, {})
    with pytest.raises(SandboxError) as caught:
        way(function, b"", policy(files, tmp_path, **changes), stage="training")
    assert caught.value.log_path == str(tmp_path / "sandbox.log")
    way.check_log(tmp_path / "sandbox.log")
    return caught.value


def test_wall_clock_limit_kills_it(files, tmp_path, way) -> None:
    started = time.monotonic()
    error = _failure("sleep_forever", files, tmp_path, way, wall_seconds=1.5)
    assert error.reason == "timeout"
    assert "wall-clock limit" in str(error) and str(error).startswith("The training step")
    assert time.monotonic() - started < 10


def test_every_process_it_started_dies_with_it(files, tmp_path, way) -> None:
    error = _failure("orphan_then_sleep", files, tmp_path, way, wall_seconds=1.5)
    assert error.reason == "timeout"
    log = tmp_path / "sandbox.log"
    time.sleep(0.5)
    before = log.read_text().count("orphan alive")
    assert before > 0  # it did run
    time.sleep(1.5)
    assert log.read_text().count("orphan alive") == before  # and nothing writes any more


def test_a_lingering_grandchild_does_not_delay_the_result(files, tmp_path, way) -> None:
    if way.path == "warm":
        assert way.warm().start(policy(files, tmp_path))  # so that the job alone is timed
    started = time.monotonic()
    result = way("orphan_holding_result", b"", policy(files, tmp_path))
    assert result.output == b"done"
    # The namespace died with the work (cold), or the zygote killed the stray (warm).
    assert time.monotonic() - started < 3


def test_memory_limit_stops_a_hog(files, tmp_path, way) -> None:
    error = _failure("hog_memory", files, tmp_path, way, memory_bytes=512 << 20)
    assert error.reason == "memory"
    assert "memory limit" in str(error)


def test_cpu_limit_stops_a_busy_loop(files, tmp_path, way) -> None:
    started = time.monotonic()
    error = _failure("burn_cpu", files, tmp_path, way, cpu_seconds=1, wall_seconds=30)
    assert error.reason == "cpu"
    assert time.monotonic() - started < 15


# --- failures say nothing about the data ---------------------------------------------------------


def test_errors_are_generic_and_details_stay_in_the_log(files, tmp_path, way) -> None:
    error = _failure("leak_in_error", files, tmp_path, way)
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
def test_failure_reasons(files, tmp_path, way, function, reason, changes) -> None:
    assert _failure(function, files, tmp_path, way, **changes).reason == reason


def test_a_missing_module_is_an_import_failure(files, tmp_path, mechanism) -> None:
    with pytest.raises(SandboxError) as caught:
        run_sandboxed("cove_no_such_module", "f", b"", policy(files, tmp_path), mechanism=mechanism)
    assert caught.value.reason == "import"


# --- without a sandbox ------------------------------------------------------------------------


@pytest.fixture
def no_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "_best_mechanism", lambda: None)
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
