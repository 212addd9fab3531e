"""Special functions and distributions, accurate in float32 and float64, jittable
and differentiable: log-Bessel functions of real order and the von Mises-Fisher
distribution."""

from ._bessel import iv as iv, ive as ive, kv as kv, kve as kve
from ._log_bessel import (
    log_iv as log_iv,
    log_iv_ratio as log_iv_ratio,
    log_ive as log_ive,
    log_kv as log_kv,
    log_kv_ratio as log_kv_ratio,
    log_kve as log_kve,
)
from ._fit_von_mises_fisher import (
    FitResult as FitResult,
    concentration_from_mean_length as concentration_from_mean_length,
    fit_vmf as fit_vmf,
)
from ._von_mises_fisher import (
    VonMisesFisher as VonMisesFisher,
    mean_resultant_length as mean_resultant_length,
    vmf_log_normalizer as vmf_log_normalizer,
)
