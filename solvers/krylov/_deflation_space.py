r"""The invariant subspace of a small pencil belonging to its eigenvalues of
smallest modulus, with operations that every XLA backend lowers (QR, SVD,
the symmetric eigensolver, matmuls, a while loop): no ``eig``, no host
callback, so GCRO-DR's deflation step runs on TPUs and can be exported with
``jax.export``.

Method: inverse-free spectral divide and conquer (Bai, Demmel & Gu 1997;
Malyshev 1993) with an adaptive radius. For the pencil $L p = \theta R p$
let $S = L^{-1} R$, whose dominant eigenvalues $1/\theta$ are the wanted
ones. The iteration never forms $S$: it keeps the *graph* of $T = c\,S^N$,
the m-dimensional subspace $\{(x, T x)\}$ of $\mathbb{R}^{2m}$, as an
orthonormal $2m \times m$ basis $[G_1; G_2]$ (a direction that $T$ sends to
infinity is $(0; v)$, one that it kills is $(v; 0)$; nothing overflows).
Each step

1. rescales $T$ so that its k-th and (k+1)-th singular values multiply to
   one (they are $\tan$ of the principal angles of the graph: $s_i / c_i$,
   from the singular values of $G_2$ and $G_1$), which puts the resolvable
   window of the representation, $[\epsilon, 1/\epsilon]$, around the
   split between the k wanted eigenvalues and the rest;
2. squares $T$: the graph of $T^2$ is $\{(G_1 a; G_2 b) : G_2 a = G_1 b\}$,
   a null space found by one complete QR, then one thin QR.

After p steps $T \propto S^{2^p}$, and $\sigma_i(S^N)^{1/N} \to |\mu_i|$
(Yamamoto), so the top-k left singular vectors of $G_2$ (those of $T$)
converge to the dominant invariant subspace of $S$ with the ratio
$(|\theta_k| / |\theta_{k+1}|)^{2^p}$: quadratically, where subspace
iteration on $S$ converges linearly with that ratio. Directions far from
the split saturate to $(0; v)$ or $(v; 0)$ and keep their side, so a wide
spread among the k wanted eigenvalues costs nothing (plain squaring of $S$
would lose the smallest of them below $\epsilon \|S^N\|$).

It stops when the split is resolved, ``tan_{k+1} / tan_k < sqrt(eps)``, then
takes one more step (so the ratio is below eps). Where
$|\theta_k| = |\theta_{k+1}|$, a complex pair straddling position k, no
k-dimensional invariant subspace exists and the split never resolves; the
iteration stops once the pair is resolved from both neighbours (after at least
$2^6$ powers, and only while the split is not doubling per step, as a real
near-tie's does) and the 2 x 2 pencil on the pair's plane decides: complex
eigenvalues give the k - 1 below the pair and one direction of the pair's
plane (the eig-based selection takes the real or imaginary part of one of the
pair, another such direction); real ones (a near-tie that squaring has not
split yet, ratio above about 0.9) give their eigenvector of smaller |theta|,
so the answer is the invariant subspace again. Three or more near-equal
moduli at the split run to ``max_steps``.

Cost: per step one complete and one thin QR of a 2m x m matrix, the
eigenvalues of two m x m Gram matrices and three m x m products, about
10 m^3 flops; from step 6 on, while the split is unresolved (the steps where
the pair test is asked), two m x m SVDs (values only) besides. 6 to 9 steps
on GCRO-DR's pencils (up to 15 where a straddling pair has a neighbour within
0.2% in modulus): 4 to 8 times LAPACK's geev on a CPU for m = 20 to 80.
Details that bought accuracy and were kept: the pair test's cosines from
their own SVD (``sqrt(1 - s^2)`` lost a factor 30 to LAPACK in float32 on a
spectrum spread over 1e10; the Gram matrices' eigenvalues, used for the
other steps and on every stored pencil in the same number of steps, resolve
the sines only to sqrt(eps), which in float32 left a pair with a neighbour
within 7% unresolved for 16 steps), and the null space from QR rather than
LU (LU with partial pivoting was 20-27% faster per step on the CPU and as
accurate on the test pencils, but is not backward stable without a bound on
its growth).
"""

import jax.numpy as jnp
from jax import lax

_PRECISION = lax.Precision.HIGHEST
# a pair at the split is accepted only after 2^_PAIR_STEPS powers (see status)
_PAIR_STEPS = 6


def _matmul(a, b):
    return jnp.matmul(a, b, precision=_PRECISION)


def _null_space(relation):
    """Orthonormal basis (2m x m) of the null space of an m x 2m matrix of
    full row rank: the trailing columns of the complete QR of its transpose."""
    m = relation.shape[0]
    q, _ = jnp.linalg.qr(relation.T, mode="complete")
    return q[:, m:]


def _log_tangents(graph, floor):
    """log tan of the principal angles between the graph of T and the x-axis,
    largest first: the log singular values of T. From the CS decomposition of
    [G1; G2], the i-th largest singular value of G2 pairs with the i-th
    smallest of G1; taking each from its own SVD keeps both accurate near 0
    and 1, where sqrt(1 - s^2) would cancel. Clamped to [floor, 1] so that
    exact zeros (an eigenvalue 0 or infinity) stay finite."""
    m = graph.shape[0] // 2
    # one batched call: 20-30% cheaper than two on the CPU
    values = jnp.linalg.svd(jnp.stack([graph[m:], graph[:m]]), compute_uv=False)
    sines, cosines = values[0], values[1, ::-1]
    return jnp.log(jnp.maximum(sines, floor)) - jnp.log(jnp.maximum(cosines, floor))


def _log_tangents_from_gram(graph, floor):
    """``_log_tangents`` from the eigenvalues of the Gram matrices G2^T G2 and
    G1^T G1 (the squares of the sines and cosines), each to an absolute eps:
    the sines and cosines themselves to sqrt(eps) only, which resolves the
    split test (a tan ratio of 1/sqrt(eps) about 1: squares near sqrt(eps))
    but not the pair test (neighbours a factor 1/sqrt(eps) from a pair near 1:
    squares near eps). Why not always the SVD: on an H100 the batched m = 40
    SVD took 2.7 ms, ``eigvalsh`` 0.6 ms (NOTES, "GCRO-DR's eigen-step on the
    GPU")."""
    m = graph.shape[0] // 2
    blocks = jnp.stack([graph[m:], graph[:m]])
    squares = jnp.linalg.eigvalsh(_matmul(jnp.swapaxes(blocks, 1, 2), blocks))
    sines2, cosines2 = squares[0, ::-1], squares[1]
    floor2 = floor * floor
    return 0.5 * (
        jnp.log(jnp.maximum(sines2, floor2)) - jnp.log(jnp.maximum(cosines2, floor2))
    )


def _separation(log_tan, k):
    """The two log gaps that say whether the top-k singular subspace of T is
    settled: ``split`` between the k-th and (k+1)-th singular values, and
    ``pair``, the smaller of the gaps around a pair at (k, k+1)."""
    big = jnp.asarray(jnp.inf, log_tan.dtype)
    padded = jnp.concatenate([big[None], log_tan, -big[None]])  # 1-based, sentinels
    split = padded[k] - padded[k + 1]
    # pair at (k, k+1): neighbours k - 1 and k + 2 (a sentinel past either end)
    above = padded[k - 1] - padded[k]
    below = padded[k + 1] - padded[k + 2]
    pair = jnp.minimum(above, below)
    return split, pair


def smallest_eigenspace_with_stats(left, right, k, *, max_steps=16):
    """``smallest_eigenspace`` and a dict of stats: ``num_steps`` (squarings
    done) and ``separated`` (whether the stopping test was met, False when
    ``max_steps`` ran out or the input was not finite)."""
    left = jnp.asarray(left)
    right = jnp.asarray(right)
    if left.ndim != 2 or left.shape[0] != left.shape[1] or right.shape != left.shape:
        raise ValueError(
            "smallest_eigenspace: left and right must be square matrices of one "
            f"shape (m, m); got {left.shape} and {right.shape}. Batch with jax.vmap."
        )
    if left.dtype != right.dtype:
        raise TypeError(
            f"smallest_eigenspace: left ({left.dtype}) and right ({right.dtype}) "
            "must have one dtype; cast one of them."
        )
    dtype = left.dtype
    if jnp.issubdtype(dtype, jnp.integer):
        dtype = jnp.result_type(float)  # the default float
    elif not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"smallest_eigenspace: left and right must be real floating arrays, "
            f"got {dtype}."
        )
    m = left.shape[0]
    if not (isinstance(k, int) and 1 <= k <= m):
        raise ValueError(f"smallest_eigenspace: k must be an int in [1, {m}], got {k}.")
    if not (isinstance(max_steps, int) and max_steps >= 0):
        raise ValueError(
            f"smallest_eigenspace: max_steps must be a non-negative int, got {max_steps}."
        )
    # f16/bf16: QR and SVD in float32
    work = dtype if jnp.finfo(dtype).bits >= 32 else jnp.dtype(jnp.float32)
    left = left.astype(work)
    right = right.astype(work)
    if k == m:
        basis = jnp.eye(m, dtype=work)
        stats = dict(num_steps=jnp.asarray(0), separated=jnp.asarray(True))
        return basis.astype(dtype), stats

    eps = jnp.finfo(work).eps
    floor = eps * eps
    threshold = -0.5 * jnp.log(eps)

    # The relation L y = R x is y = S x. Scaling R by a scalar scales S and
    # leaves its eigenvectors as they are; it balances the two halves of each
    # relation row, which the QR below resolves only to eps times the row's
    # norm. The smallest row ratio: rows of unused (padded) columns, whose
    # left entry the caller made huge, then do not set the scale.
    # (max-norms of the rows: no squares to overflow in float32)
    left_rows = jnp.max(jnp.abs(left), axis=1)
    right_rows = jnp.max(jnp.abs(right), axis=1)
    ratios = jnp.where(
        (left_rows > 0) & (right_rows > 0),
        left_rows / jnp.where(right_rows > 0, right_rows, 1.0),
        jnp.inf,
    )
    alpha = jnp.min(ratios)
    alpha = jnp.where(jnp.isfinite(alpha) & (alpha > 0), alpha, 1.0)
    graph = _null_space(jnp.concatenate([alpha * right, -left], axis=1))

    def status(graph, previous_split, step):
        log_tan = _log_tangents_from_gram(graph, floor)
        split, _ = _separation(log_tan, k)
        # Only the pair test needs the SVD's accuracy, and it is asked from
        # step _PAIR_STEPS on, while the split is unresolved: typically 2-3
        # of the 6-9 steps. (Under vmap, lax.cond runs both branches.)
        log_tan = lax.cond(
            (step >= _PAIR_STEPS) & ~(split > threshold),
            lambda graph: _log_tangents(graph, floor),
            lambda graph: log_tan,
            graph,
        )
        split, pair = _separation(log_tan, k)
        # A real near-tie at (k, k+1) passes the pair test too; while its
        # split still doubles per step, squaring resolves it: go on. A
        # complex pair's split only oscillates (within 2 log cond). The
        # doubling shows once N log(1/ratio) exceeds a few units: not before
        # N = 2^_PAIR_STEPS (64: ratios up to about 0.9).
        growing = split > 1.5 * previous_split + 1.0
        pair_done = (pair > threshold) & ~growing & (step >= _PAIR_STEPS)
        settled = (split > threshold) | pair_done
        finite = jnp.all(jnp.isfinite(log_tan))
        return log_tan, split, settled, finite

    def square(graph, log_tan):
        g1, g2 = graph[:m], graph[m:]
        # centre the split at 1; the factor is within [floor, 1/floor]
        g2 = g2 * jnp.exp(-0.5 * (log_tan[k - 1] + log_tan[k]))
        ab = _null_space(jnp.concatenate([g2, -g1], axis=1))
        stacked = jnp.concatenate([_matmul(g1, ab[:m]), _matmul(g2, ab[m:])])
        q, _ = jnp.linalg.qr(stacked)
        return q

    # phase 0: iterating; 1: settled, one more squaring; 2: done
    def cond(carry):
        step, _, _, _, phase, finite = carry
        return (phase < 2) & (step < max_steps) & finite

    def body(carry):
        step, graph, log_tan, split, phase, _ = carry
        graph = square(graph, log_tan)
        log_tan, split, settled, finite = status(graph, split, step + 1)
        phase = jnp.where(phase == 1, 2, jnp.where(settled, 1, 0))
        return step + 1, graph, log_tan, split, phase, finite

    log_tan, split, settled, finite = status(graph, jnp.asarray(jnp.inf, work), 0)
    phase = jnp.where(settled, 1, 0)
    init = (jnp.asarray(0), graph, log_tan, split, phase, finite)
    steps, graph, log_tan, split, phase, finite = lax.while_loop(cond, body, init)
    # top left singular vectors of G2 = those of T (CS decomposition), as
    # eigenvectors of G2 G2^T: the wanted squares are near 1, or for a pair
    # near 1/2 with its neighbours' near 1 and 0, gaps that eigh resolves to
    # eps in the vectors though not in the small values (the SVD with
    # vectors costs several times eigh on GPUs)
    _, vectors = jnp.linalg.eigh(_matmul(graph[m:], graph[m:].T))
    u = vectors[:, ::-1]
    _, pair = _separation(log_tan, k)
    # Stopped on the pair test alone: u[:, :k-1] and u[:, :k+1] are invariant,
    # the k-th direction is not resolved yet. Real eigenvalues there (a near
    # tie) are split exactly by the 2 x 2 pencil between the two; a complex
    # pair keeps the plane's direction that u gives.
    basis = lax.cond(
        (split <= threshold) & (pair > threshold) & finite,
        lambda u: _resolve_pair(left, alpha * right, u, k),
        lambda u: u[:, :k],
        u,
    )
    # eigh leaves some of its output finite on non-finite input
    basis = jnp.where(finite, basis, jnp.nan)
    stats = dict(num_steps=steps, separated=(phase > 0) & finite)
    return basis.astype(dtype), stats


def _resolve_pair(left, right, u, k):
    """The k smallest of L p = theta R p when u[:, :k-1] and u[:, :k+1] span
    invariant subspaces: project the pencil onto Q = u[:, :k+1] (Z from the
    QR of L Q makes it block upper triangular), solve the trailing 2 x 2
    pencil in closed form, and append its eigenvector of smaller |theta|
    (a complex pair: u[:, :k] unchanged)."""
    q = u[:, : k + 1]
    z, t = jnp.linalg.qr(_matmul(left, q))
    r = _matmul(z.T, _matmul(right, q))
    t, r = t[k - 1 :, k - 1 :], r[k - 1 :, k - 1 :]
    # one scale each: theta scales uniformly, the eigenvectors do not change
    t = t / jnp.maximum(jnp.max(jnp.abs(t)), jnp.finfo(t.dtype).tiny)
    r = r / jnp.maximum(jnp.max(jnp.abs(r)), jnp.finfo(r.dtype).tiny)
    # det(T - theta R) = a theta^2 + b theta + c
    a = r[0, 0] * r[1, 1] - r[0, 1] * r[1, 0]
    b = -(t[0, 0] * r[1, 1] + t[1, 1] * r[0, 0] - t[0, 1] * r[1, 0] - t[1, 0] * r[0, 1])
    c = t[0, 0] * t[1, 1] - t[0, 1] * t[1, 0]
    discriminant = b * b - 4 * a * c
    # the root of smaller modulus without cancellation: c / q, q = -(b +
    # sign(b) sqrt(D)) / 2 (the other root is q / a)
    sign = jnp.where(b >= 0, 1.0, -1.0)
    half = -0.5 * (b + sign * jnp.sqrt(jnp.maximum(discriminant, 0.0)))
    safe = jnp.where(half == 0, 1.0, half)
    theta = jnp.where(half == 0, 0.0, c / safe)
    # null vector of the singular 2 x 2 T - theta R from its larger row
    rows = t - theta * r
    row = jnp.where(jnp.sum(rows[0] ** 2) >= jnp.sum(rows[1] ** 2), rows[0], rows[1])
    y = jnp.stack([-row[1], row[0]])
    norm = jnp.sqrt(jnp.sum(y * y))
    usable = (discriminant >= 0) & (norm > 0)
    y = jnp.where(
        usable, y / jnp.where(norm > 0, norm, 1.0), jnp.array([1.0, 0.0], y.dtype)
    )
    last = _matmul(u[:, k - 1 : k + 1], y)
    return jnp.concatenate([u[:, : k - 1], last[:, None]], axis=1)


def smallest_eigenspace(left, right, k, *, max_steps=16):
    r"""Real orthonormal basis of the invariant subspace of the pencil
    $L p = \theta R p$ (the matrix $R^{-1} L$) belonging to its k eigenvalues
    of smallest modulus.

    Only QR, SVD, matmuls and a ``lax.while_loop``: it lowers on every XLA
    backend (CPU, GPU, TPU) and under ``jax.export``; works for float32 and
    float64, under ``jit`` and ``vmap``. Neither L nor R is inverted, so
    either may be ill-conditioned (only the pencil must be regular). Only the
    span is meaningful; the columns are not eigenvectors. Complex-conjugate
    pairs contribute a real 2-D subspace. When $|\theta_k| = |\theta_{k+1}|$
    (a conjugate pair straddling position k) no such subspace exists and the
    basis holds the k - 1 smallest and one direction of the pair's plane.

    Method: inverse-free spectral divide and conquer on the graph of
    $(L^{-1} R)^{2^p}$, rescaled every step to the split between the k-th and
    (k+1)-th eigenvalue; the error falls like
    $(|\theta_k| / |\theta_{k+1}|)^{2^p}$: 6 steps for a ratio 0.5, 8 for
    0.8, 9 for 0.9 (float64; float32 one fewer); closer ratios end after 7 to
    11 steps through a 2 x 2 pencil between the two. See the module
    docstring.

    Args:
        left: (m, m) real matrix L (GCRO-DR: $G^T G$; equivalently, with
            $G = QR$ thin, $R$).
        right: (m, m) real matrix R (GCRO-DR: $G^T V^T W$; equivalently
            $Q^T V^T W$).
        k: number of eigenvalues, 1 <= k <= m (static).
        max_steps: cap on the squarings (static). Reached only where moduli
            around the split are too close for any step count: three or more
            near-equal at the split, a pair at the split with a neighbour
            within about 0.05%, fewer than k + 1 eigenvalues of ordinary
            size (a cycle that used fewer than k + 1 columns).

    Returns:
        (m, k) array with orthonormal columns, in the dtype of the inputs.
        Unused directions made to have huge $|\theta|$ (GCRO-DR's padding of
        unused columns) are never chosen while k eigenvalues are finite-sized;
        non-finite input gives NaN.

    References:
        Bai, Demmel & Gu, "An inverse free parallel spectral divide and
        conquer algorithm for nonsymmetric eigenproblems", Numer. Math. 76
        (1997). Malyshev, "Parallel algorithm for solving some spectral
        problems of linear algebra", Linear Algebra Appl. 188 (1993).
    """
    return smallest_eigenspace_with_stats(left, right, k, max_steps=max_steps)[0]
