r"""A numpyro distribution over ``VonMisesFisher`` (numpyro is an optional
dependency: ``pip install sciax[numpyro]``; this module imports it, and
``numerics`` imports this module only when ``numerics.NumpyroVonMisesFisher``
is first used)."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray
from numpyro.distributions import Distribution, constraints

from ._von_mises_fisher import VonMisesFisher


class NumpyroVonMisesFisher(Distribution):
    r"""The von Mises-Fisher distribution on $S^{d-1}$ as a
    ``numpyro.distributions.Distribution``.

    $p(x) = C_d(\kappa)\exp(\kappa\mu^T x)$ with ``event_shape`` ``(d,)`` and
    ``batch_shape`` the broadcast of ``mean_direction.shape[:-1]`` and
    ``concentration.shape``. Everything is computed by
    ``numerics.VonMisesFisher``: ``log_prob`` through ``log_iv`` (any $d$ and
    $\kappa$, and its gradients for NUTS), and ``sample`` by Wood's algorithm
    with reparameterised samples (exact pathwise derivatives in both
    parameters, so ``has_rsample`` is true and SVI with a vMF guide gets
    unbiased reparameterised ELBO gradients).

    As ``VonMisesFisher``, concrete invalid parameters (a mean direction
    that is not a unit vector, a negative concentration) raise a
    ``ValueError``; with ``validate_args=True`` numpyro's own checks of
    ``arg_constraints`` and of the support in ``log_prob`` run as well.

    Example:
        >>> def model(x):
        ...     z = numpyro.sample("z", dist.Normal(0, 1).expand([3]).to_event(1))
        ...     mu = z / jnp.linalg.norm(z)
        ...     kappa = numpyro.sample("kappa", dist.LogNormal(2.0, 1.0))
        ...     numpyro.sample("x", NumpyroVonMisesFisher(mu, kappa), obs=x)

    References:
        Mardia & Jupp, "Directional Statistics" (2000), 9.3. Wood (1994),
        and Figurnov et al. (2018) for the sampler and its derivative (see
        ``numerics.VonMisesFisher``).
    """

    arg_constraints = {
        "mean_direction": constraints.sphere,
        "concentration": constraints.nonnegative,
    }
    support = constraints.sphere
    reparametrized_params = ["mean_direction", "concentration"]

    def __init__(
        self,
        mean_direction: ArrayLike,
        concentration: ArrayLike,
        *,
        validate_args: bool | None = None,
    ):
        vmf = VonMisesFisher(mean_direction, concentration)
        self.mean_direction = vmf.mean_direction
        self.concentration = vmf.concentration
        super().__init__(
            batch_shape=vmf.batch_shape,
            event_shape=vmf.event_shape,
            validate_args=validate_args,
        )

    @classmethod
    def infer_shapes(cls, mean_direction=(), concentration=()):
        """(batch_shape, event_shape) from the parameters' shapes."""
        batch = jnp.broadcast_shapes(tuple(mean_direction)[:-1], tuple(concentration))
        return batch, tuple(mean_direction)[-1:]

    def _vmf(self) -> VonMisesFisher:
        return VonMisesFisher(self.mean_direction, self.concentration)

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        """``sample_shape + batch_shape + (d,)`` unit vectors."""
        return self._vmf().sample(key, tuple(sample_shape))

    def log_prob(self, value: ArrayLike) -> Array:
        """log p(value), broadcasting the leading axes of ``value`` against
        ``batch_shape``."""
        if self._validate_args:
            self._validate_sample(value)
        return self._vmf().log_prob(value)

    @property
    def mean(self) -> Array:
        r"""$A_d(\kappa)\mu$."""
        return self._vmf().mean()

    @property
    def mode(self) -> Array:
        r"""$\mu$."""
        return self._vmf().mode()

    def entropy(self) -> Array:
        return self._vmf().entropy()

    def kl_to_uniform(self) -> Array:
        """KL divergence to the uniform distribution on the sphere."""
        return self._vmf().kl_to_uniform()
