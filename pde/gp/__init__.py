"""Gaussian-process collocation for high-frequency and multi-scale problems (GP-HM): kernels and the 1-D and box solvers."""

from ._gp_box import GPBoxSolution as GPBoxSolution
from ._gp_box import gp_solve_box as gp_solve_box
from ._gp_kernels import AbstractStationaryKernel as AbstractStationaryKernel
from ._gp_kernels import MaternKernel as MaternKernel
from ._gp_kernels import MaternMixtureKernel as MaternMixtureKernel
from ._gp_kernels import SpectralMixtureKernel as SpectralMixtureKernel
from ._gp_kernels import SquaredExponentialKernel as SquaredExponentialKernel
from ._gp_solve import GPSolution as GPSolution
from ._gp_solve import gp_solve as gp_solve
