"""The golden corpus file: checksum, schema, coverage, exact encoding, deterministic regeneration,
and independent sanity checks of its expected values (identities that need no mpmath)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from manifold_oracle.reference import golden
from manifold_oracle.reference.data import make_golden
from manifold_oracle.reference.errors import InvalidInputError
from manifold_oracle.reference.golden import GoldenChecksumError, load_golden, manifold_from_spec
from manifold_oracle.reference.manifolds import Euclidean

CORPUS = load_golden()
U = 2.0**-53


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    src = golden.golden_path()
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    shutil.copy(src.with_name(src.name + ".sha256"), dst.with_name(dst.name + ".sha256"))
    return dst


# -- integrity --------------------------------------------------------------------------------
def test_checksum_file_matches_shipped_corpus() -> None:
    path = golden.golden_path()
    recorded = path.with_name(path.name + ".sha256").read_text().split()
    assert recorded[0] == golden.sha256_of(path)
    assert recorded[1] == path.name


def test_checksum_detects_a_single_flipped_digit(corpus_copy: Path) -> None:
    load_golden(corpus_copy)  # the untouched copy loads
    raw = bytearray(corpus_copy.read_bytes())
    i = raw.index(b'"0x1.') + 5  # first hex digit of the first stored float
    raw[i] = ord("0") if raw[i] != ord("0") else ord("1")
    corpus_copy.write_bytes(bytes(raw))
    with pytest.raises(GoldenChecksumError):
        load_golden(corpus_copy)
    # verify=False reads the corrupted file, and the flipped value differs: the check has power
    bad = load_golden(corpus_copy, verify=False)

    def values(case: golden.GoldenCase) -> list[bytes]:
        return [np.asarray(v).tobytes() for d in (case.inputs, case.expected) for v in d.values()]

    assert any(values(a) != values(b) for a, b in zip(CORPUS.cases, bad.cases))


def test_missing_checksum_file_is_an_error(corpus_copy: Path) -> None:
    corpus_copy.with_name(corpus_copy.name + ".sha256").unlink()
    with pytest.raises(GoldenChecksumError):
        load_golden(corpus_copy)


def test_unknown_schema_version_is_rejected(corpus_copy: Path) -> None:
    text = corpus_copy.read_text().replace('"schema_version": 1', '"schema_version": 99', 1)
    corpus_copy.write_text(text)
    make_golden.write(corpus_copy, text)  # consistent checksum: only the version is wrong
    with pytest.raises(InvalidInputError, match="schema"):
        load_golden(corpus_copy)


# -- schema and coverage ------------------------------------------------------------------------
def test_header_records_how_it_was_made() -> None:
    h = CORPUS.header
    assert h["schema"] == "manifold-oracle/golden" and h["schema_version"] == 1
    assert h["dps"] == 50 and h["float_encoding"] == "float.hex" and h["seed"] == make_golden.BASE_SEED
    for c in CORPUS.cases:
        assert c.meta["dps"] == 50 and "mpmath_version" in c.meta and len(c.meta["seed"]) == 2
        assert c.op in golden.OPS


def test_size_and_case_count() -> None:
    assert len(CORPUS.cases) >= 60
    assert len({c.id for c in CORPUS.cases}) == len(CORPUS.cases)
    assert golden.golden_path().stat().st_size < 2 * 1024 * 1024


def test_coverage_of_operations_manifolds_and_regimes() -> None:
    ops = CORPUS.ops()
    for op in golden.OPS:
        assert ops.get(op, 0) >= 1, f"no case for {op}"
    # every manifold class and every named retraction
    seen: set[tuple[str, str]] = set()
    classes: set[str] = set()
    for c in CORPUS.cases:
        if "manifold" in c.params:
            man = manifold_from_spec(c.params["manifold"])
            classes.add(type(man).__name__)
            if c.op == "retract":
                seen.add((type(man).__name__, c.params["method"]))
    assert classes == {"Euclidean", "Sphere", "FrobeniusSphere", "SpectralSphere", "Oblique", "Stiefel",
                       "Orthogonal"}
    for cls_name in classes - {"Euclidean"}:
        man = next(manifold_from_spec(c.params["manifold"]) for c in CORPUS.cases
                   if "manifold" in c.params and c.params["manifold"]["class"] == cls_name)
        names = set(man.retractions)
        # aliases of the same map ("projection" = "rescale"/"normalize") need not both appear
        covered = {m for (k, m) in seen if k == cls_name}
        assert covered, f"no retraction case for {cls_name}"
        if cls_name in ("SpectralSphere", "Stiefel", "Orthogonal", "Sphere"):
            assert covered == names, f"{cls_name}: {covered} != {names}"
    # regimes asked by the issue
    metas = [c.meta for c in CORPUS.cases]
    assert any(m.get("rank", 99) < min(m.get("shape", [99, 99])) and m.get("rank", 0) > 0 for m in metas)
    assert any(m.get("top_multiplicity", 1) > 1 or m.get("repeat_middle") for m in metas)
    assert any(m.get("scale") == 1e-30 for m in metas) and any(m.get("scale") == 1e30 for m in metas)
    assert any(m.get("cond") == 1e6 for m in metas)
    shapes = [tuple(m["shape"]) for m in metas if len(m.get("shape", [])) == 2]
    assert any(a > b for a, b in shapes) and any(a < b for a, b in shapes) and any(a == b for a, b in shapes)


def test_encoding_round_trips_exactly() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(20) * 10.0 ** rng.integers(-300, 300, 20),
                        [0.0, -0.0, 5e-324, 1.7976931348623157e308, 2.0**-1022]])
    back = golden.decode_value(golden.encode_value(x.reshape(5, 5)))
    assert back.tobytes() == x.reshape(5, 5).tobytes()
    assert golden.decode_value(golden.encode_value(7)) == 7
    with pytest.raises(InvalidInputError):
        golden.encode_value(np.array([np.nan]))


# -- deterministic regeneration (cheap cases only) --------------------------------------------
@pytest.mark.parametrize("case_id", ["msign/7x12/rank5/cond1e6", "retract/Stiefel/qr/s0.5/5x9",
                                     "ns_singular_value_map/polar_express_dion"])
def test_regeneration_is_bit_identical(case_id: str) -> None:
    spec = next(s for s in make_golden.case_specs() if s.id == case_id)
    rebuilt = json.dumps(make_golden.build_case(spec), sort_keys=True)
    raw = json.loads(golden.golden_path().read_text())
    stored = json.dumps(next(c for c in raw["cases"] if c["id"] == case_id), sort_keys=True)
    assert rebuilt == stored


def test_spec_list_matches_the_file() -> None:
    assert [s.id for s in make_golden.case_specs()] == [c.id for c in CORPUS.cases]


# -- the expected values satisfy independent identities ----------------------------------------
def test_golden_msign_identities() -> None:
    """‖msign X‖_F² = rank, ⟨msign X, X⟩ = ‖X‖_* (from numpy's SVD values), ‖msign X‖₂ = 1."""
    checked = 0
    for c in CORPUS.cases:
        if c.op != "msign":
            continue
        X, M = c.inputs["X"], c.expected["out"]
        r = c.meta["rank"]
        if r == 0:
            assert not np.any(M)
            continue
        n = max(X.shape)
        # exact identities of the true msign; the golden M is within u of it, and the float64
        # evaluation of these sums adds c·u·n (CLAIMS.md §0.2 exact-identity bound, c = 100)
        assert abs(np.sum(M * M) - r) <= 100 * U * n * r
        s = np.linalg.svd(X, compute_uv=False)
        nuc = np.sum(s[:r])
        assert abs(np.sum(M * X) - nuc) <= 100 * U * n * nuc
        assert abs(np.linalg.norm(M, 2) - 1.0) <= 100 * U * n
        checked += 1
    assert checked >= 25


def test_golden_retractions_land_on_the_manifold_and_projections_are_tangent() -> None:
    for c in CORPUS.cases:
        if "manifold" not in c.params or c.op == "tangent_violation":
            continue
        man = manifold_from_spec(c.params["manifold"])
        out = c.expected["out"]
        n = max(np.shape(out))
        if isinstance(man, Euclidean):
            continue
        if c.op == "retract":
            # the golden output is the exact point rounded to float64: violation ≲ c·u·n
            assert man.violation(out) <= 100 * U * n, c.id
        else:
            # normalised normal part of the rounded projection: c·u·n, times 1/gap ≤ 1e2 for the
            # spectral sphere (its frame, measured in float64, moves by u/gap; gaps here ≥ 0.01)
            assert man.tangent_violation(c.inputs["W"], out) <= 100 * U * n * 1e2, c.id


def test_golden_bands_match_conventions_table() -> None:
    """CONVENTIONS.md §9, 4 decimals (the spec's table, independent of the code)."""
    table = {
        "schedule_band/keller_jordan/0.1": (0.6818, 1.1344),
        "schedule_band/keller_jordan/0.001": (0.4705, 1.2024),
        "schedule_band/you_jiacheng_5/cycle6/0.1": (0.0642, 0.1649),
        "schedule_band/classical/0.01": (0.2285, 1.0000),
    }
    for cid, (lo, hi) in table.items():
        got = CORPUS.by_id(cid).expected["out"]
        assert abs(got[0] - lo) <= 1e-4 and abs(got[1] - hi) <= 1e-4, (cid, got)
