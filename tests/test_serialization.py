"""The one JSON encoding (reference.serialization) used by the conformance and theory reports."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from manifold_oracle.conformance import runner
from manifold_oracle.reference import serialization as S
from manifold_oracle.reference.errors import InvalidInputError
from manifold_oracle.theory_checks import registry


def _strict_loads(text: str) -> object:
    def refuse(token: str) -> float:
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def test_encoding_rules() -> None:
    assert S.encode_float(1.5) == 1.5 and S.encode_float(np.float32(0.25)) == 0.25
    for bad in (math.nan, math.inf, -math.inf, np.float64("nan")):
        assert S.encode_float(bad) is None
    obj = {1: (np.float64(2.0), np.int64(3), np.bool_(True), None, "x"),
           "a": np.array([[1.0, np.nan], [np.inf, -0.5]]), "f": float("-inf")}
    enc = S.to_jsonable(obj)
    assert enc == {"1": [2.0, 3, True, None, "x"], "a": [[1.0, None], [None, -0.5]], "f": None}
    assert _strict_loads(S.dumps(obj)) == enc
    assert math.isnan(S.decode_float(None)) and S.decode_float(2) == 2.0
    with pytest.raises(InvalidInputError):
        S.decode_float("nan")
    with pytest.raises(ValueError):  # the raw dumps path refuses a stray NaN instead of writing NaN
        json.dumps({"x": math.nan}, allow_nan=False)


def test_conformance_and_theory_records_share_the_encoding() -> None:
    res = runner.CheckResult("spec.x", "spec", "s", "fail", measured=math.nan, margin=math.inf,
                             details={"err": np.float64("inf"), "v": np.arange(2.0)})
    d = res.to_dict()
    assert d["measured"] is None and d["margin"] is None and d["details"] == {"err": None, "v": [0.0, 1.0]}
    assert "_case" not in d
    _strict_loads(json.dumps(d))
    claim = registry.ClaimResult("X-1", math.nan, "m", None, "", math.inf, "", False,
                                 details={"r": np.float64("nan")})
    j = claim.to_json()
    assert j["measured"] is None and j["tolerance"] is None and j["details"] == {"r": None}
    _strict_loads(json.dumps(j))
    assert runner.to_jsonable is S.to_jsonable and registry.to_jsonable is S.to_jsonable
