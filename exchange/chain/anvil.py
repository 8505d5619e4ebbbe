"""A local anvil chain that outlives the CLI call that started it.

`cove chain up` starts anvil in the background on a free loopback port with a state file,
records where it listens, and later CLI calls connect to it; `cove chain down` stops it,
and anvil writes the state file so the next `chain up` resumes the same chain.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from exchange.errors import ChainError
from exchange.paths import PROJECT_ROOT

LOCAL_CHAIN_ID = 31337
# anvil's well-known development mnemonic: its keys are public, never use them for value.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_COUNT = 10
_STATE_DUMP_INTERVAL_S = 2


def anvil_binary() -> Path:
    """The anvil executable: $COVE_ANVIL, the npm package's binary, or one on PATH."""
    candidates = [
        os.environ.get("COVE_ANVIL"),
        str(PROJECT_ROOT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"),
        shutil.which("anvil"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ChainError(
        "anvil was not found; run `npm ci` in the Cove checkout (it ships anvil) or set COVE_ANVIL."
    )


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc_answers(url: str, timeout: float = 1.0) -> bool:
    """True when a JSON-RPC node at `url` answers eth_chainId."""
    import urllib.request  # here: with http.client and ssl, a tenth of what `cove --help` imports

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return "result" in json.loads(response.read())
    except (OSError, ValueError):  # urllib's URLError is an OSError
        return False


@dataclass(frozen=True)
class ChainInfo:
    """Where a running local chain listens."""

    pid: int
    port: int
    state_file: str

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalChain:
    """The local anvil chain of one Cove home directory."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.info_file = directory / "chain.json"
        self.state_file = directory / "state.json"
        self.log_file = directory / "anvil.log"

    def running(self) -> ChainInfo | None:
        """The running chain, or None (a stale record of a dead chain is removed)."""
        if not self.info_file.exists():
            return None
        info = ChainInfo(**json.loads(self.info_file.read_text()))
        if _process_alive(info.pid) and rpc_answers(info.rpc_url):
            return info
        self.info_file.unlink(missing_ok=True)
        return None

    def up(self, timeout: float = 30.0) -> tuple[ChainInfo, bool]:
        """Starts the chain unless it runs; returns its info and whether it was started now."""
        if (info := self.running()) is not None:
            return info, False
        port = free_loopback_port()
        command = [
            str(anvil_binary()),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--chain-id", str(LOCAL_CHAIN_ID),
            "--mnemonic", DEV_MNEMONIC,
            "--accounts", str(DEV_ACCOUNT_COUNT),
            "--state", str(self.state_file),
            "--state-interval", str(_STATE_DUMP_INTERVAL_S),
        ]  # fmt: skip
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the CLI process that started it
            )
        info = ChainInfo(pid=process.pid, port=port, state_file=str(self.state_file))
        deadline = time.monotonic() + timeout
        while not rpc_answers(info.rpc_url):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise ChainError(
                    f"anvil did not start (see {self.log_file}); "
                    "if the state file is damaged, move it away and run `cove chain up` again."
                )
            time.sleep(0.1)
        tmp = self.info_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info)))
        os.replace(tmp, self.info_file)
        return info, True

    def down(self, timeout: float = 15.0) -> bool:
        """Stops the chain (anvil saves its state on the way out); False if none ran."""
        info = self.running()
        if info is None:
            return False
        os.kill(info.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while _process_alive(info.pid):
            if time.monotonic() > deadline:
                os.kill(info.pid, signal.SIGKILL)
                break
            time.sleep(0.1)
        self.info_file.unlink(missing_ok=True)
        return True


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (when this process started it) is not alive.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
