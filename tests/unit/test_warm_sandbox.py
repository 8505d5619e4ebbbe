"""The warm sandbox: what one job cannot leave for the next, and when it runs cold instead.

test_sandbox.py runs every isolation probe of the cold path in a warm child too (network,
file system, environment, kernel surface, limits, failures). These tests prove what only
the warm path needs: the zygote holds no private descriptor and no dataset, a second job
sees neither the first job's dataset nor anything the first job left (files, attributes,
processes, Python state, IPC objects, RNG state), a child cannot reach into the zygote,
the dataset cannot be written through its descriptor, a dead or stuck zygote fails its job
alone, and jobs that cannot run warm run cold. Each safety check has its control.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_sandbox import mechanism  # noqa: F401 - the fixture: every mechanism this machine has

from compute_to_data import sandbox, warm_sandbox
from compute_to_data.sandbox import SandboxPolicy, run_sandboxed
from compute_to_data.warm_sandbox import IPC_FILTER_NAME, WarmSandbox
from exchange.errors import SandboxError

PROBE = textwrap.dedent(
    '''
    import ctypes, errno, json, os, signal, socket, sys, time
    from pathlib import Path

    STATE = {"set": None}
    _libc = ctypes.CDLL(None, use_errno=True)


    def _json(value):
        return json.dumps(value).encode()


    def echo(payload, dataset):
        return _json({"payload": payload.decode(), "dataset": dataset.read_text()})


    def try_read(payload, dataset):
        results = {}
        for path in json.loads(payload):
            try:
                Path(str(dataset) if path == "DATASET" else path).read_bytes()
                results[path] = "read"
            except OSError as err:
                results[path] = type(err).__name__
        return _json(results)


    def open_fds(payload, dataset):
        return _json(sorted(int(fd) for fd in os.listdir("/proc/self/fd")))


    def scratch(payload, dataset):
        """Everything below /tmp, and /tmp's own mode, times and attributes."""
        tree = []
        for root, dirs, names in os.walk("/tmp"):
            tree += [os.path.join(root, name) for name in dirs + names]
        info = os.stat("/tmp")
        try:
            xattrs = os.listxattr("/tmp")
        except OSError as err:
            xattrs = [err.strerror]
        return _json({"tree": sorted(tree), "mode": info.st_mode, "mtime": info.st_mtime_ns,
                      "xattrs": xattrs})


    def dirty(payload, dataset):
        """Leave what one could in the scratch space, then report it (the control)."""
        Path("/tmp/leftover").write_text("job 1 was here")
        os.makedirs("/tmp/locked/deep/er")
        Path("/tmp/locked/deep/er/file").write_text("x")
        os.chmod("/tmp/locked/deep", 0)
        os.chmod("/tmp/locked", 0o500)
        os.symlink("/tmp/leftover", "/tmp/link")
        os.mkfifo("/tmp/fifo")
        socket.socket(socket.AF_UNIX).bind("/tmp/sock")
        # Beside the read-only code bind: the directories on the way to it are scratch too.
        Path(payload.decode()).write_text("planted")
        try:
            os.setxattr("/tmp", "user.cove", b"job 1")
        except OSError:
            pass  # tmpfs has user attributes only on recent kernels
        os.chmod("/tmp", 0o700)
        os.utime("/tmp", (1, 1))
        return scratch(payload, dataset)


    def set_global(payload, dataset):
        STATE["set"] = payload.decode()
        os.cove_marker = payload.decode()  # and in another module
        return get_global(payload, dataset)


    def get_global(payload, dataset):
        return _json({"state": STATE["set"], "os": getattr(os, "cove_marker", None)})


    def processes(payload, dataset):
        return _json({"me": os.getpid(), "zygote": os.getppid(),
                      "all": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())})


    def leave_stray(payload, dataset):
        # A grandchild in a session of its own, orphaned: it outlives the job unless killed.
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(60)
            os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.2)
        return processes(payload, dataset)


    def _ipc_result(handle):
        return errno.errorcode.get(ctypes.get_errno(), "?") if handle == -1 else "ok"


    def ipc(payload, dataset):
        IPC_PRIVATE, IPC_CREAT, IPC_RMID = 0, 0o1000, 0
        out = {}
        shm = _libc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600)
        out["shmget"] = _ipc_result(shm)
        if shm != -1:
            _libc.shmctl(shm, IPC_RMID, None)
        msg = _libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
        out["msgget"] = _ipc_result(msg)
        if msg != -1:
            _libc.msgctl(msg, IPC_RMID, None)
        sem = _libc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600)
        out["semget"] = _ipc_result(sem)
        if sem != -1:
            _libc.semctl(sem, 0, IPC_RMID)
        queue = _libc.mq_open(b"/cove-probe", os.O_CREAT | os.O_RDWR, 0o600, None)
        out["mq_open"] = _ipc_result(queue)
        if queue != -1:
            _libc.mq_close(queue)
            _libc.mq_unlink(b"/cove-probe")
        return _json(out)


    def _attempts(pid):
        results = {}
        for name, attempt in {
            "mem": lambda: os.close(os.open(f"/proc/{pid}/mem", os.O_RDONLY)),
            # Listing the numbers is allowed; following one (what it is, or opening it) is not.
            "fd link": lambda: os.readlink(f"/proc/{pid}/fd/2"),
            "fd open": lambda: os.close(os.open(f"/proc/{pid}/fd/2", os.O_RDONLY)),
            "environ": lambda: Path(f"/proc/{pid}/environ").read_bytes(),
        }.items():
            try:
                attempt()
                results[name] = "ok"
            except OSError as err:
                results[name] = type(err).__name__
        return results


    def peek_zygote(payload, dataset):
        out = {"zygote": _attempts(os.getppid())}
        # The control: a child of the job tries the same on the job (dumpable, as usual).
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, json.dumps(_attempts(os.getppid())).encode())
            os._exit(0)
        os.close(write)
        out["the job, by its child"] = json.loads(os.read(read, 1 << 16))
        os.waitpid(pid, 0)
        return _json(out)


    def tamper(payload, dataset):
        results = {}
        for name, attempt in {
            "open for writing": lambda: os.close(os.open(dataset, os.O_WRONLY)),
            "chmod": lambda: os.chmod(dataset, 0o666),
            "fchmod": lambda: _on_descriptor(dataset, lambda fd: os.fchmod(fd, 0o666)),
            "utime": lambda: os.utime(dataset, (1, 1)),
            "truncate": lambda: os.truncate(dataset, 0),
        }.items():
            try:
                attempt()
                results[name] = "ok"
            except OSError as err:
                results[name] = err.strerror
        return _json(results)


    def _on_descriptor(path, call):
        fd = os.open(path, os.O_RDONLY)
        try:
            call(fd)
        finally:
            os.close(fd)


    def nap(payload, dataset):
        time.sleep(float(payload))
        return b"rested"


    def abort(payload, dataset):
        os.abort()


    def kill_zygote(payload, dataset):
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(30)
        return b"survived"


    def stop_zygote(payload, dataset):
        os.kill(os.getppid(), signal.SIGSTOP)
        time.sleep(3600)
    '''
)

# A module whose import starts a thread: no clean copy can be forked from it.
THREADED = textwrap.dedent(
    '''
    import threading, time
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()

    def echo(payload, dataset):
        return b"ran"
    '''
)

# NumPy and torch in the zygote: their global generators and torch's thread pool.
LIBRARIES = textwrap.dedent(
    '''
    import json, os, random
    import numpy, torch

    def draws(payload, dataset):
        # The control: a fork that does not reseed draws exactly what this process draws next.
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, json.dumps(numpy.random.random()).encode())
            os._exit(0)
        os.close(write)
        unreseeded = json.loads(os.read(read, 100))
        os.waitpid(pid, 0)
        mine = numpy.random.random()
        x = torch.randn(600, 600)
        product = float((x @ x).abs().sum())  # the intra-op pool, started in this process
        return json.dumps({
            "random": random.random(), "numpy": mine, "numpy, unreseeded fork": unreseeded,
            "torch": torch.rand(1).item(), "torch seed": torch.initial_seed(),
            "threads": torch.get_num_threads(), "tasks": len(os.listdir("/proc/self/task")),
            "product": product > 0,
        }).encode()
    '''
)

ROWS_A = "age,diagnosis\n41,benign\n"
ROWS_B = "age,diagnosis\n67,malignant\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("warm")
    code = root / "code"
    code.mkdir()
    (code / "cove_warm_probe.py").write_text(PROBE)
    (code / "cove_threaded_probe.py").write_text(THREADED)
    (code / "cove_library_probe.py").write_text(LIBRARIES)
    for name, rows in (("a", ROWS_A), ("b", ROWS_B)):
        (root / f"data-{name}").mkdir()
        (root / f"data-{name}" / f"patients-{name}.csv").write_text(rows)
    return {"root": root, "code": code, "a": root / "data-a" / "patients-a.csv",
            "b": root / "data-b" / "patients-b.csv"}


def policy(files: dict[str, Path], tmp_path: Path, dataset: str | Path = "a",
           **changes: Any) -> SandboxPolicy:
    fields: dict[str, Any] = {
        "dataset": files[dataset] if isinstance(dataset, str) else dataset, "cpu_seconds": 20, "memory_bytes": 1 << 30, "wall_seconds": 30,
        "python_path": (files["code"],), "log_path": tmp_path / "job.log",
    }  # fmt: skip
    fields.update(changes)
    return SandboxPolicy(**fields)


@pytest.fixture
def warm(mechanism: str, tmp_path: Path) -> Iterator[WarmSandbox]:  # noqa: F811
    box = WarmSandbox("cove_warm_probe", "echo", mechanism=mechanism,  # type: ignore[arg-type]
                      log_path=tmp_path / "zygote.log")
    yield box
    box.close()


def job(warm: WarmSandbox, function: str, files: dict[str, Path], tmp_path: Path,
        payload: bytes = b"", **changes: Any) -> Any:
    result = warm.run(payload, policy(files, tmp_path, **changes), function=function)
    assert result.warm, (tmp_path / "zygote.log").read_text()
    return json.loads(result.output)


# --- the zygote holds nothing private -------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        found += children
        todo += children
    return found


def _pid_inside(pid: int) -> int:
    line = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("NSpid:"))
    return int(line.split()[-1])


def _links(pid: int) -> list[str]:
    folder = Path(f"/proc/{pid}/fd")
    return [os.readlink(folder / fd) for fd in os.listdir(folder)]


def _holds(pid: int, path: Path) -> bool:
    """Whether one of `pid`'s descriptors is the file at `path` (whatever its link says)."""
    want = os.stat(path)
    folder = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(folder):
        try:
            info = os.stat(folder / fd)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) == (want.st_dev, want.st_ino):
            return True
    return False


def test_the_zygote_holds_no_pipe_and_no_dataset_while_a_job_runs(files, tmp_path, warm) -> None:
    assert warm.start(policy(files, tmp_path))
    outcome: list[bytes] = []
    worker = threading.Thread(
        target=lambda: outcome.append(warm.run(b"2", policy(files, tmp_path), function="nap").output))
    worker.start()
    try:
        zygote = next(p for p in _descendants(warm._zygote.process.pid)  # type: ignore[union-attr]
                      if _pid_inside(p) == warm.zygote_pid)
        deadline, children = time.monotonic() + 10, []
        try:
            # Until the child has taken the dataset (the runner sends it with the payload).
            while not (children and _holds(children[0], files["a"])):
                assert time.monotonic() < deadline
                time.sleep(0.02)
                children = _children(zygote)
            child, held = _links(children[0]), _links(zygote)
            zygote_has_dataset = _holds(zygote, files["a"])
        except PermissionError:
            pytest.skip("looking into another process's descriptors needs root here")
    finally:
        worker.join()
    assert outcome == [b"rested"]
    # The control: the job's child holds the payload and result pipes and the dataset ...
    assert any(link.startswith("pipe:") for link in child)
    # ... the zygote, only its own: /dev/null, its log, its control socket, the child's pidfd.
    assert not zygote_has_dataset
    assert not any(link.startswith("pipe:") for link in held), held
    assert len(held) <= 5


def test_a_second_job_sees_only_its_own_dataset(files, tmp_path, warm) -> None:
    assert job(warm, "echo", files, tmp_path, b"first") == {"payload": "first", "dataset": ROWS_A}
    targets = json.dumps([str(files["a"]), str(files["b"]), "DATASET"]).encode()
    seen = job(warm, "try_read", files, tmp_path, targets, dataset="b")
    # Neither file is in the view; the second job's own arrives as its descriptor.
    assert seen == {str(files["a"]): "FileNotFoundError", str(files["b"]): "FileNotFoundError",
                    "DATASET": "read"}
    assert job(warm, "echo", files, tmp_path, dataset="b")["dataset"] == ROWS_B
    assert job(warm, "open_fds", files, tmp_path, dataset="b") == [0, 1, 2, 3, 4, 5]
    assert warm.starts == 1  # one zygote served them all


def test_the_dataset_cannot_be_changed_through_its_descriptor(files, tmp_path, warm) -> None:
    out = job(warm, "tamper", files, tmp_path)
    assert out == dict.fromkeys(("open for writing", "chmod", "fchmod", "utime", "truncate"),
                                "Read-only file system")
    assert files["a"].read_text() == ROWS_A


def test_the_same_tampering_succeeds_on_a_writable_file(files, tmp_path) -> None:
    # The control: unconfined, on a copy, every attempt above gets through.
    copy = tmp_path / "copy.csv"
    shutil.copy(files["a"], copy)
    result = run_sandboxed("cove_warm_probe", "tamper", b"", policy(files, tmp_path, dataset=copy),
                           mechanism="none", allow_unsandboxed=True)
    assert set(json.loads(result.output).values()) == {"ok"}


def test_the_runner_opens_the_dataset_on_a_read_only_mount(files, mechanism, tmp_path) -> None:  # noqa: F811
    plain = os.open(files["a"], os.O_RDONLY)
    readonly = warm_sandbox._open_dataset(mechanism, files["a"], tmp_path / "open.log")  # type: ignore[arg-type]
    try:
        # The control: a descriptor opened here sits on a writable mount, and /proc/self/fd
        # reopens it for writing; the helper's does not.
        os.close(os.open(f"/proc/self/fd/{plain}", os.O_WRONLY))
        with pytest.raises(OSError, match="Read-only file system"):
            os.open(f"/proc/self/fd/{readonly}", os.O_WRONLY)
        with pytest.raises(OSError, match="Read-only file system"):
            os.fchmod(readonly, 0o666)
        assert os.read(readonly, 100).decode() == ROWS_A
    finally:
        os.close(plain)
        os.close(readonly)


def test_the_child_refuses_a_descriptor_on_a_writable_mount(files, tmp_path, warm, monkeypatch) -> None:
    monkeypatch.setattr(warm_sandbox, "_open_dataset",
                        lambda chosen, path, log: os.open(path, os.O_RDONLY))
    with pytest.raises(SandboxError) as caught:
        warm.run(b"", policy(files, tmp_path), function="echo")
    assert caught.value.reason == "setup"
    assert "not read-only on a read-only mount" in (tmp_path / "job.log").read_text()


# --- nothing one job leaves reaches the next --------------------------------------------------------


def test_the_scratch_space_is_as_new_for_every_job(files, tmp_path, warm) -> None:
    before = job(warm, "scratch", files, tmp_path)
    planted = files["code"].parent / "planted.txt"  # beside the code, inside the sandbox only
    during = job(warm, "dirty", files, tmp_path, str(planted).encode())
    after = job(warm, "scratch", files, tmp_path)
    # The control: within the job, everything it left is there.
    left = set(during["tree"]) - set(before["tree"])
    assert {"/tmp/leftover", "/tmp/locked", "/tmp/link", "/tmp/fifo", "/tmp/sock", str(planted)} <= left
    assert during["mode"] != before["mode"] and during["mtime"] != before["mtime"]
    assert after == before
    assert not planted.exists()
    assert warm.starts == 1


def test_python_state_dies_with_each_child(files, tmp_path, warm) -> None:
    # The control: within a job, what it sets is there.
    assert job(warm, "set_global", files, tmp_path, b"job 1") == {"state": "job 1", "os": "job 1"}
    assert job(warm, "get_global", files, tmp_path) == {"state": None, "os": None}


def test_no_process_of_one_job_outlives_it(files, tmp_path, warm) -> None:
    first = job(warm, "leave_stray", files, tmp_path)
    strays = set(first["all"]) - {1, first["zygote"], first["me"]}
    assert strays  # the control: the job saw its stray running
    second = job(warm, "processes", files, tmp_path)
    assert set(second["all"]) == {1, second["zygote"], second["me"]}
    assert second["zygote"] == first["zygote"] and warm.starts == 1


def test_no_ipc_object_can_be_made_to_outlive_a_job(files, tmp_path, warm) -> None:
    refused = dict.fromkeys(("shmget", "msgget", "semget", "mq_open"), "EPERM")
    assert job(warm, "ipc", files, tmp_path) == refused
    # The control: in a cold sandbox's own IPC namespace, all four work.
    cold = run_sandboxed("cove_warm_probe", "ipc", b"", policy(files, tmp_path),
                         mechanism=warm.mechanism)
    assert set(json.loads(cold.output).values()) == {"ok"}
    assert IPC_FILTER_NAME in warm.run(b"", policy(files, tmp_path)).details


def test_a_job_cannot_look_into_the_zygote(files, tmp_path, warm) -> None:
    out = job(warm, "peek_zygote", files, tmp_path)
    assert out["zygote"] == dict.fromkeys(("mem", "fd link", "fd open", "environ"), "PermissionError")
    assert out["the job, by its child"] == dict.fromkeys(("mem", "fd link", "fd open", "environ"), "ok")


def test_rng_state_and_thread_pools_are_the_childs_own(files, tmp_path, mechanism) -> None:  # noqa: F811
    rules = policy(files, tmp_path, memory_bytes=6 << 30, wall_seconds=120)
    with WarmSandbox("cove_library_probe", "draws", mechanism=mechanism,  # type: ignore[arg-type]
                     log_path=tmp_path / "zygote.log") as box:
        first, second = (json.loads(box.run(b"", rules).output) for _ in range(2))
        assert box.starts == 1
    cold = json.loads(run_sandboxed("cove_library_probe", "draws", b"", rules, mechanism=mechanism).output)
    # The control: without reseeding, a fork draws what its parent draws.
    assert first["numpy"] == first["numpy, unreseeded fork"]
    for name in ("random", "numpy", "torch", "torch seed"):
        assert first[name] != second[name], name
    # torch's pool starts in the child, as large as in a fresh process, and works.
    assert first["threads"] == second["threads"] == cold["threads"]
    assert first["product"] and (first["tasks"] > 1 or first["threads"] == 1)


def test_a_renamed_way_to_the_code_replaces_the_zygote(files, tmp_path, mechanism) -> None:  # noqa: F811
    # The code directory is bound below /tmp here (a test's temporary directory): a job that
    # renames a scratch directory on the way there could plant modules for the next one.
    if not files["code"].is_relative_to("/tmp"):
        pytest.skip("the code directory is not below /tmp here")
    top = "/tmp/" + files["code"].relative_to("/tmp").parts[0]
    rename = textwrap.dedent(f'''
        import os
        def rename(payload, dataset):
            os.rename({top!r}, {top!r} + "-moved")
            return b"moved"
    ''')
    (files["code"] / "cove_rename_probe.py").write_text(rename)
    with WarmSandbox("cove_rename_probe", "rename", mechanism=mechanism,  # type: ignore[arg-type]
                     log_path=tmp_path / "rename.log") as box:
        assert box.run(b"", policy(files, tmp_path)).output == b"moved"
        assert box.starts == 1
        assert box.run(b"", policy(files, tmp_path)).output == b"moved"  # a new zygote's view
        assert box.starts == 2
    assert "the mounts in the scratch space moved" in (tmp_path / "rename.log").read_text()


# --- failures stay with their job ----------------------------------------------------------------


def test_a_crash_does_not_affect_the_next_job(files, tmp_path, warm) -> None:
    with pytest.raises(SandboxError) as caught:
        warm.run(b"", policy(files, tmp_path), function="abort")
    assert caught.value.reason == "crash"
    assert job(warm, "echo", files, tmp_path)["dataset"] == ROWS_A
    assert warm.starts == 1  # the same zygote


def test_a_job_that_kills_the_zygote_fails_alone(files, tmp_path, warm) -> None:
    assert job(warm, "echo", files, tmp_path)["dataset"] == ROWS_A
    with pytest.raises(SandboxError) as caught:
        warm.run(b"", policy(files, tmp_path), function="kill_zygote")
    assert caught.value.reason == "killed"
    assert job(warm, "echo", files, tmp_path)["dataset"] == ROWS_A
    assert warm.starts == 2  # a new zygote, in a new sandbox


def test_a_stuck_zygote_is_killed_at_the_deadline(files, tmp_path, warm) -> None:
    assert warm.start(policy(files, tmp_path))
    started = time.monotonic()
    with pytest.raises(SandboxError) as caught:
        warm.run(b"", policy(files, tmp_path, wall_seconds=1.5), function="stop_zygote")
    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 1.5 + 0.5 + 5 + 3  # deadline, margin, grace, slack
    assert job(warm, "echo", files, tmp_path)["dataset"] == ROWS_A
    assert warm.starts == 2


def test_a_zygote_serves_at_most_max_jobs(files, tmp_path, mechanism) -> None:  # noqa: F811
    with WarmSandbox("cove_warm_probe", "echo", mechanism=mechanism, max_jobs=2,  # type: ignore[arg-type]
                     log_path=tmp_path / "zygote.log") as box:
        outputs = [box.run(b"", policy(files, tmp_path)) for _ in range(3)]
        assert all(result.warm for result in outputs)
        assert box.starts == 2


# --- when it runs cold ------------------------------------------------------------------------


def test_a_zygote_that_cannot_be_forked_cleanly_leaves_jobs_to_the_cold_path(files, tmp_path, mechanism) -> None:  # noqa: F811
    with WarmSandbox("cove_threaded_probe", "echo", mechanism=mechanism,  # type: ignore[arg-type]
                     log_path=tmp_path / "zygote.log") as box:
        results = [box.run(b"", policy(files, tmp_path)) for _ in range(2)]
    assert [(r.output, r.warm, r.mechanism) for r in results] == [(b"ran", False, mechanism)] * 2
    log = (tmp_path / "zygote.log").read_text()
    assert "a Python thread is running" in log
    assert log.count("starting for") == 1  # not retried for every job


def test_a_dataset_that_cannot_be_opened_read_only_runs_cold(files, tmp_path, warm, monkeypatch) -> None:
    def refuse(*args: Any) -> int:
        raise warm_sandbox._NotWarm("the dataset could not be opened read-only (test)")

    monkeypatch.setattr(warm_sandbox, "_open_dataset", refuse)
    result = warm.run(b"x", policy(files, tmp_path))
    assert not result.warm and json.loads(result.output) == {"payload": "x", "dataset": ROWS_A}
    assert "a job runs cold: the dataset could not be opened read-only (test)" in (
        tmp_path / "zygote.log").read_text()


def test_unconfined_runs_are_never_warm(files, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sandbox, "_best_mechanism", lambda: None)
    with WarmSandbox("cove_warm_probe", "echo", allow_unsandboxed=True,
                     log_path=tmp_path / "zygote.log") as box:
        result = box.run(b"", policy(files, tmp_path))
    assert result.mechanism == "none" and not result.warm and box.starts == 0
    with (WarmSandbox("cove_warm_probe", "echo", log_path=tmp_path / "zygote.log") as box,
          pytest.raises(SandboxError, match="No sandbox")):
        box.run(b"", policy(files, tmp_path))  # refused exactly as run_sandboxed refuses


def test_a_job_of_another_shape_gets_its_own_zygote(files, tmp_path, warm) -> None:
    assert job(warm, "echo", files, tmp_path)["dataset"] == ROWS_A
    assert job(warm, "echo", files, tmp_path, env={"OMP_NUM_THREADS": "1"})["dataset"] == ROWS_A
    assert warm.starts == 2


def test_a_ready_zygote_imports_nothing(monkeypatch) -> None:
    # What a job might plant on a code path below /tmp is never imported by the zygote.
    import importlib
    import sys

    from compute_to_data import sandbox_entry

    importlib.import_module("colorsys")  # the control: a module not yet imported imports
    monkeypatch.delitem(sys.modules, "colorsys")
    monkeypatch.setattr(sys, "meta_path", [sandbox_entry._NoImports, *sys.meta_path])
    with pytest.raises(ImportError, match="imports nothing once it is ready"):
        importlib.import_module("colorsys")
