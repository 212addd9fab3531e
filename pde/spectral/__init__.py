"""Chebyshev spectral collocation for two-point problems and on rectangles."""

from ._chebyshev import ChebyshevSolution as ChebyshevSolution
from ._chebyshev import (
    chebyshev_differentiation_matrix as chebyshev_differentiation_matrix,
)
from ._chebyshev import chebyshev_points as chebyshev_points
from ._chebyshev import chebyshev_solve as chebyshev_solve
from ._chebyshev_box import ChebyshevBoxSolution as ChebyshevBoxSolution
from ._chebyshev_box import chebyshev_solve_box as chebyshev_solve_box
