"""Outcome codes of the linear (and the nonlinear collocation) solvers."""

import equinox as eqx


class RESULTS(eqx.Enumeration):
    """How a solve ended. ``throw=True`` raises with the message."""

    successful = ""
    max_steps_reached = (
        "Reached max_steps before ||b - A x|| <= max(rtol ||b||, atol). "
        "Increase max_steps, loosen the tolerances or precondition."
    )
    stagnation = (
        "The true residual stopped decreasing before meeting the tolerance "
        "(a restart cycle, or CG between two true-residual checks, made no "
        "progress): the tolerance may be below what this dtype can reach for "
        "this matrix, or the restart length too short."
    )
    breakdown = (
        "The iteration broke down: the operator (or preconditioner) is not "
        "symmetric positive definite, which CG's family needs (a direction had "
        "p^T A p <= 0, or successive residuals were not orthogonal, as happens "
        "for a non-symmetric A). Use GMRES or GCRODR for indefinite or "
        "non-symmetric systems, and CG(flexible=True) for a preconditioner that "
        "changes between applications."
    )
    nonfinite = (
        "A NaN or inf appeared in b, x0, or the output of the operator or "
        "preconditioner."
    )
    concentration_max_steps_reached = (
        "Newton's iteration for the von Mises-Fisher concentration did not "
        "converge: the mean resultant length may be within rounding of 0 or 1. "
        "Increase max_steps, or fit in float64."
    )
    nonfinite_loss = (
        "Training stopped at a NaN or inf loss; the model is the one after the "
        "last finite step. Lower the learning rate, check the data for NaN or "
        "inf, or train in float64."
    )
    newton_max_steps_reached = (
        "Newton's method reached max_steps before its step fell below rtol times "
        "the solution. Increase max_steps, start from a better initial guess, or "
        "use more points if the solution is not resolved."
    )
    residual_above_rtol = (
        "The kernel updates ran out before the PDE residual between the nodes "
        "fell below rtol (stats['residual_norm']): the kernel may not be able "
        "to represent the solution. Pass other kernels, more points or more "
        "outer steps."
    )


def _failure_messages(entry_point: str, solution: str, where: str) -> list[str]:
    names = {item._value.item(): name for name, item in RESULTS._name_to_item.items()}
    return [
        f"{entry_point} ended with result RESULTS.{names[index]}{where}: "
        f"{message}\n"
        f"To handle this without an exception (inside jit, vmap, grad or a "
        f"loop), call {entry_point} with throw=False and test "
        f"{solution}.result == sciax.RESULTS.successful."
        for index, message in enumerate(RESULTS._index_to_message)
    ]


def raise_if_failed(
    value, result, entry_point: str, solution: str = "solution", where: str = ""
):
    """``value``, unchanged, with a runtime error attached where ``result`` is
    not ``RESULTS.successful`` (``throw=True``). The message names the
    entry point, the result and the way out: ``throw=False`` and a test of
    ``result``. Under ``jit``, ``vmap`` and ``grad``, equinox and JAX wrap it
    in their own long text; this first paragraph says what went wrong and
    what to do. ``where`` adds which part failed (" in its gradient's
    transposed solve")."""
    return eqx.branched_error_if(
        value,
        result != RESULTS.successful,
        result._value,
        _failure_messages(entry_point, solution, where),
    )
