"""The von Mises-Fisher distribution on the unit sphere S^{d-1}."""

import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jax import lax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._log_bessel import log_iv, log_iv_ratio
from ._small_order import log_gamma_1p


def _check_dimension(d) -> int:
    """d as a Python int; numpy integers are accepted."""
    if isinstance(d, jax.core.Tracer):
        raise TypeError(
            "d sets the dimension and must be a concrete integer, got a traced "
            "value; under jit mark it static (static_argnums), or close over it"
        )
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 2:
        raise ValueError(f"d must be an integer >= 2, got {d!r}")
    return int(d)


def _unit_tolerance(dtype) -> float:
    """How far from 1 a norm may be and still count as a unit vector: scipy's
    relative 1e-5, or 16 eps in dtypes too coarse for that (float16)."""
    return max(1e-5, 16 * float(jnp.finfo(dtype).eps))


def _off_sphere(x: Array) -> Array:
    """True where the last axis of x is not a unit vector (nan included)."""
    norm = jnp.linalg.norm(x, axis=-1)
    return ~(jnp.abs(norm - 1.0) <= _unit_tolerance(x.dtype))


def _concretely_true(condition: Array) -> bool:
    """condition is a known True: computed outside any trace (inside one,
    even operations on constants give tracers, and nothing is known)."""
    return not isinstance(condition, jax.core.Tracer) and bool(condition)


def _float_input(kappa) -> Array:
    kappa = jnp.asarray(kappa)
    if not jnp.issubdtype(kappa.dtype, jnp.floating):
        kappa = kappa.astype(float)
    return kappa


def vmf_log_normalizer(d: int, kappa: ArrayLike) -> Float[Array, "..."]:
    r"""$\log C_d(\kappa)$ of the von Mises-Fisher density $C_d(\kappa) e^{\kappa \mu^T x}$.

    $C_d(\kappa) = \kappa^{d/2-1} / ((2\pi)^{d/2} I_{d/2-1}(\kappa))$, evaluated with
    ``log_iv`` so it stays finite for any $d$ and $\kappa$ (SciPy's ``iv``
    overflows for $\kappa \gtrsim 700$ and underflows for $d \gtrsim 400$ at
    moderate $\kappa$). For $\kappa^2 < 10^{-8}(d/2)$ the two leading terms of
    the series are used so the $\nu\log\kappa$ terms cancel exactly;
    $\kappa = 0$ gives the uniform density $1/|S^{d-1}|$.

    The dimension enters the compiled computation as a value, not a
    constant: one compilation per shape and dtype of ``kappa`` serves every
    $d$.

    Args:
        d: ambient dimension, a Python int >= 2.
        kappa: concentration >= 0 (nan below 0).

    Accuracy: within 16 eps of mpmath (float64) for $d$ up to 32768 and
    $\kappa$ up to $10^6$ (tests/numerics/test_von_mises_fisher.py).

    References:
        Mardia & Jupp, "Directional Statistics" (2000), 9.3.
    """
    d = _check_dimension(d)
    kappa = _float_input(kappa)
    return _log_normalizer(jnp.asarray(d, kappa.dtype), kappa)


@jax.jit
def _log_normalizer(d: Array, kappa: Array) -> Array:
    nu = d / 2 - 1
    small = kappa * kappa < 1e-8 * (nu + 1)
    safe = jnp.where(small, 1.0, kappa)
    general = nu * jnp.log(safe) - (d / 2) * jnp.log(2 * jnp.pi) - log_iv(nu, safe)
    # log I_nu(k) = nu log(k/2) - lgamma(nu+1) + k^2/(4(nu+1)) + O(k^4);
    # log_gamma_1p is accurate below 40, gammaln above (both are scalars)
    lgamma = jnp.where(
        nu < 40,
        log_gamma_1p(jnp.minimum(nu, 40.0)),
        jax.scipy.special.gammaln(nu + 1),
    )
    leading = nu * jnp.log(2.0) + lgamma - (d / 2) * jnp.log(2 * jnp.pi)
    series = leading - kappa * kappa / (4 * (nu + 1))
    return jnp.where(kappa < 0, jnp.nan, jnp.where(small, series, general))


def mean_resultant_length(d: int, kappa: ArrayLike) -> Float[Array, "..."]:
    r"""$A_d(\kappa) = I_{d/2}(\kappa)/I_{d/2-1}(\kappa) = E[\mu^T x]$, through
    ``log_iv_ratio`` (accurate to a few eps wherever ``log_iv_ratio`` is).

    Args:
        d: ambient dimension, a Python int >= 2 (a value in the compiled
            computation: one compilation serves every $d$).
        kappa: concentration >= 0.
    """
    d = _check_dimension(d)
    kappa = _float_input(kappa)
    return _mean_resultant_length(jnp.asarray(d, kappa.dtype), kappa)


@jax.jit
def _mean_resultant_length(d: Array, kappa: Array) -> Array:
    return jnp.where(kappa == 0, 0.0, jnp.exp(log_iv_ratio(d / 2 - 1, kappa)))


_MAX_DRAWS = 1000


class VonMisesFisher(eqx.Module):
    r"""von Mises-Fisher distribution $p(x) = C_d(\kappa)\exp(\kappa\mu^T x)$ on $S^{d-1}$.

    Stable in any dimension: the normalizer and the mean resultant length go
    through ``log_iv``/``log_iv_ratio``, and ``sample`` uses Wood's rejection
    sampler written so that $1 - w$ never cancels when $\kappa \gg d$.

    Attributes:
        mean_direction: unit vector $\mu$, shape (d,).
        concentration: $\kappa \ge 0$, a scalar; $\kappa = \infty$ is the
            point mass at $\mu$ (its samples are $\mu$), nan gives nan.

    As ``scipy.stats.vonmises_fisher``: a mean direction that is not a unit
    vector (relative tolerance 1e-5, or 16 eps in float16), a negative
    concentration, and in ``log_prob`` a point off the sphere, raise a
    ``ValueError`` where the values are concrete; under a JAX transform
    (jit, vmap, grad), where they cannot be inspected, every result of such a
    distribution (``log_prob``, ``sample``, ``mean``, ``entropy``,
    ``log_normalizer``) is nan instead, and so is ``log_prob`` at such a
    point.

    References:
        Wood, "Simulation of the von Mises Fisher distribution", Commun.
        Stat. Simul. Comput. 23 (1994). Plesner et al., ICS 2024.
    """

    mean_direction: Float[Array, " d"]
    concentration: Float[Array, ""]

    def __init__(self, mean_direction: ArrayLike, concentration: ArrayLike):
        mean_direction = jnp.asarray(mean_direction)
        if mean_direction.ndim != 1 or mean_direction.shape[0] < 2:
            raise ValueError(
                "mean_direction must be a vector of length d >= 2, got shape "
                f"{mean_direction.shape}; vmap over a batch of distributions."
            )
        if not jnp.issubdtype(mean_direction.dtype, jnp.floating):
            mean_direction = mean_direction.astype(float)
        self.mean_direction = mean_direction
        self.concentration = jnp.asarray(concentration, mean_direction.dtype)
        if self.concentration.ndim != 0:
            raise ValueError("concentration must be a scalar; vmap for a batch.")
        if _concretely_true(_off_sphere(mean_direction)):
            raise ValueError(
                "mean_direction must be a unit vector, got norm "
                f"{float(jnp.linalg.norm(mean_direction))}; divide it by its norm"
            )
        if _concretely_true(self.concentration < 0):
            raise ValueError(
                f"concentration must be >= 0, got {float(self.concentration)}"
            )

    def _invalid(self) -> Array:
        """Under a transform the checks of __init__ become this mask."""
        return _off_sphere(self.mean_direction) | (self.concentration < 0)

    @property
    def dim(self) -> int:
        return self.mean_direction.shape[0]

    def log_normalizer(self) -> Float[Array, ""]:
        value = vmf_log_normalizer(self.dim, self.concentration)
        return jnp.where(self._invalid(), jnp.nan, value)

    def log_prob(self, x: ArrayLike) -> Float[Array, "..."]:
        """log p(x) for unit vectors x (the last axis is the sphere's)."""
        x = jnp.asarray(x, self.mean_direction.dtype)
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(f"x must end in an axis of size {self.dim}, got {x.shape}")
        off_sphere = _off_sphere(x)
        if _concretely_true(jnp.any(off_sphere)):
            raise ValueError(
                "log_prob is defined on the unit sphere; some rows of x are not "
                "unit vectors (divide them by their norms)"
            )
        value = self.log_normalizer() + self.concentration * (x @ self.mean_direction)
        return jnp.where(off_sphere, jnp.nan, value)

    def mean(self) -> Float[Array, " d"]:
        """E[x] = A_d(kappa) mu."""
        length = mean_resultant_length(self.dim, self.concentration)
        return jnp.where(self._invalid(), jnp.nan, length * self.mean_direction)

    def entropy(self) -> Float[Array, ""]:
        """-log C_d(kappa) - kappa A_d(kappa)."""
        kappa = self.concentration
        return -self.log_normalizer() - kappa * mean_resultant_length(self.dim, kappa)

    @eqx.filter_jit
    def sample(
        self, key: PRNGKeyArray, shape: int | tuple[int, ...] = ()
    ) -> Float[Array, "..."]:
        """Samples of shape ``shape + (d,)`` by Wood's algorithm (an int shape
        n means (n,), as in jax.random)."""
        if isinstance(shape, numbers.Integral):
            shape = (int(shape),)
        d = self.dim
        num = 1
        for s in shape:
            num *= s
        key_w, key_v = jr.split(key)
        w, one_minus_w = jax.vmap(lambda k: self._sample_w(k))(jr.split(key_w, num))
        tangent = jr.normal(key_v, (num, d - 1), self.mean_direction.dtype)
        tangent = tangent / jnp.linalg.norm(tangent, axis=-1, keepdims=True)
        radial = jnp.sqrt(one_minus_w * (1.0 + w))
        x = jnp.concatenate([w[:, None], radial[:, None] * tangent], axis=-1)
        x = self._rotate_from_first_axis(x)
        return jnp.where(self._invalid(), jnp.nan, x).reshape(*shape, d)

    def _sample_w(self, key):
        """(w, 1 - w) for w = mu^T x; kappa = inf gives w = 1 (x = mu), nan
        gives nan. The rejection loop runs on a finite stand-in there, and is
        cut off after _MAX_DRAWS draws, giving nan: with Wood's envelope
        most draws are accepted at any finite kappa, so only a loop whose
        arithmetic has broken down gets there."""
        d = self.dim
        dtype = self.mean_direction.dtype
        concentration = self.concentration
        kappa = jnp.where(jnp.isfinite(concentration), concentration, 1.0)
        m1 = d - 1.0
        # b = (d-1) / (2 kappa + sqrt(4 kappa^2 + (d-1)^2)), Wood's b without
        # the cancellation of (-2 kappa + sqrt(...)) / (d-1); hypot so that
        # 4 kappa^2 does not overflow.
        b = m1 / (2.0 * kappa + jnp.hypot(2.0 * kappa, m1))
        x0 = (1.0 - b) / (1.0 + b)
        one_minus_x0 = 2.0 * b / (1.0 + b)
        # Wood's test kappa w + m1 log(1 - x0 w) - c >= log u, with
        # c = kappa x0 + m1 log(1 - x0^2), written in 1 - x0 and 1 - w: at
        # kappa >> d, w and x0 round to 1, and kappa (w - x0) and
        # log(1 - x0 w) would be 0 * inf and log 0.
        log_one_minus_x0_squared = jnp.log(4.0 * b) - 2.0 * jnp.log1p(b)

        def draw(state):
            key, tries = state[0], state[4]
            key_z, key_u, key_next = jr.split(key, 3)
            z = jr.beta(key_z, m1 / 2, m1 / 2, dtype=dtype)
            denominator = 1.0 - (1.0 - b) * z
            w = (1.0 - (1.0 + b) * z) / denominator
            one_minus_w = 2.0 * b * z / denominator
            log_u = jnp.log(jr.uniform(key_u, dtype=dtype))
            log_gap = jnp.log(one_minus_x0 + x0 * one_minus_w)
            accept = (
                kappa * (one_minus_x0 - one_minus_w)
                + m1 * (log_gap - log_one_minus_x0_squared)
                >= log_u
            )
            return key_next, w, one_minus_w, accept, tries + 1

        def not_done(state):
            return ~state[3] & (state[4] < _MAX_DRAWS)

        zero = jnp.zeros((), dtype)
        first = draw((key, zero, zero, jnp.asarray(False), jnp.asarray(0, jnp.int32)))
        _, w, one_minus_w, accepted, _ = lax.while_loop(not_done, draw, first)
        w = jnp.where(accepted, w, jnp.nan)
        one_minus_w = jnp.where(accepted, one_minus_w, jnp.nan)
        point_mass = concentration == jnp.inf
        w = jnp.where(point_mass, 1.0, jnp.where(jnp.isnan(concentration), jnp.nan, w))
        one_minus_w = jnp.where(
            point_mass, 0.0, jnp.where(jnp.isnan(concentration), jnp.nan, one_minus_w)
        )
        return w, one_minus_w

    def _rotate_from_first_axis(self, x):
        # Householder reflection taking e_1 to mu (identity when mu = e_1).
        mu = self.mean_direction
        u = -mu.at[0].add(-1.0)
        norm2 = u @ u
        safe = jnp.where(norm2 > 0, norm2, 1.0)
        reflected = x - (2.0 / safe) * (x @ u)[:, None] * u[None, :]
        return jnp.where(norm2 > 0, reflected, x)
