"""Gaussian random fields on the unit box by a cosine (Neumann) expansion."""

import jax
import jax.numpy as jnp
import jax.scipy.fft as jfft
from jaxtyping import Array, Float, PRNGKeyArray


def gaussian_random_field(
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    *,
    alpha: float = 2.0,
    tau: float = 3.0,
    dtype=None,
) -> Float[Array, "..."]:
    r"""A sample of $N(0, (-\Delta + \tau^2)^{-\alpha})$ on $[0, 1]^d$ with
    Neumann boundary conditions, on a uniform grid of ``shape`` points.

    $u = \sum_k \xi_k \sqrt{\lambda_k} \phi_k$ with cosine eigenfunctions
    $\phi_k$ of the Neumann Laplacian, $\xi_k \sim N(0, 1)$ and
    $\lambda_k = \tau^{2\alpha - 2}(\pi^2|k|^2 + \tau^2)^{-\alpha}$ (the scaling
    of the FNO benchmark's generator, Li et al. 2021, which makes the field's
    variance roughly independent of $\tau$); the mean mode is removed, as
    there. Evaluated with one inverse DCT-II, $O(N \log N)$.

    Args:
        key: PRNG key.
        shape: grid points per dimension (1-D to 3-D).
        alpha: smoothness (> d/2 for a continuous field).
        tau: inverse length scale.
        dtype: float dtype (default: the default float).

    Returns:
        The field on the grid, shape ``shape``.

    References:
        Li et al., "Fourier Neural Operator for Parametric Partial Differential
        Equations", ICLR 2021 (data generator).
    """
    if not 1 <= len(shape) <= 3:
        raise ValueError(f"shape must have 1 to 3 dimensions, got {shape}.")
    if alpha <= 0 or tau <= 0:
        raise ValueError(f"alpha and tau must be positive, got {alpha}, {tau}.")
    dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
    wavenumbers = jnp.meshgrid(
        *[jnp.arange(s, dtype=dtype) for s in shape], indexing="ij"
    )
    squared = sum(k * k for k in wavenumbers)
    spectrum = tau ** (alpha - 1.0) * (jnp.pi**2 * squared + tau**2) ** (-alpha / 2.0)
    spectrum = spectrum.at[(0,) * len(shape)].set(0.0)
    size = 1
    for s in shape:
        size *= s
    xi = jax.random.normal(key, shape, dtype)
    # orthonormal inverse DCT-II: coefficient k multiplies an orthonormal
    # cosine; sqrt(size) turns grid-orthonormal into L2(0,1)^d-normalized.
    return jfft.idctn(jnp.sqrt(float(size)) * spectrum * xi, type=2, norm="ortho")
