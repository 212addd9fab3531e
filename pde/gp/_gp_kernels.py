"""Stationary one-dimensional covariance functions and their derivatives, the
factors of the product kernels that ``gp_solve`` places over a box.

Every kernel is a sum of components $w\\,e(d)\\cos(2\\pi\\mu d)$ of an envelope
$e$ and a frequency $\\mu$ (cycles per unit length); the envelope is a Gaussian
(spectral mixture: a Gaussian spectral density around $\\pm\\mu$) or a Matérn
function of any smoothness $\\nu$ (a Student-t spectral density around $\\pm\\mu$).
Derivatives of any order up to four are closed forms, so a differential
operator acting on the GP never goes through nested autodiff.
"""

import abc
import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ... import numerics

MAX_DERIVATIVE_ORDER = 4


def _gaussian_envelope_derivatives(d, scale, max_order: int):
    r"""$e(d) = \exp(-2\pi^2 s^2 d^2)$ and its derivatives
    $e^{(j)} = e\,P_j$ with $P_{j+1} = -2ad\,P_j - 2aj\,P_{j-1}$, $a = 2\pi^2s^2$
    (the Hermite recurrence; no cancellation for the orders used here)."""
    a = 2 * jnp.pi**2 * scale**2
    envelope = jnp.exp(-a * d * d)
    polynomials = [jnp.ones_like(d), -2 * a * d]
    for j in range(1, max_order):
        polynomials.append(-2 * a * d * polynomials[j] - 2 * a * j * polynomials[j - 1])
    return [envelope * p for p in polynomials[: max_order + 1]]


def _matern_envelope_derivatives(d, lengthscale, nu: float, max_order: int):
    r"""Matérn envelope $e(d) = F_\nu(c|d|)$, $c = \sqrt{2\nu}/\ell$, and its
    derivatives. With $\tau = c^2d^2/2$ the profile obeys
    $d^m/d\tau^m F_\nu = (-1)^m \frac{2^{\nu-m-1}\Gamma(\nu-m)}{2^{\nu-1}\Gamma(\nu)}
    F_{\nu-m}$ (from $(r^\nu K_\nu)' = -r^\nu K_{\nu-1}$), and Faà di Bruno in
    $\tau(d)$ gives each $d$-derivative as a short sum of such terms with no
    cancellation between them; at $d = 0$ the odd derivatives vanish and the
    even ones are the spectral moments. Needs $\nu > $ max_order / 2."""
    c = jnp.sqrt(2.0 * nu) / lengthscale
    r = c * jnp.abs(d)
    x = c * d

    log_scale = -math.lgamma(nu) - (nu - 1) * math.log(2.0)
    safe_r = jnp.where(r > 0, r, 1.0)

    def tau_derivative(m):
        # d^m F_nu / d tau^m = (-1)^m r^(nu-m) K_(nu-m)(r) / (2^(nu-1) Gamma(nu)),
        # through log_kv so it neither overflows nor underflows early. At r = 0
        # it is the moment ratio for nu > m; for nu <= m it grows like
        # r^(2(nu-m)), but the Faa di Bruno factor x^(2m - j) makes every
        # product vanish there.
        value = (-1) ** m * jnp.exp(
            (nu - m) * jnp.log(safe_r) + numerics.log_kv(nu - m, safe_r) + log_scale
        )
        at_zero = 0.0
        if nu - m > 0:
            at_zero = (-1) ** m * math.exp(math.lgamma(nu - m) - math.lgamma(nu)) / 2**m
        return jnp.where(r > 0, value, at_zero)

    g = [tau_derivative(m) for m in range(max_order + 1)]
    derivatives = [g[0]]
    if max_order >= 1:
        derivatives.append(c * x * g[1])
    if max_order >= 2:
        derivatives.append(c**2 * (x**2 * g[2] + g[1]))
    if max_order >= 3:
        derivatives.append(c**3 * (x**3 * g[3] + 3 * x * g[2]))
    if max_order >= 4:
        derivatives.append(c**4 * (x**4 * g[4] + 6 * x**2 * g[3] + 3 * g[2]))
    return derivatives


def _modulated_derivative(envelope_derivatives, d, frequency, order: int):
    """Leibniz's rule for $(e \\cos(2\\pi\\mu d))^{(n)}$; the derivatives of the
    cosine cycle through cos, -sin, -cos, sin, so one of each is evaluated."""
    b = 2 * jnp.pi * frequency
    phase = b * d
    cycle = (jnp.cos(phase), -jnp.sin(phase))
    total = 0.0
    for j in range(order + 1):
        k = order - j
        sign = -1.0 if k % 4 >= 2 else 1.0
        total = total + (
            math.comb(order, j) * sign * b**k * envelope_derivatives[j] * cycle[k % 2]
        )
    return total


def _along_last(parameter, d):
    """Per-component parameters shaped to broadcast against d[..., None]
    without implicit rank promotion."""
    return jnp.reshape(parameter, (1,) * (d.ndim - 1) + (-1,))


def _check_order(order: int):
    if not 0 <= order <= MAX_DERIVATIVE_ORDER:
        raise ValueError(
            f"derivative order must be 0..{MAX_DERIVATIVE_ORDER}, got {order}."
        )


def _check_nu(nu: float):
    if not nu > 0:
        raise ValueError(f"nu must be positive, got {nu}.")


def _check_matern_order(nu: float, order: int):
    _check_order(order)
    if not nu > order / 2:
        raise ValueError(
            f"a Matérn kernel with nu = {nu} has no derivative of order "
            f"{order} at 0; use nu > {order / 2}."
        )


class AbstractStationaryKernel(eqx.Module):
    """A stationary covariance $k(x, x') = k(x - x')$ on the real line."""

    @abc.abstractmethod
    def derivative(self, difference: Float[Array, "..."], order: int) -> Array:
        r"""$k^{(p)}(d)$ at $d = x - x'$, so that
        $\partial_x^p\partial_{x'}^q k(x - x') = (-1)^q k^{(p+q)}(x - x')$."""

    @abc.abstractmethod
    def spectrum(self) -> tuple[Array, Array]:
        """(frequencies in cycles per unit length, weights), one per component."""


class SpectralMixtureKernel(AbstractStationaryKernel):
    r"""$k(d) = \sum_q w_q \exp(-2\pi^2 s_q^2 d^2)\cos(2\pi\mu_q d)$ (Wilson &
    Adams 2013): a Gaussian mixture spectral density with means $\pm\mu_q$,
    standard deviations $s_q$, weights $w_q$. Weights and scales are stored as
    logarithms (positive by construction; the log-domain weight is what makes a
    Jeffreys prior prune unneeded components, Fang et al. 2024, §3).

    Attributes:
        log_weights, frequencies, log_scales: one entry per component.
    """

    log_weights: Float[Array, " q"]
    frequencies: Float[Array, " q"]
    log_scales: Float[Array, " q"]

    def __check_init__(self):
        shapes = {
            jnp.shape(self.log_weights),
            jnp.shape(self.frequencies),
            jnp.shape(self.log_scales),
        }
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(
                "log_weights, frequencies and log_scales must be 1-D arrays of "
                f"the same length, got shapes {sorted(shapes)}."
            )

    def derivative(self, difference, order: int):
        _check_order(order)
        d = jnp.asarray(difference)[..., None]
        scales = _along_last(jnp.exp(self.log_scales), d)
        envelopes = _gaussian_envelope_derivatives(d, scales, order)
        frequencies = _along_last(self.frequencies, d)
        terms = _modulated_derivative(envelopes, d, frequencies, order)
        return jnp.sum(_along_last(jnp.exp(self.log_weights), d) * terms, axis=-1)

    def spectrum(self):
        return self.frequencies, jnp.exp(self.log_weights)


class MaternMixtureKernel(AbstractStationaryKernel):
    r"""$k(d) = \sum_q w_q\, M_\nu(d; \ell_q)\cos(2\pi\mu_q d)$ with the Matérn
    envelope $M_\nu(d;\ell) = \frac{2^{1-\nu}}{\Gamma(\nu)}(\sqrt{2\nu}|d|/\ell)^\nu
    K_\nu(\sqrt{2\nu}|d|/\ell)$: a Student-t mixture spectral density, heavier
    tailed than the Gaussian one. $K_\nu$ comes from ``numerics.log_kv``, so any
    real $\nu$ works; a PDE of order p needs $\nu > p$ (the kernel must be 2p
    times differentiable at 0 for the derivatives used, p <= 2 here).

    Attributes:
        log_weights, frequencies, log_lengthscales: one entry per component.
        nu: the smoothness, shared by all components (static).
    """

    log_weights: Float[Array, " q"]
    frequencies: Float[Array, " q"]
    log_lengthscales: Float[Array, " q"]
    nu: float = eqx.field(static=True)

    def __check_init__(self):
        _check_nu(self.nu)

    def derivative(self, difference, order: int):
        _check_matern_order(self.nu, order)
        d = jnp.asarray(difference)[..., None]
        lengthscales = _along_last(jnp.exp(self.log_lengthscales), d)
        envelopes = _matern_envelope_derivatives(d, lengthscales, self.nu, order)
        frequencies = _along_last(self.frequencies, d)
        terms = _modulated_derivative(envelopes, d, frequencies, order)
        return jnp.sum(_along_last(jnp.exp(self.log_weights), d) * terms, axis=-1)

    def spectrum(self):
        return self.frequencies, jnp.exp(self.log_weights)


class SquaredExponentialKernel(AbstractStationaryKernel):
    r"""$k(d) = \sigma^2\exp(-d^2 / (2\ell^2))$."""

    log_variance: Float[Array, ""]
    log_lengthscale: Float[Array, ""]

    def derivative(self, difference, order: int):
        _check_order(order)
        d = jnp.asarray(difference)
        # exp(-d^2 / 2l^2) = exp(-2 pi^2 s^2 d^2) with s = 1 / (2 pi l)
        scale = 1 / (2 * jnp.pi * jnp.exp(self.log_lengthscale))
        envelopes = _gaussian_envelope_derivatives(d, scale, order)
        return jnp.exp(self.log_variance) * envelopes[order]

    def spectrum(self):
        return jnp.zeros((1,), self.log_variance.dtype), jnp.exp(self.log_variance)[
            None
        ]


class MaternKernel(AbstractStationaryKernel):
    r"""$k(d) = \sigma^2 M_\nu(d; \ell)$, the Matérn covariance of any real
    smoothness $\nu > 0$ (through ``numerics.log_kv``)."""

    log_variance: Float[Array, ""]
    log_lengthscale: Float[Array, ""]
    nu: float = eqx.field(static=True)

    def __check_init__(self):
        _check_nu(self.nu)

    def derivative(self, difference, order: int):
        _check_matern_order(self.nu, order)
        d = jnp.asarray(difference)
        envelopes = _matern_envelope_derivatives(
            d, jnp.exp(self.log_lengthscale), self.nu, order
        )
        return jnp.exp(self.log_variance) * envelopes[order]

    def spectrum(self):
        return jnp.zeros((1,), self.log_variance.dtype), jnp.exp(self.log_variance)[
            None
        ]
