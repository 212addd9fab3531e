"""Fit von Mises-Fisher distributions to high-dimensional unit features.

    python examples/vmf_fit.py [--n 5000]

Synthesises class-conditional features on the fly (no download) in the
dimensions of ResNet-50 features used by Plesner et al. (2048, 8192, 32768):
for each d, samples from a vMF with known mean and concentration, fits it with
``numerics.fit_vmf`` and with ``scipy.stats.vonmises_fisher.fit``, and prints
the recovered concentrations.
"""

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import scipy.stats

from sciax import numerics


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000, help="samples per fit")
    args = parser.parse_args()
    print(
        f"{'d':>6} {'true kappa':>11} {'ours':>11} {'exact MLE':>11} {'SciPy':>11} {'ours s':>7}"
    )
    key = jr.PRNGKey(0)
    for d in (2048, 8192, 32768):
        for kappa in (0.5 * d, 2.0 * d):
            key, key_mu, key_x = jr.split(key, 3)
            mu = jr.normal(key_mu, (d,))
            mu = mu / jnp.linalg.norm(mu)
            samples = numerics.VonMisesFisher(mu, kappa).sample(key_x, (args.n,))
            start = time.perf_counter()
            kappa_hat = numerics.fit_vmf(samples).value.concentration
            kappa_hat.block_until_ready()
            elapsed = time.perf_counter() - start
            r = float(jnp.linalg.norm(jnp.mean(samples, axis=0)))
            exact = numerics.concentration_from_mean_length(d, r).value
            with np.errstate(all="ignore"):
                try:
                    _, kappa_scipy = scipy.stats.vonmises_fisher.fit(
                        np.asarray(samples)
                    )
                except Exception:
                    kappa_scipy = float("nan")
            print(
                f"{d:6d} {kappa:11.1f} {float(kappa_hat):11.1f} {float(exact):11.1f} "
                f"{kappa_scipy:11.4g} {elapsed:7.2f}"
            )


if __name__ == "__main__":
    main()
