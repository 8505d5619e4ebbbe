"""Python's `repr` of many floats at once: the commitment's text for a float (commitment.py).

Arrow's float-to-string cast already writes the shortest digits that round-trip (the digits
`repr` writes too; the tests check this against `repr` on millions of values), but it lays
them out by its own rules: `2` for 2.0, `0.00001` for 1e-05, `1.5e-7`, `1e+15`. Python
writes positional text for decimal exponents -4 <= E < 16 (always with a fraction, `2.0`)
and scientific text with at least two exponent digits elsewhere. So the Arrow text is kept
where the two layouts agree, rewritten where the difference is mechanical, and only the
rest -- non-integral values in [1e10, 1e16) and values in [1e-6, 1e-4), which Arrow writes
in the other layout -- goes through `repr` one by one.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Python's repr is positional exactly for 1e-4 <= |x| < 1e16 (and zero); Arrow's for
# 1e-6 <= |x| < 1e10 (the tests check both layouts against repr around every power of ten).
_POSITIONAL_LOW = 1e-4
_POSITIONAL_HIGH = 1e16
_ARROW_LOW = 1e-6
_ARROW_HIGH = 1e10


def repr_floats(values: pa.Array) -> pa.Array:
    """`repr(float(v))` of every value of a float64 array, as a string array; nulls stay null.

    The values must be finite (the caller refuses infinities); NaN counts as a null.
    """
    values = pc.if_else(pc.is_nan(values), pa.scalar(None, pa.float64()), values)
    text = pc.cast(values, pa.string())
    magnitude = np.abs(values.to_numpy(zero_copy_only=False))  # nulls become NaN
    valid = ~np.isnan(magnitude)
    with np.errstate(invalid="ignore"):
        zero = magnitude == 0
        positional = ((magnitude >= _POSITIONAL_LOW) & (magnitude < _POSITIONAL_HIGH)) | zero
        # Arrow's layout, read off the magnitude: comparing with the double nearest a power
        # of ten is exact, as no shortest text of a smaller double reaches that power.
        scientific = ((magnitude < _ARROW_LOW) | (magnitude >= _ARROW_HIGH)) & ~zero
        integral = np.floor(magnitude) == magnitude
    both_positional = valid & ~scientific & positional
    whole = both_positional & integral  # Python adds the ".0" Arrow leaves off
    out = text
    if whole.any():
        mask = pa.array(whole)
        out = pc.replace_with_mask(out, mask, pc.binary_join_element_wise(text.filter(mask), ".0", ""))
    both_scientific = valid & scientific & ~positional
    if both_scientific.any():  # Python writes two exponent digits at least: 1.5e-07
        mask = pa.array(both_scientific)
        # RE2 reads a rewrite's backslash-digit as one digit: group 1, a "0", group 2.
        padded = pc.replace_substring_regex(text.filter(mask), r"e([+-])([0-9])$", r"e\10\2")
        out = pc.replace_with_mask(out, mask, padded)
    large_whole = valid & scientific & positional & integral
    if large_whole.any():  # below 1e16, a whole number's repr is its integer text and ".0"
        mask = pa.array(large_whole)
        digits = pc.cast(pc.cast(values.filter(mask), pa.int64()), pa.string())
        out = pc.replace_with_mask(out, mask, pc.binary_join_element_wise(digits, ".0", ""))
    rest = valid & ~both_positional & ~both_scientific & ~large_whole
    if rest.any():  # rare in practice: one repr each
        mask = pa.array(rest)
        texts = [repr(v) for v in values.filter(mask).to_pylist()]
        out = pc.replace_with_mask(out, mask, pa.array(texts, pa.string()))
    return out
