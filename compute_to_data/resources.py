"""What a job will need, estimated from public parameters only, before any private row is read.

A refusal must not depend on the private rows: if the runner read the table and then ran out
of memory, whether a job fails would tell about the rows (how many, how wide their text),
and a refusal that releases the privacy charge would make that probe free. So the runner
refuses, with the charge released, only what this estimate (the public row count, the
declared schema, the spec) says cannot fit; anything that goes wrong once the sandbox has
started keeps the charge.
"""

from __future__ import annotations

from exchange.datasets import DatasetSchema
from exchange.ml.spec import Linear, ModelSpec

MIB = 1024**2
# The training child itself: Python, torch, Opacus, pandas and pyarrow, imported.
BASELINE_BYTES = 900 * MIB
# Reading a table costs a few copies of it (the file's text, Arrow buffers, pandas columns).
BYTES_PER_CELL = 96
# Encoded inputs as numpy float64, then torch float32 (and a batch gathered from them).
ENCODED_BYTES_PER_VALUE = 8 + 4 + 4
# Parameters, their gradients, Adam's two moments, Opacus' noise and clipped sums.
BYTES_PER_PARAMETER = 4 * 6
# Activations and their gradients per row of a batch (float32), with slack for autograd.
BYTES_PER_ACTIVATION = 4 * 4


def estimated_memory_bytes(spec: ModelSpec, schema: DatasetSchema, public_rows: int) -> int:
    """A generous estimate of a training's peak memory, from public quantities only."""
    width = spec.input_width(schema)
    table = public_rows * len(schema.columns) * BYTES_PER_CELL
    encoded = public_rows * (width + 1) * ENCODED_BYTES_PER_VALUE
    parameters = spec.parameter_count(schema) * BYTES_PER_PARAMETER
    widths = [width, *(layer.out_features for layer in spec.layers if isinstance(layer, Linear))]
    # Poisson batches vary; size activations for four times the expected batch.
    activations = 4 * spec.expected_batch_size * sum(widths) * BYTES_PER_ACTIVATION
    return BASELINE_BYTES + table + encoded + parameters + activations
