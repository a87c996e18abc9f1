"""Summary statistics of a group's numbers that never overflow: exact arithmetic where floats would."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

#: Integers up to this size are exact as floats.
EXACT_INT = 2**53


def describe(numbers: Sequence[int | float]) -> dict[str, Any]:
    """n, mean, sample std (n - 1; None below two values), min and max (the values themselves, exact).

    mean and std are floats. They are computed with floats (math.fsum) when the values are exact as floats and
    nothing overflows, else exactly with fractions, so integers beyond 2**53 or 1e308 work; a result beyond the
    float range is ±inf. A NaN among the
    values makes mean and std NaN; an infinity makes the mean infinite (NaN if both signs occur) and std NaN.
    """
    n = len(numbers)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    mean, std = _mean_std(numbers)
    return {"n": n, "mean": mean, "std": std, "min": min(numbers, key=_order), "max": max(numbers, key=_order)}


def _order(value: int | float) -> Any:
    # NaN compares false with everything, which would make min/max depend on the order of the values.
    return (1, 0) if isinstance(value, float) and math.isnan(value) else (0, value)


def _mean_std(numbers: Sequence[int | float]) -> tuple[float, float | None]:
    n = len(numbers)
    if any(isinstance(x, int) and not -EXACT_INT <= x <= EXACT_INT for x in numbers):
        return _exact(numbers)  # float() would round such integers, or overflow beyond 1.8e308
    floats = [float(x) for x in numbers]
    if not all(map(math.isfinite, floats)):
        return _non_finite(floats)
    try:
        mean = math.fsum(floats) / n
        if n == 1:
            return mean, None
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in floats) / (n - 1))
    except OverflowError:  # an intermediate sum or square beyond the float range
        return _exact(numbers)
    if math.isinf(std):
        return _exact(numbers)
    return mean, std


def _non_finite(floats: list[float]) -> tuple[float, float | None]:
    infinities = {x for x in floats if math.isinf(x)}
    mean = math.nan if any(math.isnan(x) for x in floats) or len(infinities) > 1 else infinities.pop()
    return mean, (math.nan if len(floats) > 1 else None)


def _exact(numbers: Sequence[int | float]) -> tuple[float, float | None]:
    n = len(numbers)
    values = [Fraction(x) for x in numbers]
    mean = sum(values, Fraction(0)) / n
    if n == 1:
        return _float(mean), None
    variance = sum(((x - mean) ** 2 for x in values), Fraction(0)) / (n - 1)
    return _float(mean), _sqrt(variance)


def _float(value: Fraction) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _sqrt(value: Fraction) -> float:
    """The square root of a non-negative fraction of any size, to float precision (inf beyond its range)."""
    p, q = value.numerator, value.denominator
    shift = max(0, 64 - (p.bit_length() - q.bit_length()) // 2)  # about 64 significant bits in the root
    return _float(Fraction(math.isqrt((p << (2 * shift)) // q), 1 << shift))
