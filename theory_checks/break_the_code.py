"""Break the shipped code on purpose and show which claims notice (mutation test of the claims).

    python -m manifold_oracle.theory_checks.break_the_code [--mutation NAME ...] [--claim ID ...]

Each :class:`Mutation` rewrites the source text of one shipped module in memory (never on disk),
re-executes it in that module's namespace and rebinds every loaded ``manifold_oracle`` module that
had imported the replaced objects, so that the claims — which call the shipped optimizers — run
against the broken code. The claims about the broken behaviour must stop passing (FAIL, VACUOUS or
ERROR); the table shows, per mutation, the verdict of every selected claim. The original module is
restored afterwards, in every case.

Mutations (``reference/optim/macro.py``, the float64 MACRO every M-/V-/R-claim runs):

* ``no-reproject``: variant A loses its final re-projection (D = msign(PX) instead of P(msign(PX)));
* ``no-retraction``: W_{t+1} = W_t − ηsD, the retraction is skipped;
* ``wrong-manifold``: every tangent projection uses the Frobenius sphere's (normal W/‖W‖_F), whatever
  the manifold (a MuonH-style projector on M_S, OB and St).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Iterator, Sequence

from manifold_oracle.reference.errors import InvalidInputError

__all__ = ["Mutation", "MUTATIONS", "DEFAULT_CLAIMS", "mutated", "run_mutations", "main"]


@dataclass(frozen=True)
class Mutation:
    """A textual edit of one shipped module: ``edits`` are (old, new) pairs, each of which must occur;
    ``append`` is source added at the end of the module; ``expect`` lists the claims that must notice.
    ``alternatives`` are further (module, edits) pairs tried in order when the first does not apply
    (the same break, written against another layout of the shipped code)."""

    name: str
    module: str
    edits: tuple[tuple[str, str], ...]
    description: str
    expect: tuple[str, ...]
    append: str = ""
    alternatives: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()


_FRO_PROJECT = '''

def _broken_frobenius_projector(w, A):
    """(mutation) the Frobenius sphere's tangent projector, used on every manifold."""
    return A - (np.sum(w * A, axis=(-2, -1)) / np.sum(w * w, axis=(-2, -1)))[..., None, None] * w
'''

MUTATIONS: dict[str, Mutation] = {m.name: m for m in (
    Mutation("no-reproject", "manifold_oracle.reference.optim.conventions",
             (('return project(O) if variant == "A" else O', "return O"),),
             "MACRO variant A without its final re-projection P_W (it becomes variant B)",
             ("M-1", "M-3", "M-5", "M-7", "M-8", "M-9"),
             alternatives=(("manifold_oracle.reference.optim.macro",
                            (("D = man.project_tangent(w, apply_msign(X, self.msign_backend, self.ns_steps, tau))",
                              "D = apply_msign(X, self.msign_backend, self.ns_steps, tau)"),)),)),
    Mutation("no-retraction", "manifold_oracle.reference.optim.macro",
             (("W_next = W_pre.copy() if isinstance(man, Euclidean) else man.retract(w, A, self.retraction)",
               "W_next = W_pre.copy()"),),
             "MACRO skips the retraction: W_{t+1} = W_t − ηsD",
             ("M-5", "M-7", "M-8", "M-9", "V-1", "V-2", "V-3", "V-4", "V-5", "R-4")),
    Mutation("wrong-manifold", "manifold_oracle.reference.optim.macro",
             (("man.project_tangent(w, ", "_broken_frobenius_projector(w, "),),
             "MACRO projects onto the Frobenius sphere's tangent space on every manifold",
             ("M-1", "M-2", "M-4", "M-9", "V-1", "V-4"), append=_FRO_PROJECT),
)}

#: the claims that run the shipped MACRO (the break-the-code table runs these by default)
DEFAULT_CLAIMS: tuple[str, ...] = ("M-1", "M-2", "M-3", "M-4", "M-5", "M-7", "M-8", "M-9",
                                   "V-1", "V-2", "V-3", "V-4", "V-5", "R-4")


def _rebind(old: dict[str, object], new: dict[str, object]) -> None:
    """Point every loaded manifold_oracle module attribute that is an ``old`` object at ``new``."""
    swap = {id(v): new[k] for k, v in old.items() if k in new and new[k] is not v}
    for mod in list(sys.modules.values()):
        if not isinstance(mod, ModuleType) or not mod.__name__.startswith("manifold_oracle"):
            continue
        for attr, val in list(vars(mod).items()):
            if id(val) in swap and not attr.startswith("__"):
                setattr(mod, attr, swap[id(val)])


@contextlib.contextmanager
def mutated(mutation: Mutation) -> Iterator[None]:
    """Run the body with ``mutation`` applied to the loaded shipped module; always restored."""
    failures = []
    for module, edits in ((mutation.module, mutation.edits), *mutation.alternatives):
        mod = sys.modules.get(module)
        if mod is None:
            __import__(module)
            mod = sys.modules[module]
        broken = inspect.getsource(mod)
        missing = [old for old, _ in edits if old not in broken]
        if missing:
            failures.append(f"{module}: {missing[0]!r} not found")
            continue
        for old, new in edits:
            broken = broken.replace(old, new)
        break
    else:
        raise InvalidInputError(f"mutation {mutation.name!r} no longer applies (the shipped code changed; "
                                f"update the mutation): {'; '.join(failures)}")
    broken += mutation.append
    saved = {k: v for k, v in vars(mod).items() if not k.startswith("__")}
    exec(compile(broken, f"<mutated {mutation.module}: {mutation.name}>", "exec"), vars(mod))  # noqa: S102
    _rebind(saved, {k: v for k, v in vars(mod).items() if not k.startswith("__")})
    try:
        yield
    finally:
        current = {k: v for k, v in vars(mod).items() if not k.startswith("__")}
        vars(mod).update(saved)
        _rebind(current, saved)


def _verdict(cid: str, seed: int, budget: str) -> str:
    import matplotlib.pyplot as plt

    from .catalog import run_claim

    r = run_claim(cid, seed, budget)
    if r.figure is not None:
        plt.close(r.figure)
    return r.verdict


def run_mutations(mutations: Sequence[str], claims: Sequence[str], seed: int = 0,
                  budget: str = "quick") -> dict[str, dict[str, str]]:
    """{row: {claim: verdict}} for the unbroken code ("shipped") and each mutation."""
    out: dict[str, dict[str, str]] = {"shipped": {c: _verdict(c, seed, budget) for c in claims}}
    for name in mutations:
        if name not in MUTATIONS:
            raise InvalidInputError(f"unknown mutation {name!r}; known: {sorted(MUTATIONS)}")
        with mutated(MUTATIONS[name]):
            out[name] = {c: _verdict(c, seed, budget) for c in claims}
    return out


def missed(table: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    """Per mutation, the expected claims that still PASS (should be empty)."""
    return {name: [c for c in MUTATIONS[name].expect if row.get(c) == "PASS"]
            for name, row in table.items() if name in MUTATIONS}


def format_table(table: dict[str, dict[str, str]]) -> str:
    claims = list(next(iter(table.values())))
    w = max(len(k) for k in table) + 2
    lines = ["code".ljust(w) + " ".join(c.ljust(8) for c in claims)]
    for name, row in table.items():
        cells = []
        for c in claims:
            v = row[c]
            mark = "*" if name in MUTATIONS and c in MUTATIONS[name].expect else " "
            cells.append((v + mark).ljust(8))
        lines.append(name.ljust(w) + " ".join(cells))
    lines.append("(* = a claim about the broken behaviour: must not PASS)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m manifold_oracle.theory_checks.break_the_code",
                                description=__doc__.split("\n")[0])
    p.add_argument("--mutation", nargs="+", default=list(MUTATIONS), help=f"default: all of {list(MUTATIONS)}")
    p.add_argument("--claim", nargs="+", default=list(DEFAULT_CLAIMS), help="claims to run (default: MACRO's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--full", action="store_true", help="full budget (default quick)")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    table = run_mutations(args.mutation, args.claim, args.seed, "full" if args.full else "quick")
    print(format_table(table))
    miss = {k: v for k, v in missed(table).items() if v}
    for name, cl in miss.items():
        print(f"MISSED: mutation {name} left {cl} passing")
    return 1 if miss or any(v != "PASS" for v in table["shipped"].values()) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
