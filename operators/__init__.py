"""Neural operators: the Fourier neural operator, its losses, normalizers
and training."""

from .._training import Training as Training
from ._fno import FNO as FNO
from ._losses import relative_h1_loss as relative_h1_loss
from ._losses import relative_lp_loss as relative_lp_loss
from ._normalized_operator import NormalizedOperator as NormalizedOperator
from ._normalizer import UnitGaussianNormalizer as UnitGaussianNormalizer
from ._spectral_convolution import SpectralConvolution as SpectralConvolution
from ._streaming import fit_stream as fit_stream
from ._training import default_optimizer as default_optimizer
from ._training import evaluate as evaluate
from ._training import fit as fit
