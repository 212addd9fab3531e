"""Accuracy of the log-Bessel functions against tests/data/bessel_reference.csv.

    python benchmarks/bessel_accuracy.py [--second-derivatives]

Also: the underflow band (tests/data/underflow_band_reference.csv: I_v(x)
below the dtype's smallest normal, subnormal x included) and, with
--second-derivatives (minutes of compilation on a CPU), d2/dv2, d2/dvdx and
d2/dx2 of log I, log K, their scaled forms and the log ratios by jax.hessian
against
tests/data/second_derivative_reference.csv (relative to max(1, |ref|)).
Error metric: |ours - mpmath| / max(1, |mpmath|) in units of the dtype's eps
(float32: inputs rounded to float32, reference = our float64 at those inputs,
which the float64 rows hold to mpmath). Regions: "debye" v >= 20,
"small-order" v < 20; "near log f = 0" rows are those with |log f| < 5.
"""

import csv
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sciax import numerics
from tests.helpers import DATA, bessel_reference, mixed_error


def _rows(name):
    with (DATA / name).open() as fh:
        return list(csv.DictReader(fh))


def underflow_band():
    rows = _rows("underflow_band_reference.csv")
    for dtype in (np.float64, np.float32):
        chosen = [row for row in rows if row["dtype"] == np.dtype(dtype).name]
        v = jnp.asarray([float(row["v"]) for row in chosen], dtype)
        x = jnp.asarray([float(row["x"]) for row in chosen], dtype)
        for name, function in (
            ("log_iv", numerics.log_iv),
            ("log_kv", numerics.log_kv),
        ):
            ours = np.asarray(function(v, x), np.float64)
            reference = np.array([float(row[name]) for row in chosen])
            error = mixed_error(ours, reference) / np.finfo(dtype).eps
            error = np.where(np.isfinite(ours), error, np.inf)
            summarise(f"{name} {np.dtype(dtype).name} underflow band", error)


def second_derivatives():
    rows = _rows("second_derivative_reference.csv")
    # log_ive and log_kve differ from log_iv and log_kv by -x and +x, which
    # no second derivative sees: they are checked against the same rows
    table_rows = {"log_ive": "log_iv", "log_kve": "log_kv"}
    names = ("log_iv", "log_kv", "log_ive", "log_kve", "log_iv_ratio", "log_kv_ratio")
    for name in names:
        function = getattr(numerics, name)
        chosen = [row for row in rows if row["function"] == table_rows.get(name, name)]
        v = jnp.asarray([float(row["v"]) for row in chosen])
        x = jnp.asarray([float(row["x"]) for row in chosen])
        hessians = jax.jit(jax.vmap(jax.hessian(function, (0, 1))))(v, x)
        for key, entry in (("d2_dv2", (0, 0)), ("d2_dvdx", (0, 1)), ("d2_dx2", (1, 1))):
            ours = np.asarray(hessians[entry[0]][entry[1]])
            reference = np.array([float(row[key]) for row in chosen])
            error = np.abs(ours - reference) / np.maximum(1.0, np.abs(reference))
            print(
                f"{key + ' ' + name + ' (relative, not eps)':44} {error.size:5d} "
                f"{np.max(error):9.2e} {np.median(error):8.1e} "
                f"{np.sum(~np.isfinite(ours)):6d}"
            )


def summarise(label, error):
    finite = np.isfinite(error)
    if not finite.any():
        return
    e = error[finite]
    print(
        f"{label:44} {e.size:5d} {np.max(e):9.2f} {np.median(e):8.2f} "
        f"{np.sum(~finite):6d}"
    )


def main():
    table = bessel_reference()
    v, x = table["v"], table["x"]
    device = jax.devices()[0]
    print(f"# {' '.join(sys.argv)}  (device: {device.platform} {device.device_kind})")
    print(
        f"{'function / dtype / region':44} {'n':>5} {'max eps':>9} {'median':>8} {'nonfin':>6}"
    )
    functions = {
        "log_iv": numerics.log_iv,
        "log_kv": numerics.log_kv,
        "log_iv_ratio": numerics.log_iv_ratio,
        "log_kv_ratio": numerics.log_kv_ratio,
    }
    regions = {
        "all": np.ones_like(v, bool),
        "debye (v >= 20)": v >= 20,
        "small order (v < 20)": v < 20,
    }
    for name, function in functions.items():
        ours = np.asarray(function(jnp.asarray(v), jnp.asarray(x)))
        ref_hi, ref_lo = table[name + "_hi"], table[name + "_lo"]
        error = mixed_error(ours, ref_hi, ref_lo) / np.finfo(np.float64).eps
        error = np.where(np.isfinite(ours) == np.isfinite(ref_hi), error, np.inf)
        for region, mask in regions.items():
            summarise(f"{name} float64 {region}", error[mask])
        summarise(f"{name} float64 near log f = 0", error[np.abs(ref_hi) < 5])
        v32, x32 = v.astype(np.float32), x.astype(np.float32)
        keep = x32 > 0
        ours32 = np.asarray(function(jnp.asarray(v32[keep]), jnp.asarray(x32[keep])))
        ref32 = np.asarray(
            function(
                jnp.asarray(v32[keep], jnp.float64), jnp.asarray(x32[keep], jnp.float64)
            )
        )
        ok = np.isfinite(ref32) & (np.abs(ref32) < 3e38)
        error32 = mixed_error(ours32[ok], ref32[ok]) / np.finfo(np.float32).eps
        error32 = np.where(np.isfinite(ours32[ok]), error32, np.inf)
        summarise(f"{name} float32 all", error32)
    for name, function in (("log_iv", numerics.log_iv), ("log_kv", numerics.log_kv)):
        slope = np.asarray(
            jax.vmap(jax.grad(function, argnums=1))(jnp.asarray(v), jnp.asarray(x))
        )
        hi, lo = table[f"d{name}_dx_hi"], table[f"d{name}_dx_lo"]
        summarise(
            f"d/dx {name} float64 (eps)",
            mixed_error(slope, hi, lo) / np.finfo(np.float64).eps,
        )
        reference = table[f"d{name}_dv"]
        keep = np.isfinite(reference)
        slope_v = np.asarray(
            jax.vmap(jax.grad(function, argnums=0))(
                jnp.asarray(v[keep]), jnp.asarray(x[keep])
            )
        )
        err_v = mixed_error(slope_v, reference[keep])
        print(
            f"{'d/dv ' + name + ' float64 (relative, not eps)':44} {err_v.size:5d} "
            f"{np.max(err_v):9.2e} {np.median(err_v):8.1e} {np.sum(~np.isfinite(slope_v)):6d}"
        )
    underflow_band()
    if "--second-derivatives" in sys.argv:
        second_derivatives()


if __name__ == "__main__":
    main()
