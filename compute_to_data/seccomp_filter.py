"""The sandbox's seccomp filter: the system calls that sandboxed training never needs.

`program()` compiles the filter, here in the runner, with libseccomp (through
`pyseccomp`, a ctypes binding of the system's libseccomp.so.2, API-compatible with
libseccomp's own Python module) into a classic BPF program: the bytes of an array of
`struct sock_filter`. The sandbox installs those bytes in the child, just before the work
starts: bubblewrap reads them from a file descriptor (`--seccomp FD`); under unshare,
`compute_to_data.sandbox_entry` loads them with prctl(PR_SET_SECCOMP) after
no_new_privs, so nothing third-party runs inside the sandbox to install it.

The filter is a deny-list over the native ABI, default allow:

- every call in `DENIED` fails with its errno (EPERM, so Python raises PermissionError;
  clone3 fails with ENOSYS, see below);
- clone() fails with EPERM when its flags ask for any new namespace; clone3 passes its
  flags in a struct that BPF cannot read, so it fails with ENOSYS and the C library falls
  back to clone(), whose flags are checked;
- socket() and socketpair() fail with EAFNOSUPPORT for every family but AF_UNIX (what the
  kernel says for a family it lacks: libraries treat it as "not here", not as a bug);
- personality() fails with EPERM when it would turn off address-space randomisation or
  turn on READ_IMPLIES_EXEC and the other legacy layouts (querying it still works);
- a system call made through another ABI (i386's int 0x80, x32) kills the process: the
  rules above are written for the native ABI only, so no such call may get through.

The filter is inherited by every thread and process the work starts and cannot be
removed; the work may only add filters of its own, which can only refuse more.
"""

from __future__ import annotations

import errno
import tempfile
import threading
from dataclasses import dataclass

# Names this filter in the sandbox's result (and so in the runner's provenance); a change
# to the rules below changes the number.
FILTER_NAME = "cove-seccomp-1"

_EPERM = errno.EPERM

# System call -> errno. Names that the native architecture lacks are skipped.
DENIED: dict[str, int] = {
    # New namespaces, or joining others: the way to a root with capabilities, and to the
    # kernel code that only such a root reaches.
    "unshare": _EPERM,
    "setns": _EPERM,
    "clone3": errno.ENOSYS,
    # The file system view.
    **dict.fromkeys(
        ("mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
         "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"),
        _EPERM,
    ),
    # Other processes' memory and files.
    **dict.fromkeys(
        ("ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp",
         "pidfd_getfd"),
        _EPERM,
    ),
    # Kernel keyrings: the runner's uid's keys.
    **dict.fromkeys(("keyctl", "add_key", "request_key"), _EPERM),
    # Large kernel attack surface that training never touches.
    **dict.fromkeys(
        ("bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
         "io_uring_register", "open_by_handle_at", "modify_ldt", "vm86", "vm86old",
         "lookup_dcookie", "fanotify_init", "syslog", "uselib", "_sysctl", "nfsservctl"),
        _EPERM,
    ),
    # The machine itself.
    **dict.fromkeys(
        ("kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
         "create_module", "reboot", "swapon", "swapoff", "acct", "sethostname",
         "setdomainname", "settimeofday", "clock_settime", "clock_adjtime", "stime",
         "quotactl", "quotactl_fd", "iopl", "ioperm", "vhangup"),
        _EPERM,
    ),
}

# clone() flags that make a new namespace (CLONE_NEWTIME exists only for unshare and
# clone3, both refused whole).
CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}

_AF_UNIX = 1

# personality() flags that matter (the query, 0xffffffff, sets bit 31; no flag uses it).
PERSONALITY_FLAGS = {
    "ADDR_NO_RANDOMIZE": 0x0040000,
    "MMAP_PAGE_ZERO": 0x0100000,
    "ADDR_COMPAT_LAYOUT": 0x0200000,
    "READ_IMPLIES_EXEC": 0x0400000,
    "ADDR_LIMIT_32BIT": 0x0800000,
    "ADDR_LIMIT_3GB": 0x8000000,
}
_PERSONALITY_QUERY_BIT = 0x80000000


class FilterUnavailable(Exception):
    """No seccomp filter can be built or loaded here; the message says why."""


@dataclass(frozen=True)
class _Outcome:
    program: bytes | None
    reason: str | None


_lock = threading.Lock()
_cached: _Outcome | None = None


def program() -> bytes:
    """The filter as BPF bytes, compiled once per process. Raises FilterUnavailable."""
    global _cached
    with _lock:
        if _cached is None:
            try:
                _cached = _Outcome(_compile(), None)
            except FilterUnavailable as exc:
                _cached = _Outcome(None, str(exc))
    if _cached.program is None:
        raise FilterUnavailable(_cached.reason or "unknown")
    return _cached.program


def unavailable_reason() -> str | None:
    """None when the filter can be used here, else why not (for logs and provenance)."""
    try:
        program()
    except FilterUnavailable as exc:
        return str(exc)
    return None


def _kernel_supports_seccomp() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return any(line.startswith("Seccomp:") for line in status)
    except OSError:
        return False


def _compile() -> bytes:
    if not _kernel_supports_seccomp():
        raise FilterUnavailable("the kernel has no seccomp support")
    try:
        import pyseccomp as seccomp
    except ImportError:
        raise FilterUnavailable("the pyseccomp package is not installed") from None
    except Exception as exc:  # noqa: BLE001 - pyseccomp raises RuntimeError without the library
        raise FilterUnavailable(f"libseccomp cannot be loaded ({exc})") from None
    try:
        return _build(seccomp)
    except (OSError, ValueError, AttributeError) as exc:
        raise FilterUnavailable(f"libseccomp could not compile the filter ({exc})") from None


# System calls added since Linux 5.1 have one number on every architecture but alpha and
# mips (which this module does not target): an older libseccomp that does not know the
# name still gets the rule, so that clone3, say, can never slip through unnamed.
_UNIFIED_NUMBERS = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "clone3": 435, "pidfd_getfd": 438, "process_madvise": 440,
    "mount_setattr": 442, "quotactl_fd": 443,
}  # fmt: skip


def _number(seccomp, name: str) -> int | str | None:  # type: ignore[no-untyped-def]
    """What to give add_rule for `name`: its name, its unified number, or None (absent)."""
    number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
    # -1 is "unknown"; other negative numbers are libseccomp's pseudo-calls, which the
    # native ABI lacks (libseccomp ignores rules on them, or rewrites them, e.g. socketcall).
    if number != -1:
        return name
    mips = seccomp.system_arch() & 0xFFFF == seccomp.Arch.MIPS & 0xFFFF
    return None if mips else _UNIFIED_NUMBERS.get(name)


def _rules(seccomp):  # type: ignore[no-untyped-def]
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    # Another ABI's numbers are not the native ones the rules name: kill, never guess.
    rules.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
    # The sandbox sets no_new_privs itself (bubblewrap, or sandbox_entry's drop).
    for name, code in DENIED.items():
        syscall = _number(seccomp, name)
        if syscall is not None:
            rules.add_rule(seccomp.ERRNO(code), syscall)
    # s390 passes clone's flags second; every other architecture first.
    flags_arg = 1 if seccomp.system_arch() in (seccomp.Arch.S390, seccomp.Arch.S390X) else 0
    for flag in CLONE_NAMESPACE_FLAGS.values():
        rules.add_rule(seccomp.ERRNO(_EPERM), "clone",
                       seccomp.Arg(flags_arg, seccomp.MASKED_EQ, flag, flag))
    for name in ("socket", "socketpair"):
        rules.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), name,
                       seccomp.Arg(0, seccomp.NE, _AF_UNIX))
    for flag in PERSONALITY_FLAGS.values():
        mask = flag | _PERSONALITY_QUERY_BIT
        rules.add_rule(seccomp.ERRNO(_EPERM), "personality",
                       seccomp.Arg(0, seccomp.MASKED_EQ, mask, flag))
    return rules


def _export(rules, pfc: bool = False) -> bytes:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryFile() as out:
        (rules.export_pfc if pfc else rules.export_bpf)(out)
        out.seek(0)
        return out.read()


def _build(seccomp) -> bytes:  # type: ignore[no-untyped-def]
    data = _export(_rules(seccomp))
    if not data or len(data) % 8:
        raise FilterUnavailable("libseccomp exported no usable BPF program")
    return data


def pseudo_code() -> str:
    """The filter in libseccomp's readable form (PFC), for review. Raises FilterUnavailable."""
    program()  # fails first, with the reason, where the filter cannot be built
    import pyseccomp as seccomp

    return _export(_rules(seccomp), pfc=True).decode()
