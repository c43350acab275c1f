"""theory_checks: the claims of CLAIMS.md as registered, reproducible numerical experiments.

Each claim (``registry.Claim``) has its CLAIMS.md id, statement, source and a
``run(seed, budget) -> ClaimResult`` returning the measured quantity, the expected value or law, the
tolerance with its justification, the verdict, a matplotlib figure and — where CLAIMS.md lists
one — a negative control on which the same check must fail. ``cli.main`` is
``manifold-oracle theory``; ``report`` writes the table, JSON (theory_checks/schemas/theory_schema.json), PNGs and
Markdown. Imports ``reference`` and ``gpu_impl``; nothing imports this package.

    from manifold_oracle.theory_checks.catalog import claim_ids, run_claim
    res = run_claim("G-2", seed=0, budget="quick"); res.verdict, res.measured, res.tolerance
"""
