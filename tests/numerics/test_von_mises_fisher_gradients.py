r"""Gradients through ``VonMisesFisher.sample`` (reparameterised samples).

The derivative of a sample in $\kappa$ is the implicit one of $w = \mu^T x$,
$dw/d\kappa = -\partial_\kappa F(w) / p(w)$ (numerics/_vmf_marginal.py). It is
checked three ways: pointwise against finite differences of the inverse CDF
(SciPy quadrature and root finding) and against mpmath at extreme $d$ and
$\kappa$; and in expectation, as the Monte-Carlo gradient of $E[f(x)]$ for
$f(x) = a^T x$ and $(a^T x)^2$ in $\kappa$ and in the mean direction, against
the closed forms (through $A_d = E[\mu^T x]$ and
$E[x x^T] = (A_d/\kappa) I + (1 - d A_d/\kappa)\mu\mu^T$) and against the
score-function (REINFORCE) estimator on independent samples.

Monte-Carlo bounds: every comparison allows ``Z = 4.5`` standard errors of
the estimator (of the difference, for two estimators), each standard error
estimated from the per-sample terms of the same run; a false alarm of one
such check has probability 7e-6 for a Gaussian mean. The keys are fixed.
"""

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import scipy.special

from sciax import numerics
from sciax.numerics._vmf_marginal import marginal_slope

Z = 4.5


def _mean_length(d, kappa):
    return scipy.special.ive(d / 2, kappa) / scipy.special.ive(d / 2 - 1, kappa)


# ------------------------------------------------------ pointwise: dw/dkappa

# one compiled program per dtype for every pointwise check: 12 points
_POINTS = 12


@jax.jit
def _slopes(kappa, d, w, one_minus_w):
    return jax.vmap(marginal_slope)(kappa, d, w, one_minus_w)


def _slope_at(points, dtype):
    """marginal_slope at (d, kappa, w, 1 - w) rows, padded to _POINTS."""
    points = list(points) + [points[-1]] * (_POINTS - len(points))
    d, kappa, w, one_minus_w = (
        np.array(column) for column in zip(*points, strict=True)
    )
    out = _slopes(*(jnp.asarray(c, dtype) for c in (kappa, d, w, one_minus_w)))
    return np.asarray(out, np.float64)


def _inverse_cdf(d, kappa, q):
    """w with F(w; kappa) = q, F the CDF of w = cos(theta), whose angle has
    the density proportional to exp(kappa (cos theta - 1)) sin^(d-2) theta on
    [0, pi] (SciPy quad, smooth in the angle; brentq)."""

    def density(theta):
        return np.exp(kappa * (np.cos(theta) - 1)) * np.sin(theta) ** (d - 2)

    def mass(a, b):
        return scipy.integrate.quad(density, a, b, epsabs=0, epsrel=1e-13)[0]

    total = mass(0, np.pi)
    # F(w) = P(theta > theta_w)
    theta = scipy.optimize.brentq(
        lambda t: mass(0, t) / total - (1 - q), 0, np.pi, xtol=1e-15, rtol=1e-15
    )
    return np.cos(theta)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_slope_against_finite_differences_of_the_inverse_cdf(dtype):
    """dw/dkappa at fixed U = F(w): central differences of F^{-1}(q; kappa)."""
    cases = [
        (4, 0.5, 0.05),
        (4, 5.0, 0.5),
        (4, 40.0, 0.95),
        (7, 0.5, 0.5),
        (7, 5.0, 0.95),
        (7, 40.0, 0.05),
        (12, 0.5, 0.95),
        (12, 5.0, 0.05),
        (12, 40.0, 0.5),
    ]
    points, expected = [], []
    for d, kappa, q in cases:
        w = _inverse_cdf(d, kappa, q)
        # h = 1e-4 kappa: truncation ~h^2 w''' / 6 ~ 1e-9 relative, and the
        # quadratures' 1e-13 divided by 2h stays below ~1e-8
        h = 1e-4 * kappa
        difference = (_inverse_cdf(d, kappa + h, q) - _inverse_cdf(d, kappa - h, q)) / (
            2 * h
        )
        points.append((d, kappa, w, 1 - w))
        expected.append(difference)
    ours = _slope_at(points, dtype)[: len(cases)]
    # float32: the slope's own error is below 50 eps (against the float64
    # kernel at the same inputs), and w rounded to float32 moves it by
    # another few eps times its conditioning (< 30 here)
    rtol = 1e-6 if dtype == jnp.float64 else 1e-4
    np.testing.assert_allclose(ours, expected, rtol=rtol)


def _mpmath_slope(mpmath, d, kappa, w):
    r"""$\sin\theta_w \int (\cos\theta' - A_d) e^{\kappa\cos\theta'}
    \sin^{d-2}\theta' d\theta' / (e^{\kappa\cos\theta_w}\sin^{d-2}\theta_w)$
    over the side of w away from the mean, at 30 digits (breakpoints at the
    mode and w so that mpmath's tanh-sinh sees the peak)."""
    with mpmath.workdps(30):
        d, kappa, w = mpmath.mpf(d), mpmath.mpf(kappa), mpmath.mpf(w)
        a = mpmath.besseli(d / 2, kappa) / mpmath.besseli(d / 2 - 1, kappa)
        theta_w = mpmath.acos(w)
        root = mpmath.sqrt((d - 2) ** 2 + 4 * kappa**2)
        theta_mode = mpmath.acos(2 * kappa / ((d - 2) + root))
        width = 1 / mpmath.sqrt(kappa + (d - 2) + 1)

        def log_f(t):
            return kappa * mpmath.cos(t) + (d - 2) * mpmath.log(mpmath.sin(t))

        base = log_f(theta_w)
        marks = [theta_mode + k * width for k in (-10, -3, 0, 3, 10)]
        if w >= a:
            inside = [t for t in marks if 0 < t < theta_w]
            value = mpmath.quad(
                lambda t: (mpmath.cos(t) - a) * mpmath.exp(log_f(t) - base),
                [0, *inside, theta_w],
            )
        else:
            inside = [t for t in marks if theta_w < t < mpmath.pi]
            value = mpmath.quad(
                lambda t: (a - mpmath.cos(t)) * mpmath.exp(log_f(t) - base),
                [theta_w, *inside, mpmath.pi],
            )
        return float(value * mpmath.sin(theta_w)), float(1 - w)


def test_slope_against_mpmath_at_extreme_dimensions_and_concentrations():
    mpmath = pytest.importorskip("mpmath")
    # (d, kappa, w): kappa >> d, where w and A_d round to 1 (and the sample
    # comes with 1 - w), d = 1000, tiny kappa, and tails on both sides
    cases = [
        (2, 1e6, "0.9999995"),
        (3, 1e6, "0.99999999"),
        (3, 1e6, "0.99998"),
        (100, 1e6, "0.99995"),
        (100, 1e4, "0.997"),
        (1000, 1e4, "0.95"),
        (1000, 1e4, "0.96"),
        (1000, 1.0, "0.08"),
        (3, 1e-3, "-0.5"),
        (2, 1e-3, "0.999"),
        (10, 10.0, "-0.4"),
        (10, 10.0, "0.2"),
    ]
    points, expected = [], []
    for d, kappa, w in cases:
        slope, one_minus_w = _mpmath_slope(mpmath, d, kappa, w)
        points.append((d, kappa, float(w), one_minus_w))
        expected.append(slope)
    ours = _slope_at(points, jnp.float64)
    # the grid of the module docstring: below 1e-12 away from w = -1
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


@pytest.mark.slow  # ~10 s (suite budget): the grouped evaluation of the slopes
def test_slope_in_a_large_batch_is_the_slope_of_each_point():
    """A regression test: with jnp.log1p in the node computation, XLA's CPU
    backend gave 1.7e40 instead of 4.5e-6 here once the batch passed ~100
    points (numerics/_vmf_marginal.py, _log1p)."""
    w = 0.9534979134462377
    many = marginal_slope(
        jnp.full(256, 1e4), jnp.asarray(1000.0), jnp.full(256, w), jnp.full(256, 1 - w)
    )
    # mpmath at 40 digits (the integral of _mpmath_slope)
    np.testing.assert_allclose(many, 4.5316752042431338e-06, rtol=1e-12)


def test_slope_edges():
    kappa = jnp.array([jnp.inf, jnp.nan, -1.0, 0.0, 3.0, 3.0])
    w = jnp.array([1.0, 0.3, 0.3, 0.3, 1.0, -1.0])
    slope = marginal_slope(kappa, jnp.asarray(3.0), w, 1.0 - w)
    # the point mass does not move; w = +-1 is an end of the range
    assert slope[0] == 0.0 and slope[4] == 0.0 and slope[5] == 0.0
    assert np.isnan(slope[1]) and np.isnan(slope[2])
    # kappa = 0, d = 3: w is uniform, F = (1 + w)/2, dF/dkappa = -(1 - w^2)/4
    # and p = 1/2, so dw/dkappa = (1 - w^2)/2
    np.testing.assert_allclose(slope[3], (1 - 0.09) / 2, rtol=1e-13)


# ---------------------------------------- in expectation: grad of E[f(x)]


@functools.partial(jax.jit, static_argnums=(5,))
def _estimators(phi, kappa, a, mean_length, key, n):
    """Per-sample terms of the pathwise and score-function gradients of
    E[a.x] and E[(a.x)^2] in kappa and in phi (mu = phi / |phi|)."""

    def samples(phi, kappa, key):
        mu = phi / jnp.linalg.norm(phi)
        return numerics.VonMisesFisher(mu, kappa).sample(key, n)

    key_path, key_score = jr.split(key)
    x, x_kappa = jax.jvp(
        lambda k: samples(phi, k, key_path), (kappa,), (jnp.ones_like(kappa),)
    )
    x_phi = jax.jacfwd(samples)(phi, kappa, key_path)
    ax = x @ a
    a_x_kappa = x_kappa @ a
    a_x_phi = jnp.einsum("nij,i->nj", x_phi, a)
    pathwise = {
        "f1_kappa": a_x_kappa,
        "f1_phi": a_x_phi,
        "f2_kappa": 2 * ax * a_x_kappa,
        "f2_phi": 2 * ax[:, None] * a_x_phi,
    }
    # score function: d log p / d kappa = mu.y - A_d, d log p / d phi =
    # kappa (I - mu mu^T) y / |phi|, on independent samples
    y = samples(phi, kappa, key_score)
    norm = jnp.linalg.norm(phi)
    mu = phi / norm
    mu_y = y @ mu
    score_kappa = mu_y - mean_length
    score_phi = kappa * (y - mu_y[:, None] * mu[None, :]) / norm
    ay = y @ a
    return pathwise, (ay, ay * ay, score_kappa, score_phi), x


def _closed_forms(d, kappa, phi, a):
    """E[a.x], E[(a.x)^2] and their gradients in kappa and phi, in float64."""
    norm = np.linalg.norm(phi)
    mu = phi / norm
    A = _mean_length(d, kappa)
    A_slope = 1 - A * A - (d - 1) * A / kappa  # A_d' (Riccati equation)
    a_mu = a @ mu
    project = (np.eye(d) - np.outer(mu, mu)) / norm
    ratio = A / kappa
    ratio_slope = A_slope / kappa - A / kappa**2
    values = (A * a_mu, ratio * (a @ a) + (1 - d * ratio) * a_mu**2)
    gradients = {
        "f1_kappa": A_slope * a_mu,
        "f1_phi": A * project @ a,
        "f2_kappa": ratio_slope * (a @ a) - d * ratio_slope * a_mu**2,
        "f2_phi": (1 - d * ratio) * 2 * a_mu * (project @ a),
    }
    return A, values, gradients


def _mean_and_error(terms):
    terms = np.asarray(terms, np.float64)
    return terms.mean(0), terms.std(0, ddof=1) / np.sqrt(terms.shape[0])


def _check_expectation_gradients(dtype, d, kappa, phi, seed, n=40000):
    # a has a component along mu of about 1, so that no gradient is small
    # by accident (A_d' a.mu with a.mu near 0)
    a = np.random.default_rng(seed).normal(size=d) + phi / np.linalg.norm(phi)
    A, (e1, e2), exact = _closed_forms(d, kappa, phi, a)
    pathwise, (f1, f2, score_kappa, score_phi), x = _estimators(
        jnp.asarray(phi, dtype),
        jnp.asarray(kappa, dtype),
        jnp.asarray(a, dtype),
        jnp.asarray(A, dtype),
        jr.key(seed),
        n,
    )
    assert x.dtype == dtype and x.shape == (n, d)
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    score_kappa = np.asarray(score_kappa, np.float64)[:, None]
    score_phi = np.asarray(score_phi, np.float64)
    # baselines: the exact E[f] (a constant, so the estimator stays unbiased)
    reinforce = {
        "f1_kappa": (f1 - e1)[:, None] * score_kappa,
        "f2_kappa": (f2 - e2)[:, None] * score_kappa,
        "f1_phi": (f1 - e1)[:, None] * score_phi,
        "f2_phi": (f2 - e2)[:, None] * score_phi,
    }
    for name, expected in exact.items():
        expected = np.atleast_1d(expected)
        path_mean, path_error = _mean_and_error(pathwise[name].reshape(n, -1))
        score_mean, score_error = _mean_and_error(reinforce[name])
        exact_zero = path_error == 0
        # a component that is 0 for every sample (the derivative along phi
        # of phi/|phi|) must be 0 exactly
        np.testing.assert_array_equal(path_mean[exact_zero], expected[exact_zero])
        assert np.all(np.abs(path_mean - expected) <= Z * path_error + 1e-15), name
        assert np.all(np.abs(score_mean - expected) <= Z * score_error + 1e-15), name
        assert np.all(
            np.abs(path_mean - score_mean)
            <= Z * np.hypot(path_error, score_error) + 1e-15
        ), name
        # power: for the larger components the band of +-Z errors around
        # the pathwise estimate excludes 0, so a zero or a sign error would
        # fail the check above
        large = np.abs(expected) > 0.2 * np.max(np.abs(expected))
        assert np.all(np.abs(expected[large]) > 2 * Z * path_error[large]), name


def test_expectation_gradients_float64():
    d = 5
    # a generic mean, and mu = e_1 (where a reflection about e_1 alone has no
    # derivative; the sampler reflects about -e_1 there)
    phi = np.random.default_rng(3).normal(size=d)
    _check_expectation_gradients(jnp.float64, d, 3.0, phi, seed=11)
    _check_expectation_gradients(jnp.float64, d, 40.0, np.eye(d)[0], seed=12)


@pytest.mark.slow  # ~25 s; float32 slopes are checked by the inverse-CDF test
def test_expectation_gradients_float32():
    phi = np.array([0.3, -1.2, 0.5])
    _check_expectation_gradients(jnp.float32, 3, 10.0, phi, seed=13)


@pytest.mark.slow
@pytest.mark.parametrize(
    "d, kappa", [(2, 0.5), (3, 1e-2), (10, 200.0), (64, 30.0), (64, 3000.0)]
)
def test_expectation_gradients_over_dimensions(d, kappa):
    phi = np.random.default_rng(d).normal(size=d)
    _check_expectation_gradients(jnp.float64, d, kappa, phi, seed=100 + d, n=100000)


# ------------------------------------------------- transforms and edges


_MU = jnp.array([0.0, 0.6, 0.8])
_DIRECTION = jnp.array([0.5, -1.0, 2.0])


def _projected_mean(kappa, mu):
    key = jr.key(5)
    return jnp.mean(numerics.VonMisesFisher(mu, kappa).sample(key, 64) @ _DIRECTION)


def test_reverse_and_forward_mode_agree_under_jit():
    @jax.jit
    def reverse_and_forward(kappa):
        gradient = jax.grad(_projected_mean, argnums=(0, 1))(kappa, _MU)
        _, tangent = jax.jvp(
            lambda k: _projected_mean(k, _MU), (kappa,), (jnp.ones_like(kappa),)
        )
        return gradient, tangent

    (grad_kappa, grad_mu), tangent = reverse_and_forward(7.0)
    np.testing.assert_allclose(tangent, grad_kappa, rtol=1e-12)
    assert grad_mu.shape == (3,) and np.all(np.isfinite(grad_mu))


@pytest.mark.slow  # ~40 s, most of it compiling the vmapped gradient
def test_gradient_under_vmap_and_at_the_edges():
    # vmap over a batch of distributions: its first member is the one of the
    # test above; the point mass does not move, kappa = 0 has a finite
    # derivative, and a nan concentration gives nan, not 0
    kappas = jnp.array([7.0, jnp.inf, 0.0, jnp.nan])
    batched = jax.jit(jax.vmap(lambda k: jax.grad(_projected_mean)(k, _MU)))(kappas)
    one = jax.jit(jax.grad(_projected_mean))(7.0, _MU)
    np.testing.assert_allclose(batched[0], one, rtol=1e-12)
    assert batched[1] == 0.0
    assert np.isfinite(batched[2])
    assert np.isnan(batched[3])


@pytest.mark.slow
def test_second_derivative_in_kappa():
    """d^2/dkappa^2 E[mu.x] = A_3''(kappa), A_3 = coth - 1/kappa: the rule of
    the implicit derivative computes its slope from its own outputs, so a
    second derivative also moves w (forward over forward mode here; minutes
    to compile)."""
    mu = jnp.array([0.0, 0.6, 0.8])
    n = 100000

    def w(kappa):
        return numerics.VonMisesFisher(mu, kappa).sample(jr.key(0), n) @ mu

    second = np.asarray(jax.jit(jax.jacfwd(jax.jacfwd(w)))(2.0))
    exact = jax.grad(jax.grad(lambda k: 1 / jnp.tanh(k) - 1 / k))(2.0)
    mean, error = _mean_and_error(second)
    assert abs(mean - exact) <= Z * error
    assert abs(exact) > 2 * Z * error
