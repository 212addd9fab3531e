"""sciax: accurate, jittable scientific-computing primitives for JAX.

The library is four subpackages, each importable on its own:

- ``sciax.numerics``: log-Bessel functions of real order, the Matérn
  correlation and the von Mises-Fisher distribution;
- ``sciax.solvers``: Krylov solvers with recycling, multigrid, learned
  conjugate directions;
- ``sciax.operators``: neural operators and their training;
- ``sciax.pde``: PDE problems, dataset generators and spectral and
  Gaussian-process PDE solvers.

``RESULTS`` is the one enumeration of outcomes that every solver, fit and
training loop reports in its ``result`` field.
"""

from importlib import metadata as _metadata

from ._results import RESULTS as RESULTS
from ._training import Training as Training

from . import numerics as numerics  # isort: skip  (imported in dependency order)
from . import solvers as solvers  # isort: skip
from . import operators as operators  # isort: skip
from . import pde as pde  # isort: skip

try:
    __version__ = _metadata.version("sciax")
except _metadata.PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0.0.0+unknown"
