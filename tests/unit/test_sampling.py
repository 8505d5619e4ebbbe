"""The Poisson sampler draws exactly the accountant's distribution, at a cost set by the batch.

Each statistical check runs with a fixed seed (so it cannot flake) and comes with controls:
wrong samplers (fixed-size batches, sampling with replacement, an off-by-one start, a
repeated batch) that the same check must reject.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

import numpy as np
import pytest
import torch
from scipy import stats

from compute_to_data.sampling import PoissonSampler

Sampler = Callable[[int, float, int, int], Iterable[torch.Tensor]]  # (rows, q, steps, seed)
ACCEPT, REJECT = 1e-3, 1e-6  # p-value bars: a right sampler passes, a wrong one fails


def poisson(rows: int, q: float, steps: int, seed: int) -> Iterable[torch.Tensor]:
    return PoissonSampler(num_samples=rows, sample_rate=q, steps=steps, generator=np.random.default_rng(seed))


class SmallRefills(PoissonSampler):
    """The same sampler drawing a few gaps per refill: step boundaries fall inside refills,
    and steps need several refills, which the default sizing makes rare."""

    draws = 1

    def _draws(self, step: int) -> int:
        return self.draws


def one_gap(rows: int, q: float, steps: int, seed: int) -> Iterable[torch.Tensor]:
    return SmallRefills(num_samples=rows, sample_rate=q, steps=steps, generator=np.random.default_rng(seed))


def few_gaps(rows: int, q: float, steps: int, seed: int) -> Iterable[torch.Tensor]:
    sampler = SmallRefills(num_samples=rows, sample_rate=q, steps=steps, generator=np.random.default_rng(seed))
    sampler.draws = 7
    return sampler


# Controls: plausible mistakes.


def fixed_size(rows: int, q: float, steps: int, seed: int) -> Iterator[torch.Tensor]:
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        yield torch.from_numpy(np.sort(rng.choice(rows, round(rows * q), replace=False)))


def with_replacement(rows: int, q: float, steps: int, seed: int) -> Iterator[torch.Tensor]:
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        yield torch.from_numpy(np.unique(rng.integers(0, rows, rng.binomial(rows, q))))


def off_by_one(rows: int, q: float, steps: int, seed: int) -> Iterator[torch.Tensor]:
    """Gaps from the end of the table backwards, forgetting the -1: row 0 is never drawn."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        positions = np.cumsum(rng.geometric(q, size=rows + 1))
        yield torch.from_numpy(positions[positions < rows])


def repeated(rows: int, q: float, steps: int, seed: int) -> Iterator[torch.Tensor]:
    """Right marginals, but each batch twice: steps are not independent."""
    for indices in islice(poisson(rows, q, steps, seed), (steps + 1) // 2):
        yield indices
        yield indices


def mask(indices: torch.Tensor) -> int:
    return sum(1 << int(i) for i in indices)


def subset_law_p_value(sampler: Sampler, rows: int, q: float, steps: int, seed: int) -> float:
    """Chi-square of how often each of the 2^rows subsets came up against q^k (1-q)^(rows-k)."""
    counts = Counter(mask(indices) for indices in sampler(rows, q, steps, seed))
    subsets = range(2**rows)
    expected = [steps * q ** m.bit_count() * (1 - q) ** (rows - m.bit_count()) for m in subsets]
    return float(stats.chisquare([counts[m] for m in subsets], expected).pvalue)


@pytest.mark.parametrize("q", [0.1, 0.3, 0.5, 0.9])  # numpy draws q ≥ 1/3 by another method
@pytest.mark.parametrize("sampler", [poisson, one_gap])
def test_every_subset_comes_up_as_often_as_poisson_sampling_says(sampler: Sampler, q: float) -> None:
    assert subset_law_p_value(sampler, 4, q, 20_000, seed=1) > ACCEPT


@pytest.mark.parametrize("wrong", [fixed_size, with_replacement, off_by_one])
def test_the_subset_law_check_rejects_wrong_samplers(wrong: Sampler) -> None:
    assert subset_law_p_value(wrong, 4, 0.5, 20_000, seed=1) < REJECT


def consecutive_pairs_p_value(sampler: Sampler, rows: int, q: float, pairs: int, seed: int) -> float:
    """Chi-square of (this step's subset, the next step's) against the product of their laws."""
    batches = [mask(b) for b in sampler(rows, q, 2 * pairs, seed)]
    counts = Counter(zip(batches[0::2], batches[1::2]))
    law = [q ** m.bit_count() * (1 - q) ** (rows - m.bit_count()) for m in range(2**rows)]
    cells = [(a, b) for a in range(2**rows) for b in range(2**rows)]
    return float(stats.chisquare([counts[c] for c in cells], [pairs * law[a] * law[b] for a, b in cells]).pvalue)


@pytest.mark.parametrize("sampler", [poisson, one_gap])
def test_steps_are_independent(sampler: Sampler) -> None:
    # Three rows, so a step's last rows and the next step's first lie in one refill.
    assert consecutive_pairs_p_value(sampler, 3, 0.4, 20_000, seed=2) > ACCEPT
    assert consecutive_pairs_p_value(repeated, 3, 0.4, 20_000, seed=2) < REJECT


def batch_size_p_value(sampler: Sampler, rows: int, q: float, steps: int, seed: int) -> float:
    """Chi-square of batch sizes against Binomial(rows, q), tails pooled to expected counts ≥ 5."""
    sizes = np.bincount([len(b) for b in sampler(rows, q, steps, seed)], minlength=rows + 1)
    expected = steps * stats.binom.pmf(np.arange(rows + 1), rows, q)
    low = int(np.argmax(np.cumsum(expected) >= 5))
    high = rows - int(np.argmax(np.cumsum(expected[::-1]) >= 5))
    observed = [sizes[: low + 1].sum(), *sizes[low + 1:high], sizes[high:].sum()]
    pooled = [expected[: low + 1].sum(), *expected[low + 1:high], expected[high:].sum()]
    return float(stats.chisquare(observed, np.array(pooled) * sum(observed) / sum(pooled)).pvalue)


def test_batch_sizes_are_binomial() -> None:
    assert batch_size_p_value(poisson, 1000, 0.05, 20_000, seed=3) > ACCEPT
    assert batch_size_p_value(few_gaps, 1000, 0.05, 20_000, seed=3) > ACCEPT
    assert batch_size_p_value(fixed_size, 1000, 0.05, 20_000, seed=3) < REJECT
    assert batch_size_p_value(with_replacement, 1000, 0.05, 20_000, seed=3) < REJECT


def inclusion_p_value(sampler: Sampler, rows: int, q: float, steps: int, seed: int) -> float:
    """Chi-square (rows degrees of freedom) of each row's inclusion count against Binomial(steps, q)."""
    counts = np.zeros(rows)
    for indices in sampler(rows, q, steps, seed):
        counts[indices.numpy()] += 1
    statistic = float((((counts - steps * q) ** 2) / (steps * q * (1 - q))).sum())
    return float(stats.chi2.sf(statistic, rows))


def test_every_row_is_included_at_rate_q() -> None:
    assert inclusion_p_value(poisson, 1000, 0.05, 20_000, seed=4) > ACCEPT
    assert inclusion_p_value(few_gaps, 1000, 0.05, 20_000, seed=4) > ACCEPT
    assert inclusion_p_value(off_by_one, 1000, 0.05, 20_000, seed=4) < REJECT


class CountingGenerator:
    """A numpy generator that counts the gaps it draws."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.drawn = 0

    def geometric(self, p: float, size: int) -> np.ndarray:
        self.drawn += size
        return self.rng.geometric(p, size=size)


def test_the_work_is_set_by_the_batch_not_the_table() -> None:
    # A trillion rows at q = 1e-10: a hundred rows a step. Opacus' sampler would need a
    # trillion uniforms (4 TB) for each step; this draws a few dozen gaps.
    rows, q, steps = 10**12, 1e-10, 50
    generator = CountingGenerator(5)
    batches = list(PoissonSampler(num_samples=rows, sample_rate=q, steps=steps, generator=generator))  # type: ignore[arg-type]
    assert len(batches) == steps
    assert 0 < sum(len(b) for b in batches) < 2 * steps * rows * q
    assert all(int(b.min()) >= 0 and int(b.max()) < rows for b in batches if len(b))
    assert generator.drawn < 10 * (steps * rows * q + 16)


def test_batches_are_sorted_distinct_in_range_and_exactly_steps() -> None:
    batches = list(poisson(500, 0.02, 300, seed=6))
    assert len(batches) == len(PoissonSampler(num_samples=500, sample_rate=0.02, steps=300,
                                              generator=np.random.default_rng(0))) == 300
    for indices in batches:
        assert indices.dtype == torch.int64 and indices.device.type == "cpu"
        assert bool((indices[1:] > indices[:-1]).all()) and (len(indices) == 0 or 0 <= int(indices[0]) <= int(indices[-1]) < 500)
    assert any(len(b) == 0 for b in poisson(200, 0.005, 400, seed=6))  # empty steps are still steps
    assert all(torch.equal(b, torch.arange(7)) for b in poisson(7, 1.0, 5, seed=6))
    assert list(poisson(7, 0.5, 0, seed=6)) == []


def test_a_seed_fixes_the_batches_and_another_changes_them() -> None:
    def run(seed: int) -> list[list[int]]:
        return [b.tolist() for b in poisson(1000, 0.01, 50, seed)]

    assert run(7) == run(7) and run(7) != run(8)


def test_refuses_impossible_parameters() -> None:
    rng = np.random.default_rng(0)
    for rows, q, steps in ((0, 0.5, 1), (10, 0.0, 1), (10, 1.5, 1), (10, math.nan, 1), (10, 0.5, -1),
                           (2**40, 0.5, 2**22)):
        with pytest.raises(ValueError):
            PoissonSampler(num_samples=rows, sample_rate=q, steps=steps, generator=rng)
