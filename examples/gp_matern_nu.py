"""Learn the smoothness of a Matérn Gaussian process from data.

    python examples/gp_matern_nu.py [--small] [--points 200] [--steps 150] [--seed 0]

Draws noisy observations of a Gaussian process with a Matérn covariance of
known smoothness (nu = 1.5, lengthscale 1, variance 1, noise standard
deviation 0.01, at uniform random points of [0, 10]), then fits nu, the
lengthscale, the variance and the noise by maximising the log marginal
likelihood with Adam (optax), and prints the progress and the recovered
parameters: nu = 1.70 at the default size and seed, 1.18 to 1.70 over
seeds 0-4 (--small: 1.23 to 1.76). About 25 s on 2 CPU cores at the default
size (15 s with --small), half of it compiling the likelihood's gradient.

The kernel is ``pde.MaternKernel`` with nu given as an array, which makes it
a parameter: ``eqx.filter_grad`` differentiates the likelihood in nu through
``numerics.log_matern``, whose derivatives are finite at distance 0 (the
diagonal of the covariance), where a hand-built x^nu K_nu(x) gives 0 * inf.
The parameters are optimised as logarithms so that they stay positive.
GPJax issue #482 asks for exactly this fit.
"""

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)
import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float

from sciax import pde

# nu = 3/2 (once differentiable paths); the noise is small enough that the
# paths' roughness, which is what pins nu, shows above it at the sampling
# distance (10 / 200 = l / 20): with noise 0.1 the fit cannot tell nu = 1.5
# from 2.7
TRUE = {"nu": 1.5, "lengthscale": 1.0, "variance": 1.0, "noise": 0.01}


class Hyperparameters(eqx.Module):
    """The fitted quantities, as logarithms."""

    log_nu: Float[Array, ""]
    log_lengthscale: Float[Array, ""]
    log_variance: Float[Array, ""]
    log_noise: Float[Array, ""]

    def kernel(self) -> pde.MaternKernel:
        # nu as an array: a parameter of the kernel, differentiated and learnt
        return pde.MaternKernel(
            self.log_variance, self.log_lengthscale, nu=jnp.exp(self.log_nu)
        )


def covariance(kernel, x, noise_variance):
    """k(x_i - x_j) + noise^2 I, the kernel evaluated once per pair i <= j
    (the diagonal included: its derivatives in nu and the lengthscale are
    exactly 0, as they should be, and a test of that is free here)."""
    n = x.shape[0]
    rows, cols = np.triu_indices(n)
    values = kernel.derivative(x[rows] - x[cols], 0)
    upper = jnp.zeros((n, n), x.dtype).at[rows, cols].set(values)
    gram = upper + jnp.triu(upper, 1).T
    return gram + noise_variance * jnp.eye(n, dtype=x.dtype)


def negative_log_marginal_likelihood(params: Hyperparameters, x, y):
    r"""$\frac12 y^T (K + \sigma^2 I)^{-1} y + \frac12 \log|K + \sigma^2 I|
    + \frac n2 \log 2\pi$."""
    matrix = covariance(params.kernel(), x, jnp.exp(2 * params.log_noise))
    factor = jnp.linalg.cholesky(matrix)
    whitened = jax.scipy.linalg.solve_triangular(factor, y, lower=True)
    return (
        0.5 * jnp.sum(whitened**2)
        + jnp.sum(jnp.log(jnp.diag(factor)))
        + 0.5 * x.shape[0] * jnp.log(2 * jnp.pi)
    )


def sample_data(key, num_points):
    """Noisy observations of a Matérn-3/2 process at random points, drawn
    with its closed form sigma^2 (1 + s) exp(-s), s = sqrt(3) r / l
    (independently of the library's Matérn functions)."""
    key_x, key_f, key_noise = jr.split(key, 3)
    x = jnp.sort(jr.uniform(key_x, (num_points,), minval=0.0, maxval=10.0))
    s = jnp.sqrt(3.0) * jnp.abs(x[:, None] - x[None, :]) / TRUE["lengthscale"]
    gram = TRUE["variance"] * (1.0 + s) * jnp.exp(-s)
    factor = jnp.linalg.cholesky(gram + 1e-10 * jnp.eye(num_points))
    f = factor @ jr.normal(key_f, (num_points,))
    return x, f + TRUE["noise"] * jr.normal(key_noise, (num_points,))


@eqx.filter_jit
def _step(params, state, optimizer, x, y):
    """One Adam step on the negative log marginal likelihood (compiled once
    per data shape: the data are arguments, not constants)."""
    loss, grads = eqx.filter_value_and_grad(negative_log_marginal_likelihood)(
        params, x, y
    )
    updates, state = optimizer.update(grads, state, params)
    return eqx.apply_updates(params, updates), state, loss


def fit(x, y, num_steps, learning_rate=0.05, report_every=50, log=print):
    """Adam on the negative log marginal likelihood from nu = 0.8,
    lengthscale 0.5, variance 0.5, noise 0.1; returns the fitted
    Hyperparameters."""
    # a dtype given: Python numbers would make weakly typed arrays, and the
    # first updates (strongly typed) would recompile the step twice
    params = Hyperparameters(
        *(jnp.log(jnp.asarray(value, float)) for value in (0.8, 0.5, 0.5, 0.1))
    )
    optimizer = optax.adam(learning_rate)
    state = optimizer.init(params)
    for i in range(num_steps):
        params, state, loss = _step(params, state, optimizer, x, y)
        if i % report_every == 0 or i == num_steps - 1:
            log(
                f"step {i:4d}  -log p(y) {float(loss):9.3f}  "
                f"nu {float(jnp.exp(params.log_nu)):6.3f}  "
                f"lengthscale {float(jnp.exp(params.log_lengthscale)):6.3f}  "
                f"variance {float(jnp.exp(params.log_variance)):6.3f}  "
                f"noise {float(jnp.exp(params.log_noise)):6.3f}"
            )
    return params


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--small", action="store_true", help="60 points, 100 steps (a quick check)"
    )
    args = parser.parse_args(argv)
    num_points, num_steps = (60, 100) if args.small else (args.points, args.steps)
    start = time.perf_counter()
    x, y = sample_data(jr.key(args.seed), num_points)
    print(
        f"{num_points} observations of a Matérn GP with nu = {TRUE['nu']}, "
        f"lengthscale {TRUE['lengthscale']}, variance {TRUE['variance']}, "
        f"noise {TRUE['noise']}"
    )
    params = fit(x, y, num_steps)
    nu = float(jnp.exp(params.log_nu))
    print(
        f"recovered nu = {nu:.3f} (true {TRUE['nu']}), {time.perf_counter() - start:.1f} s"
    )
    return params


if __name__ == "__main__":
    main()
