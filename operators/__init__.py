"""Neural operators: the Fourier neural operator and its parts (training
utilities in development; see the README's status table)."""

from ._fno import FNO as FNO
from ._losses import relative_h1_loss as relative_h1_loss
from ._losses import relative_lp_loss as relative_lp_loss
from ._normaliser import UnitGaussianNormaliser as UnitGaussianNormaliser
from ._spectral_convolution import SpectralConvolution as SpectralConvolution
