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
# The training child's address space (what RLIMIT_AS counts) before any row: Python, torch,
# Opacus, pandas and pyarrow imported, their thread stacks and malloc arenas (2.46 GiB
# measured by benchmarks/scale.py), with slack.
BASELINE_BYTES = 2700 * MIB
# The streamed read (compute_to_data.job_training): pyarrow's buffers for a chunk of the file
# and the chunk's small frame, whatever the file's size.
READ_BUFFER_BYTES = 256 * MIB
# Encoded rows as float32, allocated for the public count; growing them (if the true count is
# above it) briefly holds the old arrays and new ones half as large again: 2.5 copies.
ENCODED_BYTES_PER_VALUE = 4 * 5 // 2
# Parameters, their gradients, Adam's two moments, the noise and the clipped sums.
BYTES_PER_PARAMETER = 4 * 6
# Activations and their gradients per row of a batch (float32), with slack for autograd.
BYTES_PER_ACTIVATION = 4 * 4


def estimated_memory_bytes(spec: ModelSpec, schema: DatasetSchema, public_rows: int) -> int:
    """A generous estimate of a training's peak address space, from public quantities only."""
    width = spec.input_width(schema)
    encoded = public_rows * (width + 1) * ENCODED_BYTES_PER_VALUE
    parameters = spec.parameter_count(schema) * BYTES_PER_PARAMETER
    widths = [width, *(layer.out_features for layer in spec.layers if isinstance(layer, Linear))]
    # Poisson batches vary; size activations for four times the expected batch.
    activations = 4 * spec.expected_batch_size * sum(widths) * BYTES_PER_ACTIVATION
    return BASELINE_BYTES + READ_BUFFER_BYTES + encoded + parameters + activations
