"""Trying a spec before paying: a few plain epochs on the schema-only mock sample.

Nothing here touches the chain or private data: the model is built from the spec and the
public schema, the inputs are encoded from the mock sample exactly as the runner encodes
private rows, and training is ordinary (no DP) PyTorch. It answers "does this spec run
end to end and does the loss move", not "how good will the model be": the mock sample is
drawn uniformly from the schema, so its target is unrelated to its features.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from exchange.datasets import DatasetSchema
from exchange.errors import SpecError
from exchange.ml.spec import ModelSpec


def try_spec(spec: ModelSpec, schema: DatasetSchema, frame: pd.DataFrame, *, epochs: int = 3, seed: int = 0) -> dict[str, Any]:
    """Trains `spec` for `epochs` epochs (at most the spec's) on `frame`, without DP.

    Returns {"ran": True, "rows", "epochs", "parameters", "input_width", "output_width",
    "loss_first", "loss_last"} (the mean loss of the first and the last epoch).
    SpecError (the runner's sentences) if the spec does not fit the schema.
    """
    import torch
    from torch import nn

    from exchange.ml.model import build_model, encode_features, encode_target

    spec.check_against(schema)
    targets, usable = encode_target(spec, schema, frame, fill_missing=True)
    if len(targets) == 0:
        raise SpecError(f"The mock sample has no row with a usable '{spec.target}' to try the spec on.")
    features = encode_features(spec, schema, frame)[torch.from_numpy(usable)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(spec, schema)
        generator = torch.Generator().manual_seed(seed)
        optimizer = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[spec.optimizer](
            model.parameters(), lr=spec.learning_rate
        )
        criterion = {"cross_entropy": nn.CrossEntropyLoss, "bce": nn.BCEWithLogitsLoss, "mse": nn.MSELoss}[spec.loss]()
        squeeze = spec.loss in ("bce", "mse")
        batch = max(1, min(spec.expected_batch_size, len(targets)))
        losses: list[float] = []
        model.train()
        for _ in range(max(1, min(epochs, spec.epochs))):
            order = torch.randperm(len(targets), generator=generator)
            total, count = 0.0, 0
            for start in range(0, len(order), batch):
                index = order[start : start + batch]
                optimizer.zero_grad(set_to_none=True)
                outputs = model(features[index])
                if squeeze:
                    outputs = outputs.squeeze(-1)
                loss = criterion(outputs, targets[index])
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(index)
                count += len(index)
            losses.append(total / count)
    if not all(math.isfinite(v) for v in losses):
        raise SpecError("Training on the mock sample gave a non-finite loss; lower the learning rate.")
    return {
        "ran": True,
        "rows": int(len(targets)),
        "epochs": len(losses),
        "parameters": spec.parameter_count(schema),
        "input_width": spec.input_width(schema),
        "output_width": spec.output_width(schema),
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }
