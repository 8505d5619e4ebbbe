"""Flower's services as child processes: SuperLink (the aggregator's) and SuperNode (each owner's).

Each runs in its own process group, binds 127.0.0.1 only, sends no telemetry and checks for
no updates, logs to a file in its party's home, and is stopped with its whole group.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from exchange.chain.anvil import free_loopback_port
from exchange.errors import CoveError

QUIET_FLOWER_ENV = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}


class FlowerServiceError(CoveError):
    """A Flower service did not start, or stopped."""


def flower_command(name: str) -> str:
    """The path of Flower's `name` script, next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise FlowerServiceError(f"Flower's `{name}` is not installed; install Cove with its dependencies (flwr).")
    return found


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0


class FlowerService:
    """One Flower process; `ports` are the loopback ports it must open before it counts as up."""

    def __init__(self, name: str, argv: list[str], ports: list[int], log_file: Path,
                 env: dict[str, str] | None = None, flwr_home: Path | None = None,
                 host: str = "127.0.0.1") -> None:  # fmt: skip
        self.name = name
        self.host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        self.argv = argv
        self.ports = ports
        self.log_file = log_file
        self.env = dict(os.environ if env is None else env) | QUIET_FLOWER_ENV
        # Flower starts its own helpers (flower-superexec, flwr-serverapp) by name: from this venv.
        self.env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), self.env.get("PATH", "")])
        if flwr_home is not None:
            self.env["FLWR_HOME"] = str(flwr_home)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                _dies_with_parent(self.argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                start_new_session=True,  # one group: the service and what it starts stop together
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not all(port_open(p, self.host) for p in self.ports):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise FlowerServiceError(f"Flower's {self.name} did not start; see {self.log_file}.")
            time.sleep(0.1)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # what the group started may outlive its leader
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _dies_with_parent(argv: list[str]) -> list[str]:
    """`argv` under util-linux's setpriv with a parent-death signal, so that a service never
    outlives the process (thread) that started it, even one killed with SIGKILL."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


def superlink(home: Path, env: dict[str, str] | None = None, host: str = "127.0.0.1",
              port: int | None = None) -> tuple[FlowerService, int]:  # fmt: skip
    """The aggregator's SuperLink and its port: one HTTP server (on 127.0.0.1 unless told
    otherwise) for Flower's Fleet API (runners dial it), Control API (`flwr run`) and Runtime
    API (the ServerApp)."""
    port = port or free_loopback_port()
    argv = [
        flower_command("flower-superlink"), "--insecure",
        "--host", host, "--port", str(port),
        "--disable-runtime-dependency-installation",
    ]  # fmt: skip
    return FlowerService("SuperLink", argv, [port], home / "superlink.log", env, home / "flwr", host), port
