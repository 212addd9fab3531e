"""Special functions and distributions, accurate in float32 and float64, jittable
and differentiable: log-Bessel functions of real order and the von Mises-Fisher
distribution."""

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
from ._von_mises_fisher import (
    VonMisesFisher as VonMisesFisher,
)
from ._von_mises_fisher import (
    mean_resultant_length as mean_resultant_length,
)
from ._von_mises_fisher import (
    vmf_log_normalizer as vmf_log_normalizer,
)
