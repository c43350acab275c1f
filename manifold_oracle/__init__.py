"""manifold-oracle: numerical reference and conformance harness for manifold-constrained optimizers.

Everything the distribution installs lives under this one import namespace:

========================================  ===============================================
``manifold_oracle.reference``             float64 and mpmath truth (never imports torch)
``manifold_oracle.gpu_impl``              device-agnostic torch implementation
``manifold_oracle.conformance``           the harness: adapters, checks, CLI, pytest plugin
``manifold_oracle.theory_checks``         numerical reproductions of the papers' claims
``manifold_oracle.bench``                 benchmarks that write their tables into ``docs/``
========================================  ===============================================

In the source tree the five subpackages are top-level folders (``reference/``, ``gpu_impl/``,
...); ``pyproject.toml`` maps them under this namespace, so a user project with its own
``reference`` or ``conformance`` package never collides with them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
