"""Poisson sampling for DP-SGD in O(batch) per step, with exactly the accountant's distribution.

The RDP accountant assumes each step's batch includes every row independently with
probability q. Opacus' `UniformWithReplacementSampler` draws that literally, one uniform per
row per step: O(rows) per step, O(rows² / batch) per epoch (33.6 s an epoch at a million
rows). The same trials can be drawn by their gaps instead: in a run of independent
Bernoulli(q) trials, the numbers of trials from one success to the next (the first
included) are independent Geometric(q) variables. So the rows of a batch are g_1 - 1,
g_1 + g_2 - 1, ... up to the table's end, the g's Geometric(q): the same distribution, not
an approximation (no fixed batch size, no sampling with replacement, each row in or out
independently, with the batch sorted as it comes), at about N·q draws, the expected batch
size, whatever N is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch


class PoissonSampler:
    """`steps` Poisson batches over `num_samples` rows at rate `sample_rate`, as index tensors.

    A drop-in for how the runner used Opacus' `UniformWithReplacementSampler`: iterate to get
    exactly `steps` batches (an empty one included: it is still a step), each a sorted int64
    CPU tensor of row indices. `generator` is the only source of randomness; the runner
    seeds it from the operating system's entropy.

    All steps' trials (one per row per step) are independent Bernoulli(q), so laid end to
    end, step s's row r at position s·N + r, they are one Bernoulli run: the sampler draws
    its gaps a few steps' worth at a time and cuts the run at multiples of N. That is
    exactly a fresh Poisson sample per step, with numpy's per-call overhead shared by
    several steps; what is drawn and not yet handed out is a few batches' worth.
    """

    DRAWS_PER_REFILL = 2048  # about how many gaps one refill draws when batches are small

    def __init__(
        self, *, num_samples: int, sample_rate: float, steps: int, generator: np.random.Generator
    ) -> None:
        if num_samples <= 0:
            raise ValueError("num_samples must be positive")
        if not 0 < sample_rate <= 1:
            raise ValueError("sample_rate must be in (0, 1]")
        if steps < 0:
            raise ValueError("steps must not be negative")
        if num_samples * steps >= 2**62:  # positions s·N + r must fit in int64
            raise ValueError("too many rows × steps for one sampler")
        self.num_samples = num_samples
        self.sample_rate = sample_rate
        self.steps = steps
        self.generator = generator

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[torch.Tensor]:
        n = self.num_samples
        end_of_run = n * self.steps
        # Positions drawn and not yet handed out: pending[start:] (sorted); `last` is the
        # last position drawn (-1: none yet). At each refill the rows (position mod N) and
        # where every step that is now complete ends are worked out at once, so a step
        # itself is one slice.
        pending = np.empty(0, dtype=np.int64)
        rows = torch.empty(0, dtype=torch.int64)
        stops: list[int] = []
        start, last, first = 0, -1, 0  # `first`: the step stops[0] belongs to
        for step in range(self.steps):
            if last < (step + 1) * n - 1:  # some of this step's trials are not drawn yet
                parts = [pending[start:]]
                while last < (step + 1) * n - 1:
                    gaps = self.generator.geometric(self.sample_rate, size=self._draws(step))
                    # A gap reaching past the last step ends the run whatever its length:
                    # capping it there changes nothing and keeps the sum far from overflow.
                    np.minimum(gaps, end_of_run - last, out=gaps)
                    drawn = np.cumsum(gaps, out=gaps)
                    drawn += last
                    parts.append(drawn)
                    last = int(drawn[-1])
                pending = np.concatenate(parts)
                complete = min(self.steps, (last + 1) // n)  # steps whose trials are all drawn
                ends = np.arange(step + 1, complete + 1, dtype=np.int64) * n
                stops = np.searchsorted(pending, ends).tolist()
                rows = torch.from_numpy(pending % n)
                start, first = 0, step
            stop = stops[step - first]
            yield rows[start:stop]
            start = stop

    def _draws(self, step: int) -> int:
        """How many gaps to draw at `step`: a few steps' worth, plus four standard deviations.

        Any positive number gives the same batches' distribution; this only sets how often
        numpy is called and how much is held.
        """
        per_step = self.num_samples * self.sample_rate
        ahead = min(self.steps - step, max(1, math.ceil(self.DRAWS_PER_REFILL / max(per_step, 1.0))))
        expected = ahead * per_step
        return int(expected + 4 * math.sqrt(expected) + 16)
