"""Synthetic problems with known answers (CLAIMS.md §0.3), float64.

Each problem exposes ``manifold``, ``shape``, ``loss(W)``, ``gradient(W)`` (Euclidean ∇f),
``riemannian_gradient(W)``, ``optimal_value`` f*, ``optimum()`` (one minimiser), ``lipschitz`` L
(of ∇f in ‖·‖_F on the manifold), ``gradient_bound`` G_max = sup_M ‖∇f‖_F (or an upper bound),
``initial_point(rng)``, ``optimality_residual(W)`` = ‖grad f(W)‖_F/max(‖∇f(W)‖_F, tiny) (the
first-order condition of MATH.md §8.2 after the best-fitting multiplier) and a stochastic mode:
``stochastic_gradient(W, rng) = ∇f(W) + N`` with i.i.d. N(0, σ²/(mn)) entries (E‖N‖²_F = σ²),
σ = ``noise`` (``with_noise(σ)`` returns a copy).

:class:`TwoLayerNet` has two constrained blocks; its methods take and return tuples.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validate import as_float64, as_matrix, count, positive_scalar
from .errors import DegenerateGeometryError, InvalidInputError
from .generators import haar_orthogonal
from .linalg import msign
from .manifolds import FrobeniusSphere, Manifold, Oblique, Stiefel

F64 = NDArray[np.float64]

__all__ = [
    "Problem",
    "RayleighFrobenius",
    "RayleighStiefel",
    "Procrustes",
    "ProjectionProblem",
    "MatrixSensing",
    "TwoLayerNet",
]


class Problem(ABC):
    """Abstract base of the single-matrix problems (see the module docstring)."""

    manifold: Manifold
    shape: tuple[int, int]
    optimal_value: float
    lipschitz: float
    gradient_bound: float
    noise: float = 0.0

    @abstractmethod
    def loss(self, W: ArrayLike) -> float:
        """f(W)."""

    @abstractmethod
    def gradient(self, W: ArrayLike) -> F64:
        """The Euclidean gradient ∇f(W), shape of W."""

    @abstractmethod
    def optimum(self) -> F64:
        """One minimiser of f on the manifold."""

    def initial_point(self, rng: np.random.Generator) -> F64:
        return self.manifold.random_point(rng, self.shape)

    def _w(self, W: ArrayLike) -> F64:
        w = as_matrix(W, "W", batched=False)
        if w.shape != self.shape:
            raise InvalidInputError(f"{type(self).__name__}: W must have shape {self.shape}, got {w.shape}")
        return w

    def riemannian_gradient(self, W: ArrayLike) -> F64:
        return self.manifold.project_tangent(W, self.gradient(W))

    def optimality_residual(self, W: ArrayLike) -> float:
        g = self.gradient(W)
        rg = self.manifold.project_tangent(W, g)
        return float(np.linalg.norm(rg) / max(np.linalg.norm(g), 1e-300))

    def with_noise(self, sigma: float) -> "Problem":
        """A copy whose :meth:`stochastic_gradient` adds noise of total variance σ²."""
        s = float(sigma)
        if not np.isfinite(s) or s < 0:
            raise InvalidInputError(f"noise must be finite and >= 0, got {sigma!r}")
        out = copy.copy(self)
        out.noise = s
        return out

    def stochastic_gradient(self, W: ArrayLike, rng: np.random.Generator) -> F64:
        g = self.gradient(W)
        if self.noise == 0:
            return g
        return g + rng.standard_normal(g.shape) * (self.noise / np.sqrt(g.size))


class _RayleighQuotient(Problem):
    """f(W) = −½·tr(WᵀCW) with C symmetric (shared by the Frobenius-sphere and Stiefel forms)."""

    C: F64

    def loss(self, W: ArrayLike) -> float:
        w = self._w(W)
        return -0.5 * float(np.sum(w * (self.C @ w)))

    def gradient(self, W: ArrayLike) -> F64:
        return -(self.C @ self._w(W))

    @staticmethod
    def _random_c(rng: np.random.Generator, m: int, eigenvalues: Sequence[float] | None) -> F64:
        """C = Q·diag(λ)·Qᵀ with Haar Q; default λ = linspace(1, 0.1, m) (gap 0.9/(m − 1))."""
        lam = np.linspace(1.0, 0.1, m) if eigenvalues is None else np.asarray(eigenvalues, float)
        Q = haar_orthogonal(rng, m)
        return (Q * lam) @ Q.T


class RayleighFrobenius(_RayleighQuotient):
    """Q1: f(W) = −½·tr(WᵀCW) on M_F(R), C ∈ Sym(m) ⪰ 0 with λ₁ > λ₂ (CLAIMS.md §0.3).

    f* = −½R²λ₁ at W* = R·q₁zᵀ (any unit z; :meth:`optimum` uses z = e₁); L = λ₁;
    G_max = λ₁R.
    """

    def __init__(self, C: ArrayLike, n: int, radius: float = 1.0) -> None:
        c = as_matrix(C, "C", batched=False)
        if c.shape[0] != c.shape[1] or not np.allclose(c, c.T, rtol=0, atol=1e-14 * np.abs(c).max()):
            raise InvalidInputError("C must be a symmetric square matrix")
        lam, Q = np.linalg.eigh(0.5 * (c + c.T))
        lam, Q = lam[::-1], Q[:, ::-1]
        if lam[-1] < -1e-14 * abs(lam[0]):
            raise InvalidInputError("C must be positive semidefinite")
        if c.shape[0] > 1 and not lam[0] > lam[1]:
            raise DegenerateGeometryError("λ₁(C) − λ₂(C)", float(lam[0] - lam[1]), 0.0,
                                          "the leading eigenvector must be unique")
        self.C = c.copy()
        self.eigenvalues, self.eigenvectors = lam, Q
        self.radius = positive_scalar(radius, "radius")
        self.shape = (c.shape[0], count(n, "n"))
        self.manifold = FrobeniusSphere(self.radius)
        self.optimal_value = -0.5 * self.radius**2 * float(lam[0])
        self.lipschitz = float(lam[0])
        self.gradient_bound = float(lam[0]) * self.radius

    @classmethod
    def random(cls, rng: np.random.Generator, m: int, n: int, radius: float = 1.0,
               eigenvalues: Sequence[float] | None = None) -> "RayleighFrobenius":
        """C with eigenvalues ``eigenvalues`` (default linspace(1, 0.1, m)) in a Haar basis."""
        return cls(cls._random_c(rng, m, eigenvalues), n, radius)

    def optimum(self) -> F64:
        out = np.zeros(self.shape)
        out[:, 0] = self.radius * self.eigenvectors[:, 0]
        return out


class RayleighStiefel(_RayleighQuotient):
    """Q1 on St(m, p; s): f(W) = −½·tr(WᵀCW), λ_p > λ_{p+1} (m > p ≥ 1).

    f* = −½s²Σ_{i≤p}λᵢ at W* = s·Q_p·O (any O ∈ O(p); :meth:`optimum` uses O = I); L = λ₁;
    G_max = s·(Σ_{i≤p}λᵢ²)^{1/2}.
    """

    def __init__(self, C: ArrayLike, p: int, scale: float = 1.0) -> None:
        c = as_matrix(C, "C", batched=False)
        m = c.shape[0]
        if c.shape[0] != c.shape[1] or not np.allclose(c, c.T, rtol=0, atol=1e-14 * np.abs(c).max()):
            raise InvalidInputError("C must be a symmetric square matrix")
        p = count(p, "p")
        if not 1 <= p < m:
            raise InvalidInputError(f"need 1 <= p < m, got p={p}, m={m}")
        lam, Q = np.linalg.eigh(0.5 * (c + c.T))
        lam, Q = lam[::-1], Q[:, ::-1]
        if lam[-1] < -1e-14 * abs(lam[0]):
            raise InvalidInputError("C must be positive semidefinite")
        if not lam[p - 1] > lam[p]:
            raise DegenerateGeometryError("λ_p(C) − λ_{p+1}(C)", float(lam[p - 1] - lam[p]), 0.0,
                                          "the leading p-dimensional eigenspace must be unique")
        self.C, self.eigenvalues, self.eigenvectors = c.copy(), lam, Q
        self.scale = positive_scalar(scale, "scale")
        self.shape = (m, int(p))
        self.manifold = Stiefel(self.scale)
        self.optimal_value = -0.5 * self.scale**2 * float(np.sum(lam[:p]))
        self.lipschitz = float(lam[0])
        self.gradient_bound = self.scale * float(np.sqrt(np.sum(lam[:p] ** 2)))

    @classmethod
    def random(cls, rng: np.random.Generator, m: int, p: int, scale: float = 1.0,
               eigenvalues: Sequence[float] | None = None) -> "RayleighStiefel":
        """C with eigenvalues ``eigenvalues`` (default linspace(1, 0.1, m)) in a Haar basis."""
        return cls(cls._random_c(rng, m, eigenvalues), p, scale)

    def optimum(self) -> F64:
        return self.scale * self.eigenvectors[:, : self.shape[1]].copy()


class Procrustes(Problem):
    """Orthogonal Procrustes f(W) = ½‖AW − B‖²_F on St(m, p; s), A (q, m), B (q, p).

    Square (m = p): any A; tall (m > p): AᵀA = a²I is required so that ‖AW‖_F is constant on St.
    Then f = ½(c + ‖B‖²_F) − tr(WᵀAᵀB), so f* = ½(c + ‖B‖²_F) − s‖AᵀB‖_* with
    c = s²‖A‖²_F (square) or s²a²p (tall), at W* = s·msign(AᵀB) (AᵀB of full rank). L = ‖A‖₂²;
    G_max ≤ s‖AᵀA‖_F + ‖AᵀB‖_F. On O(n) (square) W* lies in the component det = sign det(AᵀB);
    :meth:`initial_point` draws from that component, since a retraction with small steps never
    changes component.
    """

    def __init__(self, A: ArrayLike, B: ArrayLike, scale: float = 1.0) -> None:
        a = as_matrix(A, "A", batched=False)
        b = as_matrix(B, "B", batched=False)
        if a.shape[0] != b.shape[0]:
            raise InvalidInputError(f"A and B need the same number of rows, got {a.shape}, {b.shape}")
        m, p = a.shape[1], b.shape[1]
        if p > m:
            raise InvalidInputError("need W tall or square: B.shape[1] <= A.shape[1]")
        self.scale = positive_scalar(scale, "scale")
        AtA = a.T @ a
        if m > p:
            a2 = float(np.trace(AtA)) / m
            if np.linalg.norm(AtA - a2 * np.eye(m)) > 1e-12 * a2 * m:
                raise InvalidInputError("tall Procrustes needs AᵀA = a²I (constant ‖AW‖_F on St)")
            const = self.scale**2 * a2 * p
        else:
            const = self.scale**2 * float(np.sum(a * a))
        self.A, self.B = a.copy(), b.copy()
        self.AtB = a.T @ b
        sv = np.linalg.svd(self.AtB, compute_uv=False)
        if sv[-1] <= max(self.AtB.shape) * np.finfo(float).eps * sv[0]:
            raise DegenerateGeometryError("σ_min(AᵀB)/σ_max", float(sv[-1] / sv[0]), 0.0,
                                          "the Procrustes minimiser is unique only for full-rank AᵀB")
        self.shape = (m, p)
        self.manifold = Stiefel(self.scale)
        self.optimal_value = 0.5 * (const + float(np.sum(b * b))) - self.scale * float(np.sum(sv))
        self.lipschitz = float(np.linalg.svd(a, compute_uv=False)[0] ** 2)
        self.gradient_bound = self.scale * float(np.linalg.norm(AtA)) + float(np.linalg.norm(self.AtB))

    @classmethod
    def random(cls, rng: np.random.Generator, n: int, p: int | None = None, q: int | None = None,
               scale: float = 1.0) -> "Procrustes":
        """Square (p = n): A (q, n) Gaussian with q = n + 2; tall: A = orthonormal columns."""
        p = n if p is None else p
        q = n + 2 if q is None else q
        if p == n:
            A = rng.standard_normal((q, n)) / np.sqrt(q)
        else:
            A = haar_orthogonal(rng, q)[:, :n]
        B = rng.standard_normal((q, p))
        return cls(A, B, scale)

    def loss(self, W: ArrayLike) -> float:
        r = self.A @ self._w(W) - self.B
        return 0.5 * float(np.sum(r * r))

    def gradient(self, W: ArrayLike) -> F64:
        return self.A.T @ (self.A @ self._w(W) - self.B)

    def optimum(self) -> F64:
        return self.scale * msign(self.AtB)

    def initial_point(self, rng: np.random.Generator) -> F64:
        W = self.manifold.random_point(rng, self.shape)
        m, p = self.shape
        if m == p and np.sign(np.linalg.det(W)) != np.sign(np.linalg.det(self.AtB)):
            W = W.copy()
            W[:, 0] = -W[:, 0]
        return W


class ProjectionProblem(Problem):
    """Q2: f(W) = ½‖W − C‖²_F on M; minimiser the metric projection of C (CLAIMS.md §0.3).

    Supported: every bounded matrix manifold (``Manifold.frobenius_bound``), e.g. FrobeniusSphere
    (R·C/‖C‖_F), SpectralSphere (mclip(C; R) when σ₁(C) ≥ R, else raise σ₁ to R), Oblique
    (row/column normalisation), Stiefel (s·msign(C), full-rank C).
    L = 1; G_max = sup_M ‖W‖_F + ‖C‖_F.
    """

    def __init__(self, manifold: Manifold, C: ArrayLike) -> None:
        c = as_matrix(C, "C", batched=False)
        if not isinstance(manifold, Manifold) or manifold.point_ndim != 2:
            raise InvalidInputError(f"unsupported manifold {manifold!r}")
        wmax = manifold.frobenius_bound(c.shape)  # InvalidInputError for an unbounded manifold
        self.manifold, self.C, self.shape = manifold, c.copy(), c.shape
        self._opt = manifold.project_point(c)
        self.optimal_value = 0.5 * float(np.sum((self._opt - c) ** 2))
        self.lipschitz = 1.0
        self.gradient_bound = float(wmax + np.linalg.norm(c))

    def loss(self, W: ArrayLike) -> float:
        r = self._w(W) - self.C
        return 0.5 * float(np.sum(r * r))

    def gradient(self, W: ArrayLike) -> F64:
        return self._w(W) - self.C

    def optimum(self) -> F64:
        return self._opt.copy()


class MatrixSensing(Problem):
    """Low-rank matrix sensing on M_F(R): f(W) = (1/2N)·Σᵢ(⟨Aᵢ, W⟩ − yᵢ)², yᵢ = ⟨Aᵢ, W♮⟩.

    W♮ = R·(rank-r matrix)/‖·‖_F lies on M_F(R), so f* = 0 at W♮; with N ≥ mn Gaussian Aᵢ the
    minimiser is unique (the sensing operator is injective). L = σ_max(𝒜)²/N (𝒜 the N×mn matrix);
    G_max = 2R·L.
    """

    def __init__(self, A: ArrayLike, W_true: ArrayLike) -> None:
        a = as_float64(A, "A")
        w = as_matrix(W_true, "W_true", batched=False)
        if a.ndim != 3 or a.shape[1:] != w.shape:
            raise InvalidInputError(f"A must have shape (N, {w.shape[0]}, {w.shape[1]}), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise InvalidInputError("A has non-finite entries")
        self.A, self.W_true, self.shape = a.copy(), w.copy(), w.shape
        self.N = a.shape[0]
        self.Amat = self.A.reshape(self.N, -1)
        self.y = self.Amat @ w.ravel()
        self.radius = float(np.linalg.norm(w))
        self.manifold = FrobeniusSphere(self.radius)
        self.optimal_value = 0.0
        self.lipschitz = float(np.linalg.svd(self.Amat, compute_uv=False)[0] ** 2 / self.N)
        self.gradient_bound = 2.0 * self.radius * self.lipschitz

    @classmethod
    def random(cls, rng: np.random.Generator, m: int, n: int, rank: int = 1, radius: float = 1.0,
               measurements: int | None = None) -> "MatrixSensing":
        N = 2 * m * n if measurements is None else int(measurements)
        W = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))
        W = radius * W / np.linalg.norm(W)
        return cls(rng.standard_normal((N, m, n)), W)

    def loss(self, W: ArrayLike) -> float:
        r = self.Amat @ self._w(W).ravel() - self.y
        return 0.5 * float(r @ r) / self.N

    def gradient(self, W: ArrayLike) -> F64:
        r = self.Amat @ self._w(W).ravel() - self.y
        return (self.Amat.T @ r / self.N).reshape(self.shape)

    def optimum(self) -> F64:
        return self.W_true.copy()


class TwoLayerNet:
    """Two-layer regression net with every matrix constrained (teacher–student, f* = 0).

    Inputs X (d, N), targets Y = W₂♮·tanh(W₁♮X) (c, N); loss
    f(W₁, W₂) = (1/2N)‖W₂·tanh(W₁X) − Y‖²_F with W₁ (h, d) ∈ OB_row(r₁) (unit-norm neurons by
    default) and W₂ (c, h) ∈ M_F(R₂). The teacher lies on the same manifolds, so f* = 0 at
    (W₁♮, W₂♮) (and at its sign/permutation symmetries). Methods take and return tuples
    (W₁, W₂); the stochastic mode adds noise of total variance σ² to each block.
    """

    def __init__(self, X: ArrayLike, W1_true: ArrayLike, W2_true: ArrayLike,
                 row_radius: float = 1.0, radius2: float | None = None) -> None:
        x = as_matrix(X, "X", batched=False)
        w1 = as_matrix(W1_true, "W1_true", batched=False)
        w2 = as_matrix(W2_true, "W2_true", batched=False)
        if w1.shape[1] != x.shape[0] or w2.shape[1] != w1.shape[0]:
            raise InvalidInputError("shapes must chain: W1 (h, d), X (d, N), W2 (c, h)")
        self.manifolds = (Oblique(row_radius, axis="rows"),
                          FrobeniusSphere(float(np.linalg.norm(w2)) if radius2 is None else radius2))
        for man, w in zip(self.manifolds, (w1, w2)):
            man.check_point(w, 1e-12)
        self.X, self.teacher = x.copy(), (w1.copy(), w2.copy())
        self.Y = w2 @ np.tanh(w1 @ x)
        self.shapes = (w1.shape, w2.shape)
        self.N = x.shape[1]
        self.optimal_value = 0.0
        self.noise = 0.0

    @classmethod
    def random(cls, rng: np.random.Generator, d: int = 6, h: int = 5, c: int = 3, N: int = 64,
               radius2: float = 1.0) -> "TwoLayerNet":
        ob = Oblique(1.0, axis="rows")
        w1 = ob.random_point(rng, (h, d))
        w2 = FrobeniusSphere(radius2).random_point(rng, (c, h))
        return cls(rng.standard_normal((d, N)), w1, w2, 1.0, radius2)

    def initial_point(self, rng: np.random.Generator) -> tuple[F64, F64]:
        return tuple(m.random_point(rng, s) for m, s in zip(self.manifolds, self.shapes))  # type: ignore[return-value]

    def _ws(self, Ws: Sequence[ArrayLike]) -> tuple[F64, F64]:
        if len(Ws) != 2:
            raise InvalidInputError("TwoLayerNet takes a pair (W1, W2)")
        w1 = as_matrix(Ws[0], "W1", batched=False)
        w2 = as_matrix(Ws[1], "W2", batched=False)
        if (w1.shape, w2.shape) != self.shapes:
            raise InvalidInputError(f"shapes must be {self.shapes}, got {(w1.shape, w2.shape)}")
        return w1, w2

    def loss(self, Ws: Sequence[ArrayLike]) -> float:
        w1, w2 = self._ws(Ws)
        r = w2 @ np.tanh(w1 @ self.X) - self.Y
        return 0.5 * float(np.sum(r * r)) / self.N

    def gradient(self, Ws: Sequence[ArrayLike]) -> tuple[F64, F64]:
        w1, w2 = self._ws(Ws)
        H = np.tanh(w1 @ self.X)
        E = (w2 @ H - self.Y) / self.N
        g2 = E @ H.T
        g1 = ((w2.T @ E) * (1.0 - H * H)) @ self.X.T
        return g1, g2

    def riemannian_gradient(self, Ws: Sequence[ArrayLike]) -> tuple[F64, F64]:
        return tuple(m.project_tangent(w, g) for m, w, g in  # type: ignore[return-value]
                     zip(self.manifolds, self._ws(Ws), self.gradient(Ws)))

    def optimum(self) -> tuple[F64, F64]:
        return self.teacher[0].copy(), self.teacher[1].copy()

    def with_noise(self, sigma: float) -> "TwoLayerNet":
        s = float(sigma)
        if not np.isfinite(s) or s < 0:
            raise InvalidInputError(f"noise must be finite and >= 0, got {sigma!r}")
        out = copy.copy(self)
        out.noise = s
        return out

    def stochastic_gradient(self, Ws: Sequence[ArrayLike], rng: np.random.Generator) -> tuple[F64, F64]:
        gs = self.gradient(Ws)
        if self.noise == 0:
            return gs
        return tuple(g + rng.standard_normal(g.shape) * (self.noise / np.sqrt(g.size))  # type: ignore[return-value]
                     for g in gs)
