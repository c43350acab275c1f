"""Newton–CG on the reduced Stiefel dual: the exact spectral LMO on non-square Stiefel (MATH §6.6).

Problem (tall orientation, T ∈ ℝ^{m×n} with orthonormal columns, m > n): the dual of
max ⟨G, Φ⟩ s.t. ‖Φ‖₂ ≤ 1, sym(TᵀΦ) = 0 is

    minimise over symmetric S:  f(S) = ‖G + T·S‖_*.

Reduction to n×n blocks. With A = TᵀG (n×n) and B = (I − TTᵀ)G, G + TS = T(A + S) + B and
TᵀB = 0, so (G + TS)ᵀ(G + TS) = (A + S)ᵀ(A + S) + BᵀB = ZᵀZ for the 2n×n matrix
Z(S) = [A + S; B̃] (B̃ = n×n R factor of B's QR, B̃ᵀB̃ = BᵀB). The two share Σ and V, so
f(S) = ‖Z(S)‖_* and every step costs an SVD of Z (or an eigendecomposition of the n×n ZᵀZ), not
of the m×n matrix: for m ≫ n the iteration is independent of m after one O(mn²) QR.

With Z = UΣVᵀ and P = U[:n] (top block), the gradient is ∇f = sym(P·Vᵀ) (the tangency residual of
msign(G + TS)), and the Hessian in V's basis (S = V·D·Vᵀ) is, with R = PᵀV, X = R·D and the polar
derivative Ω = (X − Xᵀ) ⊘ (σᵢ + σⱼ),

    H(D) = sym(D·Σ⁻¹ + Rᵀ(Ω − X·Σ⁻¹))                     (two n×n matmuls per product).

Newton's equation H·D = −∇f is solved by conjugate gradients preconditioned by the Lyapunov
operator D ↦ sym(D·Σ⁻¹) (the Hessian with U frozen: Su's fixed point is one such preconditioned
gradient step), diagonal in this basis, with Eisenstat–Walker-type forcing η = min(0.5, √‖∇f‖)
and an Armijo backtracking line search on f. Newton converges quadratically once ‖∇f‖ is small;
the Newton iteration count does not grow with n (measured 11–16 for n = 32…512 at m = 2n, shapes
n×n/2 of ``bench exact``), the CG count grows slowly (62, 79, 79, 196, 305 there: the preconditioned
Hessian's spectrum has a tail towards 0 that lengthens with n). While the forcing is loose the CG
runs in float32 (:data:`SINGLE_FORCING`), the gradient, line search and stopping rule in float64;
trial points are evaluated from the Gram matrix until the residual nears its accuracy; the problem
is solved at max|G| ∈ [½, 1) (exact power-of-two scaling, f is homogeneous). Preconditioners
tried and not better than the Lyapunov operator in CG iterations (dense Hessians at n = 32…64,
Newton runs to 256): the exact diagonal of H in V's basis; the Sylvester operator
D ↦ sym((I − βRᵀR)·D·Σ⁻¹), β ∈ [0.5, 1]; the operator exact for Σ = σI, diagonal in the real
Schur basis of skew(R) (it clusters the bulk but adds outliers through Σ's spread).

Kinks. f is not differentiable where G + TS is singular. A damped Newton iteration can stall in a
valley of such points that does not hold the minimiser (measured on small instances with m < 2n);
:func:`stiefel_newton` then follows the smoothing f_μ = Σ√(σᵢ² + μ²) down in μ (a homotopy whose
minimisers converge to the minimiser of f) and finishes with plain Newton. Where the minimiser
itself is at a kink (random instances with n < m < 2n and 2n − m odd) σ_min follows μ to 0 and
:class:`SolverError` (status ``"rank_deficient"``) is raised, which ``method="auto"`` answers with
the certified cvxpy solver. This module never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ._scaling import pow2_scale
from ._validate import as_matrix, count, nonnegative_scalar, same_shape
from .errors import InvalidInputError, SolverError
from .manifolds import DEFAULT_POINT_TOL, Stiefel

F64 = NDArray[np.float64]
EPS = float(np.finfo(np.float64).eps)
#: the CG of :meth:`_Point.newton_direction` runs in float32 when its forcing is ≥ SINGLE_FORCING,
#: κ(Z) ≤ SINGLE_KAPPA and μ = 0 (its rounding, ~√n·2⁻²⁴·κ relative, then stays below the forcing;
#: measured: the float64 residual ‖∇f + H·D‖ of the float32 direction ≤ 1.0× the forcing up to 512×256)
SINGLE_FORCING = 1e-4
SINGLE_KAPPA = 1e4

__all__ = ["NewtonReport", "SINGLE_FORCING", "SINGLE_KAPPA", "reduce_stiefel", "stiefel_newton"]


@dataclass(frozen=True)
class NewtonReport:
    """What :func:`stiefel_newton` did: Newton iterations, CG iterations, evaluations of Z's SVD or
    Gram eigendecomposition (line search trials included), the final tangency residual
    ‖∇f‖_F/√n, κ(Z) at the solution and the number of smoothing stages (0: plain Newton sufficed)."""

    newton_iterations: int
    cg_iterations: int
    svds: int
    tangency: float
    kappa: float
    smoothing_stages: int = 0


def _sym(a: F64) -> F64:
    return 0.5 * (a + a.T)


def reduce_stiefel(T: F64, G: F64) -> tuple[F64, F64, F64]:
    """(A, B, B̃): A = TᵀG (n×n), B = (I − TTᵀ)G (m×n, re-orthogonalised once), B̃ (n×n) with
    B̃ᵀB̃ = BᵀB (QR's R factor). T is m×n with orthonormal columns, m ≥ n, float64."""
    A = T.T @ G
    B = G - T @ A
    A2 = T.T @ B  # second Gram–Schmidt pass: TᵀB = O(ε‖G‖) afterwards
    A = A + A2
    B = B - T @ A2
    Bt = np.linalg.qr(B, mode="r")
    return A, B, Bt


class _Point:
    """f_μ, ∇f_μ and the SVD data of Z(S) = [A + S; B̃] at one S.

    f_μ(S) = Σᵢ √(σᵢ(Z)² + μ²) (μ = 0: the nuclear norm; μ > 0: its smoothing, used by the
    continuation fallback). With rᵢ = √(σᵢ² + μ²) and φ'ᵢ = σᵢ/rᵢ, the gradient in V's basis is
    sym(Rᵀ·diag(φ')) and the Hessian (Lewis–Sendov, spectral functions) is
    H(D) = sym(D·diag(1/r) + Rᵀ(M(X) − X·diag(1/r))), X = R·D, M(X) = ½[c⁺ ∘ (X + Xᵀ) + c⁻ ∘ (X − Xᵀ)]
    with c⁻ᵢⱼ = (φ'ᵢ + φ'ⱼ)/(σᵢ + σⱼ) and c⁺ᵢⱼ = (φ'ᵢ − φ'ⱼ)/(σᵢ − σⱼ) = μ²(σᵢ + σⱼ)/((σᵢrⱼ + σⱼrᵢ)rᵢrⱼ)
    (c⁺ = 0 and c⁻ = 2/(σᵢ + σⱼ) at μ = 0: the module docstring's formula).

    ``exact=True`` takes Σ, V (and P = U[:n]) from the SVD of Z (backward stable: ∇f to ~n·ε);
    ``exact=False`` from the eigendecomposition of the n×n Gram matrix ZᵀZ = (A + S)ᵀ(A + S) + B̃ᵀB̃
    and P = (A + S)·V·Σ⁻¹, about 4× cheaper but with relative error ~ε·κ(Z)², used only while
    ‖∇f‖ is far above that level (the damped phase)."""

    def __init__(self, A: F64, Bt: F64, C: F64, S: F64, exact: bool, mu: float = 0.0) -> None:
        n = A.shape[0]
        self.S = S
        self.exact = exact
        self.mu = mu
        M = A + S
        if exact:
            U, s, Vt = np.linalg.svd(np.vstack([M, Bt]), full_matrices=False)
            self.V = Vt.T
            self.R = U[:n].T @ self.V  # PᵀV
        else:
            lam, V = np.linalg.eigh(M.T @ M + C)
            lam, V = lam[::-1], V[:, ::-1]
            s = np.sqrt(np.maximum(lam, 0.0))
            self.V = V
            self.R = (V.T @ M.T @ V) / s[:, None] if s[-1] > 0 else np.full((n, n), np.inf)
        self.s = s
        self.kappa = float(s[0] / s[-1]) if s[-1] > 0 else np.inf
        pair = s[:, None] + s[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):  # σᵢ = σⱼ = 0: limits below (μ > 0)
            if mu > 0:
                r = np.sqrt(s * s + mu * mu)
                dphi = s / r
                rr = np.outer(r, r)
                cross = s[:, None] * r[None, :] + s[None, :] * r[:, None]
                self.c_sym = np.where(cross > 0, mu * mu * pair / (cross * rr), 1.0 / mu)
                self.c_skew = np.where(pair > 0, (dphi[:, None] + dphi[None, :]) / pair, 1.0 / mu)
                self.g = _sym(self.R.T * dphi[None, :])
            else:  # σ_min = 0 gives κ = ∞, which the caller rejects before using these
                r = s
                self.c_sym = None
                self.c_skew = 2.0 / pair
                self.g = _sym(self.R)  # Vᵀ·∇f·V (symmetric, V's basis)
            self.inv_r = 1.0 / r
        self.m0 = 0.5 * (self.inv_r[:, None] + self.inv_r[None, :])  # D ↦ sym(D·diag(1/r)) = D ∘ m0
        self._ops_cache: dict[type, tuple] = {}
        self.r = r
        self.f = float(r.sum())
        self.gnorm = float(np.linalg.norm(self.g))

    def _ops(self, dtype: type) -> tuple:
        """(R, ½/r, ¼c⁻, ¼c⁺ or None, m0, 1/m0) in ``dtype`` (cached): the data of :meth:`hvp`
        (the halves fold the ½ of sym(·) into the factors) and of the preconditioner."""
        ops = self._ops_cache.get(dtype)
        if ops is None:
            ops = tuple(None if x is None else np.asarray(x, dtype=dtype) for x in
                        (self.R, 0.5 * self.inv_r, 0.25 * self.c_skew,
                         None if self.c_sym is None else 0.25 * self.c_sym, self.m0, 1.0 / self.m0))
            self._ops_cache[dtype] = ops
        return ops

    def hvp(self, D: NDArray) -> NDArray:
        """H(D) in V's basis (class docstring), D symmetric n×n: two n×n matmuls, in D's dtype
        (float64, or float32 for the inexact CG solves of :meth:`newton_direction`)."""
        R, half_inv_r, ck, cs, m0, _ = self._ops(D.dtype.type)
        X = R @ D
        Mx = X - X.T
        Mx *= ck
        if cs is not None:
            Mx += cs * (X + X.T)
        X *= half_inv_r
        Mx -= X  # ½(M(X) − X·diag(1/r))
        Y = R.T @ Mx
        Y += Y.T  # sym(Rᵀ(M(X) − X·diag(1/r)))
        np.multiply(D, m0, out=X)  # sym(D·diag(1/r)) = D ∘ m0 for symmetric D
        Y += X
        return Y

    def newton_direction(self, forcing: float, max_cg: int) -> tuple[F64, int]:
        """Approximate Newton direction in V's basis by PCG, ‖r‖ ≤ forcing·‖∇f‖; (D, CG iterations).
        The CG runs in float32 (half the matmul time) while forcing ≥ ``SINGLE_FORCING``, κ(Z) ≤
        ``SINGLE_KAPPA`` and μ = 0: its rounding is then below the accuracy asked of the direction,
        and the gradient, the line search and every convergence decision stay float64."""
        single = forcing >= SINGLE_FORCING and self.kappa <= SINGLE_KAPPA and self.c_sym is None
        dt = np.float32 if single else np.float64
        minv = self._ops(dt)[5]  # the preconditioner: inverse of D ↦ sym(D·diag(1/r)) = D ∘ m0
        r = -self.g.astype(dt)
        D = np.zeros_like(r)
        z = r * minv
        p = z.copy()
        rz = float(np.vdot(r, z))
        target = forcing * self.gnorm
        k = 0
        for k in range(1, max_cg + 1):
            Hp = self.hvp(p)
            pHp = float(np.vdot(p, Hp))
            if not pHp > 0:  # numerically singular curvature: keep what CG has (or the precond. step)
                if k == 1:
                    D = p
                break
            a = rz / pHp
            D += a * p
            Hp *= a
            r -= Hp
            if float(np.linalg.norm(r)) <= target:
                break
            np.multiply(r, minv, out=z)
            rz2 = float(np.vdot(r, z))
            p *= rz2 / rz
            p += z
            rz = rz2
        return D.astype(np.float64), k


class _Stall(Exception):
    """Internal: the line search could not decrease f_μ (carries the last point)."""

    def __init__(self, pt: _Point, res: float) -> None:
        super().__init__("stalled")
        self.pt, self.res = pt, res


class _Newton:
    """Damped inexact Newton on f_μ for one problem (A, B̃); counts evaluations and CG steps."""

    def __init__(self, A: F64, Bt: F64, tol: float, max_cg: int, gram_until: float) -> None:
        self.A, self.Bt, self.C = A, Bt, Bt.T @ Bt
        self.n = A.shape[0]
        self.tol, self.max_cg, self.gram_until = tol, max_cg, gram_until
        self.svds = self.cg = self.iterations = 0
        self.history: list[float] = []

    def point(self, S: F64, exact: bool, mu: float) -> _Point:
        self.svds += 1
        return _Point(self.A, self.Bt, self.C, S, exact, mu)

    def res(self, pt: _Point) -> float:
        return pt.gnorm / np.sqrt(self.n)

    def accurate(self, pt: _Point) -> _Point:
        """Switch to SVD evaluations once ‖∇f‖ is near the Gram matrix's accuracy ε·κ²."""
        r = self.res(pt)
        if not pt.exact and (r <= self.gram_until or pt.kappa**2 * EPS >= 1e-6 or not np.isfinite(r)):
            return self.point(pt.S, True, pt.mu)
        return pt

    def step(self, pt: _Point, target: float) -> _Point:
        """One damped Newton step (Armijo on f_μ); raises :class:`_Stall`."""
        n = self.n
        self.iterations += 1
        # Eisenstat–Walker-type forcing, but no tighter than the target needs
        forcing = max(min(0.5, np.sqrt(pt.gnorm)), min(0.5, 0.25 * target * np.sqrt(n) / pt.gnorm))
        D, k = pt.newton_direction(forcing, self.max_cg)
        self.cg += k
        slope = float(np.vdot(pt.g, D))  # directional derivative ⟨∇f, dS⟩ (basis invariant)
        if not slope < 0:
            D = -pt.g  # CG broke down before any descent: fall back to steepest descent
            slope = -pt.gnorm**2
        dS = pt.V @ D @ pt.V.T
        # the trial is evaluated by an SVD already when the step is predicted (linear model, ‖∇f‖
        # falls to ~forcing·‖∇f‖) to end below gram_until: saves the Gram evaluation accurate() drops
        exact = pt.exact or forcing * self.res(pt) <= self.gram_until
        t = 1.0
        while True:
            trial = self.point(_sym(pt.S + t * dS), exact, pt.mu)
            # Armijo; where f is flat to rounding (~n·ε·f) a step that lowers ‖∇f‖ is accepted too
            df = trial.f - pt.f  # (a difference: f + tiny would round back to f)
            if df <= 1e-4 * t * slope or (df <= 4 * n * EPS * abs(pt.f) and trial.gnorm < pt.gnorm):
                return self.accurate(trial)
            t *= 0.5
            if t < 1e-10:
                if not pt.exact:  # the Gram matrix's gradient may be too inaccurate: retry with an SVD
                    return self.point(pt.S, True, pt.mu)
                raise _Stall(pt, self.res(pt))

    def solve(self, S: F64, mu: float, target: float, max_iters: int) -> _Point:
        """Newton on f_μ from S until ‖∇f_μ‖/√n ≤ target; at μ = 0 with the rounding-floor polish
        of :func:`stiefel_newton`. Raises SolverError / :class:`_Stall`."""
        n = self.n
        pt = self.accurate(self.point(S, False, mu))
        best: tuple[float, _Point] | None = None
        polishing = False
        local: list[float] = []
        for _ in range(max_iters):
            res = self.res(pt)
            local.append(res)
            if mu == 0:
                self.history.append(res)
                # no 2× progress in 6 steps: zig-zagging in a kink valley (see stiefel_newton)
                if len(local) >= 12 and min(local[-6:]) > 0.5 * min(local[:-6]):
                    raise _Stall(pt, res)
            if not np.isfinite(pt.f):
                raise SolverError("stiefel_newton: non-finite objective", "non_finite",
                                  {"iterations": self.iterations})
            if best is None or res < best[0]:
                best = (res, pt)
            if polishing or res <= target:
                # one polishing step past the rounding floor: quadratic convergence usually takes the
                # residual from the floor to ~n·ε; keep whichever iterate is better
                return best[1]
            if mu == 0:
                polishing = res <= min(64 * n * EPS * pt.kappa, 1e-10)
                if pt.kappa > 1.0 / (1e3 * EPS):
                    raise _Stall(pt, res)
            try:
                pt = self.step(pt, target)
            except _Stall:
                if polishing:
                    return best[1]
                raise
        raise SolverError(f"stiefel_newton did not reach tangency {target:.1e} in {max_iters} "
                          "iterations", "max_iterations",
                          {"iterations": self.iterations, "tangency": self.res(pt), "kappa": pt.kappa})


def stiefel_newton(T: F64, G: F64, *, tol: float | None = None, max_iters: int = 100,
                   max_cg: int | None = None, S0: F64 | None = None,
                   gram_until: float = 1e-6,
                   point_tol: float = DEFAULT_POINT_TOL) -> tuple[F64, NewtonReport, list[float]]:
    """Minimise ‖G + T·S‖_* over symmetric S (T m×n orthonormal columns, m ≥ n; float64).

    Returns (S*, report, history of ‖∇f‖_F/√n per Newton iteration on f). Plain damped Newton on f
    from S₀ = −sym(TᵀG) first. A line search can stall (or the residual stop halving in 6 steps)
    on the way, in a valley of kinks of f
    (G + TS singular) that does not hold the minimiser: measured on small instances with m < 2n.
    Then the smoothed problem f_μ = Σ√(σᵢ² + μ²) is solved by Newton along μ = 0.1·mean(σ), /10 per
    stage (each stage to ‖∇f_μ‖/√n ≤ 0.1·μ/σ₁), until μ ≤ 10⁻³·σ_min, and plain Newton finishes.
    Stops when ‖∇f‖_F/√n ≤ ``tol`` (default 64·n·ε), or after one more step once it is below the
    rounding floor min(64·n·ε·κ(Z), 1e-10) of msign at condition number κ (as ``su_lyapunov``).
    Iterates whose residual exceeds ``gram_until`` (and whose κ(Z)²·ε < 1e-6) are evaluated from
    the Gram matrix (see :class:`_Point`). Raises :class:`SolverError` with status
    ``"rank_deficient"`` when the minimiser is at a kink (on the smoothing path σ_min(Z) follows μ
    to below 10⁻⁶·σ₁), ``"stalled"`` when no line search can decrease f,
    ``"max_iterations"`` after ``max_iters`` Newton iterations in one phase (plain or one μ stage).
    Bad input or constants raise :class:`InvalidInputError`; T farther than ``point_tol`` from
    orthonormal columns (the violation of :class:`Stiefel`) raises :class:`OffManifoldError`.
    """
    T, G = as_matrix(T, "T", batched=False), as_matrix(G, "G", batched=False)
    same_shape(T, G, ("T", "G"))
    if T.shape[0] < T.shape[1]:
        raise InvalidInputError(f"stiefel_newton needs a tall T (m >= n), got shape {T.shape}")
    Stiefel(1.0, point_tol).check_point(T)
    n = T.shape[1]
    if S0 is not None:
        S0 = as_matrix(S0, "S0", batched=False)
        if S0.shape != (n, n):
            raise InvalidInputError(f"S0 must have shape ({n}, {n}), got {S0.shape}")
    tol = 64 * n * EPS if tol is None else nonnegative_scalar(tol, "tol")
    max_cg = 20 * n + 50 if max_cg is None else count(max_cg, "max_cg")
    max_iters = count(max_iters, "max_iters")
    gram_until = nonnegative_scalar(gram_until, "gram_until")
    # f(c·S; c·G) = c·f(S; G): solve at max|G| ∈ [½, 1) (an exact power of two; the float32 CG
    # needs its numbers near 1) and scale S back
    G, e = pow2_scale(np.asarray(G, dtype=np.float64))
    A, _, Bt = reduce_stiefel(T, G)
    S_init = -_sym(A) if S0 is None else np.ldexp(_sym(np.asarray(S0, dtype=np.float64)), -e)
    nw = _Newton(A, Bt, tol, max_cg, gram_until)

    stages = 0

    def report(pt: _Point) -> tuple[F64, NewtonReport, list[float]]:
        return (np.ldexp(pt.S, e), NewtonReport(nw.iterations, nw.cg, nw.svds, nw.res(pt), pt.kappa, stages),
                nw.history)

    try:
        return report(nw.solve(S_init, 0.0, tol, max_iters))
    except _Stall as first:
        stalled = first
    # continuation on the smoothing μ from the start point
    pt = nw.point(S_init, True, 0.0)
    mu = 0.1 * float(np.mean(pt.s))
    smins: list[float] = []
    while True:
        if stages >= 30:  # μ has fallen by 10³⁰ without a decision: cannot happen in float64
            raise SolverError("stiefel_newton: the smoothing path did not end", "max_iterations",
                              {"iterations": nw.iterations, "kappa": pt.kappa, "mu": mu})
        stages += 1
        try:
            floor = 64 * n * EPS * float(pt.s[0] / np.sqrt(pt.s[-1] ** 2 + mu * mu))  # κ of f_μ's scale
            pt = nw.solve(pt.S, mu, max(0.1 * mu / float(pt.s[0]), floor), max_iters)
        except _Stall as exc:
            raise SolverError("stiefel_newton stalled on the smoothed dual", "stalled",
                              {"iterations": nw.iterations, "kappa": exc.pt.kappa, "tangency": exc.res,
                               "mu": mu}) from None
        if float(pt.s[-1]) >= 1e3 * mu:
            break
        smins.append(float(pt.s[-1]))
        # σ_min follows μ down (5× per 10× of μ, twice running) to below 10⁻⁶·σ₁: a kink minimiser
        # (a smooth one has σ_min(μ) → σ_min* > 0: measured ratios 8.6, 2.8, 1.0 on the way there)
        s1 = float(pt.s[0])
        if (len(smins) >= 3 and smins[-1] <= 1e-6 * s1 and smins[-3] >= 5 * smins[-2] >= 25 * smins[-1]) \
                or (smins[-1] <= 1e-12 * s1 and mu <= 1e-10 * s1):  # (or numerically singular already)
            raise SolverError("stiefel_newton: the minimiser is at a kink (σ_min(G + WS) → 0 with the "
                              "smoothing μ, where f is not differentiable); use method='cvxpy'",
                              "rank_deficient", {"iterations": nw.iterations, "kappa": pt.kappa,
                                                 "mu": mu, "first_stall_kappa": stalled.pt.kappa})
        mu *= 0.1
    try:
        return report(nw.solve(pt.S, 0.0, tol, max_iters))
    except _Stall as exc:
        singular = exc.pt.kappa > 1.0 / (1e3 * EPS)
        raise SolverError("stiefel_newton stalled after the smoothing path (the minimiser is at or near a "
                          "kink); use method='cvxpy'", "rank_deficient" if singular else "stalled",
                          {"iterations": nw.iterations, "kappa": exc.pt.kappa, "tangency": exc.res}) from None
