"""Convention profiles: what an implementation declares it computes (CONVENTIONS.md §1, §4, §5).

A :class:`Profile` holds every convention field of CONVENTIONS.md §1 as data. The harness never
infers a field: the expected output of a target is computed from the exact mathematics of
MATH.md under the declared profile (``conformance.expected``), and the tolerances come from the
declared compute dtype (``conformance.tolerances``).

Field vocabulary (values in brackets):

* orthogonaliser: ``schedule`` (a name of ``reference.SCHEDULES``, ``"exact"`` for an SVD msign,
  or ``None``), ``exact_form`` [msign, polar] (schedule 'exact': msign, or a polar factor
  completed to a full isometry on the null space, MATH §2.3), ``coefficients`` (explicit (a, b, c) tuples overriding the named schedule),
  ``steps``, ``extension`` [repeat_last, cycle], ``normalisation`` [frobenius_per_matrix,
  frobenius_whole_tensor], ``eps_form`` [+eps, clamp, none], ``eps``, ``safety`` (input factor s),
  ``coefficient_safety`` (Polar Express "stable" factor, already folded into the schedule),
  ``cast_point`` [cast_then_normalise, normalise_then_cast, stochastic_rounding, none],
  ``compute_dtype`` [bfloat16, float16, float32, float64, input], ``return_dtype`` [input,
  bfloat16, float32, compute], ``transpose_rule`` [tall, wide, right_multiply, none],
  ``weight_layout`` [torch, flax], ``ndim_handling`` [2d_only, batched, flatten];
* optimizer: ``rule`` [muon, macro, muonh, sso, none] (sso: spectral sphere, Φ = msign(M̂ + λΘ)
  with the tangent multiplier λ, retract-then-step to σ_max = R, MATH §9.4), ``momentum_form`` [ema, accumulate,
  bias_corrected_ema, none], ``momentum``, ``nesterov_form`` [none, ema, accumulate,
  bias_corrected, grad_plus_ema (U = G + M_t, HeavyBall)], ``shape_scale`` [none, kj, moonlight, spectral_mup, spectral, unit],
  ``scale`` (extra constant factor s of MACRO), ``weight_decay_coupling`` [decoupled_raw_lr,
  decoupled_adjusted_lr, added_to_update, before_radius, none], ``weight_decay``, ``lr``;
* manifold: ``manifolds`` (tuple of :class:`ManifoldDecl`), ``direction_tangent`` (the declared
  direction lies in the tangent space), ``radius_source`` [declared (the radius of
  ``manifolds[0]``, whatever the starting weights), init (the norm of the weights the optimizer
  is constructed on: MuonH, MACRO radius='init')]; ``update_dtype`` [parameter (the shape scale and
  lr meet the orthogonaliser's output in the parameter dtype, e.g. ``p.add_(O, alpha=-lr·s)``),
  return (the update s·O is formed in the orthogonaliser's return dtype first, e.g. KJ's bf16
  ``update *= scale``: one more rounding of that dtype)], ``tensor_params`` [unsupported, refuse,
  flatten ((shape[0], −1) view of a 3-D/4-D parameter, shape scale of the view), flatten_4d (4-D only)],
  ``vector_params`` [unsupported (no claim), refuse (an error at construction or step, the vector
  unchanged), adamw (an element-wise Adam-type rule: first step −a·G/(|G| + ε)), sgd (the rule's
  momentum/Nesterov update U applied unorthogonalised, W − lr·U), ns (the rule on the (n, 1) view),
  skip (left untouched)]: how a 1-D parameter (bias, gain) in an optimizer group is stepped;
  ``adam_eps`` (vector_params='adamw': ε of the first step −a·G/(|G| + ε); None = undeclared);
  ``theta_source`` [undeclared, exact] (rule='sso': the top singular pair Θ of W);
  ``prenormalize`` [False, True] (rule='macro': U ← U/max(‖U‖_F, 1e-8) before the projection);
* ``mutation`` (which state a step writes, documentation only: a write into an input or into
  ``p.grad`` is a failure whatever is declared here), ``precision_dependencies``,
  ``nan_policy`` [propagate, raise, nan_to_num], ``zero_policy`` [zero, nan, raise, identity],
  ``routing`` (text), ``scale_range`` (‖G‖_F range over which scale invariance is promised;
  default None = the input dtype's whole finite range; it never exempts a silent wrong output).

A built-in profile of a third-party package declares **conventions** (schedule, eps form, scale,
momentum form, axis, radius), never defects: a defect of the package is a FAIL of its target
(docs/conformance.md, "Verdicts"); a user accepts one for their CI with a waiver file.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from manifold_oracle.reference.errors import InvalidInputError
from manifold_oracle.reference.kinds import KINDS, canonical_kind, manifold_from_kind


__all__ = ["ManifoldDecl", "Profile", "PROFILES", "PROFILES_REGISTRY", "get_profile", "register_profile",
           "OTHER_RETRACTION", "declarable_retractions"]

Coeffs = tuple[tuple[float, float, float], ...]


#: a declared retraction the reference has no formula for (any kind): the harness then checks
#: feasibility and the declared order only; geometry.retraction.value is N/A with this reason
OTHER_RETRACTION = "other"


def declarable_retractions(canon: str) -> tuple[str, ...]:
    """Retraction names a ManifoldDecl of canonical kind ``canon`` may declare: the reference
    class's ``retractions``, ``"cayley"`` on Stiefel/O(n) (reference ``Stiefel.cayley``) and
    ``"other"``."""
    cls = KINDS[canon].cls
    extra = ("cayley",) if hasattr(cls, "cayley") else ()
    return tuple(cls.retractions) + extra + (OTHER_RETRACTION,)


@dataclass(frozen=True)
class ManifoldDecl:
    """One manifold an adapter implements, as declared conventions.

    ``kind``: frobenius_sphere | spectral_sphere | oblique | stiefel | sphere (vector) |
    euclidean. ``axis`` (oblique): rows | cols. ``radius`` (spheres, oblique) or Stiefel scale.
    ``retraction``: the reference retraction name it implements (``declarable_retractions``:
    the reference class's names, "cayley" on Stiefel, "other"); ``retraction_order``: 1 or 2
    (the tangent part of R(tξ) − W − tξ is O(t^{order+1})). ``name`` is how the adapter calls it.
    ``dtype``: the dtype the adapter computes in (float64 for numpy libraries).
    ``extra_dtypes``, ``transport``, ``unsupported``: see the fields (geometry capabilities).
    """

    name: str
    kind: str
    axis: str | None = None
    radius: float = 1.0
    retraction: str = "projection"
    retraction_order: int = 2
    dtype: str = "float64"
    shapes: tuple[tuple[int, int], ...] = ((6, 4), (4, 6))
    #: dtypes besides float64 and ``dtype`` in which the geometry capabilities (dist, log, exp,
    #: project_point, riemannian_gradient, transport) are checked
    extra_dtypes: tuple[str, ...] = ()
    #: the declared vector transport: "projection" (P_Y(ξ)) or "parallel" (along the geodesic)
    transport: str = "projection"
    #: geometry capabilities the target does not provide for this manifold (checks are N/A for it,
    #: with this declaration as the reason)
    unsupported: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Refuse nonsense declarations at construction (InvalidInputError naming field and value)."""
        _text("ManifoldDecl", "name", self.name, nonempty=True)
        who = f"manifold {self.name!r}"
        try:
            canon = canonical_kind(self.kind, self.axis)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{who}: {exc}") from None
        _real(who, "radius", self.radius, 0.0, low_open=True)
        allowed = declarable_retractions(canon)
        if not isinstance(self.retraction, str) or self.retraction not in allowed:
            raise InvalidInputError(f"{who}: retraction={self.retraction!r} is not a retraction of {canon} "
                                    f"(known: {allowed})")
        _int(who, "retraction_order", self.retraction_order, allowed=(1, 2))
        if self.dtype not in DTYPE_NAMES:
            raise InvalidInputError(f"{who}: dtype={self.dtype!r} not in {DTYPE_NAMES}")
        ok = isinstance(self.shapes, (tuple, list)) and len(self.shapes) > 0
        for shp in self.shapes if ok else ():
            ok = ok and isinstance(shp, (tuple, list)) and len(shp) == 2 and all(
                isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in shp)
        if not ok:
            raise InvalidInputError(f"{who}: shapes={self.shapes!r} must be a non-empty tuple of (m, n) "
                                    "with integers m, n >= 1")
        _seq(who, "extra_dtypes", self.extra_dtypes, DTYPE_NAMES)
        if self.transport not in TRANSPORTS:
            raise InvalidInputError(f"{who}: transport={self.transport!r} not in {TRANSPORTS}")
        _seq(who, "unsupported", self.unsupported, GEOMETRY_CAPABILITIES)

    def reference(self, point_tol: float = 1e-8) -> Any:
        """The reference manifold of ``reference.manifolds`` with these conventions.

        ``point_tol``: how far off the manifold an input point may be (1e-8 for float64 points;
        the harness passes 1e-4 for points held in fp32/bf16 and measures feasibility itself).
        """
        return manifold_from_kind(self.kind, self.radius, axis=self.axis, point_tol=point_tol)

    @property
    def canonical_kind(self) -> str:
        """The canonical kind of ``reference.kinds`` (``oblique`` + axis → oblique_rows/cols)."""
        return canonical_kind(self.kind, self.axis)


#: allowed values of every enumerated Profile field (``manifold-oracle profiles --fields``)
FIELD_CHOICES: dict[str, tuple[Any, ...]] = {
        "extension": ("repeat_last", "cycle"),
        "exact_form": ("msign", "polar"),
        "normalisation": ("frobenius_per_matrix", "frobenius_whole_tensor"),
        "eps_form": ("+eps", "clamp", "none"),
        "cast_point": ("cast_then_normalise", "normalise_then_cast", "stochastic_rounding", "none"),
        "compute_dtype": ("bfloat16", "float16", "float32", "float64", "input"),
        "return_dtype": ("input", "bfloat16", "float32", "float64", "compute"),
        "transpose_rule": ("tall", "wide", "right_multiply", "none"),
        "weight_layout": ("torch", "flax"),
        "ndim_handling": ("2d_only", "batched", "flatten"),
        "rule": ("none", "muon", "macro", "muonh", "sso"),
        "radius_source": ("declared", "init"),
        "update_dtype": ("parameter", "return"),
        "tensor_params": ("unsupported", "refuse", "flatten", "flatten_4d"),
        "vector_params": ("unsupported", "refuse", "adamw", "sgd", "ns", "skip"),
        "momentum_form": ("none", "ema", "accumulate", "bias_corrected_ema"),
        "nesterov_form": ("none", "ema", "accumulate", "bias_corrected", "grad_plus_ema"),
        "shape_scale": ("none", "kj", "moonlight", "spectral_mup", "spectral", "unit"),
        "weight_decay_coupling": ("none", "decoupled_raw_lr", "decoupled_adjusted_lr",
                                  "added_to_update", "before_radius"),
        "nan_policy": ("propagate", "raise", "nan_to_num"),
        "zero_policy": ("zero", "nan", "raise", "identity"),
        "theta_source": ("undeclared", "exact"),
        "prenormalize": (False, True),
}

#: dtype names a profile or manifold may declare: the compute dtypes (each has a unit roundoff in
#: ``tolerances.UNIT_ROUNDOFF``; not imported from there: tolerances needs expected, which needs profiles)
DTYPE_NAMES: tuple[str, ...] = tuple(d for d in FIELD_CHOICES["compute_dtype"] if d != "input")
#: geometry capabilities a :class:`ManifoldDecl` may list as ``unsupported`` (checks/geometry.py)
GEOMETRY_CAPABILITIES: tuple[str, ...] = ("dist", "log", "exp", "project_point", "riemannian_gradient",
                                          "transport")
#: ``ManifoldDecl.transport`` values
TRANSPORTS: tuple[str, ...] = ("projection", "parallel")


def _real(owner: str, fname: str, value: Any, low: float, *, low_open: bool = False,
          high: float = math.inf, high_open: bool = True) -> None:
    """Refuse a non-number (str, bool, None), NaN/±Inf, or a value outside the interval."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise InvalidInputError(f"{owner}: {fname}={value!r} must be a finite real number in {span}")


def _int(owner: str, fname: str, value: Any, allowed: tuple[int, ...] | None = None, low: int = 1) -> None:
    """Refuse a non-integer (float, bool, str) or one below ``low`` / outside ``allowed``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and (value not in allowed if allowed is not None else value < low):
        ok = False
    if not ok:
        want = f"one of {allowed}" if allowed is not None else f"an integer >= {low}"
        raise InvalidInputError(f"{owner}: {fname}={value!r} must be {want}")


def _seq(owner: str, fname: str, value: Any, allowed: tuple[str, ...] | None = None,
         nonempty: bool = False) -> None:
    """A tuple/list of strings (each in ``allowed`` if given; at least one if ``nonempty``)."""
    ok = isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)
    if ok and allowed is not None:
        ok = all(v in allowed for v in value)
    if not ok or (nonempty and not value):
        what = f"names from {allowed}" if allowed is not None else "strings"
        raise InvalidInputError(f"{owner}: {fname}={value!r} must be a {'non-empty ' if nonempty else ''}"
                                f"tuple of {what}")


def _text(owner: str, fname: str, value: Any, nonempty: bool = False) -> None:
    if not isinstance(value, str) or (nonempty and not value):
        raise InvalidInputError(f"{owner}: {fname}={value!r} must be a {'non-empty ' if nonempty else ''}string")


@dataclass(frozen=True)
class Profile:
    """Declared conventions of one implementation (every CONVENTIONS.md §1 field).

    Every field is validated at construction (and by :meth:`with_options`): an enumerated field
    outside :data:`FIELD_CHOICES`, a NaN/Inf/out-of-range number, a non-integer ``steps`` or a
    malformed tuple raises :class:`InvalidInputError` naming the field and the value."""

    name: str
    description: str = ""
    source: str = ""
    # --- orthogonaliser (Newton–Schulz-type or exact)
    schedule: str | None = None
    exact_form: str = "msign"
    coefficients: Coeffs | None = None
    steps: int = 5
    extension: str = "repeat_last"
    normalisation: str = "frobenius_per_matrix"
    eps_form: str = "none"
    eps: float = 0.0
    safety: float = 1.0
    coefficient_safety: float | None = None
    cast_point: str = "cast_then_normalise"
    compute_dtype: str = "input"
    return_dtype: str = "input"
    transpose_rule: str = "tall"
    weight_layout: str = "torch"
    ndim_handling: str = "2d_only"
    # --- optimizer
    rule: str = "none"
    momentum_form: str = "none"
    momentum: float = 0.0
    nesterov_form: str = "none"
    shape_scale: str = "none"
    scale: float = 1.0
    weight_decay_coupling: str = "none"
    weight_decay: float = 0.0
    lr: float = 0.02
    param_dtypes: tuple[str, ...] = ("float32",)
    # --- manifolds
    manifolds: tuple[ManifoldDecl, ...] = ()
    direction_tangent: bool = False
    # --- behaviour
    mutation: tuple[str, ...] = ()
    precision_dependencies: tuple[str, ...] = ()
    radius_source: str = "declared"
    update_dtype: str = "parameter"
    tensor_params: str = "unsupported"
    vector_params: str = "unsupported"
    #: vector_params='adamw': the ε of the element-wise rule's first step from zero moments,
    #: −a·G/(|G| + ε) (torch AdamW and optax adam add ε to √v̂: ε itself); None = undeclared (the
    #: check then judges with the loose sign-like model and says "reduced power")
    adam_eps: float | None = None
    #: vector_params='adamw': the step size a of that first step, −a·G/(|G| + ε) with Adam's bias
    #: correction (a = the element-wise rule's learning rate): a number, "lr" (the lr the optimizer
    #: is constructed with, e.g. optax muon's adam) or None (undeclared: only the spread of a over
    #: the entries is judged, so a step scaled as a whole, e.g. a missing bias correction, passes)
    adam_lr: float | str | None = None
    #: rule='sso': where the optimizer's top singular pair Θ = u₁v₁ᵀ of W comes from — "exact"
    #: (an SVD, as the harness computes it) or "undeclared" (e.g. SSO's fixed-step power iteration:
    #: the replayed step is then judged with the orthogonaliser's worst-case bound)
    theta_source: str = "undeclared"
    #: rule='macro': the momentum input U is divided by max(‖U‖_F, 1e-8) before the projection
    #: (gpu_impl/reference MACRO's documented ``prenormalize`` option; exact msign: no change)
    prenormalize: bool = False
    nan_policy: str = "propagate"
    zero_policy: str = "zero"
    routing: str = "every 2-D parameter"
    scale_range: tuple[float, float] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        choices: Mapping[str, tuple[Any, ...]] = FIELD_CHOICES
        for fname, allowed in choices.items():
            if getattr(self, fname) not in allowed:
                raise InvalidInputError(f"profile {self.name!r}: {fname}={getattr(self, fname)!r} "
                                        f"not in {allowed}")
        self._check_values()
        if self.schedule is not None and self.schedule != "exact":
            from manifold_oracle.reference import SCHEDULES

            if self.schedule not in SCHEDULES and self.coefficients is None:
                raise InvalidInputError(f"profile {self.name!r}: unknown schedule {self.schedule!r}")

    def _check_values(self) -> None:
        """Types and numeric sanity of every non-enumerated field (InvalidInputError naming the
        field and the value): finite numbers in their ranges, integer steps, (a, b, c) coefficient
        tuples, known dtypes, :class:`ManifoldDecl` manifolds, an increasing scale_range."""
        _text("Profile", "name", self.name, nonempty=True)
        who = f"profile {self.name!r}"
        for fname in ("description", "source", "routing"):
            _text(who, fname, getattr(self, fname))
        if self.schedule is not None:
            _text(who, "schedule", self.schedule, nonempty=True)
        if self.coefficients is not None:
            c = self.coefficients
            if not (isinstance(c, (tuple, list)) and len(c) > 0 and all(
                    isinstance(t, (tuple, list)) and len(t) == 3 and all(
                        isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x) for x in t)
                    for t in c)):
                raise InvalidInputError(f"{who}: coefficients={c!r} must be a non-empty tuple of (a, b, c) "
                                        "tuples of finite real numbers")
        _int(who, "steps", self.steps)
        _real(who, "eps", self.eps, 0.0)
        _real(who, "safety", self.safety, 1.0)  # reference.Schedule: s >= 1
        if self.coefficient_safety is not None:
            _real(who, "coefficient_safety", self.coefficient_safety, 0.0, low_open=True)
        _real(who, "momentum", self.momentum, 0.0, high=1.0)  # β ∈ [0, 1)
        _real(who, "scale", self.scale, 0.0, low_open=True)
        _real(who, "weight_decay", self.weight_decay, 0.0)
        _real(who, "lr", self.lr, 0.0, low_open=True)
        if self.adam_eps is not None:  # None: undeclared
            _real(who, "adam_eps", self.adam_eps, 0.0)
        if self.adam_lr is not None and self.adam_lr != "lr":  # "lr": the optimizer's own; None: undeclared
            _real(who, "adam_lr", self.adam_lr, 0.0, low_open=True)
        _seq(who, "param_dtypes", self.param_dtypes, DTYPE_NAMES, nonempty=True)
        if not (isinstance(self.manifolds, (tuple, list)) and all(isinstance(m, ManifoldDecl) for m in self.manifolds)):
            raise InvalidInputError(f"{who}: manifolds={self.manifolds!r} must be a tuple of ManifoldDecl")
        if self.rule in ("macro", "sso") and self.manifolds:
            decl = self.manifolds[0]
            steps = KINDS[canonical_kind(decl.kind, decl.axis)].cls.retractions
            if decl.retraction not in steps:  # "cayley", "other": geometry declarations only
                raise InvalidInputError(f"{who}: the expected {self.rule} steps retract with the reference's "
                                        f"{steps}; manifold {decl.name!r} declares retraction={decl.retraction!r}, "
                                        "which only geometry targets (rule='none') can declare")
        if not isinstance(self.direction_tangent, bool):
            raise InvalidInputError(f"{who}: direction_tangent={self.direction_tangent!r} must be True or False")
        if not isinstance(self.prenormalize, bool):
            raise InvalidInputError(f"{who}: prenormalize={self.prenormalize!r} must be True or False")
        if self.prenormalize and self.rule != "macro":
            raise InvalidInputError(f"{who}: prenormalize=True is MACRO's option (rule='macro'), not "
                                    f"rule={self.rule!r}")
        for fname in ("mutation", "precision_dependencies", "notes"):
            _seq(who, fname, getattr(self, fname))
        if self.scale_range is not None:
            r = self.scale_range
            ok = isinstance(r, (tuple, list)) and len(r) == 2 and all(
                isinstance(x, numbers.Real) and not isinstance(x, bool) for x in r)
            if not (ok and math.isfinite(r[0]) and 0 <= r[0] < r[1]):  # NaN fails every comparison
                raise InvalidInputError(f"{who}: scale_range={r!r} must be (lo, hi) with finite lo >= 0 and "
                                        "hi > lo (hi may be inf)")
        if self.has_ns:
            try:
                self.ns_schedule()  # reference.Schedule validates the combination (e.g. steps <= MAX_STEPS)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{who}: {exc}") from None

    # ------------------------------------------------------------------ derived helpers
    @property
    def has_ns(self) -> bool:
        return self.schedule is not None and self.schedule != "exact"

    def ns_schedule(self) -> Any:
        """The declared ``reference.Schedule`` (with this profile's steps/eps/safety/extension)."""
        from manifold_oracle.reference import Schedule, get_schedule

        if not self.has_ns:
            raise InvalidInputError(f"profile {self.name!r} declares no Newton–Schulz schedule")
        if self.coefficients is not None:
            base = Schedule(f"{self.name}-coefficients", tuple(self.coefficients), self.steps,
                            self.extension, self.safety, self.eps, self.eps_form, self.source)
            return base
        return get_schedule(self.schedule).with_options(
            steps=self.steps, extension=self.extension, safety=self.safety, eps=self.eps,
            eps_form=self.eps_form)

    def with_options(self, **changes: Any) -> "Profile":
        """A copy with fields replaced (used by ``--profile`` overrides and by meta-tests)."""
        try:
            return replace(self, **changes)
        except TypeError as exc:  # an unknown field name
            raise InvalidInputError(f"profile {self.name!r} options: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


# ------------------------------------------------------------------------------- the profiles
_KJ_COEFFS = "keller_jordan"

_PROFILES: dict[str, Profile] = {}
#: every registered profile by name (read it through :data:`PROFILES`)
PROFILES_REGISTRY = _PROFILES


def register_profile(p: Profile) -> Profile:
    """Add a profile to :data:`PROFILES` (names are unique)."""
    if not isinstance(p, Profile):
        raise InvalidInputError(f"register_profile needs a Profile, got {type(p).__name__} {p!r}")
    if p.name in _PROFILES:
        raise InvalidInputError(f"profile {p.name!r} already registered")
    _PROFILES[p.name] = p
    return p


def get_profile(name: str | Profile) -> Profile:
    """Resolve a profile name (or pass a :class:`Profile` through)."""
    if isinstance(name, Profile):
        return name
    try:
        return _PROFILES[name]
    except KeyError:
        raise InvalidInputError(f"unknown profile {name!r}; known: {sorted(_PROFILES)}") from None


register_profile(Profile(
    name="kj_muon", description="KellerJordan/Muon SingleDeviceMuon (muon-optimizer 0.1.0)",
    source="CONVENTIONS.md §4.1, §5; MATH.md §9.2", schedule="keller_jordan", steps=5,
    eps_form="+eps", eps=1e-7, cast_point="cast_then_normalise", compute_dtype="bfloat16",
    return_dtype="bfloat16", transpose_rule="tall", ndim_handling="batched", rule="muon",
    momentum_form="ema", momentum=0.95, nesterov_form="ema", shape_scale="kj",
    weight_decay_coupling="decoupled_raw_lr", weight_decay=0.0, lr=0.02,
    param_dtypes=("float32", "bfloat16"), update_dtype="return",
    tensor_params="flatten_4d",  # muon_update: `if update.ndim == 4: update.view(len(update), -1)`
    vector_params="refuse",  # zeropower_via_newtonschulz5: `assert G.ndim >= 2` (AssertionError at step)
    mutation=("momentum_buffer",),
    nan_policy="propagate", zero_policy="zero", routing="hidden 2-D (and 4-D viewed as (out, rest))",
))
register_profile(Profile(
    name="torch_muon", description="torch.optim.Muon (PyTorch >= 2.9)",
    source="CONVENTIONS.md §4.2, §5", schedule="keller_jordan", steps=5, eps_form="clamp",
    eps=1e-7, cast_point="cast_then_normalise", compute_dtype="bfloat16", return_dtype="bfloat16",
    transpose_rule="tall", ndim_handling="2d_only", rule="muon", momentum_form="ema",
    momentum=0.95, nesterov_form="ema", shape_scale="kj", weight_decay_coupling="decoupled_raw_lr",
    weight_decay=0.1, lr=1e-3, param_dtypes=("float32", "bfloat16"), mutation=("momentum_buffer",),
    nan_policy="propagate", zero_policy="zero", routing="2-D parameters only (constructor raises otherwise)",
    tensor_params="refuse",
    vector_params="refuse",  # torch/optim/_muon.py __init__: `if p.ndim != 2: raise ValueError`
))
register_profile(Profile(
    name="moonlight", description="MoonshotAI/Moonlight toy_train Muon (re-implemented profile)",
    source="CONVENTIONS.md §4.3", schedule="keller_jordan", steps=5, eps_form="+eps", eps=1e-7,
    compute_dtype="bfloat16", return_dtype="bfloat16", rule="muon", momentum_form="accumulate",
    momentum=0.95, nesterov_form="accumulate", shape_scale="moonlight",
    weight_decay_coupling="decoupled_raw_lr", weight_decay=0.1, lr=1e-3,
))
register_profile(Profile(
    name="dion_polar_express", description="microsoft/dion Muon, polar_express orthogonaliser",
    source="CONVENTIONS.md §4.4", schedule="polar_express_dion", steps=5, eps_form="+eps",
    eps=1e-6, safety=1.02, compute_dtype="bfloat16", return_dtype="bfloat16",
    transpose_rule="right_multiply", ndim_handling="batched", rule="muon",
    momentum_form="accumulate", momentum=0.95, nesterov_form="none", shape_scale="spectral_mup",
    weight_decay_coupling="decoupled_raw_lr", weight_decay=0.01, lr=0.01,
))
register_profile(Profile(
    name="thinky_msign", description="thinking-machines-lab/manifolds msign (10 steps, stable PE)",
    source="CONVENTIONS.md §4.6", schedule="polar_express_stable", steps=10, eps_form="none",
    safety=1.01, coefficient_safety=1.01, compute_dtype="bfloat16", return_dtype="float32",
    nan_policy="nan_to_num", zero_policy="zero",
))
register_profile(Profile(
    name="eo_newton_schulz", description="NVIDIA-NeMo Emerging-Optimizers newton_schulz quintic",
    source="CONVENTIONS.md §4.8", schedule="you_jiacheng_5", steps=5, eps_form="clamp", eps=1e-15,
    compute_dtype="float32", return_dtype="float32", ndim_handling="batched",
    precision_dependencies=("torch.get_float32_matmul_precision() == 'medium' -> bf16",),
))
register_profile(Profile(
    name="heavyball_ns5", description="HomebrewML/HeavyBall zeropower_via_newtonschulz5",
    source="CONVENTIONS.md §4.10", schedule="you_jiacheng_5", steps=5, eps_form="clamp", eps=1e-7,
    cast_point="stochastic_rounding", compute_dtype="bfloat16", return_dtype="input",
))
register_profile(Profile(
    name="optax_muon", description="optax.contrib scale_by_muon (flax layout)",
    source="CONVENTIONS.md §4.11", schedule="keller_jordan", steps=5, eps_form="+eps", eps=1e-8,
    cast_point="none", compute_dtype="input", return_dtype="input", weight_layout="flax",
    rule="muon", momentum_form="bias_corrected_ema", momentum=0.95, nesterov_form="bias_corrected",
    shape_scale="kj", weight_decay_coupling="added_to_update",
    vector_params="adamw",  # optax/contrib/_muon.py muon(): `'muon' if x.ndim == 2 else 'adam'` (adamw)
    # muon(eps=1e-8, adam_eps_root=0.0) passes eps to alias.adamw: scale_by_adam's m̂/(√(v̂ + 0) + ε)
    adam_eps=1e-8,
    # adam_lr undeclared: muon(nesterov=True) passes nesterov to its adamw, so the 1-D step is NAdam's,
    # whose first step is (1 + β₁/(1 + β₁))·lr = 1.4737·lr (measured 1.47368 through this adapter;
    # 1.0 with nesterov=False): "lr" cannot express it, so only the spread is judged
))
register_profile(Profile(
    name="modula_ns6", description="Modula orthogonalize (NS6, no eps, transposes wide inputs)",
    source="CONVENTIONS.md §4.13", schedule="modula_ns6", steps=6, eps_form="none",
    compute_dtype="input", transpose_rule="wide", zero_policy="nan",
))
register_profile(Profile(
    name="scipy_polar", description="scipy.linalg.polar (side='right'), float64 SVD-based",
    source="CONVENTIONS.md §11; MATH.md §2.3", schedule="exact", compute_dtype="float64",
    return_dtype="float64", ndim_handling="2d_only", zero_policy="identity", nan_policy="raise",
    notes=("polar(0) returns a full isometry (MATH §2.3); the harness checks polar_factor only",),
))
register_profile(Profile(
    name="geoopt", description="geoopt 0.5.1: Sphere (last dim = row-oblique on a matrix) and "
    "EuclideanStiefel (projection u − x·sym(xᵀu), QR retraction with sign fix)",
    source="CONVENTIONS.md §4.14", compute_dtype="float64", return_dtype="input",
    manifolds=(ManifoldDecl("Sphere", "oblique", axis="rows", radius=1.0, retraction="normalize",
                            retraction_order=2, extra_dtypes=("float32",)),
               ManifoldDecl("Stiefel", "stiefel", radius=1.0, retraction="qr", retraction_order=1,
                            shapes=((7, 3), (5, 5)), extra_dtypes=("float32",),
                            unsupported=("dist", "log"))),
))
register_profile(Profile(
    name="pymanopt", description="pymanopt 2.2.1: Sphere(*shape) Frobenius, Oblique(m, n) unit "
    "columns, Stiefel(n, p) with qr/polar retraction (numpy, float64)",
    source="CONVENTIONS.md §4.14", compute_dtype="float64", return_dtype="float64",
    manifolds=(ManifoldDecl("Sphere", "frobenius_sphere", radius=1.0, retraction="rescale",
                            retraction_order=2),
               ManifoldDecl("Oblique", "oblique", axis="cols", radius=1.0, retraction="normalize",
                            retraction_order=2),
               ManifoldDecl("Stiefel(qr)", "stiefel", radius=1.0, retraction="qr", retraction_order=1,
                            shapes=((7, 3), (5, 5)), unsupported=("dist", "log")),
               ManifoldDecl("Stiefel(polar)", "stiefel", radius=1.0, retraction="polar",
                            retraction_order=2, shapes=((7, 3), (5, 5)), unsupported=("dist", "log"))),
))


#: read-only view of the registered profiles
from types import MappingProxyType as _MP  # noqa: E402

PROFILES = _MP(_PROFILES)


# ------------------------------------------------------------------------------ gpu_impl (ours)
def _gpu_manifolds(first: str) -> tuple[ManifoldDecl, ...]:
    decls = {
        "frobenius": ManifoldDecl("frobenius", "frobenius_sphere", radius=1.0, retraction="rescale",
                                  retraction_order=2),
        "spectral": ManifoldDecl("spectral", "spectral_sphere", radius=1.0, retraction="rescale",
                                 retraction_order=1),
        "oblique_rows": ManifoldDecl("oblique_rows", "oblique", axis="rows", radius=1.0,
                                     retraction="normalize", retraction_order=2),
        "oblique_cols": ManifoldDecl("oblique_cols", "oblique", axis="cols", radius=1.0,
                                     retraction="normalize", retraction_order=2),
        "stiefel": ManifoldDecl("stiefel", "stiefel", radius=1.0, retraction="polar", retraction_order=2,
                                shapes=((7, 3), (3, 7), (5, 5)), unsupported=("dist", "log")),
    }
    return (decls[first],) + tuple(d for k, d in decls.items() if k != first)


def _gpu_macro(name: str, first: str, *, schedule: str = "keller_jordan", compute: str = "bfloat16",
               dtypes: tuple[str, ...] = ("float32",), description: str = "") -> Profile:
    return Profile(
        name=name, description=description or f"gpu_impl MACRO (variant A) on the {first} manifold",
        source="MATH.md §7.1 (reconstructed default); gpu_impl/optim/macro.py", schedule=schedule,
        steps=5, eps_form="+eps" if schedule == "keller_jordan" else "none",
        eps=1e-7 if schedule == "keller_jordan" else 0.0, cast_point="cast_then_normalise",
        compute_dtype=compute, return_dtype="input", transpose_rule="tall", ndim_handling="batched",
        rule="macro", momentum_form="ema", momentum=0.95, nesterov_form="none", shape_scale="none",
        scale=1.0, weight_decay_coupling="none", lr=0.02, param_dtypes=dtypes,
        manifolds=_gpu_manifolds(first), direction_tangent=True,
        mutation=("momentum_buffer", "parameters (moved onto the manifold at construction, documented)"),
        nan_policy="raise", zero_policy="zero", routing="2-D parameters of constrained groups; rest AdamW",
        vector_params="adamw",  # gpu_impl/optim/_base.py: non-2-D parameters → the internal AdamW
        adam_eps=1e-8,  # _base.py ADAMW_DEFAULTS adamw_eps; torch.optim.adamw adds it to √v̂
        adam_lr=1e-3,  # _base.py ADAMW_DEFAULTS adamw_lr (the adapters do not set it)
    )


register_profile(_gpu_macro("gpu_impl", "frobenius",
                            description="gpu_impl MACRO on the Frobenius sphere, KJ×5 Newton–Schulz in bf16 "
                                        "(the default target)"))
register_profile(_gpu_macro("gpu_impl_exact", "frobenius", schedule="exact", compute="float64",
                            dtypes=("float64",),
                            description="gpu_impl MACRO on the Frobenius sphere with exact (SVD) msign, float64"))
register_profile(_gpu_macro("gpu_impl_spectral", "spectral", schedule="exact", compute="float64",
                            dtypes=("float64",),
                            description="gpu_impl MACRO on the spectral sphere with exact msign, float64 (Θ: "
                                        "its default certified top pair, bound √ε₆₄)"))
register_profile(_gpu_macro("gpu_impl_spectral_bf16", "spectral",
                            description="gpu_impl MACRO on the spectral sphere with its defaults: certified "
                                        "top pair Θ (angle bound √ε₃₂), KJ×5 Newton–Schulz in bf16, float32 "
                                        "parameters"))
register_profile(_gpu_macro("gpu_impl_oblique", "oblique_rows"))
register_profile(_gpu_macro("gpu_impl_stiefel", "stiefel", schedule="exact", compute="float64",
                            dtypes=("float64",)))
register_profile(_gpu_macro("gpu_impl_fp32ns", "frobenius", compute="float32", dtypes=("float32", "float64"),
                            description="gpu_impl MACRO on the Frobenius sphere, KJ×5 Newton–Schulz in fp32"))
register_profile(Profile(
    name="gpu_impl_muonh", description="gpu_impl MuonH (ArchScale form): YJ5 NS in bf16, accumulate "
    "momentum with accumulate-Nesterov, relative Frobenius step, radius = current norm",
    source="MATH.md §9.3; gpu_impl/optim/baselines.py", schedule="you_jiacheng_5", steps=5,
    eps_form="+eps", eps=1e-7, compute_dtype="bfloat16", return_dtype="input", ndim_handling="batched",
    rule="muonh", momentum_form="accumulate", momentum=0.95, nesterov_form="accumulate",
    shape_scale="none", weight_decay_coupling="before_radius", weight_decay=0.0, lr=0.02,
    param_dtypes=("float32",), mutation=("momentum_buffer",), nan_policy="raise", zero_policy="zero",
    radius_source="init", vector_params="adamw",  # gpu_impl/optim/_base.py: non-2-D → internal AdamW
    adam_eps=1e-8,  # _base.py ADAMW_DEFAULTS adamw_eps; torch.optim.adamw adds it to √v̂
    adam_lr=1e-3,  # _base.py ADAMW_DEFAULTS adamw_lr (the adapters do not set it)
    notes=("with weight_decay > 0 the radius shrinks by (1 − ηλ) per step (CONVENTIONS §10 #13)",),
))
register_profile(Profile(
    name="gpu_impl_sso", description="gpu_impl SSO: Φ = msign(M̂ + λΘ) with SSO's λ "
    "bracket-and-bisect (bracket from 0, step 1e-3, ≤ 10 doublings; on failure λ = 0, SSO's default), "
    "Polar Express (EO) 5 steps in fp32, retract-then-step to σ_max = R (R = 1 declared), the exact top "
    "pair Θ (theta='exact', as the harness computes it)", theta_source="exact",
    source="MATH.md §9.4; gpu_impl/optim/baselines.py SSO", schedule="polar_express_eo",
    steps=5, eps_form="clamp", eps=1e-15, compute_dtype="float32", return_dtype="input",
    ndim_handling="batched", param_dtypes=("float32",), rule="sso", momentum_form="ema", momentum=0.9,
    nesterov_form="none", shape_scale="moonlight", weight_decay_coupling="none", lr=0.02,
    mutation=("momentum_buffer", "parameters (rescaled onto the sphere at construction, documented)"),
    manifolds=(ManifoldDecl("spectral", "spectral_sphere", radius=1.0, retraction="rescale",
                            retraction_order=1),),
    direction_tangent=True, nan_policy="raise",
    vector_params="adamw",  # gpu_impl/optim/_base.py: non-2-D parameters → the internal AdamW
    adam_eps=1e-8,  # _base.py ADAMW_DEFAULTS adamw_eps; torch.optim.adamw adds it to √v̂
    adam_lr=1e-3,  # _base.py ADAMW_DEFAULTS adamw_lr (the adapters do not set it)
    notes=("the declared direction is the exact tangent LMO (⟨Θ, Φ⟩ = 0 up to the bisection tolerance)",),
))

# ------------------------------------------------------------------- third-party built-in targets
# pytorch_optimizer 4.1.0, HeavyBall 3.2.1, optax 0.2.8: the conventions each package documents or
# implements on purpose, read from its installed source (file cited in ``source``) and confirmed by
# measurement — never its defects (those are what the checks report; docs/conformance_matrix.md).
_PT = "pytorch_optimizer 4.1.0 "
#: zero_power_via_newton_schulz_5 (optimizer/utils/matrix.py): tall inputs transposed, cast to
#: bf16 (copy), ‖·‖_F clamped at eps = 1e-7, KJ coefficients repeated, bf16 result returned.
_PT_NS = dict(schedule="keller_jordan", steps=5, eps_form="clamp", eps=1e-7, cast_point="cast_then_normalise",
              compute_dtype="bfloat16", return_dtype="bfloat16", transpose_rule="tall", ndim_handling="batched")

register_profile(Profile(
    name="ptopt_muon", description=_PT + "Muon (use_muon=True group)",
    source="pytorch_optimizer/optimizer/muon/{muon,base}.py; utils/matrix.py zero_power_via_newton_schulz_5",
    **_PT_NS, rule="muon", momentum_form="ema", momentum=0.95, nesterov_form="ema", shape_scale="kj",
    weight_decay_coupling="decoupled_raw_lr", weight_decay=0.0, lr=0.02, param_dtypes=("float32", "bfloat16"),
    mutation=("momentum_buffer",), routing="use_muon=True groups; > 2-D weights viewed as (out, rest)",
    tensor_params="flatten",  # MuonBase._orthogonalize: reshape(size(0), -1); get_adjusted_lr: out/prod(rest)
    # a 1-D parameter of a use_muon group takes the same path: the (n, 1) view, lr·√max(1, n)
    vector_params="ns",
    notes=("get_adjusted_lr: lr·√max(1, out/in) (use_adjusted_lr=False, the default)",),
))
register_profile(Profile(
    name="ptopt_adamuon", description=_PT + "AdaMuon (orthogonaliser only; the adaptive rule is not modelled)",
    source="pytorch_optimizer/optimizer/muon/adamuon.py", **_PT_NS, rule="none", momentum_form="ema",
    momentum=0.9, lr=0.02, param_dtypes=("float32",), mutation=("momentum_buffer",),
    notes=("AdaMuon divides msign(M) element-wise by a second moment and rescales to RMS 0.2: no "
           "reference rule models it, so the optimizer step checks are not applicable (only msign and "
           "the safety checks run)",),
))
register_profile(Profile(
    name="ptopt_normuon", description=_PT + "NorMuon (orthogonaliser only; neuron-wise normalisation not modelled)",
    source="pytorch_optimizer/optimizer/muon/normuon.py", **_PT_NS, rule="none", momentum_form="ema",
    momentum=0.95, nesterov_form="ema", lr=0.02, param_dtypes=("float32",), mutation=("momentum_buffer",),
    notes=("NorMuon divides msign(U) row-wise by a second moment of its row means: no reference rule "
           "models it, so the optimizer step checks are not applicable",),
))
register_profile(Profile(
    name="ptopt_scion", description=_PT + "SCION with norm_type=LMONorm.SPECTRAL (unconstrained)",
    source="pytorch_optimizer/optimizer/scion.py (Spectral.lmo, SCION._step_per_param)", **_PT_NS,
    rule="muon", momentum_form="ema", momentum=0.9, nesterov_form="none", shape_scale="spectral_mup",
    scale=1.0, weight_decay_coupling="decoupled_raw_lr", weight_decay=0.0, lr=1e-3,
    param_dtypes=("float32",), mutation=("momentum_buffer",), routing="every parameter of the group",
    # Spectral.lmo: ``grad *= scale`` on the bf16 Newton–Schulz output, then p.add_(update, alpha=-lr)
    update_dtype="return",
    # Spectral.lmo calls the Newton–Schulz on the 1-D tensor: IndexError (a crash, no clear message)
    vector_params="refuse",
    notes=("the package's `momentum` is the weight of the new gradient (d.lerp_(g, momentum)): the "
           "adapter passes 1 − β",),
))
#: sso.msign: Polar Express coefficients rounded to 4 digits, x/max(‖x‖_F, 1e-7) in the input
#: dtype (F.normalize), then cast to bf16; tall inputs transposed.
_SSO_PE = ((8.2051, -22.9019, 16.4607), (4.0664, -2.8612, 0.5184), (3.9096, -2.8234, 0.5250),
           (3.2856, -2.4153, 0.4853), (2.2779, -1.6198, 0.3985), (1.8726, -1.2307, 0.3585),
           (1.8564, -1.2132, 0.3568), (1.8750, -1.2500, 0.3750))
register_profile(Profile(
    name="ptopt_spectral_sphere", description=_PT + "SpectralSphere (SSO: Φ = msign(M̂ + λΘ) on the spectral sphere)",
    source="pytorch_optimizer/optimizer/sso.py (msign, compute_spectral_ball_update, SpectralSphere.step)",
    schedule="polar_express", coefficients=_SSO_PE, steps=5, extension="repeat_last", eps_form="clamp",
    eps=1e-7, cast_point="normalise_then_cast", compute_dtype="bfloat16", return_dtype="bfloat16",
    transpose_rule="tall", ndim_handling="batched", rule="sso", momentum_form="ema", momentum=0.9,
    nesterov_form="ema", shape_scale="none", weight_decay_coupling="decoupled_raw_lr", weight_decay=0.0,
    lr=3e-4, param_dtypes=("float32",), radius_source="init",
    manifolds=(ManifoldDecl("spectral", "spectral_sphere", radius=1.0, retraction="rescale",
                            retraction_order=1),),
    mutation=("momentum_buffer",), routing="2-D parameters only (init_group raises otherwise)",
    vector_params="refuse",  # sso.py init_group: ValueError 'SpectralSphere only supports 2D parameters'
    notes=("the sphere is the one of the starting weights (radius_source='init'): the class is named "
           "SpectralSphere and implements SSO's tangent LMO; Θ comes from 10 bf16 power-iteration steps",),
))

_HB = "HeavyBall 3.2.1 (eager: heavyball.utils.compile_mode = None) "
#: zeropower_via_newtonschulz5 (utils.py): G/‖G‖_F.clamp(1e-7) in the input dtype, stochastic
#: rounding to bf16 (float64 inputs stay float64), You Jiacheng's 5 steps, result cast back.
_HB_NS = dict(schedule="you_jiacheng_5", steps=5, eps_form="clamp", eps=1e-7, cast_point="stochastic_rounding",
              compute_dtype="bfloat16", return_dtype="input", transpose_rule="tall", ndim_handling="batched")
#: HeavyBall clears p.grad after step() unless consume_grad=False (README); the adapters pass
#: consume_grad=False, the documented switch for loops that read gradients after a step
_HB_NOTE = "adapter passes consume_grad=False (README: by default step() clears p.grad)"
register_profile(Profile(
    name="heavyball_muon", description=_HB + "Muon (nesterov=True default)",
    source="heavyball/__init__.py Muon; chainable.py nesterov_ema, orthogonalize_update; utils.py "
           "nesterov_ema, zeropower_via_newtonschulz5, _compilable_update_",
    **_HB_NS, rule="muon", momentum_form="ema", momentum=0.9, nesterov_form="grad_plus_ema",
    shape_scale="kj", weight_decay_coupling="decoupled_raw_lr", weight_decay=0.0, lr=0.0025,
    param_dtypes=("float32",), mutation=("momentum_buffer",),
    routing="every ≥ 2-D parameter (flattened to (out, rest)); 1-D updates pass through",
    tensor_params="flatten",  # chainable.orthogonalize_update: update.flatten(1, -1), scale of the view
    vector_params="sgd",  # chainable.orthogonalize_update: `if update.dim() < 2: return update`
    notes=("orthogonaliser input G + M_t with M_t = βM + (1 − β)G (nesterov_ema, 'equivalent to Grokfast')",
           _HB_NOTE),
))
register_profile(Profile(
    name="heavyball_muon_svd", description=_HB + "Muon with heavyball.utils.zeroth_power_mode = 'svd' "
    "(declared: the exact polar factor U Vᵀ in fp32)",
    source="heavyball/utils.py _compilable_orthogonal_ (ZerothPowerMode.svd)", schedule="exact",
    # u @ vt of a full torch.linalg.svd: the polar factor (an isometry on rank-deficient input, any
    # orthogonal matrix for 0), not msign
    exact_form="polar", zero_policy="identity", compute_dtype="float32", return_dtype="input",
    transpose_rule="none", ndim_handling="batched",
    rule="muon", momentum_form="ema", momentum=0.9, nesterov_form="grad_plus_ema", shape_scale="kj",
    weight_decay_coupling="decoupled_raw_lr", weight_decay=0.0, lr=0.0025, param_dtypes=("float32",),
    mutation=("momentum_buffer",), notes=(_HB_NOTE,),
    vector_params="sgd",  # chainable.orthogonalize_update: `if update.dim() < 2: return update`
))
register_profile(Profile(
    name="heavyball_scion", description=_HB + "Scion (auto norm: spectral LMO for matrices)",
    source="heavyball/__init__.py Scion; chainable.py exp_avg, scion_auto_norm; utils.py scion_auto_lmo_, "
           "_scion_spectral_direction, beta_debias",
    **_HB_NS, rule="muon", momentum_form="bias_corrected_ema", momentum=0.9, nesterov_form="none",
    shape_scale="spectral_mup", scale=1.0, weight_decay_coupling="decoupled_raw_lr", weight_decay=0.0,
    lr=0.0025, param_dtypes=("float32",), mutation=("momentum_buffer",),
    routing="matrices: spectral LMO; 3-/4-D: unfolded spectral; vectors: RMS",
    notes=("exp_avg uses the debiased β_t = 1 − (1 − β)/(1 − βᵗ): the state equals the bias-corrected EMA",
           _HB_NOTE),
))
