"""The child side of the sandbox: builds the confined view (unshare mechanism) and runs the work.

Invoked by `compute_to_data.sandbox` and `compute_to_data.warm_sandbox` only, as
`python -I -B -m compute_to_data.sandbox_entry <mode> <spec-json>`. The modes:

- `init` (unshare mechanism only): runs as root of a fresh user namespace that also owns
  fresh mount, network, PID, IPC and UTS namespaces. It names the UTS namespace
  (`HOSTNAME`), builds a new root on a tmpfs with read-only bind mounts of exactly what
  the work needs (with /proc's keyring and timer lists covered), pivots into it, detaches
  the old root, then forks the worker, which drops every capability, sets no_new_privs,
  installs the seccomp filter the parent compiled (a BPF program read from the file
  descriptor `seccomp_fd`, see `compute_to_data.seccomp_filter`) and execs `run` (or
  the spec's `mode`: `zygote`). The init stays behind as PID 1 of the namespace: it reaps
  children and mirrors the worker's exit status. When it exits, the kernel kills every
  process left in the namespace.
- `run`: applies the resource limits, reads the payload from stdin, imports
  `module.function`, calls `function(payload, dataset_path)` and writes the framed result
  on the original stdout. Anything the work prints goes to stderr, which is the owner's
  local log, never back to the caller.
- `zygote` (the warm sandbox, in the same sandbox as `run`): loads the warm sandbox's
  IPC layer, imports `module` (and its WARM_IMPORTS) and then, per job received on its
  control socket, forks a child that does what `run` does, with its limits, on the
  descriptors that came with the job; after each job it kills every other process in the
  namespace and empties /tmp. See `compute_to_data.warm_sandbox` for why.
- `open` (the warm sandbox's helper, in a mount namespace of its own): opens the dataset
  read-only on a read-only mount and sends the descriptor to the runner.

Only the standard library is imported here, before the target module, so nothing
third-party runs before the limits are in force (in the zygote, nothing runs with private
data at all: its children apply their limits before they touch any).
"""

from __future__ import annotations

import array  # noqa: F401 - socket's descriptor passing imports it lazily; the zygote may not
import contextlib
import ctypes
import errno
import fcntl
import importlib
import json
import os
import random
import re
import resource
import select
import shutil
import signal
import socket
import stat
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

# Exit statuses the parent maps to generic reasons. Kept below 128 because bwrap and the
# init process report "killed by signal N" as 128 + N.
EXIT_OK = 0
EXIT_SETUP = 64  # the sandbox itself could not be built
EXIT_IMPORT = 65  # the target module or function could not be loaded
EXIT_RAISED = 66  # the target function raised
EXIT_MEMORY = 67  # MemoryError: the address-space limit was hit
EXIT_OUTPUT = 68  # the function returned something that is not bytes, or too many bytes
EXIT_CPU = 69  # killed for using up its CPU time

# The result frame: magic, 8-byte big-endian length, then the bytes. A worker that exits 0
# without writing a whole frame (os._exit in the target, say) is caught by the parent.
FRAME_MAGIC = b"COVE-SANDBOX-1\n"

# Device nodes every Python process expects; more (a GPU) only when the policy names them.
BASE_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")

# The sandbox's host name (and NIS domain name, under unshare): the host's own is not shown.
HOSTNAME = "cove-sandbox"
DOMAINNAME = "(none)"

# Files of the sandbox's /proc that show more than its own processes: the keyrings (and
# per-uid key counts) of the runner's uid, and timers and scheduler state of every host
# task. Each present one is covered by a read-only, nodev bind of /dev/null: opening it
# fails (EACCES).
MASKED_PROC_FILES = ("/proc/keys", "/proc/key-users", "/proc/timer_list",
                     "/proc/sched_debug", "/proc/latency_stats")

_MS_RDONLY = 0x1
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_REMOUNT = 0x20
_MS_NOATIME = 0x400
_MS_NODIRATIME = 0x800
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000
_MS_RELATIME = 0x200000
_MNT_DETACH = 0x2
# Read-only: the worker may be uid 0 mapped to the host's root (when the runner is root),
# and proc checks writes to /proc/sys and /proc/sysrq-trigger by uid, not by capability.
_PROC_FLAGS = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC

# statvfs flag -> mount flag. A remount inside a user namespace must keep the flags the
# original mount was locked with (nosuid, nodev, noexec, atime), or the kernel refuses it.
_KEEP_FLAGS = (
    (os.ST_NOSUID, _MS_NOSUID),
    (os.ST_NODEV, _MS_NODEV),
    (os.ST_NOEXEC, _MS_NOEXEC),
    (os.ST_NOATIME, _MS_NOATIME),
    (os.ST_NODIRATIME, _MS_NODIRATIME),
    (os.ST_RELATIME, _MS_RELATIME),
)

_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_PR_SET_SECUREBITS = 28
_PR_SET_DUMPABLE = 4
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_BPF_MAXINSNS = 4096
# noroot, no_setuid_fixup, keep_caps (off) and no_cap_ambient_raise, each set and locked:
# a uid-0 worker gains no capabilities from exec, ever.
_SECUREBITS_LOCKED_NOROOT = 0x1 | 0x2 | 0x4 | 0x8 | 0x20 | 0x40 | 0x80

_PIVOT_ROOT_SYSCALL = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

_libc = ctypes.CDLL(None, use_errno=True)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class SetupFailed(Exception):
    """One step of building the sandbox failed; the message names the step, not data."""


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise SetupFailed(f"{what}: {os.strerror(code)}")


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _kept_flags(path: str) -> int:
    flags = os.statvfs(path).f_flag
    return sum(mount_flag for st_flag, mount_flag in _KEEP_FLAGS if flags & st_flag)


def _submounts(target: str) -> list[str]:
    """Mount points at or below `target` in this mount namespace, shallowest first."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            # The kernel writes space, tab, newline and backslash as octal escapes.
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == target or point.startswith(target.rstrip("/") + "/"):
                found.append(point)
    return sorted(found, key=len)


def _bind_readonly(source: str, target: str, *, devices: bool = False) -> None:
    """Bind `source` at `target` read-only, without suid (and without devices unless asked)."""
    try:
        _mount(source, target, None, _MS_BIND, None)
    except SetupFailed:
        # A non-recursive bind is refused when the source has mounts of its own beneath it
        # that came from the parent namespace; then bind them too and make each read-only.
        _mount(source, target, None, _MS_BIND | _MS_REC, None)
    for point in _submounts(target):
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _kept_flags(point)
        if not devices:
            flags |= _MS_NODEV
        _mount(None, point, None, flags, None)


def _make_mount_point(root: str, path: str, source: str) -> str:
    target = root + path
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        with open(target, "wb"):
            pass
    return target


def _covered(path: str, done: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in done)


def _build_root(spec: dict[str, Any]) -> None:
    """Build the new root at spec["root"] and pivot into it."""
    root = spec["root"]
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE, None)  # nothing we mount leaks back out
    _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=1m")

    # Debian's merged /usr: /bin, /lib... are symlinks into /usr; recreate them as such.
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        if os.path.islink("/" + name):
            os.symlink(os.readlink("/" + name), f"{root}/{name}")

    os.makedirs(f"{root}/tmp")
    _mount("tmpfs", f"{root}/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV,
           f"mode=1777,size={spec['scratch_bytes']}")

    done: list[str] = []
    for path in sorted(spec["ro_paths"], key=len):  # parents before children
        if not os.path.exists(path) or _covered(path, done):
            continue
        _bind_readonly(path, _make_mount_point(root, path, path))
        done.append(path)

    os.makedirs(f"{root}/dev", exist_ok=True)
    for device in [*BASE_DEVICES, *spec["devices"]]:
        if os.path.exists(device):
            _bind_readonly(device, _make_mount_point(root, device, device), devices=True)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")

    # The dynamic loader's cache names library directories beyond the built-in ones (CUDA's).
    os.makedirs(f"{root}/etc", exist_ok=True)
    for path in ("/etc/ld.so.cache",):
        if os.path.exists(path):
            _bind_readonly(path, _make_mount_point(root, path, path))
    os.makedirs(f"{root}/proc", exist_ok=True)
    try:
        # A /proc that shows only this PID namespace; some libraries read /proc/self. The
        # kernel allows it only while the host's /proc is still visible, so before pivoting.
        _mount("proc", f"{root}/proc", "proc", _PROC_FLAGS, None)
    except SetupFailed:
        pass  # refused where the host's /proc is partly hidden; Python runs without it
    else:
        for path in MASKED_PROC_FILES:
            if os.path.exists(root + path):
                _bind_readonly("/dev/null", root + path)

    # The new root itself becomes read-only; only /tmp (the scratch tmpfs) stays writable.
    _mount(None, root, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV, None)

    # pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
    # no path back to the owner's file system in this namespace.
    os.chdir(root)
    number = _PIVOT_ROOT_SYSCALL.get(os.uname().machine)
    if number is None:
        raise SetupFailed(f"pivot_root: unsupported architecture {os.uname().machine}")
    _check(_libc.syscall(number, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", _MNT_DETACH), "detach old root")
    os.chdir("/tmp")


def _set_names() -> None:
    """Name this (new, private) UTS namespace: the host's names are not the work's business."""
    name, domain = HOSTNAME.encode(), DOMAINNAME.encode()
    _check(_libc.sethostname(name, ctypes.c_size_t(len(name))), "sethostname")
    _check(_libc.setdomainname(domain, ctypes.c_size_t(len(domain))), "setdomainname")


def _read_filter(spec: dict[str, Any], key: str = "seccomp_fd") -> bytes | None:
    """The BPF program the parent left at spec[key] (then closed), or None."""
    fd = spec.get(key)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as source:
        program = source.read(_BPF_MAXINSNS * 8 + 1)
    if not program or len(program) % 8 or len(program) > _BPF_MAXINSNS * 8:
        raise SetupFailed("seccomp: the filter is not a BPF program")
    return program


def load_filter(program: bytes) -> None:
    """Install a classic BPF seccomp filter on this thread (and what it starts, for good).

    The kernel requires no_new_privs (or CAP_SYS_ADMIN) first; `_drop_privileges` sets it.
    """
    code = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(code, ctypes.c_void_p))
    _check(
        _libc.prctl(_PR_SET_SECCOMP, ctypes.c_ulong(_SECCOMP_MODE_FILTER), ctypes.byref(fprog),
                    ctypes.c_ulong(0), ctypes.c_ulong(0)),
        "seccomp filter",
    )


def _drop_privileges() -> None:
    """Leave the worker with no capabilities in this user namespace, now or after exec."""
    _check(_libc.prctl(_PR_SET_SECUREBITS, _SECUREBITS_LOCKED_NOROOT, 0, 0, 0), "securebits")
    _check(_libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "ambient caps")
    cap = 0
    while _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if ctypes.get_errno() != errno.EINVAL or cap == 0:
        raise SetupFailed("dropping the capability bounding set failed")
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _status_of(status: int, rusage: resource.struct_rusage, cpu_seconds: int | None) -> int:
    """The worker's wait status as one exit status (128 + N for a signal, as bwrap does)."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    sig = os.WTERMSIG(status)
    used = rusage.ru_utime + rusage.ru_stime
    if sig == signal.SIGXCPU or (
        sig == signal.SIGKILL and cpu_seconds is not None and used >= cpu_seconds
    ):
        return EXIT_CPU
    return 128 + sig


def _init(spec: dict[str, Any]) -> int:
    try:
        program = _read_filter(spec)
        _set_names()
        _build_root(spec)
    except (SetupFailed, OSError) as exc:
        print(f"sandbox setup failed: {exc}", file=sys.stderr)
        return EXIT_SETUP
    worker = os.fork()
    if worker == 0:
        try:
            _drop_privileges()
            if program is not None:
                # Last: from here on the worker can only exec the work (and the filter
                # stays across that exec and every fork after it).
                load_filter(program)
            argv = [spec["python"], "-I", "-B", "-m", "compute_to_data.sandbox_entry",
                    spec.get("mode", "run"), json.dumps(spec)]
            os.execve(spec["python"], argv, spec["env"])
        except BaseException as exc:  # noqa: BLE001 - any failure here is a setup failure
            print(f"sandbox setup failed: {exc}", file=sys.stderr)
        os._exit(EXIT_SETUP)
    # PID 1: the payload and result pipes (or the zygote's control socket) are the worker's.
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    for name in ("control_fd", "ipc_filter_fd"):
        if spec.get(name) is not None:
            os.close(spec[name])
    _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    while True:
        pid, status, rusage = os.wait4(-1, 0)
        if pid == worker:
            return _status_of(status, rusage, spec["cpu_seconds"])


def _apply_limits(spec: dict[str, Any]) -> None:
    cpu = spec["cpu_seconds"]
    # SIGXCPU at the soft limit, SIGKILL one second later for code that ignores it.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    if spec["memory_bytes"] is not None:
        resource.setrlimit(resource.RLIMIT_AS, (spec["memory_bytes"], spec["memory_bytes"]))
    # A core dump would write private data to disk (or hand it to a crash collector).
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _memory_exhausted() -> int:
    try:
        traceback.print_exc()  # where it ran out, for the owner's log
    except MemoryError:
        pass
    return EXIT_MEMORY


def _run(spec: dict[str, Any]) -> int:
    _apply_limits(spec)
    # Exactly the policy's environment, whatever the mechanism added (bwrap sets PWD).
    os.environ.clear()
    os.environ.update(spec["env"])
    # Keep the real stdout for the result; whatever the work prints lands in the log.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.path[:0] = spec["python_path"]
    return _work(spec, Path(spec["dataset"]), result_fd)


def _work(spec: dict[str, Any], dataset: Path, result_fd: int) -> int:
    """Read the payload on stdin, call the work on it, write the framed result to result_fd."""
    try:
        payload = sys.stdin.buffer.read()
    except MemoryError:
        return _memory_exhausted()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        function = getattr(importlib.import_module(spec["module"]), spec["function"])
    except MemoryError:
        return _memory_exhausted()
    except BaseException:  # noqa: BLE001 - reported as a generic import failure
        traceback.print_exc()
        return EXIT_IMPORT
    try:
        output = function(payload, dataset)
    except MemoryError:
        return _memory_exhausted()
    except BaseException:  # noqa: BLE001 - the traceback goes to the owner's log only
        traceback.print_exc()
        return EXIT_RAISED
    if not isinstance(output, (bytes, bytearray)) or len(output) > spec["max_output_bytes"]:
        print("sandboxed function returned no bytes or too many bytes", file=sys.stderr)
        return EXIT_OUTPUT
    with os.fdopen(result_fd, "wb") as out:
        out.write(FRAME_MAGIC + len(output).to_bytes(8, "big"))
        out.write(output)
    return EXIT_OK


# --- `open`: a read-only descriptor of the dataset, for the warm sandbox ------------------------


def _open_readonly(spec: dict[str, Any]) -> int:
    """Send the runner one descriptor of spec["path"], opened read-only on a read-only mount.

    Runs in a mount namespace of its own: bwrap's read-only binds, or (spec["bind"], under
    unshare) a read-only bind of the file onto itself made here. A descriptor the runner
    opened itself would sit on the owner's writable mount, and through /proc/self/fd the
    work could reopen that for writing, or fchmod it; on a read-only mount both get EROFS.
    """
    sock = socket.socket(fileno=spec["socket_fd"])
    path = spec["path"]
    try:
        if spec["bind"]:
            _mount(None, "/", None, _MS_REC | _MS_PRIVATE, None)
            _bind_readonly(path, path)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
        if not stat.S_ISREG(os.fstat(fd).st_mode) or not os.fstatvfs(fd).f_flag & os.ST_RDONLY:
            raise SetupFailed("the dataset is not a regular file on a read-only mount")
        socket.send_fds(sock, [b"dataset"], [fd])
    except (SetupFailed, OSError) as exc:
        print(f"sandbox setup failed: {exc}", file=sys.stderr)
        return EXIT_SETUP
    return EXIT_OK


# --- `zygote`: the warm sandbox's pre-imported process, one fork per job ---------------------------

# What the runner sends with a job, and the types each field must have.
_JOB_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (int,),
    "function": (str,),
    "cpu_seconds": (int,),
    "memory_bytes": (int, type(None)),
    "max_output_bytes": (int,),
    "wall_seconds": (int, float),
}
# With a job come exactly these descriptors, in this order.
_JOB_FDS = ("socket", "payload", "result", "log")
# Where the child keeps what it works with (the cold worker has the same 0 to 3; the log is
# also 2, and the job's socket 5 only until the dataset has come).
_CHILD_FDS = {"payload": 0, "log": 1, "result": 3, "dataset": 4, "socket": 5}
_SCRATCH = "/tmp"
# The dataset as the work sees it: a link to the child's descriptor, under the original name
# (the reader goes by the file's extension).
DATASET_LINK_DIR = "/tmp/.cove-dataset"
_PR_SET_CHILD_SUBREAPER = 36
_SWEEP_SECONDS = 5.0


class _NoImports:
    """First on the zygote's sys.meta_path once it is ready: it imports nothing more.

    A job can rename the scratch directories on the way to a code path bound below /tmp
    and plant modules there; the sweep notices and stops the zygote, but an import before
    that would run them in the zygote. Each child takes this finder out again.
    """

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        raise ImportError(f"the zygote imports nothing once it is ready ({name})")


def _tell(control: socket.socket, message: dict[str, Any]) -> None:
    control.send(json.dumps(message).encode())


def _set_dumpable(dumpable: bool) -> None:
    _check(_libc.prctl(_PR_SET_DUMPABLE, int(dumpable), 0, 0, 0), "dumpable")


def _is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


def _open_fds() -> set[int]:
    # listdir's own descriptor is in the listing, and closed by the time it returns.
    return {fd for fd in map(int, os.listdir("/proc/self/fd")) if _is_open(fd)}


def _tasks() -> int:
    return len(os.listdir("/proc/self/task"))


def _mounts_below(path: str) -> set[tuple[str, str]]:
    """(mount id, mount point) of every mount strictly below `path` in this namespace."""
    found = set()
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            if point.startswith(path.rstrip("/") + "/"):
                found.add((fields[0], point))
    return found


class _Scratch:
    """The zygote's /tmp, emptied and reset between jobs (the next child finds it as the first).

    Code the policy binds from below the host's /tmp (a test's temporary directory, say) is
    mounted inside it, read-only; the directories leading there are part of the tmpfs. Those
    are kept, everything else goes, and mode, times and extended attributes of what is kept
    are put back. The mounts must be where they were (a renamed directory on the way to a
    code path would let one job plant modules for the next).
    """

    def __init__(self, path: str):
        self.path = path
        self.mounts = _mounts_below(path)
        self.points = {point for _, point in self.mounts}
        kept = {path}
        for point in self.points:
            parent = os.path.dirname(point)
            while parent.startswith(path.rstrip("/") + "/"):
                kept.add(parent)
                parent = os.path.dirname(parent)
        # Deepest first, so that restoring a directory's times comes after its children's.
        self.kept = {d: self._state(d) for d in sorted(kept, key=len, reverse=True)}

    @staticmethod
    def _state(path: str) -> tuple[int, int, int, int]:
        info = os.stat(path, follow_symlinks=False)
        return info.st_ino, stat.S_IMODE(info.st_mode), info.st_atime_ns, info.st_mtime_ns

    def _remove(self, path: str) -> None:
        # Directories the work made unreadable or unwritable are opened up first (same uid).
        stack = [path]
        while stack:
            directory = stack.pop()
            os.chmod(directory, 0o700)
            with os.scandir(directory) as entries:
                stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
        shutil.rmtree(path)

    def wipe(self) -> str | None:
        """None once it is as it was; else why not (the zygote then stops)."""
        try:
            if _mounts_below(self.path) != self.mounts:
                return "the mounts in the scratch space moved"
            for directory in self.kept:
                if not stat.S_ISDIR(os.lstat(directory).st_mode):
                    return "the scratch space's directories were replaced"
                os.chmod(directory, 0o700)
            for directory in self.kept:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if entry.path in self.points or entry.path in self.kept:
                            continue
                        if entry.is_dir(follow_symlinks=False):
                            self._remove(entry.path)
                        else:
                            os.unlink(entry.path)
            for directory, (inode, mode, atime, mtime) in self.kept.items():
                for name in os.listxattr(directory, follow_symlinks=False):
                    os.removexattr(directory, name, follow_symlinks=False)
                os.chmod(directory, mode)
                os.utime(directory, ns=(atime, mtime), follow_symlinks=False)
                if self._state(directory) != (inode, mode, atime, mtime) or os.listxattr(directory):
                    return "the scratch space could not be reset"
                left = {os.path.join(directory, name) for name in os.listdir(directory)}
                if left - self.points - set(self.kept):
                    return "the scratch space could not be emptied"
        except (OSError, RecursionError) as exc:
            return f"the scratch space could not be emptied ({type(exc).__name__})"
        return None


def _unfit(tasks: int | None) -> str | None:
    """Why a fork now would not be a clean copy of the zygote, or None."""
    if threading.active_count() != 1:
        return "a Python thread is running"
    if tasks is not None and _tasks() > tasks:
        # Library pools present at import have fork handlers; a pool started later (torch's
        # intra-op threads, by running an op) would be copied half-alive.
        return "threads started after the imports"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return "CUDA is initialised (it does not survive a fork)"
    if not os.path.isdir("/proc/self/fd"):
        return "no /proc/self/fd to reach the dataset's descriptor through"
    return None


def _sweep() -> str | None:
    """Kill and reap every process in the namespace but PID 1 and this one; None once done.

    kill(-1) reaches every process this one may signal, which in this PID namespace (one
    uid) is all of them but the init: strays that left the job's session too. As the
    subreaper, the zygote inherits and reaps every orphan, so /proc empties.
    """
    me = os.getpid()
    deadline = time.monotonic() + _SWEEP_SECONDS
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]:
            return None
        if time.monotonic() > deadline:
            return "a process outlived the job"
        time.sleep(0.01)


def _ipc_left() -> str | None:
    # Creating System V objects is refused in the warm sandbox; this checks that it was.
    for kind in ("shm", "msg", "sem"):
        try:
            with open(f"/proc/sysvipc/{kind}", "rb") as table:
                if len(table.read().splitlines()) > 1:
                    return f"System V IPC objects ({kind}) were left"
        except FileNotFoundError:
            continue
    return None


def _job(message: bytes, fds: list[int]) -> dict[str, Any] | None:
    try:
        job = json.loads(message)
    except ValueError:
        return None
    if not isinstance(job, dict) or set(job) != set(_JOB_FIELDS) or len(fds) != len(_JOB_FDS):
        return None
    for name, types in _JOB_FIELDS.items():
        if not isinstance(job[name], types) or isinstance(job[name], bool):
            return None
    return job


def _is_stop(message: bytes) -> bool:
    try:
        parsed = json.loads(message)
    except ValueError:
        return False
    return isinstance(parsed, dict) and set(parsed) == {"stop"}


def _keep_only(fds: dict[int, int]) -> None:
    """Leave this process with exactly the descriptors `fds` maps to (target: source)."""
    moved = {target: fcntl.fcntl(source, fcntl.F_DUPFD, 100) for target, source in fds.items()}
    for fd in _open_fds() - set(moved.values()):
        os.close(fd)
    for target, temporary in moved.items():
        os.dup2(temporary, target)
    for temporary in set(moved.values()):
        os.close(temporary)


def _receive_dataset(sock: socket.socket) -> str:
    """The dataset, sent by the runner over the job's socket: its descriptor (as fd 4) and
    its file name. Both come to the child alone: the zygote never learns even the name."""
    message, received, flags, _ = socket.recv_fds(sock, 4096, 2)
    try:
        tag, _, raw = message.partition(b"\0")
        name = raw.decode("utf-8", "surrogateescape")
        if (tag != b"dataset" or len(received) != 1 or flags & socket.MSG_CTRUNC
                or name in ("", ".", "..") or "/" in name or "\0" in name):
            raise SetupFailed("no dataset descriptor came with the job")
        fd = received[0]
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
        if (not stat.S_ISREG(os.fstat(fd).st_mode) or access != os.O_RDONLY
                or not os.fstatvfs(fd).f_flag & os.ST_RDONLY):
            raise SetupFailed("the dataset descriptor is not read-only on a read-only mount")
        if fd != _CHILD_FDS["dataset"]:
            os.dup2(fd, _CHILD_FDS["dataset"])
    finally:
        for fd in received:
            if fd != _CHILD_FDS["dataset"]:
                os.close(fd)
    return name


def _link_dataset(name: str) -> Path:
    """The path the work reads its dataset by: a link to the descriptor, in the scratch space."""
    scratch = os.stat(_SCRATCH)
    os.mkdir(DATASET_LINK_DIR, 0o700)
    link = Path(DATASET_LINK_DIR) / name
    os.symlink(f"/proc/self/fd/{_CHILD_FDS['dataset']}", link)
    # /tmp's times as the zygote left them: every job finds the same scratch space.
    os.utime(_SCRATCH, ns=(scratch.st_atime_ns, scratch.st_mtime_ns))
    return link


def _fresh_libraries() -> None:
    """What the zygote's imports set up that must not be shared: RNG state, thread pools."""
    random.seed()  # from os.urandom; Python also reseeds at fork, this does not rely on it
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()  # the legacy global generator, from OS entropy
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.seed()  # the default CPU generator (and CUDA's, lazily), from OS entropy
        # The intra-op pool starts in this process, after the fork; the zygote never ran
        # an op (`_unfit` checks that no thread appeared).
        torch.set_num_threads(torch.get_num_threads())


def _child(job: dict[str, Any], fds: list[int], control: socket.socket, module: str) -> None:
    """One job, in a fresh fork of the zygote. Never returns."""
    code = EXIT_SETUP
    try:
        sys.meta_path.remove(_NoImports)  # the work imports what it needs, as a fresh process
        control.close()
        os.setsid()  # its own session and process group
        _set_dumpable(True)  # as a fresh process is (the zygote is not; its children can't reach it)
        received = dict(zip(_JOB_FDS, fds, strict=True))
        _keep_only({_CHILD_FDS[name]: received[name] for name in _JOB_FDS} | {2: received["log"]})
        os.set_inheritable(_CHILD_FDS["result"], False)  # as the cold worker's (a dup)
        with socket.socket(fileno=_CHILD_FDS["socket"]) as sock:
            name = _receive_dataset(sock)
        dataset = _link_dataset(name)
        _apply_limits(job)
        _fresh_libraries()
        spec = {"module": module, "function": job["function"],
                "max_output_bytes": job["max_output_bytes"]}
        code = _work(spec, dataset, _CHILD_FDS["result"])
    except MemoryError:
        code = _memory_exhausted()
    except BaseException as exc:  # noqa: BLE001 - any failure before the work is a setup failure
        with contextlib.suppress(BaseException):
            print(f"sandbox setup failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)  # never back into the zygote's loop, whatever happened


def _await(pid: int, job: dict[str, Any], control: socket.socket) -> dict[str, Any] | None:
    """Wait for the child: its exit, its wall clock, or the runner's stop. None: runner gone."""
    pidfd = os.pidfd_open(pid)
    deadline = time.monotonic() + job["wall_seconds"]
    timed_out = stopped = gone = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([pidfd, control], [], [], left)
            if pidfd in ready:
                break
            if control in ready:
                # The only message during a job is "stop" (an oversized result, or the
                # runner's own deadline); nothing at all means the runner has gone.
                gone = not control.recv(1 << 12)
                stopped = True
                break
        if timed_out or stopped:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status, rusage = os.wait4(pid, 0)
    finally:
        os.close(pidfd)
    if gone:
        return None
    return {"exit": _status_of(status, rusage, job["cpu_seconds"]), "timeout": timed_out,
            "stopped": stopped}


def _zygote(spec: dict[str, Any]) -> int:
    control = socket.socket(fileno=spec["control_fd"])
    try:
        layer = _read_filter(spec, "ipc_filter_fd")
        # Not dumpable: a child (same uid) cannot open its /proc/PID/mem, fd or environ.
        _set_dumpable(False)
        _check(_libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "subreaper")
        if layer is not None:
            load_filter(layer)  # before any import: the zygote is bound by it too
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.environ.clear()
        os.environ.update(spec["env"])
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(devnull)
        scratch = _Scratch(_SCRATCH)
    except (SetupFailed, OSError) as exc:
        print(f"sandbox setup failed: {exc}", file=sys.stderr)
        _tell(control, {"ready": False, "why": "setup"})
        return EXIT_SETUP
    sys.path[:0] = spec["python_path"]
    try:
        module = importlib.import_module(spec["module"])
        # What the work's first call would import lazily, in every child again (module
        # imports only: no op runs, `_unfit` checks that no thread started).
        for name in getattr(module, "WARM_IMPORTS", ()):
            importlib.import_module(name)
    except BaseException:  # noqa: BLE001 - the import's traceback goes to the zygote's log
        traceback.print_exc()
        _tell(control, {"ready": False, "why": "import"})
        return EXIT_IMPORT
    own = {0, 1, 2, control.fileno()}
    tasks = _tasks()
    problem = scratch.wipe() or _unfit(None)
    if problem is None and _open_fds() != own:
        problem = "the imports left descriptors open"
    if problem is not None:
        print(f"zygote not ready: {problem}", file=sys.stderr)
        _tell(control, {"ready": False, "why": problem})
        return EXIT_SETUP
    sys.meta_path.insert(0, _NoImports)
    _tell(control, {"ready": True, "pid": os.getpid(), "tasks": tasks})
    return _serve(spec["module"], control, scratch, own, tasks)


def _serve(module: str, control: socket.socket, scratch: _Scratch, own: set[int], tasks: int) -> int:
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 1 << 16, len(_JOB_FDS) + 1)
        except OSError:
            return EXIT_OK
        if not message:  # the runner closed its end (or died): nothing more to do
            for fd in fds:
                os.close(fd)
            return EXIT_OK
        if not fds and _is_stop(message):
            continue  # a stop that crossed the end of its job: nothing left to stop
        job = _job(message, fds)
        problem = "a malformed job" if job is None else _unfit(tasks)
        if problem is None and _open_fds() != own | set(fds):
            problem = "descriptors appeared in the zygote"
        if problem is not None or job is None:
            for fd in fds:
                os.close(fd)
            print(f"zygote refused a job: {problem}", file=sys.stderr)
            _tell(control, {"refused": problem})
            return EXIT_SETUP
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # nothing buffered here may be written again by the child
        pid = os.fork()
        if pid == 0:
            _child(job, fds, control, module)
        # Closed before the runner sends a byte of payload or the dataset: the zygote never
        # holds a descriptor with private data behind it.
        for fd in fds:
            os.close(fd)
        _tell(control, {"started": job["id"]})
        outcome = _await(pid, job, control)
        problem = _sweep() or scratch.wipe() or _ipc_left()
        if outcome is None:
            return EXIT_OK
        _tell(control, {**outcome, "clean": problem is None, "why": problem or ""})
        if problem is not None:
            print(f"zygote stopping: {problem}", file=sys.stderr)
            return EXIT_SETUP


def main(argv: list[str]) -> int:
    modes = {"init": _init, "run": _run, "zygote": _zygote, "open": _open_readonly}
    if len(argv) != 2 or argv[0] not in modes:
        print(f"usage: python -m compute_to_data.sandbox_entry {{{'|'.join(modes)}}} SPEC",
              file=sys.stderr)
        return EXIT_SETUP
    spec = json.loads(argv[1])
    code = modes[argv[0]](spec)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    return code


if __name__ == "__main__":
    # os._exit: no atexit hooks or lingering library threads get to run after the result.
    os._exit(main(sys.argv[1:]))
