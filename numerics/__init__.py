"""Special functions and distributions, accurate in float32 and float64, jittable
and differentiable: log-Bessel functions of real order, the Matérn correlation
and the von Mises-Fisher distribution."""

from ._bessel import iv as iv
from ._bessel import ive as ive
from ._bessel import kv as kv
from ._bessel import kve as kve
from ._fit_von_mises_fisher import (
    ConcentrationSolution as ConcentrationSolution,
)
from ._fit_von_mises_fisher import (
    VonMisesFisherFit as VonMisesFisherFit,
)
from ._fit_von_mises_fisher import (
    concentration_from_mean_length as concentration_from_mean_length,
)
from ._fit_von_mises_fisher import (
    fit_vmf as fit_vmf,
)
from ._log_bessel import (
    log_iv as log_iv,
)
from ._log_bessel import (
    log_iv_ratio as log_iv_ratio,
)
from ._log_bessel import (
    log_ive as log_ive,
)
from ._log_bessel import (
    log_kv as log_kv,
)
from ._log_bessel import (
    log_kv_ratio as log_kv_ratio,
)
from ._log_bessel import (
    log_kve as log_kve,
)
from ._matern import (
    log_matern as log_matern,
)
from ._von_mises_fisher import (
    VonMisesFisher as VonMisesFisher,
)
from ._von_mises_fisher import (
    mean_resultant_length as mean_resultant_length,
)
from ._von_mises_fisher import (
    vmf_log_normalizer as vmf_log_normalizer,
)


def __getattr__(name: str):
    # numpyro is an optional extra (`pip install sciax[numpyro]`): the adapter
    # is imported on first use so that `sciax.numerics` never needs numpyro.
    if name == "NumpyroVonMisesFisher":
        try:
            from ._numpyro_vmf import NumpyroVonMisesFisher
        except ModuleNotFoundError as error:
            if error.name is None or not error.name.startswith("numpyro"):
                raise
            raise ImportError(
                "sciax.numerics.NumpyroVonMisesFisher needs numpyro: "
                "pip install 'sciax[numpyro]'"
            ) from error
        return NumpyroVonMisesFisher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
