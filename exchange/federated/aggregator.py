"""The aggregator's side: a SuperLink on 127.0.0.1, Cove's FAB submitted with `flwr run`,
and the run watched until it finishes (bounded in time).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from exchange.federated.fab import APP_DIR
from exchange.federated.server import AGGREGATOR_KEY_ENV, ROUNDS_DIR_ENV, FederationError, RunSettings
from exchange.federated.services import QUIET_FLOWER_ENV, FlowerService, flower_command, superlink

SUPERLINK_NAME = "cove"
_COLOUR_FORCING = ("FORCE_COLOR", "CLICOLOR_FORCE", "PY_COLORS", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
FINISHED = "finished"


@dataclass
class RunStatus:
    run_id: int
    status: str  # e.g. "running", "finished:completed", "finished:failed"

    @property
    def finished(self) -> bool:
        return self.status.startswith(FINISHED)

    @property
    def completed(self) -> bool:
        return self.status == f"{FINISHED}:completed"


class Aggregator:
    """One SuperLink and the runs submitted to it, in the aggregator's `home` directory."""

    def __init__(self, home: Path, aggregator_key: str, env: dict[str, str] | None = None, *,
                 listen: str | None = None, public_address: str | None = None) -> None:  # fmt: skip
        """`listen`: host:port the SuperLink binds (default 127.0.0.1 and a free port);
        `public_address`: host:port runners dial (default the bound address)."""
        import os

        self.home = home
        self.flwr_home = home / "flwr"
        self.rounds_dir = home / "rounds"  # the ServerApp keeps round R of federation F in F/round-R.npz
        # `flwr … --format json` prints through Rich: plain text, whatever terminal (or Jupyter) runs us.
        base = {k: v for k, v in (os.environ if env is None else env).items() if k not in _COLOUR_FORCING}
        # The ServerApp (started by the SuperLink) inherits this environment: the key stays
        # within the aggregator's own process tree.
        self.env = base | QUIET_FLOWER_ENV | {
            "NO_COLOR": "1", "TERM": "dumb", AGGREGATOR_KEY_ENV: aggregator_key,
            ROUNDS_DIR_ENV: str(self.rounds_dir), "FLWR_HOME": str(self.flwr_home),
        }  # fmt: skip
        self.service: FlowerService | None = None
        self.listen = listen
        self.public_address = public_address
        self.port = 0

    @property
    def fleet_address(self) -> str:
        """Where runners' SuperNodes connect."""
        return self.public_address or f"{self._host}:{self.port}"

    @property
    def _host(self) -> str:
        return self.listen.rpartition(":")[0] if self.listen else "127.0.0.1"

    @property
    def _local_host(self) -> str:
        """Where this machine reaches the SuperLink (`flwr run`, the ServerApp)."""
        return "127.0.0.1" if self._host in ("0.0.0.0", "::", "") else self._host

    def __enter__(self) -> Aggregator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        port = int(self.listen.rpartition(":")[2]) if self.listen else None
        self.service, self.port = superlink(self.home, self.env, self._host, port)
        self.service.start()
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        (self.flwr_home / "config.toml").write_text(
            f'[superlink]\ndefault = "{SUPERLINK_NAME}"\n\n'
            f'[superlink.{SUPERLINK_NAME}]\naddress = "{self._local_host}:{self.port}"\ninsecure = true\n'
        )

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None

    def _flwr(self, *args: str, timeout: float = 60) -> str:
        try:
            done = subprocess.run(
                [flower_command("flwr"), *args], capture_output=True, text=True, timeout=timeout,
                env=self.env, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise FederationError(f"`flwr {args[0]}` did not answer within {timeout:g} s.") from None
        if done.returncode != 0:
            raise FederationError(f"`flwr {args[0]}` failed: {(done.stdout + done.stderr).strip()[-400:]}")
        return _ANSI.sub("", done.stdout)

    def submit(self, settings: RunSettings) -> int:
        """Submits Cove's FAB with `settings`; returns the Flower run id."""
        output = self._flwr("run", str(APP_DIR), SUPERLINK_NAME, "--run-config", settings.to_run_config(),
                            "--format", "json")  # fmt: skip
        try:
            return int(json.loads(output)["run-id"])
        except (ValueError, KeyError, TypeError):
            raise FederationError(f"`flwr run` gave no run id: {output.strip()[-400:]}") from None

    def status(self, run_id: int) -> RunStatus:
        output = self._flwr("ls", SUPERLINK_NAME, "--run-id", str(run_id), "--format", "json")
        try:
            runs = json.loads(output)["runs"]
            return RunStatus(run_id, str(runs[0]["status"]))
        except (ValueError, KeyError, TypeError, IndexError):
            raise FederationError(f"`flwr ls` gave no status for run {run_id}: {output.strip()[-400:]}") from None

    def wait(self, run_id: int, timeout: float, poll: float = 1.0) -> RunStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(run_id)
            if status.finished:
                return status
            if time.monotonic() > deadline:
                raise FederationError(f"Flower run {run_id} did not finish within {timeout:g} s ({status.status}).")
            time.sleep(poll)

    def server_log(self, run_id: int) -> str:
        """The ServerApp's log of the run (Flower keeps it in the SuperLink)."""
        try:
            return self._flwr("log", str(run_id), SUPERLINK_NAME, timeout=30)
        except FederationError as error:
            return str(error)
