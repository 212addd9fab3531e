"""Preconditioners: Jacobi, and the normalization of what ``solve`` accepts."""

import abc

import equinox as eqx

from .._operator import LinearOperator, as_operator


class AbstractPreconditioner(eqx.Module):
    """A recipe that builds M ~ A^{-1} from the operator inside ``solve``."""

    @abc.abstractmethod
    def build(self, operator: LinearOperator):
        """Returns the function v -> M v."""


class Jacobi(AbstractPreconditioner):
    r"""$M = \mathrm{diag}(A)^{-1}$. SPD when A's diagonal is positive, so it
    serves CG as well as GMRES. Needs ``operator.diagonal()``; a zero on the
    diagonal gives inf, which the solver reports as ``RESULTS.nonfinite``."""

    def build(self, operator):
        inverse = 1.0 / operator.diagonal()
        return lambda v: inverse * v


def identity(vector):
    """No preconditioning. Solvers recognise this function (``is identity``)
    to skip work that only a real preconditioner needs."""
    return vector


def as_preconditioner(preconditioner, operator, like):
    """None -> identity; AbstractPreconditioner -> built; operator/array/callable -> its mv."""
    if preconditioner is None:
        return identity
    if isinstance(preconditioner, AbstractPreconditioner):
        return preconditioner.build(operator)
    matrix = as_operator(preconditioner, like)
    if matrix.shape != operator.shape:
        raise ValueError(
            f"preconditioner has shape {matrix.shape}, the operator {operator.shape}."
        )
    return matrix.mv
