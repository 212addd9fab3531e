r"""The marginal $w = \mu^T x$ of the von Mises-Fisher distribution: Wood's
rejection sampler for it, and the implicit reparameterisation that gives
samples their exact derivative in the concentration.

Every vMF sample is $x = Q(\mu)\,(w, \sqrt{1-w^2}\,v)$ with $v$ uniform on the
sphere $S^{d-2}$ orthogonal to $e_1$ and $Q(\mu)$ a reflection taking the axis
of the sample to $\mu$. Only $w$ depends on $\kappa$; its density on
$[-1, 1]$ is

$$p(w; \kappa) \propto e^{\kappa w} (1 - w^2)^{(d-3)/2}.$$

Why implicit reparameterisation. Wood's sampler draws $w$ by rejection, so
$w$ is not a differentiable function of the random numbers (the number of
draws changes with $\kappa$). Davidson et al. (2018) differentiate the
accepted proposal $w = h(\varepsilon, \kappa)$ and add a score-function
correction term that has to be built into the loss (and is often dropped,
which biases the gradient; Naesseth et al. 2017). The implicit
reparameterisation gradient (Figurnov et al. 2018; the one-dimensional case of
Jankowiak & Obermeyer 2018) instead differentiates $w = F^{-1}(U; \kappa)$,
with $U = F(w; \kappa)$ held fixed, where $F$ is the CDF of $w$:

$$\frac{dw}{d\kappa} = -\frac{\partial_\kappa F(w; \kappa)}{p(w; \kappa)}.$$

Because $w$ has exactly the law $F$, whichever algorithm drew it, this is the
exact pathwise derivative of each sample: unbiased for every smooth loss,
with no correction term, no change to the sampler and no cost unless a
derivative is asked for. With $\partial_\kappa p = (t - A_d(\kappa))\,p$,
$A_d = E[w]$ (the mean resultant length),

$$\frac{dw}{d\kappa}
  = \int_w^1 (t - A_d)\frac{p(t)}{p(w)}\,dt
  = \int_{-1}^w (A_d - t)\frac{p(t)}{p(w)}\,dt,$$

the two forms being equal because $\int_{-1}^1 (t - A_d) p = 0$. The first is
used for $w \ge A_d$ and the second for $w < A_d$: then the integrand has
one sign (no cancellation) and lies on the side away from the bulk, and the
normalizer cancels in $p(t)/p(w)$, so nothing overflows for any $\kappa$ or
$d$. The integral is taken in the angle $\theta = \arccos t$, where the
density $e^{\kappa\cos\theta}\sin^{d-2}\theta$ has no endpoint singularity for
any $d \ge 2$ and is unimodal with a closed-form mode; a safeguarded Newton
iteration finds where $\log(p(t)/p(w))$ has fallen below $-T$ ($T$ = 40 in
float64, 20 in float32), and Gauss-Legendre quadrature (32 nodes in float64,
16 in float32) runs over that window. Differences $\cos\theta' - \cos\theta$
are formed as $2\sin(\cdot)\sin(\cdot)$ products, $\sin\theta'/\sin\theta$ as
$1 - 2\sin^2(x/2) \mp \cot\theta\sin x$ through a log1p, and $1 - A_d$ (with
$A_d' = \mathrm{Var}\,w$, used by ``kl_to_uniform``'s derivative) by the same
quadrature around the mode, so that $\kappa \gg d$ (where $w$ and $A_d$ round
to 1) and $d \gg 1$ (where the exponent is a difference of terms of order
$d$) lose nothing.

Cost: nothing in the forward pass; under differentiation one quadrature of
32 (16) nodes and 8 Newton steps per sample, and two per distinct $\kappa$
(``benchmarks/vmf_sample.py``).

Accuracy of $dw/d\kappa$ (tests/numerics/test_von_mises_fisher_gradients.py;
a grid of $d \in \{2, 3, 5, 10, 100, 1000\}$, $\kappa \in [10^{-3}, 10^6]$, $w$
from 30 standard deviations on one side of the mode to 40 on the other,
against mpmath at 40 digits): float64 within 60 eps relative, except for $w$
within $10^{-6}$ of $-1$, where the rounding of $1 + w$ itself limits it
(1.6e-11 at $1 + w = 5\cdot10^{-7}$); float32 within 90 eps32 of the float64
result at the same float32 inputs (5 eps32 for $d \le 10$). Against central
differences of the inverse CDF (SciPy): within 1e-6, the differences' own
error.

References:
    Wood, "Simulation of the von Mises Fisher distribution", Commun. Stat.
    Simul. Comput. 23 (1994).
    Figurnov, Mohamed & Mnih, "Implicit Reparameterization Gradients",
    NeurIPS 2018.
    Davidson, Falorsi, De Cao, Kipf & Tomczak, "Hyperspherical Variational
    Auto-Encoders", UAI 2018.
    Naesseth, Ruiz, Linderman & Blei, "Reparameterization Gradients through
    Acceptance-Rejection Sampling Algorithms", AISTATS 2017.
    Jankowiak & Obermeyer, "Pathwise Derivatives Beyond the
    Reparameterization Trick", ICML 2018.
"""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import lax

_MAX_DRAWS = 1000


def sample_marginal(key, concentration, d: int, dtype):
    """(w, 1 - w) for one w = mu^T x by Wood's algorithm, at a scalar
    concentration; kappa = inf gives w = 1 (x = mu), nan gives nan. The
    rejection loop runs on a finite stand-in there, and is cut off after
    _MAX_DRAWS draws, giving nan: with Wood's envelope most draws are
    accepted at any finite kappa, so only a loop whose arithmetic has broken
    down gets there. Not differentiable (a while loop): the caller holds the
    concentration constant and attaches the derivative with
    ``implicit_marginal``."""
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


@jax.custom_jvp
def implicit_marginal(concentration, d, w, one_minus_w):
    """(w, 1 - w), drawn at ``concentration`` (which the draw held constant),
    with the implicit derivative dw/dkappa = -(dF/dkappa) / p(w).

    ``concentration`` has the batch shape, ``w`` and ``one_minus_w`` the
    sample shape followed by it; ``d`` is the dimension as a value. The
    tangents of ``d``, ``w`` and ``one_minus_w`` are ignored (the draw is a
    constant). The rule computes its slope from this function's own outputs,
    so that a second derivative also sees w move with kappa."""
    return w, one_minus_w


@implicit_marginal.defjvp
def _implicit_marginal_jvp(primals, tangents):
    concentration, d, w, one_minus_w = primals
    concentration_dot = tangents[0]
    w, one_minus_w = implicit_marginal(concentration, d, w, one_minus_w)
    slope = marginal_slope(concentration, d, w, one_minus_w)
    w_dot = slope * jnp.broadcast_to(concentration_dot, w.shape)
    return (w, one_minus_w), (w_dot, -w_dot)


# Gauss-Legendre nodes on [0, 1] and the log-ratio below which the integrand
# is dropped, per dtype: e^-40 = 4e-18 and e^-20 = 2e-9 are below the
# dtype's eps relative to the integral (whose integrand is 1 at its base
# point); 32 and 16 nodes integrate the windowed integrand to ~1e-13 and
# ~1e-7 (mpmath grid in tests/numerics/test_von_mises_fisher_gradients.py).
_QUADRATURE = {64: (32, 40.0), 32: (16, 20.0)}
# Safeguarded Newton steps for a window's end: the iteration keeps a
# bracket, so the window is valid after any number; 8 bring it to within a
# few percent of the root from the first guess in every case of the grid.
_WINDOW_STEPS = 8


def _quadrature(dtype):
    """(nodes, cutoff) for the compute dtype (float32 or float64)."""
    return _QUADRATURE[jnp.finfo(dtype).bits]


def _compute_dtype(dtype):
    """float16 and bfloat16 upcast to float32."""
    return jnp.float32 if jnp.finfo(dtype).bits < 32 else dtype


@jax.jit
def marginal_slope(concentration, d, w, one_minus_w):
    r"""$dw/d\kappa = -\partial_\kappa F(w; \kappa) / p(w; \kappa)$ elementwise.

    ``concentration`` broadcasts against ``w`` (trailing axes); ``d`` is the
    dimension as a value. 0 at $\kappa = \infty$ (the point mass does not
    move) and at $w = \pm 1$, nan at a nan or negative $\kappa$ or a nan $w$.
    float16 and bfloat16 are computed in float32.
    """
    dtype = w.dtype
    compute = _compute_dtype(dtype)
    shape = w.shape
    kappa = jnp.asarray(concentration, compute)
    d = jnp.asarray(d, compute)
    finite = jnp.isfinite(kappa) & (kappa >= 0)
    kappa_safe = jnp.where(finite, kappa, 1.0)
    one_minus_mean = mean_one_minus_w(kappa_safe, d)

    def flat(value):
        return jnp.broadcast_to(value, shape).reshape(-1)

    u = one_minus_w.astype(compute).reshape(-1)
    one_plus_w = jnp.maximum(1.0 + w.astype(compute).reshape(-1), 0.0)
    # w = +-1 exactly (theta = 0 or pi) leaves an empty interval on one
    # side; the slope there is 0. A stand-in keeps the arithmetic finite.
    interior = (u > 0) & (one_plus_w > 0)
    u = jnp.where(interior, u, 0.5)
    one_plus_w = jnp.where(interior, one_plus_w, 1.5)
    slope = _slope_kernel(flat(kappa_safe), d, u, one_plus_w, flat(one_minus_mean))
    slope = jnp.where(interior, slope, 0.0)
    slope = jnp.where(flat(kappa) == jnp.inf, 0.0, slope)
    slope = jnp.where(flat(finite | (kappa == jnp.inf)), slope, jnp.nan)
    slope = jnp.where(jnp.isnan(w.reshape(-1)), jnp.nan, slope)
    return slope.reshape(shape).astype(dtype)


def marginal_moments(kappa, d):
    r"""$(E[1 - w], \mathrm{Var}\,w) = (1 - A_d(\kappa), A_d'(\kappa))$ to a
    few eps relative, elementwise for finite $\kappa \ge 0$ (``d`` a value).

    Quadratures of the density in the angle on both sides of its mode (the
    same windows and nodes as ``marginal_slope``): $\int f$,
    $\int (1 - \cos\theta) f$, and in a second pass over the same nodes
    $\int (1 - \cos\theta - E[1 - w])^2 f$, every integrand positive, so
    each moment is accurate relative to itself.
    ``-expm1(log_iv_ratio(...))`` would carry the absolute rounding of the
    log into $1 - A_d \approx (d-1)/(2\kappa)$, a relative error of about
    $\epsilon\,\kappa/d$ (0.3 in float32 at $\kappa = 10^6$, $d = 3$), and
    $A_d' = 1 - A_d^2 - (d-1)A_d/\kappa$ cancels as badly.
    """
    compute = kappa.dtype
    m2 = d - 2.0
    theta_mode, cot_mode = _mode_angle(kappa, m2)
    shape = kappa.shape
    kappa = kappa.reshape(-1)
    theta_mode = theta_mode.reshape(-1)
    cot_mode = cot_mode.reshape(-1)
    zero = jnp.zeros_like(kappa)
    weighted, distance = [], []
    for sign, length in ((1.0, theta_mode), (-1.0, jnp.pi - theta_mode)):
        sign = jnp.full_like(kappa, sign)
        window = _window(kappa, m2, theta_mode, cot_mode, sign, length, zero)
        density, _, one_minus_cos = _nodes(
            kappa, m2, theta_mode, cot_mode, sign, window
        )
        weighted.append(density)
        distance.append(one_minus_cos)
    density = jnp.concatenate(weighted, axis=-1)
    one_minus_cos = jnp.concatenate(distance, axis=-1)
    mass = jnp.sum(density, axis=-1)
    mean = jnp.sum(density * one_minus_cos, axis=-1) / mass
    spread = one_minus_cos - mean[:, None]
    variance = jnp.sum(density * spread * spread, axis=-1) / mass
    # kappa = 0: w is symmetric about 0, E[1 - w] = 1 exactly
    mean = jnp.where(kappa == 0, 1.0, mean)
    return mean.reshape(shape).astype(compute), variance.reshape(shape).astype(compute)


def mean_one_minus_w(kappa, d):
    r"""$1 - A_d(\kappa) = E[1 - w]$ to a few eps relative (see
    ``marginal_moments``)."""
    return marginal_moments(kappa, d)[0]


def _mode_angle(kappa, m2):
    """The mode of e^{kappa cos t} sin^{d-2} t on [0, pi]: cos t* = 2 kappa /
    (m2 + r), sin^2 t* = 2 m2 / (m2 + r), r = sqrt(m2^2 + 4 kappa^2); t* = 0
    at d = 2 (and pi/2 at kappa = 0, d > 2). Returns t* and cot t* (0 where
    t* = 0, where it is not used: m2 = 0)."""
    root = jnp.hypot(m2, 2.0 * kappa)
    nonzero = root > 0
    root_safe = jnp.where(nonzero, root, 1.0)
    cos_mode = jnp.where(nonzero, 2.0 * kappa / (m2 + root_safe), 1.0)
    sin2_mode = jnp.where(nonzero, 2.0 * m2 / (m2 + root_safe), 0.0)
    sin_mode = jnp.sqrt(sin2_mode)
    cot_mode = jnp.where(
        sin_mode > 0, cos_mode / jnp.where(sin_mode > 0, sin_mode, 1.0), 0.0
    )
    return jnp.arctan2(sin_mode, cos_mode), cot_mode


# log1p by its series for |r| <= 1/8, where 18 terms leave (1/8)^18 / 18 <
# 1e-17 relative, and as log(1 + r) beyond, where rounding 1 + r costs at
# most eps / log(9/8) = 8.5 eps relative.
_LOG1P_TERMS = 18


def log1p_accurate(r):
    """log(1 + r) for r >= -1 to ~8 eps relative, without jnp.log1p: XLA's
    CPU backend (jax 0.10.2) returned values off by ~0.1 from log1p for some
    elements of this module's fused node computation once the batch passed
    ~100 samples (the same program at 64 samples, or compiled at LLVM
    optimisation level 0, was right). Goldberg's log(u) r / (u - 1) does not
    help: XLA folds (1 + r) - 1 to r."""
    small = jnp.abs(r) <= 0.125
    rs = jnp.where(small, r, 0.0)
    acc = jnp.full_like(rs, 1.0 / _LOG1P_TERMS)
    for k in range(_LOG1P_TERMS - 1, 0, -1):
        acc = 1.0 / k - rs * acc
    return jnp.where(small, rs * acc, jnp.log(jnp.where(small, 2.0, 1.0 + r)))


def _log_ratio(kappa, m2, theta, cot_theta, sign, x):
    """log(f(theta') / f(theta)) for f = e^{kappa cos} sin^{d-2} and theta' =
    theta - sign x, its x-derivative, |cos theta' - cos theta|, and theta'.

    Both parts are formed from x without a difference of nearby numbers:
    cos theta' - cos theta as a product of sines, and sin theta' / sin theta
    as 1 - 2 sin^2(x/2) - sign cot(theta) sin x through log1p (the two terms
    have one sign on the side integrated, except where the ratio is near 1
    and both are small). A difference of the two log sines would lose
    (d - 2) eps |log sin theta| of the exponent: 4e-4 in float32 at d = 1000.
    """
    angle = theta - sign * x
    chord = 2.0 * jnp.sin(theta - sign * x / 2) * jnp.sin(x / 2)
    half = jnp.sin(x / 2)
    ratio_minus_one = jnp.maximum(
        -2.0 * half * half - sign * cot_theta * jnp.sin(x), -1.0
    )
    log_sin = jnp.where(m2 > 0, m2 * log1p_accurate(ratio_minus_one), 0.0)
    value = sign * kappa * chord + log_sin
    sin_angle = jnp.sin(angle)
    derivative = sign * (
        kappa * sin_angle - jnp.where(m2 > 0, m2 * jnp.cos(angle) / sin_angle, 0.0)
    )
    return value, derivative, chord, angle


def _window(kappa, m2, theta, cot_theta, sign, length, x_mode):
    """W in [x_mode, length] with log-ratio <= -cutoff on [W, length].

    On [x_mode, length] the log-ratio decreases (the density is unimodal in
    the angle), so any x where it is <= -cutoff bounds the window.
    Safeguarded Newton keeps the bracket [lo, hi] with log-ratio(lo) >
    -cutoff >= log-ratio(hi) (hi = length counts: the interval ends there)
    and returns hi: valid after any number of steps."""
    dtype = kappa.dtype
    tiny = jnp.finfo(dtype).tiny
    _, cutoff = _quadrature(dtype)
    angle_mode = theta - sign * x_mode
    sin_mode = jnp.sin(angle_mode)
    curvature = kappa * jnp.cos(angle_mode) + jnp.where(
        m2 > 0, m2 / jnp.maximum(sin_mode * sin_mode, tiny), 0.0
    )
    curvature = jnp.maximum(curvature, tiny)
    _, slope_mode, _, _ = _log_ratio(kappa, m2, theta, cot_theta, sign, x_mode)
    # first guess: where a quadratic with the mode's curvature, or a line
    # with its slope, reaches -cutoff
    guess = jnp.minimum(
        jnp.sqrt(2.0 * cutoff / curvature),
        cutoff / jnp.maximum(jnp.abs(slope_mode), tiny),
    )
    x = jnp.minimum(x_mode + guess, (x_mode + length) / 2)
    lo, hi = x_mode, length
    for _ in range(_WINDOW_STEPS):
        value, derivative, _, _ = _log_ratio(kappa, m2, theta, cot_theta, sign, x)
        below = value <= -cutoff
        hi = jnp.where(below, x, hi)
        lo = jnp.where(below, lo, x)
        newton = x - (value + cutoff) / derivative
        inside = (newton > lo) & (newton < hi)
        x = jnp.where(inside, newton, (lo + hi) / 2)
    return hi


def _nodes(kappa, m2, theta, cot_theta, sign, window):
    """Gauss-Legendre on [0, window] (1-D inputs): at each node, the weight
    times the Jacobian times f(theta')/f(theta), |cos theta' - cos theta|
    and 1 - cos theta' (as 2 sin^2(theta'/2)); shapes (n, nodes)."""
    num_nodes, _ = _quadrature(kappa.dtype)
    nodes, weights = np.polynomial.legendre.leggauss(num_nodes)
    nodes = jnp.asarray((nodes + 1.0) / 2.0, kappa.dtype)[None, :]
    weights = jnp.asarray(weights / 2.0, kappa.dtype)[None, :]
    x = window[:, None] * nodes
    value, _, chord, angle = _log_ratio(
        kappa[:, None],
        m2,
        theta[:, None],
        cot_theta[:, None],
        sign[:, None],
        x,
    )
    half = jnp.sin(angle / 2)
    return window[:, None] * weights * jnp.exp(value), chord, 2.0 * half * half


def _slope_kernel(kappa, d, u, one_plus_w, one_minus_mean):
    """The integral of marginal_slope on 1-D arrays with -1 < w < 1."""
    m2 = d - 2.0
    theta = 2.0 * jnp.arctan2(jnp.sqrt(u), jnp.sqrt(one_plus_w))
    sin_theta = jnp.sqrt(u * one_plus_w)
    # cos theta = w = ((1 + w) - (1 - w)) / 2
    cot_theta = 0.5 * (one_plus_w - u) / sin_theta
    # w >= A_d: integrate t from w up to 1 (theta' from theta down to 0);
    # w < A_d: t from -1 up to w (theta' from theta up to pi). x >= 0 is the
    # distance in angle from theta, theta' = theta - sign x; there
    # t - A_d (upper) or A_d - t (lower) is delta + |cos theta' - cos theta|.
    upper = u <= one_minus_mean
    sign = jnp.where(upper, 1.0, -1.0)
    delta = jnp.abs(one_minus_mean - u)
    length = jnp.where(upper, theta, jnp.pi - theta)
    x_mode = jnp.clip(sign * (theta - _mode_angle(kappa, m2)[0]), 0.0, length)
    window = _window(kappa, m2, theta, cot_theta, sign, length, x_mode)
    density, chord, _ = _nodes(kappa, m2, theta, cot_theta, sign, window)
    # dw/dkappa = sin(theta_w) * the integral over the angle (dt = sin dtheta
    # and p(w) = p_theta(theta_w) / sin theta_w)
    return sin_theta * jnp.sum(density * (delta[:, None] + chord), axis=-1)
