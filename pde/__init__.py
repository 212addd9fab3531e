"""PDE problems and dataset generators (more in development; see the README's
status table)."""

from ._burgers import burgers_initial_condition as burgers_initial_condition
from ._burgers import burgers_samples as burgers_samples
from ._burgers import burgers_solve as burgers_solve
from ._burgers import periodic_subsample as periodic_subsample
from ._chebyshev import ChebyshevSolution as ChebyshevSolution
from ._chebyshev import (
    chebyshev_differentiation_matrix as chebyshev_differentiation_matrix,
)
from ._chebyshev import chebyshev_points as chebyshev_points
from ._chebyshev import chebyshev_solve as chebyshev_solve
from ._chebyshev_box import ChebyshevBoxSolution as ChebyshevBoxSolution
from ._chebyshev_box import chebyshev_solve_box as chebyshev_solve_box
from ._darcy import darcy_sample as darcy_sample
from ._darcy import darcy_samples as darcy_samples
from ._darcy import subsample as subsample
from ._dataset import load_dataset as load_dataset
from ._dataset import write_dataset as write_dataset
from ._gp_box import GPBoxSolution as GPBoxSolution
from ._gp_box import gp_solve_box as gp_solve_box
from ._gp_box import initial_spectral_mixtures as initial_spectral_mixtures
from ._gp_kernels import AbstractStationaryKernel as AbstractStationaryKernel
from ._gp_kernels import MaternKernel as MaternKernel
from ._gp_kernels import MaternMixtureKernel as MaternMixtureKernel
from ._gp_kernels import SpectralMixtureKernel as SpectralMixtureKernel
from ._gp_kernels import SquaredExponentialKernel as SquaredExponentialKernel
from ._gp_solve import GPSolution as GPSolution
from ._gp_solve import gp_solve as gp_solve
from ._gp_solve import initial_spectral_mixture as initial_spectral_mixture
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
