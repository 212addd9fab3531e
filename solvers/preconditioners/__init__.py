"""Preconditioners: the abstract interface, Jacobi and the Galerkin geometric multigrid V-cycle."""

from ._multigrid import Multigrid as Multigrid
from ._preconditioner import AbstractPreconditioner as AbstractPreconditioner
from ._preconditioner import Jacobi as Jacobi
