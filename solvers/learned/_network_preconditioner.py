"""A direction network used as a (varying) preconditioner inside the
flexible Krylov methods."""

import jax.numpy as jnp

from .._solver import dot, norm
from ..preconditioners._preconditioner import AbstractPreconditioner
from ._direction_network import ConjugateDirectionNetwork
from ._learned_cd import check_network_fits, network_direction


class NetworkPreconditioner(AbstractPreconditioner):
    r"""$M v = \|v\| \, N(v / \|v\|)$: a ``ConjugateDirectionNetwork`` as a
    preconditioner, optionally followed by a second, fixed one.

    The network maps a residual to an approximation of the error's
    direction, $N(r) \approx A^{-1} r$ up to scale. It is nonlinear, so it
    is a different operator at every application: use it only inside the
    flexible methods, ``GMRES`` (flexible by default), ``GCRODR``,
    ``GMRESDR`` and ``CG(flexible=True)``; the non-flexible forms stall or
    break down with it.

    With ``correction`` (e.g. ``Multigrid()``), the network's direction is
    scaled by its energy line search, $s = d^Tv / d^TAd$, and the
    correction preconditions what it leaves:
    $Mv = s d + C(v - s A d)$ (one more matvec per application). The
    network removes what a V-cycle handles badly (obstacles, free
    surfaces), the V-cycle the smooth and the finest error.

    Directions are restricted to the operator's ``fluid`` cells when it has
    them; the network runs in its own dtype and its output is cast to v's.

    Args:
        network: a ``ConjugateDirectionNetwork`` whose ``ndim`` matches the
            operator's grid (``solvers.pretrained_network(ndim)``; with a
            multigrid correction, ``pretrained_network(ndim, multigrid=True)``).
        correction: an ``AbstractPreconditioner`` applied after the network,
            or None.

    References:
        Kaneda et al., ICML 2023 (the network); Notay, SIAM J. Sci. Comput.
        22 (2000) and Saad, SIAM J. Sci. Comput. 14 (1993) (flexible methods).
    """

    network: ConjugateDirectionNetwork
    correction: AbstractPreconditioner | None = None

    def __check_init__(self):
        if not isinstance(self.network, ConjugateDirectionNetwork):
            raise TypeError(
                "NetworkPreconditioner: network must be a ConjugateDirectionNetwork, "
                f"got {type(self.network).__name__}."
            )
        if self.correction is not None and not isinstance(
            self.correction, AbstractPreconditioner
        ):
            raise TypeError(
                "NetworkPreconditioner: correction must be a preconditioner such as "
                f"solvers.Multigrid(), got {type(self.correction).__name__}."
            )

    def build(self, operator):
        grid = check_network_fits(self.network, operator, "NetworkPreconditioner")
        network, cell_types = self.network, operator.cell_types
        fluid = None if operator.fluid is None else operator.fluid.reshape(-1)
        correction = (
            None if self.correction is None else self.correction.build(operator)
        )

        def apply(v):
            scale = norm(v)
            d = network_direction(network, v, scale, grid, cell_types, v.dtype)
            if fluid is not None:
                d = d * fluid.astype(v.dtype)
            if correction is None:
                return scale * d
            image = operator.mv(d)
            curvature = dot(d, image)
            step = jnp.where(curvature > 0, dot(d, v) / curvature, 0.0)
            return step * d + correction(v - step * image)

        return apply
