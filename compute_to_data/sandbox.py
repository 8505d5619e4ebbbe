"""Run one piece of work on private data in a confined child process.

`run_sandboxed(module, function, payload, policy)` starts a fresh Python that imports
`module.function`, calls `function(payload: bytes, dataset: Path) -> bytes` and hands the
bytes back. The child gets, whichever mechanism builds the sandbox:

- no network: a new network namespace with only its own loopback (down under unshare,
  up but empty under bwrap), so even the host's 127.0.0.1 and abstract Unix sockets are
  out of reach;
- a file system of read-only bind mounts holding only the Python installation and
  virtual environment, the code packages it imports, the one dataset file and a few
  device nodes (null, zero, full, random, urandom), plus a size-limited scratch tmpfs at
  /tmp that is also HOME. The owner's home, other data, keystores and /etc are absent;
- a clean environment: PATH, HOME, LANG and the variables the policy names;
- its own PID, IPC and UTS namespaces: it sees and signals no host process, every
  process it starts dies with it, and its host name is "cove-sandbox", not the host's;
- no capabilities (unshare mechanism: dropped, bounding set emptied, no_new_privs);
- a seccomp filter (`compute_to_data.seccomp_filter`, named in the result) that refuses
  what training never needs: new namespaces (unshare, setns, clone with namespace flags;
  clone3 gets ENOSYS so the C library falls back to clone), mount and pivot_root, ptrace
  and other processes' memory, the kernel keyrings, bpf, perf_event_open, userfaultfd,
  io_uring, modules, kexec, reboot, swap, clocks, host and domain names, sockets of any
  family but AF_UNIX, and personality flags that weaken ASLR; a call through another
  ABI (i386, x32) kills the process. Installed by bwrap (`--seccomp FD`) or, under
  unshare, by the entry after no_new_privs, it binds every thread and child for good;
- /proc's views of other tasks' kernel state covered: /proc/keys and /proc/key-users
  (the runner's uid's keyrings), /proc/timer_list and the like cannot be opened;
- limits on CPU time (RLIMIT_CPU), address space (RLIMIT_AS) and wall-clock time (the
  parent kills the whole process group), no core dumps, and a cap on the result's size.

Mechanisms, best first: `bwrap` (bubblewrap, when installed) and `unshare` (util-linux,
with `compute_to_data.sandbox_entry` building the mounts). When neither works the caller
must say `allow_unsandboxed=True` to run anyway; the result then reports mechanism
"none" so the provenance record says the work ran unconfined.

The filter is compiled in this process with libseccomp (the `pyseccomp` binding). Where
it cannot be (no libseccomp, no pyseccomp, no kernel support), a sandbox is refused like
a missing one (`sandbox_available()` is None, SandboxError "unavailable"), and with
`allow_unsandboxed` the work runs, and is reported, as "none": a weaker sandbox is never
recorded under a sandbox's name. Only a policy with `require_seccomp=False` runs in the
namespaces without the filter; its result says so (`seccomp` None, `details`).

/proc is the sandbox's own and read-only: when the runner runs as root, the child is
uid 0 mapped to the host's root, and the kernel checks writes to /proc/sys by uid, not by
capability (bwrap's own /proc cover misses /proc/sys, so it is remounted read-only too).

Not isolated: the kernel itself beyond the filter (it is a deny-list: the system calls
training uses, file systems, memory, futexes, threads, remain, and with them their
kernel bugs), CPU and memory bandwidth shared with the host, the number of processes and
threads (bounded only by the wall clock), host-wide figures in /proc (cpuinfo, meminfo,
stat, loadavg, uptime) and the paths of the bound files in /proc/self/mountinfo, GPU
device nodes when the policy passes them (and CUDA needs `memory_bytes=None`), and memory
in the scratch tmpfs (bounded by its size, not by RLIMIT_AS). The kernel keyrings of the
runner's uid are still attached (a session keyring is inherited) but cannot be listed or
used: keyctl, add_key and request_key are refused. Under bwrap the NIS domain name is the
host's (usually "(none)"). The child's command line (paths, limits, the policy's `env`)
is visible in the host's process list. Unconfined ("none"), only the clean environment,
the rlimits and the wall clock apply, and a descendant that starts its own session
escapes the kill.

Failures raise SandboxError with a generic sentence (stage and reason). The child's
stderr, which could quote private data, goes only to a log file the owner reads.

This is the cold path: a new sandbox, and a new Python that imports the work, per call.
`compute_to_data.warm_sandbox.WarmSandbox` builds the same sandbox once around a zygote
that has imported the work, and forks a fresh child of it per job, with the same limits,
the same result and `SandboxResult.warm` set; its docstring says why each job is as
isolated as here, and where it falls back to this path.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from compute_to_data import sandbox_entry as entry
from compute_to_data import seccomp_filter
from exchange.errors import SandboxError

Mechanism = Literal["bwrap", "unshare", "none"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_ENV = frozenset({"PATH", "HOME", "LANG"})
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
# The packages of this project that sandboxed work may import (the runner's own code).
_PROJECT_PACKAGES = ("compute_to_data", "exchange")
_MIB = 1024 * 1024
# New user (mapping the caller to root inside), network, mount, PID, IPC, UTS and cgroup
# namespaces; unshare forks PID 1 of the new namespace and SIGKILLs it if unshare dies.
_UNSHARE_FLAGS = [
    "--user", "--map-root-user", "--net", "--mount", "--pid", "--ipc", "--uts", "--cgroup",
    "--fork", "--kill-child", "--",
]

_REASONS = {
    "timeout": "it ran past its wall-clock limit and was killed",
    "cpu": "it used up its CPU-time limit and was killed",
    "memory": "it ran out of its memory limit",
    "killed": "it was killed (by a resource limit or the system)",
    "crash": "it crashed",
    "error": "the work raised an error",
    "import": "the work's code could not be loaded",
    "output": "it returned no result, a result that is not bytes, or one that is too large",
    "setup": "the sandbox could not be set up",
}


class SandboxPolicy(BaseModel):
    """What one sandboxed run may touch and use."""

    model_config = ConfigDict(frozen=True)

    dataset: Path = Field(description="the one private file the work may read (read-only)")
    cpu_seconds: int = Field(gt=0, description="CPU time, all threads together (RLIMIT_CPU)")
    memory_bytes: int | None = Field(
        gt=0,
        description="address-space limit (RLIMIT_AS); None only for CUDA, which reserves "
        "far more virtual memory than it uses",
    )
    wall_seconds: float = Field(gt=0, description="wall-clock limit; the child is killed after it")
    max_output_bytes: int = Field(default=512 * _MIB, gt=0)
    scratch_bytes: int = Field(default=64 * _MIB, gt=0, description="size of the /tmp tmpfs")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="extra environment variables; not for secrets: they travel on the child's "
        "command line, which the host's process list shows",
    )
    python_path: tuple[Path, ...] = Field(
        default=(), description="extra directories of code, read-only and on sys.path"
    )
    devices: tuple[Path, ...] = Field(
        default=(), description="extra device nodes, e.g. the GPU's (see gpu_devices())"
    )
    log_path: Path | None = Field(
        default=None, description="where the child's stderr goes; a private temp file if None"
    )
    require_seccomp: bool = Field(
        default=True,
        description="refuse to run (SandboxError 'unavailable') where the seccomp filter "
        "cannot be built or installed; False runs in the namespaces without it and the "
        "result says so (SandboxResult.seccomp is None)",
    )

    @field_validator("dataset")
    @classmethod
    def _dataset_is_a_file(cls, value: Path) -> Path:
        resolved = value.expanduser().resolve()
        if not resolved.is_file():
            raise ValueError(f"the dataset {value} is not a readable file")
        return resolved

    @field_validator("python_path")
    @classmethod
    def _code_dirs_exist(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        resolved = tuple(p.expanduser().resolve() for p in value)
        for path in resolved:
            if not path.is_dir():
                raise ValueError(f"the code directory {path} does not exist")
        return resolved

    @field_validator("devices")
    @classmethod
    def _devices_under_dev(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        for path in value:
            if path.parent != Path("/dev") and Path("/dev") not in path.parents:
                raise ValueError(f"{path} is not a device node under /dev")
            if not path.exists():
                raise ValueError(f"the device {path} does not exist")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME.match(name) or name in _RESERVED_ENV:
                raise ValueError(f"{name!r} cannot be passed to the sandbox")
        return value


@dataclass(frozen=True)
class SandboxResult:
    output: bytes
    mechanism: Mechanism  # record this in provenance: "none" means it ran unconfined
    log_path: Path
    wall_seconds: float
    # The seccomp filter the work ran under (seccomp_filter.FILTER_NAME), or None: record
    # it too. None with a mechanism other than "none" only when the policy said
    # require_seccomp=False on a machine that cannot build the filter.
    seccomp: str | None = None
    details: str = ""  # one sentence for the owner's log and provenance: what confined it
    # True when a warm sandbox ran it (a fork of its pre-imported zygote, see
    # compute_to_data.warm_sandbox); False for a fresh sandbox of its own.
    warm: bool = False


def gpu_devices() -> tuple[Path, ...]:
    """The NVIDIA device nodes present here, to pass as `SandboxPolicy.devices` for CUDA."""
    return tuple(sorted(Path("/dev").glob("nvidia*")))


def _probe(argv: list[str]) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=20, env={"PATH": _SAFE_PATH}, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _unshare() -> str | None:
    return shutil.which("unshare")


@functools.cache
def _works(mechanism: Mechanism) -> bool:
    """Whether the mechanism's namespaces can be made here (the seccomp filter aside)."""
    if mechanism == "bwrap":
        binary = _bwrap()
        # The flags run_sandboxed relies on (--size needs bubblewrap 0.7 or later).
        return binary is not None and _probe(
            [binary, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
             "--hostname", entry.HOSTNAME, "--ro-bind", "/", "/", "--size", "1048576",
             "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/proc",
             "--", "/bin/true"]
        )
    if mechanism == "unshare":
        binary = _unshare()
        return binary is not None and _probe([binary, *_UNSHARE_FLAGS, "/bin/true"])
    return mechanism == "none"


def _best_mechanism() -> Mechanism | None:
    for mechanism in ("bwrap", "unshare"):
        if _works(mechanism):  # type: ignore[arg-type]
            return mechanism  # type: ignore[return-value]
    return None


def seccomp_problem() -> str | None:
    """Why the sandbox's seccomp filter cannot be built here, or None when it can."""
    return seccomp_filter.unavailable_reason()


def sandbox_available() -> Mechanism | None:
    """The mechanism `run_sandboxed` would use here ("bwrap" or "unshare"), or None.

    None also where the namespaces work but the seccomp filter cannot be built (see
    `seccomp_problem()`): a default policy (require_seccomp) refuses to run there.
    """
    if seccomp_problem() is not None:
        return None
    return _best_mechanism()


def _top_level_location(module: str) -> list[str]:
    """Where the top-level package of `module` lives, found without importing it."""
    try:
        spec = find_spec(module.split(".")[0])
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [str(p) for p in spec.submodule_search_locations]
    return [spec.origin] if spec.origin else []


def _readonly_paths(module: str, policy: SandboxPolicy) -> list[str]:
    """Everything the child may read: Python, the venv, the code it imports, the dataset."""
    return _code_paths(module, policy.python_path, extra=(policy.dataset,))


def _code_paths(module: str, python_path: tuple[Path, ...], extra: tuple[Path, ...] = ()) -> list[str]:
    """Python, the venv and the code `module` imports (and `extra`), as read-only binds."""
    paths = {sys.base_prefix, sys.prefix, *(str(p) for p in extra)}
    paths.update(str(p) for p in python_path)
    for name in (*_PROJECT_PACKAGES, module):
        paths.update(_top_level_location(name))
    paths.add("/usr")
    existing = {os.path.realpath(p) for p in paths if os.path.isabs(p) and os.path.exists(p)}
    kept: list[str] = []
    for path in sorted(existing, key=len):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)  # a path inside one already bound is visible anyway
    return sorted(kept)


def _child_env(policy: SandboxPolicy, home: str) -> dict[str, str]:
    return _clean_env(policy.env, home)


def _clean_env(extra: dict[str, str], home: str) -> dict[str, str]:
    env = {"PATH": _SAFE_PATH, "HOME": home, "LANG": os.environ.get("LANG") or "C.UTF-8"}
    env.update(extra)
    return env


def _spec(
    module: str, function: str, policy: SandboxPolicy, home: str, root: str,
    seccomp_fd: int | None = None,
) -> dict[str, Any]:
    return {
        "module": module,
        "function": function,
        "dataset": str(policy.dataset),
        "python_path": [str(p) for p in policy.python_path],
        "cpu_seconds": policy.cpu_seconds,
        "memory_bytes": policy.memory_bytes,
        "max_output_bytes": policy.max_output_bytes,
        "scratch_bytes": policy.scratch_bytes,
        "devices": [str(p) for p in policy.devices],
        "ro_paths": _readonly_paths(module, policy),
        "root": root,
        "python": sys.executable,
        "env": _child_env(policy, home),
        "seccomp_fd": seccomp_fd,
    }


def _entry_argv(mode: str, spec: dict[str, Any]) -> list[str]:
    return [sys.executable, "-I", "-B", "-m", "compute_to_data.sandbox_entry", mode,
            json.dumps(spec)]


def _bwrap_argv(spec: dict[str, Any]) -> list[str]:
    argv = [_bwrap() or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--clearenv"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        if os.path.islink("/" + name):
            argv += ["--symlink", os.readlink("/" + name), "/" + name]
    # bwrap applies these in order: the scratch /tmp must come before binds that land in it.
    argv += ["--size", str(spec["scratch_bytes"]), "--tmpfs", "/tmp"]
    argv += ["--dev", "/dev", "--proc", "/proc"]
    # The runner's uid's keyrings and every host task's timers: covered (see entry).
    for path in entry.MASKED_PROC_FILES:
        if os.path.exists(path):
            argv += ["--ro-bind", "/dev/null", path]
    # --unshare-all gave it a UTS namespace; the host's name is not copied into it.
    argv += ["--hostname", entry.HOSTNAME]
    if spec["seccomp_fd"] is not None:
        # Installed by bwrap last, after no_new_privs, just before it execs the entry.
        argv += ["--seccomp", str(spec["seccomp_fd"])]
    for path in spec["ro_paths"]:
        argv += ["--ro-bind", path, path]
    argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    for device in spec["devices"]:
        argv += ["--dev-bind", device, device]
    # Read-only /proc: run by root, the sandboxed uid 0 could otherwise write host sysctls
    # (proc checks those by uid, not capability, and bwrap's own cover skips /proc/sys).
    argv += ["--chdir", "/tmp"]
    argv += ["--remount-ro", "/", "--remount-ro", "/proc", "--remount-ro", "/dev"]
    for name, value in spec["env"].items():
        argv += ["--setenv", name, value]
    return [*argv, "--", *_entry_argv(spec.get("mode", "run"), spec)]


def _command(mechanism: Mechanism, spec: dict[str, Any]) -> list[str]:
    if mechanism == "bwrap":
        return _bwrap_argv(spec)
    if mechanism == "unshare":
        return [_unshare() or "unshare", *_UNSHARE_FLAGS, *_entry_argv("init", spec)]
    return _entry_argv(spec.get("mode", "run"), spec)


def _choose(
    mechanism: Mechanism | None, allow_unsandboxed: bool, require_seccomp: bool
) -> Mechanism:
    chosen = mechanism or _best_mechanism() or "none"
    if chosen != "none" and not _works(chosen):
        raise SandboxError(f"The {chosen} sandbox cannot be used on this machine.")
    problem = seccomp_problem()
    if chosen != "none" and require_seccomp and problem is not None:
        if mechanism is None and allow_unsandboxed:
            chosen = "none"  # what the owner allowed, and what provenance will say
        else:
            raise SandboxError(
                f"The sandbox's seccomp filter cannot be made on this machine ({problem}); "
                "install libseccomp (Debian: libseccomp2) and the pyseccomp package, or "
                "allow unsandboxed runs."
            )
    if chosen == "none" and not allow_unsandboxed:
        raise SandboxError(
            "No sandbox (bubblewrap or unshare with user namespaces) works on this machine; "
            "install bubblewrap or enable unprivileged user namespaces, or allow unsandboxed runs."
        )
    return chosen


def _log_file(policy: SandboxPolicy) -> Path:
    if policy.log_path is not None:
        policy.log_path.parent.mkdir(parents=True, exist_ok=True)
        return policy.log_path
    handle, name = tempfile.mkstemp(prefix="cove-sandbox-", suffix=".log")  # mode 0600
    os.close(handle)
    return Path(name)


class _Pipes:
    """Feeds the payload and collects at most `limit` result bytes without blocking the wait.

    `on_overflow` stops the work once the result is too large (no need to wait for the
    wall clock): kill the group (cold), or ask the zygote to stop the child (warm).
    """

    def __init__(
        self, stdin: IO[bytes], stdout: IO[bytes], payload: bytes, limit: int,
        on_overflow: Callable[[], None],
    ):
        self.chunks: list[bytes] = []
        self.overflow = False
        self._limit = limit
        self._on_overflow = on_overflow
        self._threads = [
            threading.Thread(target=self._feed, args=(stdin, payload), daemon=True),
            threading.Thread(target=self._collect, args=(stdout,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _feed(self, stdin: IO[bytes], payload: bytes) -> None:
        try:
            stdin.write(payload)
        except (BrokenPipeError, OSError):
            pass  # the child died or stopped reading; its exit status tells why
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _collect(self, stdout: IO[bytes]) -> None:
        size = 0
        while chunk := stdout.read(1 << 16):
            size += len(chunk)
            if size > self._limit:
                self.overflow = True
                self._on_overflow()
                break
            self.chunks.append(chunk)

    def finished_by(self, deadline: float) -> bool:
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reason(returncode: int) -> str:
    signal_number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if returncode == entry.EXIT_CPU or signal_number == signal.SIGXCPU:
        return "cpu"
    if returncode == entry.EXIT_MEMORY:
        return "memory"
    if signal_number == signal.SIGKILL:
        return "killed"
    return {
        entry.EXIT_SETUP: "setup",
        entry.EXIT_IMPORT: "import",
        entry.EXIT_RAISED: "error",
        entry.EXIT_OUTPUT: "output",
    }.get(returncode, "crash")


def _failure(stage: str, reason: str, log: Path) -> SandboxError:
    return SandboxError(
        f"The {stage} step failed in the sandbox: {_REASONS[reason]} (details in {log}).",
        reason=reason,
        log_path=str(log),
    )


def _frame_limit(policy: SandboxPolicy) -> int:
    """The most bytes a framed result may have on the pipe."""
    return policy.max_output_bytes + len(entry.FRAME_MAGIC) + 8


def _unframe(data: bytes, limit: int) -> bytes | None:
    head = len(entry.FRAME_MAGIC) + 8
    if len(data) < head or not data.startswith(entry.FRAME_MAGIC):
        return None
    size = int.from_bytes(data[len(entry.FRAME_MAGIC) : head], "big")
    body = data[head:]
    return body if len(body) == size <= limit else None


def run_sandboxed(
    module: str,
    function: str,
    payload: bytes,
    policy: SandboxPolicy,
    *,
    allow_unsandboxed: bool = False,
    mechanism: Mechanism | None = None,
    stage: str = "sandboxed",
) -> SandboxResult:
    """Run `module.function(payload, dataset_path) -> bytes` in a sandbox; return its bytes.

    `mechanism` forces one ("bwrap", "unshare", or "none" with allow_unsandboxed) instead
    of the best available. `stage` names the step in error messages ("training", ...).
    Raises SandboxError when no sandbox can be made (unless allow_unsandboxed) and when
    the work fails, with a generic reason; details only in the log file.
    """
    if not _IDENTIFIER.match(module) or not _IDENTIFIER.match(function) or "." in function:
        raise SandboxError(f"'{module}:{function}' is not a module and function name.", "input")
    chosen = _choose(mechanism, allow_unsandboxed, policy.require_seccomp)
    program = _filter_program(chosen)
    details = _details(chosen, program is not None)
    log = _log_file(policy)
    with tempfile.TemporaryDirectory(prefix="cove-sandbox-") as scratch:
        # Inside a sandbox /tmp is the scratch tmpfs; unconfined, a private temp directory.
        home = scratch if chosen == "none" else "/tmp"
        filter_fd = _filter_fd(program) if program is not None else None
        try:
            spec = _spec(module, function, policy, home, root=scratch, seccomp_fd=filter_fd)
            started = time.monotonic()
            # Owner-only: a traceback in the log may quote private rows.
            log_fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with open(log_fd, "ab") as log_handle:
                log_handle.write(f"cove sandbox: {details}\n".encode())
                log_handle.flush()
                process = subprocess.Popen(
                    _command(chosen, spec),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log_handle,
                    env=spec["env"],
                    cwd=scratch,
                    start_new_session=True,  # one process group to kill on timeout
                    close_fds=True,
                    pass_fds=() if filter_fd is None else (filter_fd,),
                )
        finally:
            if filter_fd is not None:
                os.close(filter_fd)  # the child has its own copy (bwrap, or the init, reads it)
        output = _wait(process, payload, policy, stage, log, started)
    return SandboxResult(output, chosen, log, time.monotonic() - started,
                         seccomp=seccomp_filter.FILTER_NAME if program is not None else None,
                         details=details)


def _filter_program(chosen: Mechanism) -> bytes | None:
    """The BPF program to install, or None: unconfined, or not buildable (and not required)."""
    if chosen == "none":
        return None
    try:
        return seccomp_filter.program()
    except seccomp_filter.FilterUnavailable:
        return None  # _choose already refused unless the policy allows this


def _details(chosen: Mechanism, filtered: bool) -> str:
    problem = seccomp_problem()
    if chosen == "none":
        why = f"; the seccomp filter cannot be made here: {problem}" if problem else ""
        return f"none: unconfined (clean environment, rlimits and wall clock only{why})"
    if filtered:
        return f"{chosen}: namespaces, read-only view, seccomp filter {seccomp_filter.FILTER_NAME}"
    return f"{chosen}: namespaces and read-only view, no seccomp filter ({problem})"


def _filter_fd(program: bytes) -> int:
    """A file descriptor at offset 0 of a private in-memory file holding `program`."""
    try:
        fd = os.memfd_create("cove-seccomp")  # close-on-exec; pass_fds hands it on
    except (AttributeError, OSError):
        handle, name = tempfile.mkstemp(prefix="cove-seccomp-")
        os.unlink(name)
        fd = handle
    try:
        view = memoryview(program)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _wait(
    process: subprocess.Popen[bytes],
    payload: bytes,
    policy: SandboxPolicy,
    stage: str,
    log: Path,
    started: float,
) -> bytes:
    deadline = started + policy.wall_seconds
    assert process.stdin is not None and process.stdout is not None
    pipes = _Pipes(process.stdin, process.stdout, payload, _frame_limit(policy),
                   lambda: _kill_group(process))
    try:
        returncode = process.wait(max(0.0, deadline - time.monotonic()))
        # An unconfined child's stray descendants may still hold the result pipe open.
        complete = pipes.finished_by(deadline)
    except subprocess.TimeoutExpired:
        complete = False
    finally:
        _kill_group(process)
        process.wait()
    if complete:
        # Closing while the collector still reads would block on its lock, so only now;
        # after a timeout the daemon threads end when the last writer dies.
        for stream in (process.stdout, process.stdin):
            if stream is not None:
                stream.close()
    else:
        raise _failure(stage, "timeout", log)
    if pipes.overflow:
        raise _failure(stage, "output", log)
    if returncode != 0:
        raise _failure(stage, _reason(returncode), log)
    output = _unframe(b"".join(pipes.chunks), policy.max_output_bytes)
    if output is None:
        raise _failure(stage, "output", log)
    return output
