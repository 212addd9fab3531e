"""Writes two reference tables for the log-Bessel functions, from mpmath
alone (no code of the library):

- second_derivative_reference.csv: d^2/dv^2, d^2/dvdx and d^2/dx^2 of
  log I_v(x), log K_v(x) and the log ratios log(I_{v+1}/I_v),
  log(K_{v+1}/K_v) on a grid across the kernels' regions (the power
  series v < 20, x <= 20; the recurrence and the uniform expansion; the tie
  v == x; tiny x), by mpmath's numerical differentiation of its own besseli
  and besselk at 40 digits.
- underflow_band_reference.csv: log I_v(x) and log K_v(x) where I_v(x)
  itself underflows in float64 (log I in [-754, -701], v in [8.3, 20), as
  the numerics issue's probe) or in float32 (log I in [-104, -88], 0.9 < v < 10),
  at 50 digits, with subnormal x in both dtypes. x is stored as the dtype
  rounds it, so the reference is at the input the function sees.

    python tests/data/make_second_derivative_reference.py   (about a minute)
"""

import csv
from pathlib import Path

import mpmath
import numpy as np

HERE = Path(__file__).parent
ORDERS = [0.0, 0.3, 1.5, 7.25, 19.5, 20.0, 35.0, 100.0, 250.0]
ARGUMENTS = [1e-6, 0.05, 2.0, 20.0, 35.0, 100.0, 400.0]


def _log_i(v, x):
    return mpmath.log(mpmath.besseli(v, x))


def _log_k(v, x):
    return mpmath.log(mpmath.besselk(v, x))


def _log_i_ratio(v, x):
    return mpmath.log(mpmath.besseli(v + 1, x) / mpmath.besseli(v, x))


def _log_k_ratio(v, x):
    return mpmath.log(mpmath.besselk(v + 1, x) / mpmath.besselk(v, x))


# log_ive and log_kve differ from log_iv and log_kv by -x and +x, which no
# second derivative sees: their rows are log_iv's and log_kv's.
FUNCTIONS = {
    "log_iv": _log_i,
    "log_kv": _log_k,
    "log_iv_ratio": _log_i_ratio,
    "log_kv_ratio": _log_k_ratio,
}


def second_derivatives():
    rows = []
    with mpmath.workdps(40):
        for name, log_f in FUNCTIONS.items():
            for v in ORDERS:
                for x in ARGUMENTS:
                    point = (mpmath.mpf(v), mpmath.mpf(x))
                    rows.append(
                        [name, repr(v), repr(x)]
                        + [
                            repr(float(mpmath.diff(log_f, point, orders)))
                            for orders in ((2, 0), (1, 1), (0, 2))
                        ]
                    )
    return ["function", "v", "x", "d2_dv2", "d2_dvdx", "d2_dx2"], rows


def underflow_band():
    rng = np.random.default_rng(2026)
    specs = [
        # dtype, orders, band of log I, count
        ("float64", (8.3, 20.0), (-754.0, -701.0), 40),
        ("float32", (0.9, 10.0), (-104.0, -88.0), 40),
    ]
    subnormal = {
        "float64": [(0.0, 1e-310), (2.5, 1e-310), (25.0, 4e-320), (0.5, 5e-324)],
        "float32": [(0.0, 2.7e-40), (3.0, 2.7e-40), (0.88195, 1.4e-45)],
    }
    rows = []
    with mpmath.workdps(50):
        for dtype, (v_low, v_high), (band_low, band_high), count in specs:
            points = list(subnormal[dtype])
            for _ in range(count):
                v = float(rng.uniform(v_low, v_high))
                target = float(rng.uniform(band_low, band_high))
                # leading term: log I ~ v log(x/2) - log Gamma(v + 1)
                log_x = (target + float(mpmath.loggamma(v + 1))) / max(v, 1e-3)
                points.append((v, 2.0 * float(np.exp(log_x))))
            for v, x in points:
                v_seen = float(np.asarray(v, dtype))
                x_seen = float(np.asarray(x, dtype))
                if x_seen == 0.0:
                    continue
                vv, xx = mpmath.mpf(v_seen), mpmath.mpf(x_seen)
                rows.append(
                    [
                        dtype,
                        repr(v_seen),
                        repr(x_seen),
                        repr(float(_log_i(vv, xx))),
                        repr(float(_log_k(vv, xx))),
                    ]
                )
    return ["dtype", "v", "x", "log_iv", "log_kv"], rows


def _write(name, header, rows):
    with (HERE / name).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def main():
    _write("second_derivative_reference.csv", *second_derivatives())
    _write("underflow_band_reference.csv", *underflow_band())


if __name__ == "__main__":
    main()
