"""Writes tests/data/bessel_reference.csv: log I_v(x), log K_v(x) and their
derivatives at 50 significant digits, computed in mpmath independently of the
library.

    python tests/data/make_bessel_reference.py   (about 10 minutes on 2 cores)

mpmath's own besseli/besselk are slow or fail (NoConvergence) at large v*x, so:
- log I: the power series sum (x/2)^{2k+v} / (k! Gamma(k+v+1)) (all terms
  positive) when it needs fewer than 4000 terms; otherwise the uniform (Debye)
  expansion with 40 terms (v >= 40) or Hankel's expansion (v < 40, x > 5e4),
  both far below float64 resolution there (v >= 40: the first dropped
  Debye term is below 1e-25; v < 40, x > 2000: Hankel's terms fall below 1e-50).
- log K: the integral of exp(-x cosh t) cosh(vt) over [0, inf), scaled by its
  peak at t = asinh(v/x) and split around it for tanh-sinh quadrature.
- d/dx from the exact identities d/dx log I_v = v/x + I_{v+1}/I_v and
  d/dx log K_v = v/x - K_{v+1}/K_v; d/dv log K from the integral of
  t sinh(vt) exp(-x cosh t); d/dv log I by mpmath's numerical differentiation of
  the reference above at 50 digits.
Where mpmath.besseli / besselk answer within a few seconds they are used as a
cross-check, and the script stops if the two disagree beyond 1e-25 relative.

Each row stores a value as hi + lo (two doubles summing to it), so the tests
measure errors below half an ulp.
"""

import csv
import multiprocessing as mproc
import sys
from fractions import Fraction
from pathlib import Path

import mpmath as mp
import numpy as np

DPS = 50
OUT = Path(__file__).with_name("bessel_reference.csv")


def _debye_u(num):
    polys = [{0: Fraction(1)}]
    for _ in range(num):
        u = polys[-1]
        nxt = {}
        for power, c in u.items():
            for pw, cc in ((power + 1, c * power / 2), (power + 3, -c * power / 2)):
                nxt[pw] = nxt.get(pw, 0) + cc
            nxt[power + 1] = nxt.get(power + 1, 0) + c / (8 * (power + 1))
            nxt[power + 3] = nxt.get(power + 3, 0) - 5 * c / (8 * (power + 3))
        polys.append({k: c for k, c in nxt.items() if c != 0})
    return polys


DEBYE = _debye_u(40)


def log_i_series(v, x):
    q = x * x / 4
    term = mp.mpf(1)
    total = mp.mpf(1)
    k = 0
    while True:
        k += 1
        term *= q / (k * (v + k))
        total += term
        if term < total * mp.mpf(10) ** (-DPS) and k > q / (v + k):
            break
    return v * mp.log(x / 2) - mp.loggamma(v + 1) + mp.log(total)


def series_terms(v, x):
    return float((mp.sqrt(v * v + x * x) - v) / 2) + 60


def log_i_debye(v, x):
    z = x / v
    s = mp.sqrt(1 + z * z)
    p = 1 / s
    eta = s + mp.log(z / (1 + s))
    total = mp.fsum(
        mp.fsum(mp.mpf(c.numerator) / c.denominator * p**e for e, c in u.items()) / v**k
        for k, u in enumerate(DEBYE)
    )
    return v * eta - mp.log(2 * mp.pi * v) / 2 - mp.log(s) / 2 + mp.log(total)


def log_i_hankel(v, x):
    mu = 4 * v * v
    term = mp.mpf(1)
    total = mp.mpf(1)
    for k in range(1, 200):
        term *= -(mu - (2 * k - 1) ** 2) / (k * 8 * x)
        total += term
        if abs(term) < mp.mpf(10) ** (-DPS):
            break
    return x - mp.log(2 * mp.pi * x) / 2 + mp.log(total)


def log_i(v, x):
    if series_terms(v, x) < 4000:
        return log_i_series(v, x)
    if v >= 40:
        return log_i_debye(v, x)
    return log_i_hankel(v, x)


def _k_integral(v, x, weight):
    t_peak = mp.asinh(v / x) if v > 0 else mp.mpf(0)

    def log_integrand(t):
        return -x * mp.cosh(t) + v * t + mp.log1p(mp.exp(-2 * v * t)) - mp.log(2)

    peak = log_integrand(t_peak)

    def level(lo, hi, drop):
        # The log-integrand is monotone on each side of its peak: bisect for the
        # point where it has fallen by `drop`.
        for _ in range(80):
            mid = (lo + hi) / 2
            inside = log_integrand(mid) - peak > -drop
            if (mid > t_peak) == bool(inside):
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    far = t_peak + 1
    while log_integrand(far) - peak > -(2.3 * DPS + 30):
        far = t_peak + 2 * (far - t_peak)
    drops = (0.5, 3, 12, 40, 2.3 * DPS + 30)
    right = [level(t_peak, far, d) for d in drops]
    left = []
    if t_peak > 0 and log_integrand(mp.mpf(0)) - peak < -0.5:
        left = [level(t_peak, mp.mpf(0), d) for d in drops[:-1]]
        left = [t for t in left if t > 0]
    points = sorted({mp.mpf(0), t_peak, *left, *right})
    value = mp.quad(lambda t: weight(t) * mp.exp(log_integrand(t) - peak), points)
    return peak, value


def log_k(v, x):
    peak, value = _k_integral(v, x, lambda t: 1)
    return peak + mp.log(value)


def dlog_k_dv(v, x):
    # d/dv of cosh(vt) is t sinh(vt) = t cosh(vt) tanh(vt).
    _, num = _k_integral(v, x, lambda t: t * mp.tanh(v * t))
    _, den = _k_integral(v, x, lambda t: 1)
    return num / den


def _cross_check(kind, v, x, ours):
    try:
        f = mp.besseli if kind == "i" else mp.besselk
        theirs = mp.log(f(v, x, maxterms=20000))
    except (mp.libmp.NoConvergence, ValueError, ZeroDivisionError):
        return
    if not mp.isfinite(theirs):
        return
    if abs(theirs - ours) > mp.mpf(10) ** -25 * max(1, abs(ours)):
        print(
            f"note: mpmath.besse{kind} differs at v={float(v)} x={float(x)} "
            f"by {float(abs(theirs - ours)):.3g}",
            file=sys.stderr,
            flush=True,
        )


def row(args):
    v_f, x_f, with_order_derivative = args
    mp.mp.dps = DPS
    v, x = mp.mpf(v_f), mp.mpf(x_f)
    li, li1 = log_i(v, x), log_i(v + 1, x)
    lk, lk1 = log_k(v, x), log_k(v + 1, x)
    if v_f <= 1e3 and 1e-6 <= x_f <= 1e3:
        _cross_check("i", v, x, li)
        _cross_check("k", v, x, lk)
    dix = v / x + mp.exp(li1 - li)
    dkx = v / x - mp.exp(lk1 - lk)
    if with_order_derivative:
        div = mp.diff(lambda t: log_i(t, x), v) if v > 0 else mp.nan
        dkv = dlog_k_dv(v, x)
    else:
        div = dkv = mp.nan
    out = [repr(v_f), repr(x_f)]
    for value in (li, lk, li1 - li, lk1 - lk, dix, dkx):
        hi = float(value)
        out += [repr(hi), repr(float(value - hi))]
    out += [repr(float(div)), repr(float(dkv))]
    return out


def points():
    rng = np.random.default_rng(20241123)
    orders = np.concatenate([[0.0, 0.5, 1.0, 2.5], np.logspace(-3, 5, 17)])
    args = np.concatenate([np.logspace(-10, 8, 19), [0.5, 2.0, 7.0, 20.0]])
    grid = [(float(v), float(x)) for v in orders for x in args]
    random = [
        (float(v), float(x))
        for v, x in zip(
            10 ** rng.uniform(-3, 5, 250), 10 ** rng.uniform(-10, 8, 250), strict=True
        )
    ]
    # Where log I or log K crosses zero at large order (x ~ 0.66 v): the hard
    # cancellation case of the Debye expansion.
    near_root = [
        (float(v), float(v * z))
        for v, z in zip(
            10 ** rng.uniform(1.3, 5, 60), rng.uniform(0.4, 0.95, 60), strict=True
        )
    ]
    small_orders = [
        (float(v), float(x))
        for v, x in zip(
            rng.uniform(0, 25, 120), 10 ** rng.uniform(-2, 2, 120), strict=True
        )
    ]
    everything = grid + random + near_root + small_orders
    # d/dv on a subset (it costs several evaluations per point).
    return [(v, x, i % 3 == 0) for i, (v, x) in enumerate(everything)]


COLUMNS = ["v", "x"]
for name in (
    "log_iv",
    "log_kv",
    "log_iv_ratio",
    "log_kv_ratio",
    "dlog_iv_dx",
    "dlog_kv_dx",
):
    COLUMNS += [name + "_hi", name + "_lo"]
COLUMNS += ["dlog_iv_dv", "dlog_kv_dv"]


def main():
    todo = points()
    with mproc.Pool(2) as pool:
        rows = []
        for i, r in enumerate(pool.imap(row, todo, chunksize=4)):
            rows.append(r)
            if i % 50 == 0:
                print(f"{i}/{len(todo)}", file=sys.stderr, flush=True)
    tmp = OUT.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    tmp.replace(OUT)
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
