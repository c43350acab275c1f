"""Norm bounds and budgets: Post Clip / Pre Decay (I-6), Modula budgets (I-7), SSO ordering (I-10).

I-6 and I-7 are rules that no shipped optimizer implements (MATH §9.9 documents them); the claims
state them with the shipped primitives (``reference.linalg.mclip``, ``msign``,
``top_singular_triplet``) and check the papers' statements about them. I-10 runs the shipped
``reference.optim.SSO`` and ``power_iteration``.
"""

from __future__ import annotations

import numpy as np

from manifold_oracle.reference import SpectralSphere, msign
from manifold_oracle.reference.linalg import mclip, top_singular_triplet

from .._common import T_GRID, U64, new_figure, slope_check, with_spectrum
from ..registry import Budget, ClaimResult, ControlResult, register


def sso_feasibility_slope(W: np.ndarray, G: np.ndarray):
    """|σ₁(W⁺) − R| after one shipped reference SSO step (R = 1, scale 1) for η on the Taylor grid,
    and its slope check against order 2 (SSO retracts, then steps: the residual is O(η²))."""
    from manifold_oracle.reference.optim import SSO

    def one(eta: float) -> float:
        opt = SSO(lr=eta, radius_mode="identity", scale_mode=1.0)
        return abs(float(np.linalg.norm(opt.step(W, G, opt.init_state(W))[0], 2)) - 1.0)

    resid = np.array([one(float(e)) for e in T_GRID])
    ok, fit = slope_check(T_GRID, resid, 2.0, floor=1e3 * U64)
    return resid, ok, fit


def _top(W: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    t = top_singular_triplet(W)
    return float(t.sigma), np.asarray(t.u), np.asarray(t.v)


@register("I-6", "Post Clip and Pre Decay keep ‖W_t‖₂ ≤ max(‖W_0‖₂, τ); their one-singular-value forms equal the "
          "full mclip forms whenever only σ₁ exceeds the threshold", "Su 11729 (MATH §9.9)", "I")
def i6(seed: int, budget: Budget) -> ClaimResult:
    rng = np.random.default_rng(seed)
    shape = (12, 8)
    lam, eta = 0.2, 0.05
    s = np.sqrt(shape[0] / shape[1])
    tau = s / lam
    T = budget.pick(200, 2000)
    W_pc = with_spectrum(rng, np.linspace(3 * tau, 0.1, 8), shape)  # start far outside the ball
    W_pd = W_pc.copy()
    bound = max(float(np.linalg.norm(W_pc, 2)), tau)
    excess, norms = 0.0, []
    for _ in range(T):
        G = rng.standard_normal(shape) + 0.5 * W_pc  # adversarially aligned with W
        Phi = s * msign(G)  # λΦ_t of MATH §9.9: φ_t = √(d_out/d_in)·msign(G_t)
        W_pc = mclip(W_pc - eta * Phi, tau)
        W_pd = mclip(W_pd, (1 - eta * lam) * float(np.linalg.norm(W_pd, 2))) - eta * Phi
        n_pc, n_pd = float(np.linalg.norm(W_pc, 2)), float(np.linalg.norm(W_pd, 2))
        excess = max(excess, (n_pc - bound) / bound, (n_pd - bound) / bound)
        norms.append((n_pc, n_pd))
    # one-singular-value forms when only σ₁ exceeds the threshold
    Wt = with_spectrum(rng, np.array([2.0, 0.9, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05]) * tau, shape)
    s1, u1, v1 = _top(Wt)
    one_pc = Wt - max(s1 - tau, 0.0) * np.outer(u1, v1)
    d_pc = float(np.linalg.norm(one_pc - mclip(Wt, tau)) / np.linalg.norm(Wt))
    one_pd = Wt - lam * eta * s1 * np.outer(u1, v1)
    d_pd = float(np.linalg.norm(one_pd - mclip(Wt, (1 - eta * lam) * s1)) / np.linalg.norm(Wt))
    tol = 1e-12  # CLAIMS I-6
    worst = max(excess, d_pc, d_pd)
    # control: σ₂ > τ too — the one-singular-value Post Clip leaves σ₂ above τ
    Wc = with_spectrum(rng, np.array([2.0, 1.5, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05]) * tau, shape)
    c1, cu, cv = _top(Wc)
    sig2 = float(np.linalg.svd(Wc - (c1 - tau) * np.outer(cu, cv), compute_uv=False)[0])
    ctrl = (sig2 - tau) / tau
    norms = np.array(norms)
    fig, (ax,) = new_figure()
    ax.plot(norms[:, 0], label="Post Clip ‖W_t‖₂")
    ax.plot(norms[:, 1], label="Pre Decay ‖W_t‖₂")
    ax.axhline(bound, color="k", ls="--", lw=0.8, label="max(‖W_0‖₂, τ)")
    ax.axhline(tau, color="gray", ls=":", lw=0.8, label="τ = √(d_out/d_in)/λ")
    ax.set_xlabel("step t")
    ax.set_ylabel("‖W_t‖₂")
    ax.legend(fontsize=7)
    ax.set_title("I-6 Post Clip / Pre Decay, aligned gradients", fontsize=9)
    return ClaimResult("I-6", worst, "max(relative bound excess, one-σ vs mclip form differences)", 0.0,
                       "bound holds; forms equal when only σ₁ exceeds the threshold", tol, "CLAIMS I-6: 1e-12",
                       bool(worst <= tol),
                       ControlResult("σ₂ > τ: one-σ Post Clip leaves (σ₂ − τ)/τ > 0", ctrl, bool(ctrl <= tol)),
                       {"Post Clip one-σ vs mclip": d_pc, "Pre Decay one-σ vs mclip": d_pd, "bound excess": excess}, fig)


def _atom_update(G: np.ndarray, target: float) -> np.ndarray:
    """Modula Linear atom's dualised update √(d_out/d_in)·msign(G)·target (exact msign; MATH §9.9)."""
    return np.sqrt(G.shape[0] / G.shape[1]) * msign(G) * target


def _atom_norm(D: np.ndarray) -> float:
    """The Linear atom's norm √(fan_in/fan_out)·‖·‖₂."""
    return float(np.sqrt(D.shape[1] / D.shape[0]) * np.linalg.norm(D, 2))


@register("I-7", "Modula budgets: for M₁∘M₀ the dualised updates have atom norms t·μ₀/(μ·s₁) and t·μ₁/μ, for a "
          "tuple t·μᵢ/μ, and the modular norm of the full update equals t",
          "code modula-systems/modula abstract.py, atom.py; Large et al. (arXiv 2405.14813); MATH §9.9", "I")
def i7(seed: int, budget: Budget) -> ClaimResult:
    rng = np.random.default_rng(seed)
    errs, ctrl = [], 0.0
    for _ in range(budget.pick(5, 50)):
        t = float(rng.uniform(0.1, 2.0))
        mu0, mu1 = rng.uniform(0.5, 3.0, 2)
        s1 = float(rng.uniform(0.5, 2.0))
        mu = mu0 + mu1
        G0, G1 = rng.standard_normal((16, 8)), rng.standard_normal((12, 16))
        D0, D1 = _atom_update(G0, t * mu0 / (mu * s1)), _atom_update(G1, t * mu1 / mu)
        n0, n1 = _atom_norm(D0), _atom_norm(D1)
        # modular norm of a composition: max(s₁·μ/μ₀·‖Δw₀‖, μ/μ₁·‖Δw₁‖) (Large et al., Def. of the
        # compound norm); equals t exactly when the budgets are as above
        modular = max(s1 * mu / mu0 * n0, mu / mu1 * n1)
        errs += [abs(n0 - t * mu0 / (mu * s1)) / t, abs(n1 - t * mu1 / mu) / t, abs(modular - t) / t]
        # tuple: μ = Σμᵢ, targets t·μᵢ/μ, modular norm max μ/μᵢ·‖Δwᵢ‖
        Dt = [_atom_update(G0, t * mu0 / mu), _atom_update(G1, t * mu1 / mu)]
        errs.append(abs(max(mu / mu0 * _atom_norm(Dt[0]), mu / mu1 * _atom_norm(Dt[1])) - t) / t)
        # control: the two budgets of the composition swapped
        E0, E1 = _atom_update(G0, t * mu1 / mu), _atom_update(G1, t * mu0 / (mu * s1))
        ctrl = max(ctrl, abs(max(s1 * mu / mu0 * _atom_norm(E0), mu / mu1 * _atom_norm(E1)) - t) / t)
    worst = float(max(errs))
    tol = 1e-12  # CLAIMS I-7
    fig, (ax,) = new_figure()
    ax.hist(np.log10(np.maximum(errs, 1e-18)), bins=20, label="budget rules (relative error)")
    ax.axvline(np.log10(tol), color="k", ls="--", lw=0.8, label="tolerance 1e-12")
    ax.axvline(np.log10(ctrl), color="C3", lw=1.0, label="swapped budgets (control)")
    ax.set_xlabel("log10 relative error of atom / modular norms")
    ax.set_ylabel("count")
    ax.legend(fontsize=7)
    ax.set_title("I-7 Modula budgets (exact msign)", fontsize=9)
    return ClaimResult("I-7", worst, "max relative error of the atom norms and the modular norm", 0.0,
                       "equality", tol, "CLAIMS I-7: 1e-12", worst <= tol,
                       ControlResult("budgets of the two atoms swapped", ctrl, bool(ctrl <= tol)), {}, fig)


@register("I-10", "SSO ordering: retract-then-step leaves |σ₁(W⁺) − R| = O(η²) after the step (slope 2); power "
          "iteration's σ̂ error decays like (σ₂/σ₁)^{4k}; v₀ = 1 with v₁ ⟂ 1 never finds σ₁",
          "SSO summary; code spectral_ball.py; MATH §9.4", "I")
def i10(seed: int, budget: Budget) -> ClaimResult:
    from manifold_oracle.reference.optim import power_iteration

    rng = np.random.default_rng(seed)
    shape = (10, 8)
    W = SpectralSphere(1.0).random_point(rng, shape)
    G = rng.standard_normal(shape)
    resid, s_ok, fit = sso_feasibility_slope(W, G)
    # power iteration: error of σ̂ after k bilateral steps vs (σ₂/σ₁)^{4k}
    ratio = 0.8
    Wp = with_spectrum(rng, np.array([1.0, ratio, 0.5, 0.3, 0.2, 0.1]), (10, 6))
    ks = np.arange(4, 13)  # the asymptotic regime (the lower modes have died out)
    err = np.array([abs(power_iteration(Wp, int(k))[0] - 1.0) for k in ks])
    rate = float(np.polyfit(ks, np.log(err), 1)[0])
    rate_th = 4 * np.log(ratio)
    rate_ok = abs(rate / rate_th - 1) <= 0.1  # finite-k transient of the lower modes: 10%
    # control: v₁ ⟂ 1 (adversarial start), v₀ = 1: the iteration never sees σ₁
    U = np.linalg.qr(rng.standard_normal((10, 6)))[0]
    ones = np.ones(6) / np.sqrt(6)
    v1 = rng.standard_normal(6)
    v1 -= ones * (ones @ v1)
    V = np.linalg.qr(np.column_stack([v1 / np.linalg.norm(v1), rng.standard_normal((6, 5))]))[0]
    Wa = U @ np.diag([1.0, 0.8, 0.5, 0.3, 0.2, 0.1]) @ V.T  # top right singular vector ⟂ 1
    ctrl = abs(power_iteration(Wa, 50)[0] - 1.0)
    fig, axes = new_figure(2)
    axes[0].loglog(T_GRID, resid, "o-", label=f"|σ₁(W⁺) − R|, slope {fit.slope:.3f}")
    axes[0].loglog(T_GRID, resid[-1] * (T_GRID / T_GRID[-1]) ** 2, "k--", lw=0.8, label="reference slope 2")
    axes[0].set_xlabel("η")
    axes[0].set_ylabel("|σ₁(W⁺) − R| after one SSO step")
    axes[0].legend(fontsize=7)
    axes[1].semilogy(ks, err, "o-", label=f"|σ̂ − σ₁|, fitted rate {rate:.3f}")
    axes[1].semilogy(ks, err[0] * np.exp(rate_th * (ks - 1)), "k--", lw=0.8, label=f"(σ₂/σ₁)^{{4k}}: rate {rate_th:.3f}")
    axes[1].axhline(ctrl, color="C3", lw=0.8, label="v₁ ⟂ 1 start, 50 steps (control)")
    axes[1].set_xlabel("power-iteration steps k")
    axes[1].set_ylabel("error of σ̂")
    axes[1].legend(fontsize=6)
    fig.suptitle("I-10 SSO ordering and power iteration (shipped reference)", fontsize=9)
    fig.tight_layout()
    return ClaimResult("I-10", fit.slope, "slope of |σ₁(W⁺) − R| in η", 2.0,
                       "slope 2; power-iteration rate 4·log(σ₂/σ₁)", 0.05,
                       "CLAIMS I-10: ±0.05 on slopes; rate within 10%", bool(s_ok and rate_ok),
                       ControlResult("v₀ = 1 with v₁ ⟂ 1: |σ̂ − σ₁| after 50 steps (must not converge)", ctrl,
                                     bool(ctrl <= 1e-8)),
                       {"power rate / theory": rate / rate_th}, fig)
