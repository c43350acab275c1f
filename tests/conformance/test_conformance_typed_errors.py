"""Typed errors of the harness's user-facing entry points (typed-error audit, rows 34-38, 53, 54):
a user-written Profile/ManifoldDecl, register_profile, waiver files and the ``conform`` CLI refuse
bad input with InvalidInputError (CLI: exit 2) naming the field and the value, before any check runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from manifold_oracle.conformance.conform_cli import main as conform_main
from manifold_oracle.conformance.profiles import PROFILES, ManifoldDecl, Profile, register_profile
from manifold_oracle.conformance.runner import read_waiver_file, read_xfail_file
from manifold_oracle.reference.errors import InvalidInputError
from manifold_oracle.reference.serialization import to_jsonable

# geoopt 0.5.1 decorates with torch.jit.script(_method) at import (deprecated in torch 2.13)
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")]

NAN, INF = float("nan"), float("inf")


# ----------------------------------------------------------------- row 37: Profile.__post_init__
_BAD_PROFILE: list[tuple[str, dict[str, Any]]] = [
    *[(f, {f: v}) for f in ("lr", "eps", "safety", "momentum", "scale", "weight_decay", "coefficient_safety")
      for v in (NAN, INF, -1.0, "0.1", True)],
    ("lr", {"lr": 0.0}), ("scale", {"scale": 0.0}), ("safety", {"safety": 0.5}),
    ("momentum", {"momentum": 1.0}), ("momentum", {"momentum": 1.5}),
    *[("steps", {"steps": v}) for v in (-1, 0, "x", 2.5, 2.0, True)],
    ("steps", {"schedule": "keller_jordan", "steps": 10**6}),  # reference.Schedule: MAX_STEPS
    *[("coefficients", {"schedule": "keller_jordan", "coefficients": c})
      for c in (((NAN, 1.0, 1.0),), ((3.0, -3.0, INF),), ((1.0, 1.0),), (), ((1.0, "a", 1.0),), "abc")],
    *[("scale_range", {"scale_range": r}) for r in ((10.0, 1.0), (NAN, 1.0), (1.0, NAN), (-1.0, 1.0),
                                                      (1.0, 1.0), (1.0,), (INF, INF))],
    *[("param_dtypes", {"param_dtypes": d}) for d in (("bogus",), (), "float32", ("float32", 3))],
    *[("manifolds", {"manifolds": m}) for m in (("frobenius",), "frobenius", (None,))],
    ("name", {"name": ""}), ("name", {"name": 3}), ("description", {"description": None}),
    ("direction_tangent", {"direction_tangent": 1}), ("notes", {"notes": "one note"}),
    ("mutation", {"mutation": (1,)}),
]


@pytest.mark.parametrize("field,kwargs", _BAD_PROFILE, ids=[f"{f}={kw}" for f, kw in _BAD_PROFILE])
def test_profile_refuses_nonsense_fields(field: str, kwargs: dict[str, Any]) -> None:
    kw = {"name": "probe", **kwargs}
    with pytest.raises(InvalidInputError, match=field):
        Profile(**kw)


def test_profile_with_options_revalidates_and_refuses_unknown_fields() -> None:
    p = PROFILES["gpu_impl"]
    with pytest.raises(InvalidInputError, match=r"lr=nan"):
        p.with_options(lr=NAN)
    with pytest.raises(InvalidInputError, match="bogus"):
        p.with_options(bogus=1)


def test_every_builtin_and_json_profile_still_constructs() -> None:
    """The validation refuses no legitimate declaration: every built-in profile re-validates, and its
    JSON form (what reports embed and ``conformance.repro`` rebuilds, lists for tuples) constructs."""
    assert len(PROFILES) >= 20
    for p in PROFILES.values():
        assert dataclasses.replace(p) == p
        doc = json.loads(json.dumps(to_jsonable(p.to_dict())))  # every tuple is now a list
        doc["manifolds"] = tuple(ManifoldDecl(**m) for m in doc["manifolds"])
        assert Profile(**doc).name == p.name
    # valid corner values
    Profile("ok", scale_range=(0.0, INF), momentum=0.0, weight_decay=0.0, eps=0.0, steps=1,
            schedule="keller_jordan", coefficients=[[3.0, -3.2, 1.2]], coefficient_safety=1.01)


# ----------------------------------------------------------------- row 38: ManifoldDecl
_BAD_DECL: list[tuple[str, dict[str, Any]]] = [
    ("kind", {"kind": "klein_bottle"}), ("kind", {"kind": 3}), ("axis", {"kind": "oblique", "axis": "diag"}),
    ("axis", {"kind": "frobenius_sphere", "axis": "rows"}),
    *[("radius", {"radius": v}) for v in (NAN, INF, -1.0, 0.0, "1", None, True)],
    ("retraction", {"retraction": "bogus"}), ("retraction", {"kind": "stiefel", "retraction": "rescale"}),
    *[("retraction_order", {"retraction_order": v}) for v in (0, 3, 7, 2.0, True)],
    ("dtype", {"dtype": "float128"}), ("dtype", {"dtype": None}),
    *[("shapes", {"shapes": s}) for s in (((-1, 3),), ((0, 3),), (), ((3,),), ((3, 4, 5),), ((3.0, 4),), "34")],
    ("extra_dtypes", {"extra_dtypes": ("bogus",)}), ("extra_dtypes", {"extra_dtypes": "float32"}),
    ("transport", {"transport": "schild"}),
    ("unsupported", {"unsupported": ("bogus",)}), ("unsupported", {"unsupported": "dist"}),
    ("name", {"name": ""}),
]


@pytest.mark.parametrize("field,kwargs", _BAD_DECL, ids=[f"{f}={kw}" for f, kw in _BAD_DECL])
def test_manifold_decl_refuses_nonsense_fields(field: str, kwargs: dict[str, Any]) -> None:
    kw: dict[str, Any] = {"name": "m", "kind": "frobenius_sphere", **kwargs}
    with pytest.raises(InvalidInputError, match=field):
        ManifoldDecl(**kw)


def test_manifold_decl_accepts_aliases_and_documented_values() -> None:
    ManifoldDecl("o", "oblique", axis="cols", retraction="normalize", transport="parallel",
                 extra_dtypes=["float32", "bfloat16"], unsupported=["dist", "log"], shapes=[[3, 2]])
    ManifoldDecl("s", "spectral", radius=2.0, retraction="rescale", retraction_order=1, dtype="float32")
    ManifoldDecl("st", "Stiefel", retraction="qr", retraction_order=1)


# ----------------------------------------------------------------- row 53: register_profile
@pytest.mark.parametrize("obj", ["x", None, {"name": "x"}])
def test_register_profile_refuses_non_profiles(obj: Any) -> None:
    with pytest.raises(InvalidInputError, match="needs a Profile"):
        register_profile(obj)


# ----------------------------------------------------------------- row 54: waiver files
@pytest.mark.parametrize("reader", [read_waiver_file, read_xfail_file])
def test_unreadable_waiver_file_is_invalid_input(reader: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot be read"):
        reader(tmp_path / "missing.txt")
    with pytest.raises(InvalidInputError, match="cannot be read"):
        reader(tmp_path)  # a directory
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"safety.determinism caf\xe9\n")
    with pytest.raises(InvalidInputError, match="cannot be read"):
        reader(bad)


# ----------------------------------------------------------------- rows 34-36: the conform CLI
def test_conform_target_that_is_not_an_adapter_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert conform_main(["--target", "manifold_oracle.reference:msign", "--no-progress"]) == 2
    assert "not an Adapter" in capsys.readouterr().err


@pytest.mark.parametrize("opt", ["--junit", "--json", "--repro-dir"])
def test_conform_unwritable_output_exits_2_before_the_run(opt: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert conform_main(["--target", "conformance_zoo:GoodNS", "--select", "safety.determinism",
                         opt, str(blocker / "out.xml"), "--no-progress"]) == 2
    err = capsys.readouterr()
    assert "cannot write" in err.err and "not a directory" in err.err
    assert "safety.determinism" not in err.out  # refused before any check ran
    if opt != "--repro-dir":  # a directory where a file is wanted
        assert conform_main(["--target", "conformance_zoo:GoodNS", opt, str(tmp_path), "--no-progress"]) == 2


@pytest.mark.parametrize("args", [["--target", "bogus"], ["--target", "no_such_module_xyz:A"],
                                  ["--profile", "bogus"], ["--waive", "/nonexistent/waive.txt"],
                                  ["--target", "manifold_oracle.reference:msign"]])
def test_conform_list_validates_its_other_options(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert conform_main(["--list", *args]) == 2
    assert "manifold-oracle conform:" in capsys.readouterr().err


def test_conform_list_still_lists(capsys: pytest.CaptureFixture[str]) -> None:
    assert conform_main(["--list", "--target", "conformance_zoo:GoodNS"]) == 0
    assert "safety.determinism" in capsys.readouterr().out


def test_plugin_and_api_resolution_of_a_plain_function_is_invalid_input() -> None:
    """The pytest plugin, `matrix` and `repro` resolve targets with adapters.resolve_target
    directly: a callable that is not an adapter factory is InvalidInputError there too."""
    import pytest as _pytest

    from manifold_oracle.conformance.adapters import resolve_target
    from manifold_oracle.reference.errors import InvalidInputError as _Invalid

    with _pytest.raises(_Invalid, match="not an Adapter"):
        resolve_target("manifold_oracle.reference:msign")


def test_declarable_dtypes_are_those_with_a_unit_roundoff() -> None:
    from manifold_oracle.conformance.profiles import DTYPE_NAMES
    from manifold_oracle.conformance.tolerances import UNIT_ROUNDOFF

    assert set(DTYPE_NAMES) == set(UNIT_ROUNDOFF)


def test_adam_lr_accepts_a_step_size_or_lr_and_refuses_nonsense() -> None:
    import pytest as _pytest

    from manifold_oracle.conformance.profiles import get_profile
    from manifold_oracle.reference.errors import InvalidInputError as _Invalid

    base = get_profile("gpu_impl")
    assert base.adam_lr == 1e-3
    for ok in (None, "lr", 0.5, 1):
        assert base.with_options(adam_lr=ok).adam_lr == ok
    for bad in (0.0, -1e-3, float("nan"), float("inf"), "bogus", True):
        with _pytest.raises(_Invalid, match="adam_lr"):
            base.with_options(adam_lr=bad)


def test_optimizer_profile_refuses_a_geometry_only_retraction() -> None:
    """'cayley' and 'other' are declarable for geometry targets; an optimizer rule's expected steps
    retract with the reference's own retractions, so a MACRO profile declaring them is refused at
    construction (not an error in the middle of a run)."""
    from manifold_oracle.conformance.profiles import ManifoldDecl, get_profile

    base = get_profile("gpu_impl")
    for retraction in ("cayley", "other"):
        with pytest.raises(InvalidInputError, match="only geometry targets"):
            base.with_options(name="x", manifolds=(ManifoldDecl("st", "stiefel", retraction=retraction),))
    geometry_only = base.with_options(name="y", rule="none", manifolds=(ManifoldDecl("st", "stiefel", retraction="cayley"),))
    assert geometry_only.manifolds[0].retraction == "cayley"
