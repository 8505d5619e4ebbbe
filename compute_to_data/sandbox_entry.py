"""The child side of the sandbox: builds the confined view (unshare mechanism) and runs the work.

Invoked by `compute_to_data.sandbox` only, as `python -I -B -m compute_to_data.sandbox_entry
<mode> <spec-json>`. Two modes:

- `init` (unshare mechanism only): runs as root of a fresh user namespace that also owns
  fresh mount, network, PID, IPC and UTS namespaces. It names the UTS namespace
  (`HOSTNAME`), builds a new root on a tmpfs with read-only bind mounts of exactly what
  the work needs (with /proc's keyring and timer lists covered), pivots into it, detaches
  the old root, then forks the worker, which drops every capability, sets no_new_privs,
  installs the seccomp filter the parent compiled (a BPF program read from the file
  descriptor `seccomp_fd`, see `compute_to_data.seccomp_filter`) and execs `run`. The
  init stays behind as PID 1 of the namespace: it reaps children and mirrors the worker's
  exit status. When it exits, the kernel kills every process left in the namespace.
- `run`: applies the resource limits, reads the payload from stdin, imports
  `module.function`, calls `function(payload, dataset_path)` and writes the framed result
  on the original stdout. Anything the work prints goes to stderr, which is the owner's
  local log, never back to the caller.

Only the standard library is imported here, before the target module, so nothing
third-party runs before the limits are in force.
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import json
import os
import re
import resource
import signal
import sys
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


def _read_filter(spec: dict[str, Any]) -> bytes | None:
    """The BPF program the parent left at spec["seccomp_fd"] (then closed), or None."""
    fd = spec.get("seccomp_fd")
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


def _status_of(status: int, rusage: resource.struct_rusage, cpu_seconds: int) -> int:
    """The worker's wait status as one exit status (128 + N for a signal, as bwrap does)."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    sig = os.WTERMSIG(status)
    used = rusage.ru_utime + rusage.ru_stime
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and used >= cpu_seconds):
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
            argv = [spec["python"], "-I", "-B", "-m", "compute_to_data.sandbox_entry", "run",
                    json.dumps(spec)]
            os.execve(spec["python"], argv, spec["env"])
        except BaseException as exc:  # noqa: BLE001 - any failure here is a setup failure
            print(f"sandbox setup failed: {exc}", file=sys.stderr)
        os._exit(EXIT_SETUP)
    # PID 1: the payload and result pipes belong to the worker alone.
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
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
    try:
        payload = sys.stdin.buffer.read()
    except MemoryError:
        return _memory_exhausted()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.path[:0] = spec["python_path"]
    try:
        function = getattr(importlib.import_module(spec["module"]), spec["function"])
    except MemoryError:
        return _memory_exhausted()
    except BaseException:  # noqa: BLE001 - reported as a generic import failure
        traceback.print_exc()
        return EXIT_IMPORT
    try:
        output = function(payload, Path(spec["dataset"]))
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


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("init", "run"):
        print("usage: python -m compute_to_data.sandbox_entry {init|run} SPEC", file=sys.stderr)
        return EXIT_SETUP
    spec = json.loads(argv[1])
    code = _init(spec) if argv[0] == "init" else _run(spec)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    return code


if __name__ == "__main__":
    # os._exit: no atexit hooks or lingering library threads get to run after the result.
    os._exit(main(sys.argv[1:]))
