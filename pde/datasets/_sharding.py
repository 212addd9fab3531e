"""Splitting a batch of sample indices over devices, and checking the
arguments that every generator shares."""

import jax
import jax.numpy as jnp
import numpy as np


def float_dtype(caller: str, dtype) -> jnp.dtype:
    """``dtype`` (JAX's default float when None), which must be float32 or
    float64: the generators' solvers and integrators are written for these."""
    dtype = jnp.dtype(dtype or jnp.zeros(0).dtype)
    if dtype not in (jnp.dtype("float32"), jnp.dtype("float64")):
        raise TypeError(f"{caller}: dtype must be float32 or float64, got {dtype}.")
    return dtype


def batch_devices(caller: str, num_samples, batch_size, devices) -> tuple:
    """The devices to split samples over (default: all local devices), after
    checking the counts every generator takes."""
    for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | np.integer)
            or value < 1
        ):
            raise ValueError(f"{caller}: {name} must be an int >= 1, got {value!r}.")
    return tuple(jax.local_devices() if devices is None else devices)


def sample_indices(num_samples, first_index, devices, batch_size):
    """Indices first_index, ..., first_index + num_samples - 1, padded with
    repeats of the last to a multiple of len(devices) * batch_size (the
    padding is computed and dropped, so every device runs whole batches)."""
    per_device = -(-num_samples // (len(devices) * batch_size)) * batch_size
    return first_index + jnp.minimum(
        jnp.arange(per_device * len(devices), dtype=jnp.uint32), num_samples - 1
    )


def over_devices(run, devices):
    """``run(key, indices)`` with the indices split over ``devices`` by
    ``jax.shard_map`` (the key replicated); ``run`` itself on one device."""
    if len(devices) == 1:
        return run
    mesh = jax.sharding.Mesh(list(devices), ("samples",))
    split = jax.sharding.PartitionSpec("samples")
    return jax.shard_map(
        run,
        mesh=mesh,
        in_specs=(jax.sharding.PartitionSpec(), split),
        out_specs=split,
        check_vma=False,
    )
