"""The runner's side of a round, as a Flower ClientApp: SecAgg+ around one local DP round.

The app is Cove's own, built here on the owner's premises; the FAB the aggregator ships is
never executed by a runner. Two mods wrap the training function:

- `secure_only` refuses every message that is not a SecAgg+ training stage (evaluation,
  queries, a plain `train` that would carry the update in the clear) and SecAgg+ set up so
  that fewer than two updates are summed;
- Flower's `secaggplus_mod` masks the update, so the aggregator learns only the sum.

The reply carries the DP-trained parameters (masked), the public weight 1 and the update's
digest; never the number of rows read nor any metric of the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from exchange.federated.arrays import UPDATE_DIGEST, model_digest

RoundTrainer = Callable[[int, str, list[np.ndarray]], list[np.ndarray]]
"""(round, model digest the round claims, the round's model) -> the DP-trained parameters."""

MIN_SUMMED = 2  # SecAgg+ with a single update would hand it over in the clear


class RefusedMessage(Exception):
    """A message a Cove runner does not answer."""


def secure_only(message: Any, context: Any, call_next: Any) -> Any:
    """Mod: only SecAgg+ training stages pass, and only with at least two updates summed."""
    from flwr.app.message_type import MessageType
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage

    if message.metadata.message_type != MessageType.TRAIN:
        raise RefusedMessage(f"A Cove runner answers only SecAgg+ training, not {message.metadata.message_type!r}.")
    configs = message.content.config_records.get(RECORD_KEY_CONFIGS)
    if configs is None or Key.STAGE not in configs:
        raise RefusedMessage("A Cove runner sends its update only through SecAgg+; this round does not use it.")
    if configs[Key.STAGE] == Stage.SETUP:
        samples, threshold = int(configs[Key.SAMPLE_NUMBER]), int(configs[Key.THRESHOLD])
        if samples < MIN_SUMMED or threshold < MIN_SUMMED:
            raise RefusedMessage(
                f"SecAgg+ is set up for {samples} updates with threshold {threshold}; a Cove runner needs at "
                f"least {MIN_SUMMED} of each."
            )
    return call_next(message, context)


def make_client_app(train_round: RoundTrainer) -> Any:
    """The ClientApp that answers each round with `train_round`."""
    from flwr.clientapp import ClientApp
    from flwr.client.mod import secaggplus_mod
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.common import Message
    from flwr.compat.common import recorddict_compat as compat

    app = ClientApp(mods=[secure_only, secaggplus_mod])

    @app.train()
    def train(message: Any, context: Any) -> Any:
        fit = compat.recorddict_to_fitins(message.content, keep_input=True)
        round_number = int(fit.config["round"])
        claimed = str(fit.config["model-digest"])
        updated = train_round(round_number, claimed, parameters_to_ndarrays(fit.parameters))
        # The update's digest, a leaf of the round's on-chain updatesRoot (a hash of a DP
        # release, so post-processing); its weight is the public constant 1.
        digest = "0x" + model_digest(updated).hex()
        result = FitRes(status=Status(Code.OK, ""), parameters=ndarrays_to_parameters(updated), num_examples=1,
                        metrics={UPDATE_DIGEST: digest})  # fmt: skip
        return Message(compat.fitres_to_recorddict(result, keep_input=False), reply_to=message)

    return app
