"""The von Mises-Fisher distribution on the unit sphere S^{d-1}."""

import math
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jax import lax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._log_bessel import log_iv, log_iv_ratio, log_ive
from ._small_order import log_gamma_1p
from ._vmf_marginal import (
    implicit_marginal,
    log1p_accurate,
    marginal_moments,
    sample_marginal,
)


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
    # log I_nu(k) = nu log(k/2) - lgamma(nu+1) + k^2/(4(nu+1)) + O(k^4)
    lgamma = _log_gamma_1p(nu)
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


def _log_gamma_1p(nu: Array) -> Array:
    """log Gamma(1 + nu) for nu >= 0: log_gamma_1p is accurate below 40,
    gammaln above."""
    return jnp.where(
        nu < 40,
        log_gamma_1p(jnp.minimum(nu, 40.0)),
        jax.scipy.special.gammaln(nu + 1),
    )


# log 0F1(; d/2; kappa^2/4) by its series where kappa^2/4 <= d: every term is
# positive and the ratio of consecutive terms is z / ((b + k)(k + 1)) <=
# 2 / (k + 1) there, so 24 terms leave 2^24/24! ~ 3e-17 of the sum.
_SERIES_TERMS = 24


@jax.jit
def _kl_to_uniform(d: Array, kappa: Array) -> Array:
    return _kl_value(d, kappa)


@jax.custom_jvp
def _kl_value(d: Array, kappa: Array) -> Array:
    r"""KL(vMF || uniform) $= \kappa A_d(\kappa) - \log {}_0F_1(; d/2; \kappa^2/4)$."""
    nu = d / 2 - 1
    b = d / 2
    finite = jnp.isfinite(kappa) & (kappa >= 0)
    safe = jnp.where(finite & (kappa > 0), kappa, 1.0)
    z = jnp.where(finite, kappa, 0.0) ** 2 / 4
    series = z <= 2 * b
    # Small kappa: 0F1(; b; z) - 1 and 0F1(; b + 1; z) - 1 by their series
    # (positive terms), log 0F1 = log1p of the first, and A_d = I_{nu+1} /
    # I_nu = (kappa / d) 0F1(; b + 1; z) / 0F1(; b; z); kappa A_d is about
    # twice log 0F1, so their difference loses at most a bit.
    zs = jnp.where(series, z, 0.0)
    term, term_next = zs / b, zs / (b + 1)
    total, total_next = term, term_next
    for k in range(1, _SERIES_TERMS):
        term = term * zs / ((b + k) * (k + 1))
        term_next = term_next * zs / ((b + 1 + k) * (k + 1))
        total, total_next = total + term, total_next + term_next
    kappa_mean = (4 * zs / d) * (1.0 + total_next) / (1.0 + total)
    small = kappa_mean - log1p_accurate(total)
    # Large kappa: log 0F1 = log I_nu + lgamma(nu + 1) - nu log(kappa/2), with
    # log I_nu = log_ive + kappa; the kappa cancels against kappa A_d exactly
    # when written as -kappa (1 - A_d), with 1 - A_d ~ (d - 1)/(2 kappa) to a
    # few eps relative (marginal_moments: from -expm1(log_iv_ratio) it would
    # carry eps kappa / d, 0.3 in float32 at kappa = 1e6, d = 3).
    large_kappa = jnp.where(series, 4 * jnp.sqrt(b) + 1.0, safe)
    large = (
        nu * jnp.log(large_kappa / 2)
        - _log_gamma_1p(nu)
        - log_ive(nu, large_kappa)
        - large_kappa * marginal_moments(large_kappa, d)[0]
    )
    value = jnp.where(series, small, large)
    return jnp.where(kappa == jnp.inf, jnp.inf, jnp.where(finite, value, jnp.nan))


@_kl_value.defjvp
def _kl_value_jvp(primals, tangents):
    """d KL / d kappa = kappa A_d'(kappa) = kappa Var(w), the variance by
    quadrature (marginal_moments; A_d' = 1 - A_d^2 - (d-1) A_d / kappa
    cancels for kappa >> d). Not the derivative of the two branches: with
    their Bessel kernels' derivatives the gradient took 59 s to compile on
    the 2-core development machine, against 7 s this way, and was no more
    accurate."""
    d, kappa = primals
    _, kappa_dot = tangents
    value = _kl_value(d, kappa)
    finite = jnp.isfinite(kappa) & (kappa >= 0)
    _, variance = marginal_moments(jnp.where(finite, kappa, 1.0), d)
    slope = jnp.where(
        kappa == jnp.inf, 0.0, jnp.where(finite, kappa * variance, jnp.nan)
    )
    return value, slope * kappa_dot


def _log_sphere_area(d: Array) -> Array:
    """log |S^{d-1}| = log 2 + (d/2) log pi - lgamma(d/2)."""
    return jnp.log(2.0) + (d / 2) * jnp.log(jnp.pi) - _log_gamma_1p(d / 2 - 1)


def _radial(one_minus_w: Array, w: Array) -> Array:
    """sqrt((1 - w)(1 + w)), with derivative 0 where it is 0 (w = 1 at
    kappa = inf, where w does not move), not inf * 0."""
    square = one_minus_w * (1.0 + w)
    positive = square > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, square, 1.0)), 0.0)


class VonMisesFisher(eqx.Module):
    r"""von Mises-Fisher distribution $p(x) = C_d(\kappa)\exp(\kappa\mu^T x)$ on $S^{d-1}$.

    Stable in any dimension: the normalizer and the mean resultant length go
    through ``log_iv``/``log_iv_ratio``, and ``sample`` uses Wood's rejection
    sampler written so that $1 - w$ never cancels when $\kappa \gg d$.

    Batches follow numpyro and TensorFlow Probability: ``mean_direction`` of
    shape ``batch + (d,)`` and ``concentration`` of a shape that broadcasts
    with ``batch`` give a distribution of ``batch_shape`` their broadcast
    shape and ``event_shape`` ``(d,)``; ``sample(key, sample_shape)`` returns
    ``sample_shape + batch_shape + (d,)``, ``log_prob`` broadcasts its points
    against the batch, and ``log_normalizer``, ``entropy`` and
    ``kl_to_uniform`` are of ``batch_shape``, ``mean`` and ``mode`` of
    ``batch_shape + (d,)``. The parameters are stored as given (not
    broadcast).

    Samples are reparameterised: ``jax.grad``, ``jax.jvp`` and the like
    through ``sample`` give the exact pathwise derivative of each sample in
    both parameters, hence unbiased gradients of any $E[f(x)]$ with smooth
    $f$ (what a hyperspherical VAE needs). In $\mu$ the sample is a
    reflection of one drawn about a fixed axis; in $\kappa$ the derivative of
    $w = \mu^T x$ is the implicit one, $dw/d\kappa = -\partial_\kappa F(w) /
    p(w)$ for the CDF $F$ of $w$, computed by quadrature only when a
    derivative is asked for (``numerics/_vmf_marginal.py`` says why this and
    not the rejection sampler's own reparameterisation, and how). Second
    derivatives in $\kappa$ are those of the same construction.

    Attributes:
        mean_direction: unit vectors $\mu$, shape ``batch + (d,)``.
        concentration: $\kappa \ge 0$, broadcasting with ``batch``;
            $\kappa = \infty$ is the point mass at $\mu$ (its samples are
            $\mu$), nan gives nan.

    As ``scipy.stats.vonmises_fisher``: a mean direction that is not a unit
    vector (relative tolerance 1e-5, or 16 eps in float16), a negative
    concentration, and in ``log_prob`` a point off the sphere, raise a
    ``ValueError`` where the values are concrete; under a JAX transform
    (jit, vmap, grad), where they cannot be inspected, every result of such a
    distribution (``log_prob``, ``sample``, ``mean``, ``mode``, ``entropy``,
    ``kl_to_uniform``, ``log_normalizer``) is nan instead, and so is
    ``log_prob`` at such a point. In a batch, only the members concerned
    are nan.

    Example:
        >>> vmf = numerics.VonMisesFisher(mu, kappa)  # mu (8, 3), kappa (8,)
        >>> x = vmf.sample(key, (100,))  # (100, 8, 3)
        >>> def loss(kappa):  # E[a.x] by Monte Carlo, through the sampler
        ...     x = numerics.VonMisesFisher(mu, kappa).sample(key, 100)
        ...     return jnp.mean(x @ a)
        >>> jax.grad(loss)(kappa)  # (8,)

    References:
        Wood, "Simulation of the von Mises Fisher distribution", Commun.
        Stat. Simul. Comput. 23 (1994). Plesner et al., ICS 2024.
        Figurnov, Mohamed & Mnih, "Implicit Reparameterization Gradients",
        NeurIPS 2018.
    """

    mean_direction: Float[Array, "*batch d"]
    concentration: Float[Array, "*batch"]

    def __init__(self, mean_direction: ArrayLike, concentration: ArrayLike):
        mean_direction = jnp.asarray(mean_direction)
        concentration = jnp.asarray(concentration)
        for name, value in (
            ("mean_direction", mean_direction),
            ("concentration", concentration),
        ):
            if jnp.issubdtype(value.dtype, jnp.complexfloating) or value.dtype == bool:
                raise TypeError(
                    f"{name} must be real (float or int), got dtype {value.dtype}"
                )
        if mean_direction.ndim == 0 or mean_direction.shape[-1] < 2:
            raise ValueError(
                "mean_direction must end in an axis of length d >= 2, got shape "
                f"{mean_direction.shape}"
            )
        if not jnp.issubdtype(mean_direction.dtype, jnp.floating):
            mean_direction = mean_direction.astype(float)
        self.mean_direction = mean_direction
        self.concentration = jnp.asarray(concentration, mean_direction.dtype)
        try:
            jnp.broadcast_shapes(mean_direction.shape[:-1], self.concentration.shape)
        except ValueError:
            raise ValueError(
                f"concentration of shape {self.concentration.shape} does not "
                "broadcast with the batch shape of mean_direction, "
                f"{mean_direction.shape[:-1]} (its shape without the last axis)"
            ) from None
        off_sphere = _off_sphere(mean_direction)
        if _concretely_true(jnp.any(off_sphere)):
            norms = jnp.linalg.norm(mean_direction, axis=-1)
            norm = float(norms.reshape(-1)[jnp.argmax(off_sphere.reshape(-1))])
            raise ValueError(
                f"mean_direction must be a unit vector, got norm {norm}; divide "
                "it by its norm"
            )
        if _concretely_true(jnp.any(self.concentration < 0)):
            raise ValueError(
                f"concentration must be >= 0, got {float(jnp.min(self.concentration))}"
            )

    @property
    def dim(self) -> int:
        """d, the dimension of the space the sphere $S^{d-1}$ lies in."""
        return self.mean_direction.shape[-1]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The broadcast shape of the parameters (``mean_direction`` without
        its last axis, and ``concentration``)."""
        return jnp.broadcast_shapes(
            self.mean_direction.shape[:-1], self.concentration.shape
        )

    @property
    def event_shape(self) -> tuple[int]:
        """``(d,)``."""
        return (self.dim,)

    def _kappa(self) -> Array:
        return jnp.broadcast_to(self.concentration, self.batch_shape)

    def _mu(self) -> Array:
        return jnp.broadcast_to(self.mean_direction, self.batch_shape + (self.dim,))

    def _invalid(self) -> Array:
        """Under a transform the checks of __init__ become this mask, of
        batch_shape."""
        shape = self.batch_shape
        return jnp.broadcast_to(_off_sphere(self.mean_direction), shape) | (
            self._kappa() < 0
        )

    def log_normalizer(self) -> Float[Array, "*batch"]:
        r"""$\log C_d(\kappa)$ (see ``vmf_log_normalizer``), of ``batch_shape``."""
        value = vmf_log_normalizer(self.dim, self._kappa())
        return jnp.where(self._invalid(), jnp.nan, value)

    def log_prob(self, x: ArrayLike) -> Float[Array, "..."]:
        """log p(x) for unit vectors x (the last axis is the sphere's): the
        other axes broadcast against ``batch_shape``."""
        x = jnp.asarray(x, self.mean_direction.dtype)
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(f"x must end in an axis of size {self.dim}, got {x.shape}")
        off_sphere = _off_sphere(x)
        if _concretely_true(jnp.any(off_sphere)):
            raise ValueError(
                "log_prob is defined on the unit sphere; some rows of x are not "
                "unit vectors (divide them by their norms)"
            )
        shape = jnp.broadcast_shapes(x.shape[:-1], self.batch_shape)
        event = shape + (self.dim,)
        # elementwise products, not a matmul: no reduced-precision (TF32)
        # inner products on GPUs
        cosine = jnp.sum(
            jnp.broadcast_to(x, event) * jnp.broadcast_to(self.mean_direction, event),
            axis=-1,
        )
        value = jnp.broadcast_to(self.log_normalizer(), shape) + (
            jnp.broadcast_to(self.concentration, shape) * cosine
        )
        return jnp.where(jnp.broadcast_to(off_sphere, shape), jnp.nan, value)

    def mean(self) -> Float[Array, "*batch d"]:
        r"""$E[x] = A_d(\kappa)\mu$, of ``batch_shape + (d,)``."""
        length = mean_resultant_length(self.dim, self._kappa())
        value = length[..., None] * self._mu()
        return jnp.where(self._invalid()[..., None], jnp.nan, value)

    def mode(self) -> Float[Array, "*batch d"]:
        r"""$\mu$, of ``batch_shape + (d,)`` (at $\kappa = 0$ every point is
        a mode; $\mu$ is returned)."""
        return jnp.where(self._invalid()[..., None], jnp.nan, self._mu())

    def kl_to_uniform(self) -> Float[Array, "*batch"]:
        r"""$\mathrm{KL}(\mathrm{vMF} \,\|\, \mathrm{Uniform}(S^{d-1}))
        = \log|S^{d-1}| - H = \kappa A_d(\kappa) - \log {}_0F_1(; d/2; \kappa^2/4)$,
        of ``batch_shape``: the KL term of a hyperspherical VAE with a
        uniform prior.

        $C_d(\kappa)|S^{d-1}| = 1/{}_0F_1(; d/2; \kappa^2/4)$, so the
        normalizer and the area, which are huge and nearly cancel in high
        dimension, never meet: below $\kappa^2/4 = d$ the hypergeometric
        series is summed (positive terms), above it
        $\log {}_0F_1 = \log I_\nu(\kappa) + \log\Gamma(\nu+1) -
        \nu\log(\kappa/2)$ with $\log I_\nu = \texttt{log\_ive} + \kappa$, and
        the $\kappa$ cancels against $\kappa A_d$ as $-\kappa(1 - A_d)$, with
        $1 - A_d$ by quadrature to a few eps relative (from
        ``log_iv_ratio`` it would carry a relative error of about
        $\epsilon\kappa/d$). The derivative (``jax.custom_jvp``) is
        $\kappa A_d'(\kappa) = \kappa\,\mathrm{Var}(\mu^T x)$, the variance by
        the same quadrature. 0 at $\kappa = 0$ (with derivative 0), inf at
        $\kappa = \infty$ (derivative 0).

        Accuracy (against mpmath at 50 digits, $d \in \{2, 3, 10, 100,
        1000\}$, $\kappa \in [10^{-6}, 10^6]$,
        tests/numerics/test_von_mises_fisher_batches.py): within 20 eps
        relative in float64, 5 eps in float32 except near $\kappa^2 = 4d$
        for large $d$ (130 eps at $d = 1000$, where $\log\Gamma(d/2)$ and
        $\nu\log(\kappa/2)$ nearly cancel).

        References:
            Davidson et al., "Hyperspherical Variational Auto-Encoders",
            UAI 2018 (the KL term of their ELBO).
        """
        d = jnp.asarray(self.dim, self.mean_direction.dtype)
        value = _kl_to_uniform(d, self._kappa())
        return jnp.where(self._invalid(), jnp.nan, value)

    def entropy(self) -> Float[Array, "*batch"]:
        r"""$H = -\log C_d(\kappa) - \kappa A_d(\kappa)
        = \log|S^{d-1}| - \mathrm{KL}(\mathrm{vMF}\,\|\,\mathrm{Uniform})$,
        of ``batch_shape``; computed as the latter (see ``kl_to_uniform``),
        so that $\kappa \gg d$, where $-\log C_d$ and $\kappa A_d$ are both
        about $\kappa$, does not cancel. $-\infty$ at $\kappa = \infty$."""
        d = jnp.asarray(self.dim, self.mean_direction.dtype)
        value = _log_sphere_area(d) - _kl_to_uniform(d, self._kappa())
        return jnp.where(self._invalid(), jnp.nan, value)

    @eqx.filter_jit
    def sample(
        self, key: PRNGKeyArray, sample_shape: int | tuple[int, ...] = ()
    ) -> Float[Array, "..."]:
        """Samples of shape ``sample_shape + batch_shape + (d,)`` by Wood's
        algorithm (an int n means (n,), as in jax.random), differentiable in
        both parameters (reparameterised; see the class docstring)."""
        if isinstance(sample_shape, numbers.Integral):
            sample_shape = (int(sample_shape),)
        sample_shape = tuple(sample_shape)
        for size in sample_shape:
            if isinstance(size, bool) or not isinstance(size, numbers.Integral):
                raise TypeError(
                    f"sample_shape must be an int or a tuple of ints, got {sample_shape}"
                )
        d = self.dim
        dtype = self.mean_direction.dtype
        batch = self.batch_shape
        full = sample_shape + batch
        num = math.prod(full)
        kappa = self._kappa()
        key_w, key_v = jr.split(key)
        # the rejection loop draws at a constant kappa; implicit_marginal
        # gives w its derivative
        loop_kappa = jnp.broadcast_to(lax.stop_gradient(kappa), full).reshape(num)
        w, one_minus_w = jax.vmap(lambda k, c: sample_marginal(k, c, d, dtype))(
            jr.split(key_w, num), loop_kappa
        )
        w, one_minus_w = implicit_marginal(
            kappa,
            jnp.asarray(d, dtype),
            w.reshape(full),
            one_minus_w.reshape(full),
        )
        tangent = jr.normal(key_v, (num, d - 1), dtype).reshape(full + (d - 1,))
        tangent = tangent / jnp.linalg.norm(tangent, axis=-1, keepdims=True)
        radial = _radial(one_minus_w, w)
        x = self._reflect(w, radial[..., None] * tangent, full)
        point_mass = jnp.broadcast_to(kappa == jnp.inf, full)[..., None]
        mu = jnp.broadcast_to(self.mean_direction, full + (d,))
        x = jnp.where(point_mass, mu, x)
        invalid = jnp.broadcast_to(self._invalid(), full)[..., None]
        return jnp.where(invalid, jnp.nan, x)

    def _reflect(self, w, orthogonal, full):
        """The Householder reflection of (s w, orthogonal) taking the axis
        s e_1 to mu, with s = -1 where mu_1 >= 0 and +1 elsewhere: then
        ||s e_1 - mu||^2 = 2 (1 + |mu_1|) >= 2, so the reflection, and its
        derivative in mu, stay bounded for every mu (with the axis e_1
        always, ||e_1 - mu|| -> 0 as mu -> e_1, the reflection has no limit
        there and its derivative grows like 1 / ||e_1 - mu||). The law of
        the samples is the same for either axis."""
        mu = self.mean_direction
        axis_sign = jnp.where(mu[..., 0] >= 0, -1.0, 1.0)
        u = (-mu).at[..., 0].add(axis_sign)
        norm2 = jnp.sum(u * u, axis=-1)
        axis_sign = jnp.broadcast_to(axis_sign, full)
        y = jnp.concatenate([(axis_sign * w)[..., None], orthogonal], axis=-1)
        u = jnp.broadcast_to(u, full + (self.dim,))
        scale = 2.0 * jnp.sum(u * y, axis=-1) / jnp.broadcast_to(norm2, full)
        return y - scale[..., None] * u
