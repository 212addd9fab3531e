"""PDE problems and dataset generators (more in development; see the README's
status table)."""

from ._linear_problems import darcy_operator as darcy_operator
from ._linear_problems import heat_operator as heat_operator
from ._linear_problems import helmholtz_operator as helmholtz_operator
from ._linear_problems import nonsymmetric_darcy_operator as nonsymmetric_darcy_operator
from ._pressure import AIR as AIR
from ._pressure import FLUID as FLUID
from ._pressure import SOLID as SOLID
from ._pressure import PressureOperator as PressureOperator
from ._pressure import pressure_cells as pressure_cells
from ._random_field import gaussian_random_field as gaussian_random_field
from .datasets import BurgersSample as BurgersSample
from .datasets import DarcySample as DarcySample
from .datasets import LinearFamilySample as LinearFamilySample
from .datasets import burgers_initial_condition as burgers_initial_condition
from .datasets import burgers_samples as burgers_samples
from .datasets import burgers_solve as burgers_solve
from .datasets import darcy_coefficient as darcy_coefficient
from .datasets import darcy_sample as darcy_sample
from .datasets import darcy_samples as darcy_samples
from .datasets import linear_family_samples as linear_family_samples
from .datasets import load_dataset as load_dataset
from .datasets import periodic_subsample as periodic_subsample
from .datasets import subsample as subsample
from .datasets import write_dataset as write_dataset
from .gp import AbstractStationaryKernel as AbstractStationaryKernel
from .gp import GPBoxSolution as GPBoxSolution
from .gp import GPSolution as GPSolution
from .gp import MaternKernel as MaternKernel
from .gp import MaternMixtureKernel as MaternMixtureKernel
from .gp import SpectralMixtureKernel as SpectralMixtureKernel
from .gp import SquaredExponentialKernel as SquaredExponentialKernel
from .gp import gp_solve as gp_solve
from .gp import gp_solve_box as gp_solve_box
from .spectral import ChebyshevBoxSolution as ChebyshevBoxSolution
from .spectral import ChebyshevSolution as ChebyshevSolution
from .spectral import (
    chebyshev_differentiation_matrix as chebyshev_differentiation_matrix,
)
from .spectral import chebyshev_points as chebyshev_points
from .spectral import chebyshev_solve as chebyshev_solve
from .spectral import chebyshev_solve_box as chebyshev_solve_box
