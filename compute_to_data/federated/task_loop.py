"""The runner's own ClientApp process loop, against its SuperNode's Runtime API.

The SuperNode runs with `--isolation process`: it holds the (outbound) connection to the
aggregator's SuperLink and queues each message as a task, and starts nothing itself. This
loop takes the tasks (AcquireTask), checks that the run is Cove's FAB, answers each with
Cove's ClientApp (`client_app.make_client_app`) and pushes the reply: what `flwr-clientapp`
does, except that the app is the owner's and never the FAB's code.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from exchange.errors import CoveError

POLL_S = 0.2


class FederatedRunError(CoveError):
    """The Flower run is not one this runner joins, or a task could not be answered."""


@dataclass
class TaskOutcome:
    run_id: int
    ok: bool
    detail: str


def _client(address: str, token: str | None = None) -> Any:
    from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor, RuntimeVersionHttpInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient

    interceptors: list[Any] = [RuntimeVersionHttpInterceptor(component_name="flwr-clientapp")]
    if token is not None:
        interceptors.append(RuntimeTokenHttpInterceptor(token))
    return RuntimeHttpClient.from_server_address(
        server_address=address, insecure=True, root_certificates=None, interceptors=interceptors,
        retry_invoker=make_simple_http_retry_invoker(),
    )  # fmt: skip


def acquire_token(address: str) -> str | None:
    """One AcquireTask call: a ClientApp task's token, or None when none is waiting."""
    from flwr.proto.runtime_pb2 import AcquireTaskRequest  # type: ignore[attr-defined]
    from flwr.supercore.constant import TaskType

    client = _client(address)
    try:
        response = client.AcquireTask(AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP]))
    finally:
        client.close()
    if response.HasField("task") and response.token:
        return str(response.token)
    return None


def answer_task(address: str, token: str, app: Any, fab_hash: str) -> TaskOutcome:
    """Pulls the task's message, answers it with `app` and pushes the reply and status."""
    from flwr.app import Message
    from flwr.app.error import Error
    from flwr.common.constant import ErrorCode, SubStatus
    from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
    from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

    client = _client(address, token)
    heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(client))
    heartbeat.start()
    message = context = reply = None
    run_id, ok, detail = 0, False, "the task failed"
    try:
        message, context, run, fab = pull_task_input(client)
        run_id = int(run.run_id)
        if fab.hash_str != fab_hash:
            raise FederatedRunError(f"Run {run_id} is not Cove's Flower App (FAB hash {fab.hash_str[:12]}…).")
        reply = app(message=message, context=context)
        ok, detail = True, ""
    except Exception as error:  # noqa: BLE001 - any failure is reported to the SuperNode as this task's
        detail = str(error) or type(error).__name__
        if message is not None:
            reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=detail), reply_to=message)
    finally:
        try:
            if reply is not None and context is not None:
                push_message(client, reply, context)
            push_task_output(client, context, SubStatus.COMPLETED if ok else SubStatus.FAILED, detail)
        finally:
            heartbeat.stop()
            client.close()
    return TaskOutcome(run_id, ok, detail)


class TaskLoop:
    """Answers the SuperNode's tasks until `stop` is set; remembers each outcome."""

    def __init__(self, address: str, app: Any, fab_hash: str) -> None:
        self.address = address
        self.app = app
        self.fab_hash = fab_hash
        self.stop = threading.Event()
        self.outcomes: list[TaskOutcome] = []

    def run(self, until: float) -> None:
        """Serves tasks until `stop` or the monotonic time `until`."""
        while not self.stop.is_set() and time.monotonic() < until:
            try:
                token = acquire_token(self.address)
            except Exception:  # noqa: BLE001 - the SuperNode is still starting, or restarting
                token = None
            if token is None:
                self.stop.wait(POLL_S)
                continue
            self.outcomes.append(answer_task(self.address, token, self.app, self.fab_hash))
