"""The import architecture, read from the source with ``ast`` (every import, module level or lazy).

1. Layering between the packages: ``reference`` imports nothing of ours and never torch;
   ``gpu_impl`` imports only ``reference``; ``bench`` only ``reference`` and ``gpu_impl``;
   ``conformance`` and ``theory_checks`` import ``reference`` and ``gpu_impl`` but not each other
   (``conformance/cli.py`` dispatches to ``theory_checks.cli`` by module name, not by import).
2. No import cycle between modules (a lazy import counts: it is an ordering dependency too).
3. No module imports a private name (``_x``) from another module, and no private module
   (``_x.py``) from outside the package that holds it. A package's own underscore modules
   (``reference/_validate.py``, ``reference/optim/_base.py``, ``conformance/checks/_util.py``,
   ``theory_checks/_common.py``, …) are its internal helpers: the package's modules share them
   (that is their purpose), nothing outside the package may import them, and they are not API.
4. No import of torch's private modules (``torch.*._x``) where a public API exists.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("reference", "gpu_impl", "conformance", "theory_checks", "bench")
NS = "manifold_oracle"

#: allowed package → package arrows (besides a package importing itself)
ALLOWED = {
    "reference": set(),
    "gpu_impl": {"reference"},
    "bench": {"reference", "gpu_impl"},
    "conformance": {"reference", "gpu_impl"},
    "theory_checks": {"reference", "gpu_impl"},
}


#: Exceptions still in the tree, each with its owner and why; every entry must still occur (the
#: list can only shrink) -- see the GEOMETRY report of issue 11.
#: Registration edges that close an import cycle: (importer, imported) module pairs.
KNOWN_CYCLE_EDGES: dict[tuple[str, str], str] = {
}
#: (importer, "module:name") private reach-ins being rewritten by their owners right now
KNOWN_PRIVATE: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts = parts[:-1]
            out[".".join([NS, *parts])] = (path, is_pkg)
    return out


MODULES = _modules()


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports() -> list[tuple[str, str, str | None, int]]:
    """(importer, imported module, imported name or None, line) for every import statement."""
    out = []
    for mod, (path, is_pkg) in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(mod, is_pkg, node)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in MODULES:  # "from package import submodule"
                        out.append((mod, sub, None, node.lineno))
                    else:
                        out.append((mod, target, alias.name, node.lineno))
            elif isinstance(node, ast.Import):
                out.extend((mod, alias.name, None, node.lineno) for alias in node.names)
    return out


IMPORTS = _imports()


def _ours(name: str) -> str | None:
    """The module of ours that ``name`` refers to (nearest existing prefix), else None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _package(module: str) -> str:
    return module.split(".")[1]


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def test_package_layering() -> None:
    bad = []
    for mod, target, _, line in IMPORTS:
        src = _package(mod)
        if src == "reference" and (target == "torch" or target.startswith("torch.")):
            bad.append(f"{mod}:{line} imports {target} (the reference never imports torch)")
        ours = _ours(target)
        if ours is None or ours == NS:
            continue
        dst = _package(ours)
        if dst != src and dst not in ALLOWED[src]:
            bad.append(f"{mod}:{line} imports {ours} ({src} → {dst} is against the layering)")
    assert not bad, "\n".join(bad)


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for mod, target, _, _ in IMPORTS:
        ours = _ours(target)
        if ours is not None and ours != mod and ours != NS:
            graph[mod].add(ours)
    for (src, dst), why in KNOWN_CYCLE_EDGES.items():
        assert dst in graph[src], f"known cycle edge {src} → {dst} is gone: remove it from the list ({why})"
        graph[src].discard(dst)
    # Tarjan's strongly connected components (iterative)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in MODULES:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    cycles.append(sorted(comp))
    assert not cycles, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


def test_no_private_reach_ins() -> None:
    bad = []
    seen_known = set()
    for mod, target, name, line in IMPORTS:
        key = (mod, f"{_ours(target) or target}:{name}")
        if key in KNOWN_PRIVATE:
            seen_known.add(key)
            continue
        if target.startswith("torch"):
            if any(_private(p) for p in target.split(".")) or (name is not None and _private(name)):
                bad.append(f"{mod}:{line} imports torch's private {target}{'.' + name if name else ''}")
            continue
        ours = _ours(target)
        if ours is None:
            continue
        if name is not None and _private(name) and ours != mod:
            bad.append(f"{mod}:{line} imports the private name {name} from {ours}")
        parts = ours.split(".")
        for i, part in enumerate(parts):
            if _private(part):
                holder = ".".join(parts[:i])  # the package that holds the private module
                if not (mod == holder or mod.startswith(holder + ".")):
                    bad.append(f"{mod}:{line} imports {ours}, a private module of {holder}")
                break
    gone = set(KNOWN_PRIVATE) - seen_known
    assert not gone, f"known private reach-ins are gone, remove them from the list: {sorted(gone)}"
    assert not bad, "\n".join(bad)


def test_the_scan_sees_the_tree() -> None:
    """The checks above can fail: the scan finds the modules and their imports."""
    assert f"{NS}.reference.steepest" in MODULES and f"{NS}.conformance.cli" in MODULES
    pairs = {(m, t) for m, t, _, _ in IMPORTS}
    assert (f"{NS}.reference.steepest", f"{NS}.reference.subproblem") in pairs
    assert any(_package(m) == "gpu_impl" and t == "torch" for m, t in pairs)
