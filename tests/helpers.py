"""Shared test utilities: per-dtype tolerances and the reference tables."""

import csv
from pathlib import Path

import numpy as np

DATA = Path(__file__).with_name("data")


def eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


def mixed_error(value, reference_hi, reference_lo=0.0):
    """|value - reference| / max(1, |reference|): relative for large logs,
    absolute near zero, where a log has no relative accuracy to keep."""
    value = np.asarray(value, np.float64)
    difference = (value - reference_hi) - reference_lo
    both_inf = np.isinf(value) & (value == reference_hi)
    error = np.abs(difference) / np.maximum(1.0, np.abs(reference_hi))
    return np.where(both_inf, 0.0, error)


def bessel_reference() -> dict[str, np.ndarray]:
    """Columns of tests/data/bessel_reference.csv (made by make_bessel_reference.py)."""
    with (DATA / "bessel_reference.csv").open() as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    table = np.array(body, dtype=np.float64)
    return {name: table[:, i] for i, name in enumerate(header)}
