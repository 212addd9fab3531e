"""Splitting a batch of sample indices over devices, shared by the
generators."""

import jax
import jax.numpy as jnp


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
