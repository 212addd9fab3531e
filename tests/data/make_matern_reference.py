"""Writes tests/data/matern_reference.csv: log M_nu(x), the log of the
normalised Matérn correlation M_nu(x) = 2^(1-nu) / Gamma(nu) x^nu K_nu(x), and
its derivatives in nu and x, computed in mpmath independently of the library.

    python tests/data/make_matern_reference.py   (about 2 minutes on 2 cores)

- log M from mpmath's besselk at 60 digits for nu < 20 and from the
  integral of exp(-x cosh t) cosh(nu t) beyond (besselk is wrong at large
  nu and x); at nu ~ 1e3 and tiny x from the small-x series
  M = 0F1(; 1 - nu; a) - Gamma(1 - nu) / Gamma(1 + nu) a^nu 0F1(; 1 + nu; a),
  a = x^2 / 4 (non-integer nu only), with the three cross-checked where
  they all answer;
- d/dx log M = -K_{nu-1}(x) / K_nu(x) (exact identity), or the derivative of
  the series above where the series is used;
- d/dnu log M by mpmath's numerical differentiation of log M at 60 digits.

Points: the orders and arguments of the grid below (x from subnormal to 700),
and 60 random points in the band 3/2 <= nu < 20, 0.1 <= x <= 30, where the
library's largest errors are. x = 0 (log M = 0) is tested on its own. The
value is stored as hi + lo (two doubles summing to it), so the tests measure
errors below half an ulp.
"""

import csv
import multiprocessing
from pathlib import Path

import mpmath as mp
import numpy as np

DPS = 60
OUT = Path(__file__).with_name("matern_reference.csv")

ORDERS = [0.01, 0.1, 0.5, 0.9, 1.0, 1.001, 1.5, 2.0, 2.5, 3.7]
ORDERS += [7.3, 12.5, 19.99, 20.5, 50.0, 200.0, 1000.25]
ARGUMENTS = [5e-324, 1e-310, 1e-300, 1e-30, 1e-8, 1e-3, 0.3, 1.0, 3.0, 10.0]
ARGUMENTS += [30.0, 100.0, 700.0]


def _series(nu, x):
    """(M, dM/dx) from the small-x series (non-integer nu)."""
    a = x * x / 4
    c = mp.gamma(1 - nu) / mp.gamma(1 + nu)
    m = mp.hyp0f1(1 - nu, a) - c * a**nu * mp.hyp0f1(1 + nu, a)
    dm_da = mp.hyp0f1(2 - nu, a) / (1 - nu) - c * (
        nu * a ** (nu - 1) * mp.hyp0f1(1 + nu, a)
        + a**nu * mp.hyp0f1(2 + nu, a) / (1 + nu)
    )
    return m, x / 2 * dm_da


def _use_series(nu, x):
    return nu > 500 and x < 1e-3


def _log_besselk_integral(nu, x):
    """log K_nu(x) from K_nu(x) = int_0^inf exp(-x cosh t) cosh(nu t) dt
    (DLMF 10.32.9), scaled by the peak of exp(-x cosh t + nu t) at
    sinh t0 = nu / x and split around it for tanh-sinh quadrature: mpmath's
    besselk returns wrong values at large nu and x (at (1000.25, 700) a
    negative number, the same at 60, 120 and 240 digits)."""
    t0 = mp.asinh(nu / x)
    peak = -x * mp.cosh(t0) + nu * t0
    width = 1 / mp.sqrt(x * mp.cosh(t0))

    def integrand(t):
        return mp.exp(-x * mp.cosh(t) + nu * t - peak) * (1 + mp.exp(-2 * nu * t)) / 2

    # The exponent is concave: beyond 40 widths above the peak the integrand
    # is below 10^-(DPS + 10) (checked), and tanh-sinh out to infinity
    # stalls on cosh of huge nodes.
    end = t0 + 40 * width
    if integrand(end) > mp.mpf(10) ** -(DPS + 10):
        raise SystemExit(f"the integrand of K has not decayed at nu = {nu}, x = {x}")
    nodes = sorted({mp.mpf(0), max(mp.mpf(0), t0 - 30 * width), t0, end})
    return peak + mp.log(mp.quad(integrand, nodes))


def _log_besselk(nu, x):
    if nu >= 20:
        return _log_besselk_integral(nu, x)
    return mp.log(mp.besselk(nu, x))


def log_m(nu, x):
    # at least DPS digits, more where mp.diff raises the precision
    with mp.workdps(max(DPS, mp.mp.dps)):
        nu, x = mp.mpf(nu), mp.mpf(x)
        if _use_series(nu, x):
            return mp.log(_series(nu, x)[0])
        return (
            (1 - nu) * mp.log(2)
            - mp.loggamma(nu)
            + nu * mp.log(x)
            + _log_besselk(nu, x)
        )


def x_slope(nu, x):
    with mp.workdps(max(DPS, mp.mp.dps)):
        nu, x = mp.mpf(nu), mp.mpf(x)
        if _use_series(nu, x):
            m, dm_dx = _series(nu, x)
            return dm_dx / m
        return -mp.exp(_log_besselk(nu - 1, x) - _log_besselk(nu, x))


def order_slope(nu, x):
    with mp.workdps(DPS):
        return mp.diff(lambda order: log_m(order, x), mp.mpf(nu))


def _split(value):
    hi = float(value)
    with mp.workdps(DPS):
        lo = float(value - mp.mpf(hi))
    return hi, lo


def _points():
    pairs = [(nu, x) for nu in ORDERS for x in ARGUMENTS]
    rng = np.random.default_rng(2024)
    band = zip(
        rng.uniform(1.5, 20.0, 60),
        10.0 ** rng.uniform(-1.0, np.log10(30.0), 60),
        strict=True,
    )
    return pairs + [(float(nu), float(x)) for nu, x in band]


def _cross_check():
    """The series and the integral against besselk where all answer."""
    for nu, x in [(50.25, 1e-4), (200.5, 1e-8), (1000.25, 1e-3)]:
        with mp.workdps(DPS):
            nu_, x_ = mp.mpf(nu), mp.mpf(x)
            series = mp.log(_series(nu_, x_)[0])
            direct = mp.log(
                2 ** (1 - nu_) / mp.gamma(nu_) * x_**nu_ * mp.besselk(nu_, x_)
            )
            if abs(series - direct) > mp.mpf(10) ** -40 * max(1, abs(direct)):
                raise SystemExit(f"series and besselk disagree at {nu}, {x}")
    for nu, x in [(20.5, 1e-30), (25.5, 1.0), (50.0, 30.0), (200.0, 100.0)]:
        with mp.workdps(DPS):
            nu_, x_ = mp.mpf(nu), mp.mpf(x)
            integral = _log_besselk_integral(nu_, x_)
            direct = mp.log(mp.besselk(nu_, x_))
            if abs(integral - direct) > mp.mpf(10) ** -40 * max(1, abs(direct)):
                raise SystemExit(f"integral and besselk disagree at {nu}, {x}")


def _row(point):
    nu, x = point
    hi, lo = _split(log_m(nu, x))
    return [repr(nu), repr(x), repr(hi), repr(lo)] + [
        repr(float(order_slope(nu, x))),
        repr(float(x_slope(nu, x))),
    ]


def main():
    _cross_check()
    with multiprocessing.Pool() as pool:
        rows = pool.map(_row, _points(), chunksize=4)
    with OUT.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["nu", "x", "log_m_hi", "log_m_lo", "dlog_m_dnu", "dlog_m_dx"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
