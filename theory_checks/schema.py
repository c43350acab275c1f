"""A small JSON-Schema (draft-07 subset) validator for the theory report schema.

The schema ships as package data: ``manifold_oracle/theory_checks/schemas/theory_schema.json``
(read with :mod:`importlib.resources`, so it works from a wheel as well as from a checkout).

Supports ``type`` (including lists of types), ``required``, ``properties``,
``additionalProperties: false``, ``items`` and ``enum`` — exactly what the theory schema uses.
No third-party dependency; tests cross-check it against ``jsonschema`` when that is installed.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from manifold_oracle.reference.errors import InvalidInputError

#: the shipped schema (package data of ``manifold_oracle.theory_checks``)
SCHEMA_PATH = Path(str(files("manifold_oracle.theory_checks") / "schemas" / "theory_schema.json"))

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}

_SUPPORTED = {"$schema", "$id", "title", "type", "required", "properties", "additionalProperties",
              "items", "enum", "description"}


def load_schema(path: Path | str = SCHEMA_PATH) -> dict[str, Any]:
    """The theory report schema as a dict."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _is_type(value: Any, name: str) -> bool:
    if name in ("number", "integer") and isinstance(value, bool):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[name])


def validation_errors(instance: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """All violations of ``schema`` by ``instance`` (empty list when valid)."""
    unknown = set(schema) - _SUPPORTED
    if unknown:
        raise InvalidInputError(f"schema keyword(s) not supported by this validator: {sorted(unknown)}")
    errs: list[str] = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(instance, t) for t in types):
            return [f"{path}: expected type {types}, got {type(instance).__name__}"]
    if "enum" in schema and instance not in schema["enum"]:
        errs.append(f"{path}: {instance!r} not in {schema['enum']}")
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            if key not in instance:
                errs.append(f"{path}: missing required property {key!r}")
        props = schema.get("properties", {})
        for key, val in instance.items():
            if key in props:
                errs.extend(validation_errors(val, props[key], f"{path}.{key}"))
            elif schema.get("additionalProperties", True) is False:
                errs.append(f"{path}: unexpected property {key!r}")
    if isinstance(instance, list) and "items" in schema:
        for i, val in enumerate(instance):
            errs.extend(validation_errors(val, schema["items"], f"{path}[{i}]"))
    return errs


def validate(instance: Any, schema: dict[str, Any] | None = None) -> None:
    """Raise :class:`InvalidInputError` listing every violation."""
    errs = validation_errors(instance, load_schema() if schema is None else schema)
    if errs:
        raise InvalidInputError("theory report does not match its schema:\n  " + "\n  ".join(errs[:20]))
