"""The one table of manifold kinds: canonical name → reference class, its parameters, its aliases.

Every package names a manifold by a kind of this table (``gpu_impl`` builds its torch twin from
the canonical name, ``conformance`` maps a declared ``ManifoldDecl.kind`` onto the reference, the
golden corpus stores the class name); what a manifold *does* is a method of its class.

=====================  ===================  ================  ===============================
canonical kind         class                size parameter    aliases (accepted, user-facing)
=====================  ===================  ================  ===============================
``euclidean``          Euclidean            —                 ``Euclidean``
``sphere``             Sphere (vectors)     ``radius``        ``Sphere``, ``vector_sphere``
``frobenius_sphere``   FrobeniusSphere      ``radius``        ``frobenius``, ``FrobeniusSphere``
``spectral_sphere``    SpectralSphere       ``radius``        ``spectral``, ``SpectralSphere``
``oblique_rows``       Oblique(axis=rows)   ``radius``        ``oblique``/``Oblique`` + axis
``oblique_cols``       Oblique(axis=cols)   ``radius``        ``oblique``/``Oblique`` + axis
``stiefel``            Stiefel              ``scale``         ``Stiefel``
``orthogonal``         Orthogonal           —                 ``Orthogonal``
=====================  ===================  ================  ===============================

An unknown name raises :class:`InvalidInputError` listing the allowed ones. A new manifold is one
:func:`register_kind` call (or one entry below) next to its class; see docs/adding_a_manifold.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from .errors import InvalidInputError
from . import manifolds as mf
from .manifolds import Manifold

__all__ = [
    "ManifoldKind",
    "KINDS",
    "canonical_kind",
    "get_kind",
    "manifold_from_kind",
    "kind_of",
    "kind_params",
    "register_kind",
    "kind_names",
    "mup_radius",
]

#: the alias names whose axis comes from an ``axis`` argument ("rows" by default)
_AXIS_FAMILIES = {"oblique": "oblique", "Oblique": "oblique"}


@dataclass(frozen=True)
class ManifoldKind:
    """One entry of the table.

    ``size_param``: the constructor argument a generic ``radius`` maps to (None: the kind has no
    size and ``radius`` is ignored). ``params``: the constructor arguments that define an instance
    (its JSON spec, :func:`kind_params`). ``fixed``: arguments implied by the kind (Oblique's axis).
    """

    name: str
    cls: type[Manifold]
    size_param: str | None
    params: tuple[str, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    description: str = ""
    #: the μP radius R(d_out, d_in) of MATH.md §4.9 (MACRO's radius rule "mup"), None if undefined
    mup_radius: Callable[[int, int], float] | None = None

    def build(self, radius: Any = None, **params: Any) -> Manifold:
        """An instance: ``radius`` fills ``size_param``; ``params`` are constructor arguments."""
        kw = dict(params)
        for k, v in self.fixed.items():
            if k in kw and kw[k] != v:
                raise InvalidInputError(f"manifold kind {self.name!r} has {k}={v!r}, got {kw[k]!r}")
            kw[k] = v
        if radius is not None and self.size_param is not None:
            if self.size_param in kw:
                raise InvalidInputError(f"give either radius or {self.size_param}, not both")
            kw[self.size_param] = radius
        allowed = set(self.params) | {"point_tol"}
        unknown = sorted(set(kw) - allowed)
        if unknown:
            raise InvalidInputError(f"manifold kind {self.name!r} takes {sorted(allowed)}, got {unknown}")
        return self.cls(**kw)


KINDS: dict[str, ManifoldKind] = {}
_ALIASES: dict[str, str] = {}


def register_kind(kind: ManifoldKind) -> ManifoldKind:
    """Add a kind (canonical name and aliases must be new). Returns it."""
    names = (kind.name,) + tuple(kind.aliases)
    taken = [n for n in names if n in KINDS or n in _ALIASES or n in _AXIS_FAMILIES]
    if taken:
        raise InvalidInputError(f"manifold kind name(s) already taken: {taken}")
    KINDS[kind.name] = kind
    for a in kind.aliases:
        _ALIASES[a] = kind.name
    return kind


for _k in (
    ManifoldKind("euclidean", mf.Euclidean, None, (), aliases=("Euclidean",),
                 description="R^{m×n}, no constraint (MATH §4.1)"),
    ManifoldKind("sphere", mf.Sphere, "radius", ("radius",), aliases=("Sphere", "vector_sphere"),
                 description="vector sphere ‖w‖₂ = r on the last axis (MATH §4.2)"),
    ManifoldKind("frobenius_sphere", mf.FrobeniusSphere, "radius", ("radius",),
                 aliases=("frobenius", "FrobeniusSphere"), description="‖W‖_F = R (MATH §4.3)",
                 mup_radius=lambda d_out, d_in: math.sqrt(d_out)),
    ManifoldKind("spectral_sphere", mf.SpectralSphere, "radius", ("radius", "gap_tol", "degenerate"),
                 aliases=("spectral", "SpectralSphere"), description="‖W‖₂ = R (MATH §4.4)",
                 mup_radius=lambda d_out, d_in: math.sqrt(d_out / d_in)),
    ManifoldKind("oblique_rows", mf.Oblique, "radius", ("radius", "axis"), fixed=MappingProxyType({"axis": "rows"}),
                 description="every row has norm rᵢ (MATH §4.5)", mup_radius=lambda d_out, d_in: 1.0),
    ManifoldKind("oblique_cols", mf.Oblique, "radius", ("radius", "axis"), fixed=MappingProxyType({"axis": "cols"}),
                 description="every column has norm cⱼ (MATH §4.5)",
                 mup_radius=lambda d_out, d_in: math.sqrt(d_out / d_in)),
    ManifoldKind("stiefel", mf.Stiefel, "scale", ("scale",), aliases=("Stiefel",),
                 description="WᵀW = s²I (MATH §4.6)", mup_radius=lambda d_out, d_in: math.sqrt(d_out / d_in)),
    ManifoldKind("orthogonal", mf.Orthogonal, None, (), aliases=("Orthogonal",),
                 description="square O(n) (MATH §4.7)"),
):
    register_kind(_k)


def kind_names() -> tuple[str, ...]:
    """Every accepted name: canonical kinds, their aliases and ``oblique``/``Oblique``."""
    return tuple(KINDS) + tuple(_ALIASES) + tuple(_AXIS_FAMILIES)


def canonical_kind(name: str, axis: str | None = None) -> str:
    """The canonical kind of ``name`` (a kind or an alias; ``oblique`` takes ``axis``, default rows)."""
    if not isinstance(name, str):
        raise InvalidInputError(f"manifold kind must be a string, got {type(name).__name__}")
    if name in _AXIS_FAMILIES:
        ax = "rows" if axis is None else axis
        if ax not in ("rows", "cols"):
            raise InvalidInputError(f"axis must be 'rows' or 'cols', got {axis!r}")
        return f"{_AXIS_FAMILIES[name]}_{ax}"
    canon = name if name in KINDS else _ALIASES.get(name)
    if canon is None:
        raise InvalidInputError(f"unknown manifold kind {name!r}; known: {sorted(kind_names())}")
    fixed_axis = KINDS[canon].fixed.get("axis")
    if axis is not None and axis != fixed_axis:
        raise InvalidInputError(f"manifold kind {name!r} does not take axis={axis!r}")
    return canon


def get_kind(name: str, axis: str | None = None) -> ManifoldKind:
    """The table entry of ``name`` (see :func:`canonical_kind`)."""
    return KINDS[canonical_kind(name, axis)]


def mup_radius(name: str, d_out: int, d_in: int) -> float:
    """The μP radius of a kind for a (d_out, d_in) weight (MATH.md §4.9: √d_out on M_F;
    √(d_out/d_in) on M_S, OB_col and St; 1 on OB_row); InvalidInputError where undefined."""
    kind = get_kind(name)
    if kind.mup_radius is None:
        raise InvalidInputError(f"manifold kind {kind.name!r} has no μP radius rule")
    if int(d_out) < 1 or int(d_in) < 1:
        raise InvalidInputError(f"mup_radius needs positive dimensions, got {(d_out, d_in)}")
    return float(kind.mup_radius(int(d_out), int(d_in)))


def manifold_from_kind(name: str, radius: Any = None, *, axis: str | None = None, **params: Any) -> Manifold:
    """A reference manifold by kind name: ``radius`` is the kind's size (radius or Stiefel scale;
    ignored by sizeless kinds), ``params`` further constructor arguments (e.g. ``gap_tol``,
    ``point_tol``). Raises :class:`InvalidInputError` for an unknown name or argument."""
    return get_kind(name, axis).build(radius, **params)


def kind_of(manifold: Manifold) -> str:
    """The canonical kind of a reference manifold (a subclass maps to its nearest registered base)."""
    if not isinstance(manifold, Manifold):
        raise InvalidInputError(f"expected a reference Manifold, got {type(manifold).__name__}")
    for cls in type(manifold).__mro__:
        for k in KINDS.values():
            if k.cls is cls and all(getattr(manifold, a, None) == v for a, v in k.fixed.items()):
                return k.name
    raise InvalidInputError(f"{manifold!r} is not a registered manifold kind")


def kind_params(manifold: Manifold) -> dict[str, Any]:
    """The defining constructor arguments of ``manifold`` (its kind's ``params``), JSON-ready:
    numpy arrays become lists of floats; ``point_tol`` only when not the default."""
    kind = KINDS[kind_of(manifold)]
    if type(manifold) is not kind.cls:
        raise InvalidInputError(f"no parameter set for the subclass {type(manifold).__name__}")
    out: dict[str, Any] = {}
    for p in kind.params:
        v = getattr(manifold, p)
        if isinstance(v, np.ndarray):
            v = [float(x) for x in v]
        elif isinstance(v, (float, np.floating)):
            v = float(v)
        out[p] = v
    if float(manifold.point_tol) != 1e-8:
        out["point_tol"] = float(manifold.point_tol)
    return out
