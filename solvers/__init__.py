"""Krylov solvers: operators, ``solve`` and the methods it runs.

Every solver stops on the true residual, ``||b - A x|| <= max(rtol ||b||, atol)``,
and reports how the solve ended in ``Solution.result``.
"""

from ._cg import CG as CG
from ._direction_network import ConjugateDirectionNetwork as ConjugateDirectionNetwork
from ._direction_network import load_network as load_network
from ._direction_network import pretrained_network as pretrained_network
from ._direction_network import save_network as save_network
from ._direction_training import ritz_pairs as ritz_pairs
from ._direction_training import ritz_right_hand_sides as ritz_right_hand_sides
from ._direction_training import train_direction_network as train_direction_network
from ._gcrodr import GCRODR as GCRODR
from ._gcrodr import GMRESDR as GMRESDR
from ._gmres import GMRES as GMRES
from ._learned_cd import LearnedConjugateDirections as LearnedConjugateDirections
from ._multigrid import Multigrid as Multigrid
from ._operator import FunctionOperator as FunctionOperator
from ._operator import LinearOperator as LinearOperator
from ._operator import MatrixOperator as MatrixOperator
from ._operator import SparseOperator as SparseOperator
from ._ordering import fft_pca_order as fft_pca_order
from ._ordering import greedy_order as greedy_order
from ._ordering import hilbert_index as hilbert_index
from ._preconditioner import AbstractPreconditioner as AbstractPreconditioner
from ._preconditioner import Jacobi as Jacobi
from ._recycle_state import RecycleState as RecycleState
from ._recycled_cg import RecycledCG as RecycledCG
from ._results import RESULTS as RESULTS
from ._sequence import SequenceSolution as SequenceSolution
from ._sequence import solve_sequence as solve_sequence
from ._solution import Solution as Solution
from ._solve import solve as solve
from ._solver import AbstractLinearSolver as AbstractLinearSolver
from ._stencil import DiffusionOperator as DiffusionOperator
