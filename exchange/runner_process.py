"""Starting an owner's runner and endpoint as their own process, as the owner would.

Walkthroughs (the SDK's `start_runner()`, `cove demo`) must not run the owner's runner
inside the buyer's process: it is the owner's software, on the owner's premises. This
starts `cove runner start --listen … --public-url …` as a child process and waits until
its endpoint answers on-chain; it never imports the runner (exchange does not depend on
compute_to_data).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from exchange.chain.anvil import free_loopback_port
from exchange.client import CoveClient
from exchange.errors import CoveError


class RunnerProcess:
    """A runner with its endpoint on a free loopback port, announced on-chain; output to `log_file`."""

    def __init__(
        self,
        client: CoveClient,
        rpc_url: str,
        account: str,
        home: Path,
        *,
        interval: float = 0.5,
        options: Sequence[str] = (),
        startup_timeout: float = 120,
    ):
        self.client = client
        self.account = client.session.sender
        self.home = home
        self.url = f"http://127.0.0.1:{free_loopback_port()}"
        self.log_file = home / "runner" / f"runner-{self.account.lower()}.log"
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "exchange.cli", "runner", "start",
            "--home", str(home), "--rpc", rpc_url, "--hub", client.deployment.cove, "--account", account,
            "--interval", str(interval), "--listen", self.url.removeprefix("http://"), "--public-url", self.url,
            *options,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in ("COVE_HOME", "COVE_HUB", "COVE_NETWORK")}
        with open(self.log_file, "ab") as log_handle:
            self.process = subprocess.Popen(
                command, stdout=log_handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env | {"COLUMNS": "200"}, start_new_session=True,
            )  # fmt: skip
        self._wait_until_serving(startup_timeout)

    def _wait_until_serving(self, timeout: float) -> None:
        """Until the chain names the endpoint (the runner announces it once it answers)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CoveError(f"The runner stopped while starting (exit {self.process.returncode}); see {self.log_file}.")
            if self.client.endpoint_of(self.account) == self.url:
                return
            time.sleep(0.25)
        self.stop()
        raise CoveError(f"The runner did not start serving within {timeout:.0f} s; see {self.log_file}.")

    @property
    def log(self) -> list[str]:
        """What the runner printed so far, a line each."""
        try:
            return self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return []

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30) -> None:
        """Stops the runner (SIGTERM: after the training under way, if any; then SIGKILL)."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __repr__(self) -> str:
        return f"<runner of {self.account} at {self.url}: {'running' if self.running else 'stopped'}>"
