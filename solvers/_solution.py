"""What a linear solve returns."""

from typing import Any

import equinox as eqx
from jaxtyping import Array, Float

from .._results import RESULTS


class Solution(eqx.Module):
    """The result of ``solve``.

    Attributes:
        value: the approximate solution x.
        result: a ``RESULTS`` item; ``RESULTS.successful`` iff the true residual
            met ``||b - A x|| <= max(rtol ||b||, atol)``.
        stats: dict with ``num_steps`` (iterations), ``num_matvecs`` (products
            with A, the cost measure used in the benchmarks), ``residual_norm``
            (true residual norm of ``value``) and ``residual_history`` (residual
            norm estimate after each step, NaN-padded to ``max_steps``).
        state: solver state to pass to the next solve (GCRODR's recycle space);
            None for solvers without one.
    """

    value: Float[Array, " n"]
    result: RESULTS
    stats: dict[str, Array]
    state: Any
