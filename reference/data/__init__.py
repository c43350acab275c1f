"""Data shipped with the reference: the golden corpus (``golden_v1.json`` + ``.sha256``).

Regenerate with ``python -m manifold_oracle.reference.data.make_golden``; read with
:func:`reference.golden.load_golden`.
"""
