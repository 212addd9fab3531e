"""Krylov solvers: operators, ``solve`` and the methods it runs.

Every solver stops on the true residual, ``||b - A x|| <= max(rtol ||b||, atol)``,
and reports how the solve ended in ``Solution.result``.
"""

from .._results import RESULTS as RESULTS
from .._training import Training as Training
from ._operator import AbstractGridOperator as AbstractGridOperator
from ._operator import FunctionOperator as FunctionOperator
from ._operator import LinearOperator as LinearOperator
from ._operator import MatrixOperator as MatrixOperator
from ._operator import SparseOperator as SparseOperator
from ._solution import Solution as Solution
from ._solve import solve as solve
from ._solver import AbstractLinearSolver as AbstractLinearSolver
from ._stencil import DiffusionOperator as DiffusionOperator
from .krylov import CG as CG
from .krylov import GCRODR as GCRODR
from .krylov import GMRES as GMRES
from .krylov import GMRESDR as GMRESDR
from .krylov import RecycledCG as RecycledCG
from .krylov import RecycleState as RecycleState
from .learned import ConjugateDirectionNetwork as ConjugateDirectionNetwork
from .learned import LearnedConjugateDirections as LearnedConjugateDirections
from .learned import NetworkPreconditioner as NetworkPreconditioner
from .learned import load_network as load_network
from .learned import pretrained_network as pretrained_network
from .learned import save_network as save_network
from .learned import train_direction_network as train_direction_network
from .preconditioners import AbstractPreconditioner as AbstractPreconditioner
from .preconditioners import Jacobi as Jacobi
from .preconditioners import Multigrid as Multigrid
from .sequence import SequenceSolution as SequenceSolution
from .sequence import fft_pca_order as fft_pca_order
from .sequence import greedy_order as greedy_order
from .sequence import hilbert_index as hilbert_index
from .sequence import solve_sequence as solve_sequence


def __getattr__(name):
    # lineax is an optional extra: LineaxSolver subclasses
    # lineax.AbstractLinearSolver, so its module imports lineax, and is
    # loaded on first use rather than with sciax.solvers.
    if name in ("LineaxSolver", "LineaxOperator"):
        from . import _lineax

        return getattr(_lineax, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
