"""Parties of an end-to-end test on their own "machines": each a process with a home of its
own, sharing only the chain's RPC URL, the hub's address and what the chain names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exchange import Cove
from exchange.accounts import dev_account
from exchange.chain.anvil import LocalChain
from exchange.paths import HomeLayout

RUNNER = dev_account(5).address


def cove_cli(home: Path, *args: str, rpc: str, hub: str | None = None) -> Any:
    """One `cove` command as its own process, with its own home; returns its --json output."""
    command = [sys.executable, "-m", "exchange.cli", *args, "--home", str(home), "--rpc", rpc, "--json"]
    if hub is not None:
        command += ["--hub", hub]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env | {"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


class RunnerProcess:
    """`cove runner start --listen` in its own process and home."""

    def __init__(self, home: Path, rpc: str, hub: str, port: int, data: Path, key: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.log = home.parent / f"{home.name}.log"
        command = [
            sys.executable, "-m", "exchange.cli", "runner", "start", "--home", str(home), "--rpc", rpc,
            "--hub", hub, "--account", "dev5", "--listen", f"127.0.0.1:{port}", "--public-url", self.url,
            "--data", str(data), "--commitment-key", str(key), "--interval", "0.3",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_until_announced(self, cove: Cove, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while cove.client.endpoint_of(RUNNER) != self.url:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)


@dataclass(frozen=True)
class Machines:
    """Homes that share no file (the chain's host, hospital, runner, scientist, members) and the RPC URL."""

    root: Path
    rpc: str

    def home(self, name: str) -> Path:
        return self.root / name


def machines_on_a_chain(tmp_path: Path) -> Iterator[Machines]:
    """A fresh local chain (its host's home under `tmp_path`) for the body of a `machines` fixture."""
    chain = LocalChain(HomeLayout(tmp_path / "chain-host").chain)
    info, _ = chain.up()
    yield Machines(tmp_path, info.rpc_url)
    chain.down()
