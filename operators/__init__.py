"""Neural operators: the Fourier neural operator, its losses, normalisers
and training."""

from ._fno import FNO as FNO
from ._losses import relative_h1_loss as relative_h1_loss
from ._losses import relative_lp_loss as relative_lp_loss
from ._normalised_operator import NormalisedOperator as NormalisedOperator
from ._normaliser import UnitGaussianNormaliser as UnitGaussianNormaliser
from ._spectral_convolution import SpectralConvolution as SpectralConvolution
from ._training import Training as Training
from ._training import default_optimiser as default_optimiser
from ._training import evaluate as evaluate
from ._training import fit as fit
