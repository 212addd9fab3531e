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
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln
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


def _concrete(nu) -> float | None:
    """nu as a Python float where its value is known at trace time (a number,
    or an array outside jit/grad), else None (a tracer)."""
    if isinstance(nu, jax.core.Tracer):
        return None
    return float(nu)


def _as_smoothness(nu):
    """The smoothness as the Matérn kernels store it: a Python float (fixed
    configuration, compiled in like a static field) from any real number,
    numpy scalars included, or a scalar JAX array (a parameter, which
    ``eqx.filter_grad`` and ``gp_solve`` differentiate and learn)."""
    if isinstance(nu, bool | np.bool_):
        raise TypeError("nu must be a real number or a scalar array, got a bool.")
    if isinstance(nu, int | float | np.integer | np.floating):
        return float(nu)
    if isinstance(nu, jax.Array | np.ndarray):
        if jnp.shape(nu) != ():
            raise ValueError(
                f"nu must be a scalar (one smoothness), got shape {jnp.shape(nu)}."
            )
        dtype = jnp.result_type(nu)
        if not jnp.issubdtype(dtype, jnp.floating):
            if not jnp.issubdtype(dtype, jnp.integer):
                raise TypeError(
                    f"nu must be real; got an array of {dtype}. Pass a float or "
                    "jnp.asarray(nu, float)."
                )
            return jnp.asarray(nu, float)
        return jnp.asarray(nu)
    raise TypeError(
        f"nu must be a real number or a scalar array, got {type(nu).__name__}."
    )


def _tau_derivatives(r, nu, max_order: int):
    r"""$g_m = d^m F_\nu / d\tau^m$ at $r$ for m = 0..max_order (see
    ``_matern_envelope_derivatives``).

    $g_0 = M_\nu(r)$, the envelope itself, comes from
    ``numerics.log_matern``: accurate near $r = 0$, where it is 1, and with
    finite derivatives in $\nu$ and $\ell$ there (exactly 0 at $r = 0$).
    For m >= 1, $g_m = (-1)^m r^{\nu-m}K_{\nu-m}(r) / (2^{\nu-1}\Gamma(\nu))$
    through ``numerics.log_kv`` so that it neither overflows nor underflows
    early; at $r = 0$ it is the moment ratio
    $(-1)^m\Gamma(\nu-m) / (2^m\Gamma(\nu))$ for $\nu > m$, and for
    $\nu \le m$ it grows like $r^{2(\nu-m)}$, but the Faà di Bruno factor
    $x^{2m-j}$ makes every product vanish there. (``log_matern`` of order
    $\nu - m$ would serve where $\nu > m$ too, but each of its instances
    costs more to compile than ``log_kv``'s, and these are evaluated for
    every m.) ``nu`` is a Python float (its branches chosen at trace time)
    or a traced scalar (every quantity on a safe argument, so that no branch
    sends nan into the gradient)."""
    known = _concrete(nu)
    nu = jnp.asarray(nu, r.dtype) if known is None else nu
    log_gamma = gammaln(jnp.asarray(nu, r.dtype))
    log_scale = -log_gamma - (nu - 1) * math.log(2.0)
    safe_r = jnp.where(r > 0, r, 1.0)
    g = [jnp.exp(numerics.log_matern(nu, r))]
    for m in range(1, max_order + 1):
        value = (-1) ** m * jnp.exp(
            (nu - m) * jnp.log(safe_r) + numerics.log_kv(nu - m, safe_r) + log_scale
        )
        if known is not None:
            at_zero = 0.0
            if known - m > 0:
                at_zero = (
                    (-1) ** m
                    * math.exp(math.lgamma(known - m) - math.lgamma(known))
                    / 2**m
                )
        else:
            above = nu > m
            moment = jnp.exp(
                gammaln(jnp.where(above, nu - m, 1.0)) - log_gamma - m * math.log(2.0)
            )
            at_zero = jnp.where(above, (-1) ** m * moment, 0.0)
        g.append(jnp.where(r > 0, value, at_zero))
    return g


def _matern_envelope_derivatives(d, lengthscale, nu, max_order: int):
    r"""Matérn envelope $e(d) = F_\nu(c|d|)$, $c = \sqrt{2\nu}/\ell$, and its
    derivatives. With $\tau = c^2d^2/2$ the profile obeys
    $d^m/d\tau^m F_\nu = (-1)^m \frac{2^{\nu-m-1}\Gamma(\nu-m)}{2^{\nu-1}\Gamma(\nu)}
    F_{\nu-m}$ (from $(r^\nu K_\nu)' = -r^\nu K_{\nu-1}$), and Faà di Bruno in
    $\tau(d)$ gives each $d$-derivative as a short sum of such terms with no
    cancellation between them; at $d = 0$ the odd derivatives vanish and the
    even ones are the spectral moments. Needs $\nu > $ max_order / 2.

    ``nu`` is a Python float or a scalar array (traced when learnt); the
    $\tau$-derivatives come from ``_tau_derivatives``."""
    c = jnp.sqrt(2.0 * nu) / lengthscale
    r = c * jnp.abs(d)
    x = c * d
    g = _tau_derivatives(r, nu, max_order)
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


def _check_nu(nu):
    """nu > 0, checked where nu is concrete; a traced nu is not checked (a
    nu <= 0 then gives nan values, as ``numerics.log_matern``)."""
    known = _concrete(nu)
    if known is not None and not known > 0:
        raise ValueError(f"nu must be positive, got {known}.")


def _check_matern_order(nu, order: int):
    """The derivative of the given order exists at 0 (nu > order / 2),
    checked where nu is concrete; for a traced nu see ``_matern_envelopes``."""
    _check_order(order)
    known = _concrete(nu)
    if known is not None and not known > order / 2:
        raise ValueError(
            f"a Matérn kernel with nu = {known} has no derivative of order "
            f"{order} at 0; use nu > {order / 2}."
        )


def _matern_envelopes(d, lengthscale, nu, order: int, dtype):
    """The Matérn envelope's derivatives of orders 0..order, an array nu cast
    to the parameters' dtype. Where nu is traced (being learnt) the check of
    ``_check_matern_order`` cannot run: every derivative is then nan, with a
    nan derivative, wherever nu <= order / 2."""
    _check_matern_order(nu, order)
    if not isinstance(nu, float):
        nu = jnp.asarray(nu, dtype)
    envelopes = _matern_envelope_derivatives(d, lengthscale, nu, order)
    if _concrete(nu) is None:
        guard = jnp.where(nu > order / 2, 1.0, jnp.nan)
        envelopes = [envelope * guard for envelope in envelopes]
    return envelopes


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
    tailed than the Gaussian one. The envelope comes from
    ``numerics.log_matern`` (and ``numerics.log_kv``), so any real $\nu$ works;
    a PDE of order p needs $\nu > p$ (the kernel must be 2p times
    differentiable at 0 for the derivatives used, p <= 2 here).

    Attributes:
        log_weights, frequencies, log_lengthscales: one entry per component.
        nu: shared by all components. The smoothness $\nu > 0$. A Python
            number (or numpy scalar) is fixed configuration: compiled into
            jitted code like a static field, never learnt, and checked when
            the kernel is built and when a derivative order is asked for. A
            scalar JAX array is a parameter: ``eqx.filter_grad``
            differentiates it (through ``numerics.log_matern``) and
            ``gp_solve`` learns it with the other array fields. Checks that
            need its value run only where it is concrete: under
            ``jit``/``grad`` a nu <= 0, or a derivative order of 2 nu or
            more, gives nan.
    """

    log_weights: Float[Array, " q"]
    frequencies: Float[Array, " q"]
    log_lengthscales: Float[Array, " q"]
    nu: float | Float[Array, ""] = eqx.field(converter=_as_smoothness)

    def __check_init__(self):
        _check_nu(self.nu)

    def derivative(self, difference, order: int):
        d = jnp.asarray(difference)[..., None]
        lengthscales = _along_last(jnp.exp(self.log_lengthscales), d)
        envelopes = _matern_envelopes(
            d, lengthscales, self.nu, order, jnp.result_type(self.log_lengthscales)
        )
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
    smoothness $\nu > 0$ (through ``numerics.log_matern``), with a learnable
    $\nu$ when it is given as an array.

    Attributes:
        log_variance: $\log\sigma^2$.
        log_lengthscale: $\log\ell$.
        nu: as for ``MaternMixtureKernel``.

    Example:
        >>> kernel = pde.MaternKernel(jnp.asarray(0.0), jnp.asarray(0.0), nu=jnp.asarray(1.5))
        >>> eqx.filter_grad(lambda k: k.derivative(0.3, 0))(kernel).nu   # d k / d nu
    """

    log_variance: Float[Array, ""]
    log_lengthscale: Float[Array, ""]
    nu: float | Float[Array, ""] = eqx.field(converter=_as_smoothness)

    def __check_init__(self):
        _check_nu(self.nu)

    def derivative(self, difference, order: int):
        d = jnp.asarray(difference)
        envelopes = _matern_envelopes(
            d,
            jnp.exp(self.log_lengthscale),
            self.nu,
            order,
            jnp.result_type(self.log_lengthscale),
        )
        return jnp.exp(self.log_variance) * envelopes[order]

    def spectrum(self):
        return jnp.zeros((1,), self.log_variance.dtype), jnp.exp(self.log_variance)[
            None
        ]
