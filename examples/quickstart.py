"""The main job: numerics at work where SciPy gives up.

    python examples/quickstart.py

1. log I_v and log K_v at orders and arguments where scipy.special returns
   inf, 0 or nan, compared with SciPy's log(ive) + x.
2. Gradients in x and in the order v (the latter is what Matérn kernels with a
   learnt smoothness and the generalised inverse Gaussian need).
3. A von Mises-Fisher fit in d = 32768 on features synthesised on the fly,
   against SciPy's fit.
4. A sequence of Darcy systems solved with GMRES and with GCRO-DR carrying
   its recycled subspace along a sorted chain (SKR), counting matvecs.
5. Operator learning end to end: 600 Darcy samples generated with the
   multigrid solver at 85 x 85, a Fourier neural operator trained at 29 x 29,
   its test error at 29, 43 and 85 (the last two never seen in training),
   and a PNG of one test sample (examples/darcy_fno.py has larger settings).
6. A high-frequency boundary-value problem (u'' = f, u = sin(100 x) on
   [0, 2 pi], 400 points, four points per period) solved by a Gaussian process
   that learns its spectrum, against the Chebyshev reference
   (examples/gp_high_frequency.py has the other problems and a plot).
7. A 2-D pressure Poisson system with obstacles solved by the learned
   conjugate-direction solver with the shipped weights, alone and with a
   multigrid step after each network step, next to CG and multigrid-PCG
   (examples/learned_cg.py has the other problem kinds and 3-D).
Runs in about three minutes on 2 CPU cores.
"""

import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import darcy_fno
import gp_high_frequency
import jax.numpy as jnp
import jax.random as jr
import learned_cg
import numpy as np
import scipy.special as sp
import scipy.stats
from operator_learning import test_errors

import sciax
from sciax import numerics, pde, solvers


def bessel_where_scipy_fails():
    print("1. log-Bessel functions beyond SciPy's range")
    cases = [(1e4, 1.0), (1.0, 1e4), (500.0, 1e5), (16383.0, 2e4), (0.5, 1e-300)]
    print(
        f"   {'v':>8} {'x':>8} {'log I_v(x)':>22} {'SciPy log(iv)':>16} {'log K_v(x)':>22} {'SciPy log(kv)':>16}"
    )
    with np.errstate(all="ignore"):
        for v, x in cases:
            ours_i = float(numerics.log_iv(v, x))
            ours_k = float(numerics.log_kv(v, x))
            scipy_i = np.log(sp.iv(v, x))
            scipy_k = np.log(sp.kv(v, x))
            print(
                f"   {v:8.4g} {x:8.3g} {ours_i:22.15e} {scipy_i:16.6g} {ours_k:22.15e} {scipy_k:16.6g}"
            )


def derivatives():
    print(
        "2. derivatives (d/dx from Bessel ratios, d/dv by differentiating the kernels)"
    )
    for v, x in [(2.5, 3.0), (40.0, 25.0)]:
        d_dv, d_dx = jax.grad(numerics.log_kv, argnums=(0, 1))(v, x)
        h = 1e-5
        fd_v = (numerics.log_kv(v + h, x) - numerics.log_kv(v - h, x)) / (2 * h)
        print(
            f"   d/dv log K_{v}({x}) = {float(d_dv):.12f}  (central difference {float(fd_v):.12f})"
        )
        print(f"   d/dx log K_{v}({x}) = {float(d_dx):.12f}")


def vmf_fit_high_dimension():
    d, kappa, n = 32768, 20000.0, 2000
    print(f"3. von Mises-Fisher fit, d = {d}, kappa = {kappa:g}, n = {n} samples")
    key_mu, key_x = jr.split(jr.PRNGKey(0))
    mu = jr.normal(key_mu, (d,))
    mu = mu / jnp.linalg.norm(mu)
    start = time.perf_counter()
    samples = numerics.VonMisesFisher(mu, kappa).sample(key_x, (n,))
    fit = numerics.fit_vmf(samples)
    mean_direction, kappa_hat = fit.value.mean_direction, fit.value.concentration
    kappa_hat.block_until_ready()
    elapsed = time.perf_counter() - start
    print(
        f"   ours:  kappa = {float(kappa_hat):.1f}, mu . mu_hat = {float(mean_direction @ mu):.6f}, "
        f"converged: {bool(fit.result == sciax.RESULTS.successful)}, sample + fit {elapsed:.1f} s"
    )
    mean_length = float(jnp.linalg.norm(jnp.mean(samples, axis=0)))
    exact = numerics.concentration_from_mean_length(d, mean_length).value
    print(
        f"   the MLE for these samples (R = {mean_length:.6f}) is kappa = {float(exact):.1f}"
    )
    try:
        _, kappa_scipy = scipy.stats.vonmises_fisher.fit(np.asarray(samples))
        print(f"   SciPy: kappa = {kappa_scipy:.4g}")
    except Exception as error:  # SciPy fails outright in some dimensions
        print(f"   SciPy: failed ({type(error).__name__}: {error})")


def recycled_sequence():
    n, count = 48, 12
    print(
        f"4. {count} Darcy systems -div(exp(GRF) grad u) = 1 on {n}x{n} nodes, rtol 1e-8"
    )
    keys = jr.split(jr.PRNGKey(1), count)
    log_a = jax.vmap(lambda key: pde.gaussian_random_field(key, (n + 2, n + 2)))(keys)
    rhs = jnp.ones((count, n * n))

    def build(parameters):
        return solvers.DiffusionOperator(jnp.exp(parameters))

    runs = {
        "GMRES(40)": (
            solvers.GMRES(rtol=1e-8, atol=0.0, max_steps=20000, restart=40),
            "given",
        ),
        "GCRO-DR(40,10), sorted": (
            solvers.GCRODR(
                rtol=1e-8, atol=0.0, max_steps=20000, restart=40, recycle=10
            ),
            "greedy",
        ),
    }
    for label, (solver, order) in runs.items():
        start = time.perf_counter()
        out = solvers.solve_sequence(build, log_a, rhs, solver, order=order)
        out.value.block_until_ready()
        converged = bool(jnp.all(out.result == solvers.RESULTS.successful))
        print(
            f"   {label:24} {float(out.stats['num_matvecs'].mean()):7.1f} matvecs per system, "
            f"all converged: {converged}, {time.perf_counter() - start:.1f} s with compilation"
        )


def operator_learning():
    settings = darcy_fno.SETTINGS["quick"]
    directory = Path("data") / "darcy_quickstart"
    total = settings["train_samples"] + settings["test_samples"]
    print(
        f"5. Darcy -> FNO: {total} samples solved at {settings['solve']}, "
        f"training at {settings['train']} (data in {directory}, reused if there)"
    )
    start = time.perf_counter()
    darcy_fno.generate(directory, settings, seed=0, progress=False)
    print(f"   data: {time.perf_counter() - start:.1f} s")
    result = darcy_fno.train(directory, settings, seed=0, progress=False)
    losses = result.stats["train_loss"]
    print(
        f"   training: {result.stats['num_epochs']} epochs in "
        f"{result.stats['seconds']:.1f} s, "
        f"train loss {float(losses[0]):.3f} -> {float(losses[-1]):.4f}"
    )
    for resolution, error in test_errors(directory, result.model, settings).items():
        seen = "trained here" if resolution == settings["train"] else "zero-shot"
        print(f"   test relative L2 at {resolution:3d}: {100 * error:5.2f}%  ({seen})")
    darcy_fno.save_figure("darcy_quickstart.png", directory, result.model, settings)


def high_frequency_gp():
    print("6. u'' = f with u = sin(100 x) on [0, 2 pi], 400 points: Gaussian process")
    solution, error, seconds = gp_high_frequency.solve(
        "P1", outer_steps=2, kernel_steps=20
    )
    print(f"   relative L2 error {error:.1e} in {seconds:.1f} s (GP-HM's best: 4.0e-7)")
    print(f"   learnt spectrum: {gp_high_frequency.describe_spectrum(solution)}")
    print(f"   Chebyshev at 1000 points: {gp_high_frequency.chebyshev_error('P1'):.1e}")


def learned_conjugate_directions():
    print(
        "7. pressure Poisson with obstacles, 40 x 40: learned directions (alone "
        "and with multigrid steps) vs CG and multigrid-PCG"
    )
    rows = learned_cg.compare(
        "obstacles",
        (40, 40),
        solvers.pretrained_network(2),
        solvers.pretrained_network(2, multigrid=True),
    )
    for name, (steps, fallbacks, seconds, residual, outcome) in rows.items():
        print(
            f"   {name:10} {steps:4d} iterations ({fallbacks} fallbacks), "
            f"{seconds:.3f} s, relative residual {residual:.1e}, {outcome[:40]}"
        )


def main():
    start = time.perf_counter()
    bessel_where_scipy_fails()
    derivatives()
    vmf_fit_high_dimension()
    recycled_sequence()
    operator_learning()
    high_frequency_gp()
    learned_conjugate_directions()
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
