"""A warm sandbox: one pre-imported, sandboxed zygote that forks a fresh process per job.

`run_sandboxed` starts a new sandbox per job, and the child spends most of a small job
importing torch, Opacus and pandas (about 13 s of a 14 s job, against 1 s of training).
`WarmSandbox(module, function)` pays that once: it starts a *zygote*, a long-lived Python
in the same kind of sandbox as the cold path (`compute_to_data.sandbox`: bwrap or
unshare, the same namespaces, read-only binds of only the code, the same seccomp filter,
the clean environment, the scratch tmpfs at /tmp, the covered /proc files), which imports
`module` (and so torch and the rest) and then waits. `run(payload, policy)` sends it one
job; it forks a child, which runs the work exactly as the cold worker does
(`sandbox_entry._work`) and exits. The result is a `SandboxResult` like the cold one,
with `warm=True`.

What keeps each job as isolated as the cold path:

- No data in the zygote. Its mount namespace holds no dataset, and it reads none: it is
  started with the code only, never receives a payload, a result or a dataset, and holds
  no secret (the commitment key travels in the payload). Per job the runner sends it four
  descriptors: a socket, the payload pipe's read end, the result pipe's write end and the
  job's log. The zygote forks, closes all four and only then says "started"; the runner
  writes the payload, and sends the dataset's descriptor over the socket, only after that,
  so nothing private is ever behind a descriptor the zygote holds.
- Only that job's dataset. The runner opens the file read-only through a read-only mount
  (a short-lived helper in a mount namespace of its own, `sandbox_entry` mode `open`): a
  descriptor opened on the owner's writable mount could be reopened for writing through
  /proc/self/fd, or fchmod-ed; on a read-only mount both get EROFS, as in the cold path.
  The child receives it, with the file's name, over the job's socket with SCM_RIGHTS (the
  filter allows AF_UNIX), checks it (regular file, read-only, on a read-only mount) and
  sees it as /tmp/.cove-dataset/<the file's name>, a link to /proc/self/fd/4 (the reader
  goes by the extension). The zygote never learns even the name: what it is told of a job
  (the function, the limits) is public, so no child finds a trace of an earlier job in the
  zygote's memory it copies. No other dataset exists in its view, and no other job's
  descriptor: each child keeps exactly its own, and the zygote has none but its own four.
- One fresh process per job, nothing shared between jobs. Each child is a fork of the
  clean zygote (copy-on-write: what a child changes, Python module globals included, dies
  with it). After each job the zygote, a child subreaper, kills every other process of
  the PID namespace (kill(-1): strays that left the job's session too) and reaps them
  until /proc shows only the init and itself; it empties /tmp and resets its mode, times
  and extended attributes; and it checks the IPC namespace holds no System V object.
  Creating those (and POSIX message queues, which cannot be listed) is refused in the
  warm sandbox by a second seccomp layer, `IPC_FILTER_NAME`, on top of the cold path's
  filter: the IPC namespace outlives a job here. Anything it cannot clean, or any sign
  that a fork would not copy a clean zygote (a Python thread, more native threads than
  after the imports, CUDA initialised, descriptors that appeared), stops the zygote (a job
  it refused runs cold); the next job gets a new one. The mounts below /tmp must not have
  moved: code bound from below the host's /tmp (a test's temporary directory) sits in the
  scratch tmpfs, and a job that renamed a directory on the way there could plant modules
  for the next. Once ready, the zygote imports nothing more (a finder refuses), so it
  never runs anything a job could have planted before the sweep notices.
- A child cannot reach the zygote: the zygote is not dumpable, so the child (same uid, no
  capabilities, ptrace and process_vm_* refused by the filter) cannot open its
  /proc/PID/mem, fd or environ. It can signal it (same uid): the zygote then dies, the job
  fails, and the next job starts a new sandbox.
- The same limits, per child: RLIMIT_CPU, RLIMIT_AS and RLIMIT_CORE set in the child after
  the fork (a fork starts with no CPU time used), its own session and process group, the
  wall clock enforced by the zygote (it kills the child) and by the runner (it asks the
  zygote to stop the child, and past a grace period kills the whole sandbox), and the
  result read back over a pipe with the same size cap. The exit status is mapped to the
  same reasons.
- Thread pools and RNGs. The zygote runs no torch op, so torch's intra-op pool is never
  started before a fork; the library pools the imports start (OpenBLAS, jemalloc) have
  fork handlers. The child sets torch's thread count itself and reseeds Python's, NumPy's
  and torch's global generators from OS entropy (training seeds its own generators from
  `secrets` anyway); CUDA is never initialised in the zygote.

Where a job cannot run warm, it runs cold, with the same results and isolation: no
sandbox (unconfined runs are never warm), no seccomp filter or no IPC layer, a zygote
that cannot be started (then cold for that shape until `close()`), a dataset that
cannot be opened read-only, or a zygote that refuses or has died before it forked. Once
a child has been started the job is never retried: a failure is the job's failure.

Differences from the cold path, all recorded in `SandboxResult.details`:
- Jobs of one zygote share its address-space layout (ASLR) and str-hash seed, as every
  fork server does; a zygote serves at most `max_jobs` jobs, then is replaced.
- Between jobs the zygote's namespaces persist (emptied as above), instead of being new.
  Covert timing channels through the shared kernel remain in both paths.
- The work sees its dataset at /tmp/.cove-dataset/NAME, not at the owner's path.
- System V IPC and POSIX message queues are refused (the cold path allows them in its
  private IPC namespace; training uses neither).
- The zygote keeps the imported libraries in memory (about 0.5 GB RSS for torch and
  Opacus) while the runner runs; it runs without CPU and address-space limits itself (it
  imports, then waits; it never holds data). A cold child's RLIMIT_CPU also pays for its
  imports, a warm child's only for the job.
- The modules a job module lists in WARM_IMPORTS (what its first call would import lazily)
  are imported in the zygote rather than in each child.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import json
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

from compute_to_data import sandbox, seccomp_filter
from compute_to_data.sandbox import Mechanism, SandboxPolicy, SandboxResult, run_sandboxed
from exchange.errors import SandboxError

log = logging.getLogger("cove.sandbox")

# The warm sandbox's second seccomp layer (over seccomp_filter.FILTER_NAME); a change to
# the calls below changes the number.
IPC_FILTER_NAME = "cove-warm-ipc-1"
_IPC_DENIED = ("shmget", "msgget", "semget", "mq_open")

START_SECONDS = 600.0  # for the zygote's imports (torch on a busy machine can take a minute)
_REPLY_SECONDS = 30.0  # for "started" after a job was sent
_GRACE_SECONDS = 5.0  # past the wall clock, for the zygote to report before it is killed
_OPEN_SECONDS = 30.0  # for the helper that opens the dataset read-only
_MAX_JOBS = 100


class _NotWarm(Exception):
    """This job runs cold instead; nothing private has been handed to the warm sandbox."""


@functools.cache
def _ipc_program_cached() -> bytes:
    import pyseccomp as seccomp

    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    rules.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
    for name in _IPC_DENIED:
        number = seccomp_filter._number(seccomp, name)
        if number is None:
            raise seccomp_filter.FilterUnavailable(f"{name} has no number here")
        rules.add_rule(seccomp.ERRNO(errno.EPERM), number)
    return seccomp_filter._export(rules)


def ipc_program() -> bytes:
    """The IPC layer as BPF bytes. Raises seccomp_filter.FilterUnavailable."""
    seccomp_filter.program()  # the main filter first: where it cannot be built, neither can this
    try:
        return _ipc_program_cached()
    except (OSError, ValueError, AttributeError) as exc:
        raise seccomp_filter.FilterUnavailable(f"libseccomp could not compile ({exc})") from None


@dataclass(frozen=True)
class _Shape:
    """The policy fields that shape the sandbox itself; a zygote serves one shape."""

    python_path: tuple[Path, ...]
    env: tuple[tuple[str, str], ...]
    devices: tuple[Path, ...]
    scratch_bytes: int
    require_seccomp: bool

    @classmethod
    def of(cls, policy: SandboxPolicy) -> _Shape:
        return cls(policy.python_path, tuple(sorted(policy.env.items())), policy.devices,
                   policy.scratch_bytes, policy.require_seccomp)


def _details(mechanism: Mechanism) -> str:
    return (f"{mechanism}: namespaces, read-only view, seccomp filter {seccomp_filter.FILTER_NAME} "
            f"and {IPC_FILTER_NAME}; warm: a fresh fork of a pre-imported zygote per job, the "
            "dataset as a read-only descriptor")


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with open(fd, "ab") as handle:
        handle.write(line.encode() + b"\n")


def _kill(process: subprocess.Popen[bytes]) -> None:
    sandbox._kill_group(process)
    process.wait()


class _Zygote:
    """One started zygote: its sandbox process, control socket and what it was built for."""

    def __init__(
        self, process: subprocess.Popen[bytes], control: socket.socket, mechanism: Mechanism,
        shape: _Shape, root: str, pid: int,
    ):  # fmt: skip
        self.process = process
        self.control = control
        self.mechanism = mechanism
        self.shape = shape
        self.pid = pid  # in the sandbox's PID namespace
        self.jobs = 0
        self._send_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _Zygote._terminate, process, control, root)

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes], control: socket.socket, root: str) -> None:
        control.close()
        # The whole sandbox: bwrap's --die-with-parent or unshare's --kill-child take the
        # PID namespace, and every process left in it, down with it.
        _kill(process)
        shutil.rmtree(root, ignore_errors=True)

    def alive(self) -> bool:
        return self.process.poll() is None and self.control.fileno() != -1

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        with self._send_lock:
            socket.send_fds(self.control, [json.dumps(message).encode()], fds or [])

    def stop_job(self, job_id: int) -> None:
        try:
            self.send({"stop": job_id})
        except OSError:
            pass  # gone already: the runner's grace deadline handles it

    def receive(self, until: float) -> dict[str, Any] | None:
        """The zygote's next message; None past `until`; {"gone": True} once it has gone."""
        try:
            self.control.settimeout(max(0.001, until - time.monotonic()))
            data = self.control.recv(1 << 16)
        except TimeoutError:
            return None
        except OSError:
            return {"gone": True}
        if not data:
            return {"gone": True}
        try:
            message = json.loads(data)
        except ValueError:
            return {"gone": True}  # not the zygote's protocol: treated as a dead zygote
        return message if isinstance(message, dict) else {"gone": True}

    def close(self) -> None:
        self._finalizer()


def _opener_argv(mechanism: Mechanism, dataset: Path, spec: dict[str, Any]) -> list[str]:
    command = [sys.executable, "-I", "-B", "-m", "compute_to_data.sandbox_entry", "open",
               json.dumps(spec)]
    if mechanism == "unshare":
        # The helper binds the file onto itself read-only in its new mount namespace.
        return [sandbox._unshare() or "unshare", "--user", "--map-root-user", "--mount", "--",
                *command]
    argv = [sandbox._bwrap() or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--clearenv"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        if os.path.islink("/" + name):
            argv += ["--symlink", os.readlink("/" + name), "/" + name]
    for path in sandbox._code_paths("compute_to_data", (), extra=(dataset,)):
        argv += ["--ro-bind", path, path]
    argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return [*argv, "--", *command]


def _open_dataset(mechanism: Mechanism, dataset: Path, log_path: Path) -> int:
    """A read-only descriptor of `dataset` on a read-only mount. Raises _NotWarm."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    spec = {"path": str(dataset), "socket_fd": theirs.fileno(), "bind": mechanism == "unshare"}
    received: list[int] = []
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with open(fd, "ab") as errors:
            process = subprocess.Popen(
                _opener_argv(mechanism, dataset, spec), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=errors, env=sandbox._clean_env({}, "/"),
                cwd="/", start_new_session=True, close_fds=True, pass_fds=(theirs.fileno(),),
            )  # fmt: skip
        theirs.close()
        try:
            ours.settimeout(_OPEN_SECONDS)
            message, received, flags, _ = socket.recv_fds(ours, 64, 2)
        except OSError:
            message, flags = b"", 0
        finally:
            _kill(process)
        if message != b"dataset" or len(received) != 1 or flags & socket.MSG_CTRUNC:
            raise _NotWarm("the dataset could not be opened read-only")
        fd = received.pop()
        # The helper ran the runner's own code; this checks its work all the same.
        info, expected = os.fstat(fd), os.stat(dataset)
        if (not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (expected.st_dev, expected.st_ino)
                or os.fstatvfs(fd).f_flag & os.ST_RDONLY == 0
                or _access_mode(fd) != os.O_RDONLY):  # fmt: skip
            os.close(fd)
            raise _NotWarm("the dataset's descriptor is not the file, read-only on a read-only mount")
        return fd
    except OSError as exc:
        raise _NotWarm(f"the dataset could not be opened read-only ({type(exc).__name__})") from None
    finally:
        for leftover in received:
            os.close(leftover)
        ours.close()
        theirs.close()


def _access_mode(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE


def _start(module: str, mechanism: Mechanism, shape: _Shape, log_path: Path, timeout: float) -> _Zygote:
    """Start a zygote for `shape` and wait until it has imported `module`. Raises _NotWarm."""
    program = sandbox._filter_program(mechanism)
    if program is None:
        raise _NotWarm("the seccomp filter cannot be made here")
    try:
        layer = ipc_program()
    except seccomp_filter.FilterUnavailable as exc:
        raise _NotWarm(f"the IPC layer cannot be made here ({exc})") from None
    root = tempfile.mkdtemp(prefix="cove-zygote-")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    filter_fd, layer_fd = sandbox._filter_fd(program), sandbox._filter_fd(layer)
    spec = {
        "mode": "zygote",
        "module": module,
        "python_path": [str(p) for p in shape.python_path],
        "cpu_seconds": None,
        "memory_bytes": None,
        "scratch_bytes": shape.scratch_bytes,
        "devices": [str(p) for p in shape.devices],
        # The code only: no dataset is ever in the zygote's mount namespace.
        "ro_paths": sandbox._code_paths(module, shape.python_path),
        "root": root,
        "python": sys.executable,
        "env": sandbox._clean_env(dict(shape.env), "/tmp"),
        "seccomp_fd": filter_fd,
        "control_fd": theirs.fileno(),
        "ipc_filter_fd": layer_fd,
    }
    try:
        _append(log_path, f"cove zygote: starting for {module} ({_details(mechanism)})")
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with open(fd, "ab") as errors:
            process = subprocess.Popen(
                sandbox._command(mechanism, spec), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=errors, env=spec["env"], cwd=root,
                start_new_session=True, close_fds=True,
                pass_fds=(filter_fd, layer_fd, theirs.fileno()),
            )  # fmt: skip
    except OSError as exc:
        ours.close()
        shutil.rmtree(root, ignore_errors=True)
        raise _NotWarm(f"the zygote could not be started ({type(exc).__name__})") from None
    finally:
        os.close(filter_fd)
        os.close(layer_fd)
        theirs.close()
    zygote = _Zygote(process, ours, mechanism, shape, root, pid=0)
    ready = zygote.receive(time.monotonic() + timeout)
    if ready is None or ready.get("ready") is not True or not isinstance(ready.get("pid"), int):
        zygote.close()
        why = "it did not get ready in time" if ready is None else str(ready.get("why", "it stopped"))
        raise _NotWarm(f"the zygote could not be started: {why}")
    zygote.pid = ready["pid"]
    _append(log_path, f"cove zygote: ready (pid {zygote.pid} in the sandbox)")
    return zygote


class WarmSandbox:
    """Runs `module.function(payload, dataset) -> bytes` per job in a fork of a warm zygote.

    Start it once (lazily, at the first `run`, or with `start(policy)`), call `run` per
    job, `close()` at the end (or use it as a context manager). Thread-safe: jobs run one
    at a time. `mechanism`, `allow_unsandboxed` and `stage` mean what they mean for
    `run_sandboxed`; `function` in `run` overrides the default one. `log_path`: the
    zygote's own log (it never holds private data); a job's log is its policy's.
    """

    def __init__(
        self,
        module: str,
        function: str,
        *,
        allow_unsandboxed: bool = False,
        mechanism: Mechanism | None = None,
        log_path: Path | None = None,
        max_jobs: int = _MAX_JOBS,
        start_seconds: float = START_SECONDS,
    ):
        if not sandbox._IDENTIFIER.match(module):
            raise SandboxError(f"'{module}' is not a module name.", "input")
        self.module = module
        self.function = function
        self.allow_unsandboxed = allow_unsandboxed
        self.mechanism = mechanism
        self.max_jobs = max_jobs
        self.start_seconds = start_seconds
        if log_path is None:
            handle, name = tempfile.mkstemp(prefix="cove-zygote-", suffix=".log")  # mode 0600
            os.close(handle)
            log_path = Path(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._zygote: _Zygote | None = None
        self._refused: dict[tuple[Mechanism, _Shape], str] = {}
        self._lock = threading.Lock()
        self._jobs = 0
        self.starts = 0  # zygotes started so far (each start is a new sandbox)

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops the zygote (and with it its sandbox); a later `run` starts a new one."""
        with self._lock:
            self._stop("closed")
            self._refused.clear()

    def abort(self) -> None:
        """Kills the zygote's sandbox now, from any thread, without waiting for a job to end.

        A job running in it fails (its `run` raises SandboxError, "killed"); `close()` still
        has to be called to release the rest."""
        zygote = self._zygote
        if zygote is not None:
            sandbox._kill_group(zygote.process)

    def start(self, policy: SandboxPolicy) -> bool:
        """Starts the zygote for jobs shaped like `policy` now; False where jobs will run cold."""
        with self._lock:
            try:
                self._ready(self._chosen(policy), policy)
            except _NotWarm as why:
                self._note(f"jobs run cold: {why}")
                return False
        return True

    @property
    def zygote_pid(self) -> int | None:
        """The running zygote's PID inside its sandbox (for tests and logs), or None."""
        zygote = self._zygote
        return zygote.pid if zygote is not None and zygote.alive() else None

    # ------------------------------------------------------------------ one job

    def run(
        self, payload: bytes, policy: SandboxPolicy, *, stage: str = "sandboxed",
        function: str | None = None,
    ) -> SandboxResult:  # fmt: skip
        """One job, warm where it can be, else cold; raises SandboxError as run_sandboxed does."""
        function = function or self.function
        if not sandbox._IDENTIFIER.match(function) or "." in function:
            raise SandboxError(f"'{self.module}:{function}' is not a module and function name.", "input")
        with self._lock:
            chosen = self._chosen(policy)
            try:
                zygote = self._ready(chosen, policy)
                return self._run_warm(zygote, payload, policy, stage, function)
            except _NotWarm as why:
                self._note(f"a job runs cold: {why}")
        return run_sandboxed(self.module, function, payload, policy, allow_unsandboxed=self.allow_unsandboxed,
                             mechanism=self.mechanism, stage=stage)  # fmt: skip

    def _chosen(self, policy: SandboxPolicy) -> Mechanism:
        # The same choice (and the same refusals) as the cold path.
        return sandbox._choose(self.mechanism, self.allow_unsandboxed, policy.require_seccomp)

    def _note(self, message: str) -> None:
        log.info("warm sandbox: %s", message)
        try:
            _append(self.log_path, f"cove zygote: {message}")
        except OSError:
            pass

    def _stop(self, why: str) -> None:
        if self._zygote is not None:
            self._note(f"zygote stopped: {why}")
            self._zygote.close()
            self._zygote = None

    def _ready(self, chosen: Mechanism, policy: SandboxPolicy) -> _Zygote:
        if chosen == "none":
            raise _NotWarm("no sandbox here; unconfined runs are never warm")
        shape = _Shape.of(policy)
        zygote = self._zygote
        if zygote is not None and (zygote.shape != shape or zygote.mechanism != chosen):
            self._stop("a job of another shape")
        elif zygote is not None and not zygote.alive():
            self._stop("it had died")
        if self._zygote is None:
            refused = self._refused.get((chosen, shape))
            if refused is not None:
                raise _NotWarm(refused)
            try:
                self._zygote = _start(self.module, chosen, shape, self.log_path, self.start_seconds)
                self.starts += 1
            except (_NotWarm, OSError) as why:
                reason = str(why) if isinstance(why, _NotWarm) else f"it could not be started ({why})"
                self._refused[(chosen, shape)] = reason
                raise _NotWarm(reason) from None
        return self._zygote

    def _run_warm(
        self, zygote: _Zygote, payload: bytes, policy: SandboxPolicy, stage: str, function: str
    ) -> SandboxResult:
        log_path = sandbox._log_file(policy)
        started = time.monotonic()
        dataset_fd = _open_dataset(zygote.mechanism, policy.dataset, self.log_path)
        opened = [dataset_fd]  # what this side still has to close
        try:
            try:
                job_id, job_socket, payload_w, result_r = self._hand_over(
                    zygote, policy, function, log_path, started, opened)
            except OSError as exc:
                self._stop(f"a job could not be handed over ({type(exc).__name__})")
                raise _NotWarm("the job could not be handed over") from None
            # From here on the job is the child's: a failure is the job's, never retried.
            try:
                with socket.socket(fileno=job_socket) as sock:
                    opened.remove(job_socket)
                    try:
                        # With its name: the reader goes by the extension (see the doc).
                        message = b"dataset\0" + os.fsencode(policy.dataset.name)
                        socket.send_fds(sock, [message], [dataset_fd])
                    except OSError:
                        pass  # the child died before it took it: its exit status says so
                os.close(dataset_fd)
                opened.remove(dataset_fd)
                stdin = os.fdopen(payload_w, "wb")
                opened.remove(payload_w)
                stdout = os.fdopen(result_r, "rb")
                opened.remove(result_r)
            except OSError:
                self._stop("a started job could not be fed")
                raise sandbox._failure(stage, "setup", log_path) from None
            return self._collect(zygote, job_id, stdin, stdout, payload, policy, stage, log_path, started)
        finally:
            for fd in opened:
                os.close(fd)

    def _hand_over(
        self, zygote: _Zygote, policy: SandboxPolicy, function: str, log_path: Path, started: float,
        opened: list[int],
    ) -> tuple[int, int, int, int]:  # fmt: skip
        """Sends the zygote the job and waits for "started": (job id, the job's socket, the
        payload pipe's write end, the result pipe's read end). Until it returns nothing
        private has left this process (the payload pipe is empty, the dataset's descriptor
        still here): on any failure the job may run cold instead (_NotWarm, OSError)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        job_socket, child_socket = ours.detach(), theirs.detach()
        opened += [job_socket, child_socket]
        payload_r, payload_w = os.pipe()
        opened += [payload_r, payload_w]
        result_r, result_w = os.pipe()
        opened += [result_r, result_w]
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        opened.append(log_fd)
        os.write(log_fd, f"cove sandbox: {_details(zygote.mechanism)}\n".encode())
        self._jobs += 1
        job = {
            "id": self._jobs, "function": function, "cpu_seconds": policy.cpu_seconds,
            "memory_bytes": policy.memory_bytes, "max_output_bytes": policy.max_output_bytes,
            "wall_seconds": max(0.001, policy.wall_seconds - (time.monotonic() - started)),
        }  # fmt: skip
        handed = [child_socket, payload_r, result_w, log_fd]  # sandbox_entry._JOB_FDS
        try:
            zygote.send(job, handed)
        finally:
            for fd in handed:  # the child has its own copies (the zygote closes its own)
                os.close(fd)
                opened.remove(fd)
        reply = zygote.receive(time.monotonic() + _REPLY_SECONDS)
        if reply is None or reply.get("started") != job["id"]:
            why = reply.get("refused") if reply else None
            self._stop(f"it refused a job ({why})" if why else "no answer to a job")
            raise _NotWarm(f"the zygote did not start the job ({why or 'no answer'})")
        return job["id"], job_socket, payload_w, result_r

    def _collect(
        self, zygote: _Zygote, job_id: int, stdin: IO[bytes], stdout: IO[bytes], payload: bytes,
        policy: SandboxPolicy, stage: str, log_path: Path, started: float,
    ) -> SandboxResult:  # fmt: skip
        pipes = sandbox._Pipes(stdin, stdout, payload, sandbox._frame_limit(policy),
                               lambda: zygote.stop_job(job_id))
        deadline = started + policy.wall_seconds
        outcome = zygote.receive(deadline + 0.5)  # the zygote's own clock fires first
        if outcome is None:
            zygote.stop_job(job_id)
            outcome = zygote.receive(time.monotonic() + _GRACE_SECONDS)
        if outcome is None or outcome.get("gone") or "exit" not in outcome:
            timed_out = time.monotonic() >= deadline
            # Killing the sandbox kills the child and all it started (the PID namespace).
            self._stop("it timed out on a job" if timed_out else "it died during a job")
            raise sandbox._failure(stage, "timeout" if timed_out else "killed", log_path)
        zygote.jobs += 1
        # Every process of the job is dead by now (the zygote swept), so the pipe is at EOF.
        complete = pipes.finished_by(time.monotonic() + _GRACE_SECONDS)
        if not outcome.get("clean"):
            self._stop(f"unclean after a job: {outcome.get('why')}")
        elif zygote.jobs >= self.max_jobs:
            self._stop(f"it served {zygote.jobs} jobs")
        if not complete:
            self._stop("a result pipe stayed open")
            raise sandbox._failure(stage, "timeout", log_path)
        stdout.close()
        if outcome.get("timeout") or (outcome.get("stopped") and not pipes.overflow):
            raise sandbox._failure(stage, "timeout", log_path)
        if pipes.overflow:
            raise sandbox._failure(stage, "output", log_path)
        code = outcome["exit"]
        if not isinstance(code, int):
            raise sandbox._failure(stage, "crash", log_path)
        if code != 0:
            raise sandbox._failure(stage, sandbox._reason(code), log_path)
        output = sandbox._unframe(b"".join(pipes.chunks), policy.max_output_bytes)
        if output is None:
            raise sandbox._failure(stage, "output", log_path)
        return SandboxResult(output, zygote.mechanism, log_path, time.monotonic() - started,
                             seccomp=seccomp_filter.FILTER_NAME, details=_details(zygote.mechanism),
                             warm=True)  # fmt: skip
