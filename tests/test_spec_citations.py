"""Every citation of the specification resolves to a section, item or claim that exists in docs/spec.

Citations look like ``MATH.md §7.3``, ``MATH §6.4 item 6``, ``MATH §7.2(4)``, ``MATH.md §8.1 (A5)``,
``CLAIMS X-1``, ``CLAIMS.md §0.2``, ``CLAIMS M-1…M-8``, ``CONVENTIONS §10 #13``,
``CONVENTIONS.md §4.1–4.4, §5`` and lists of those. They are found in every source, help text,
failure message and document of the repository (docstrings and strings included), and inside
docs/spec the bare ``§N`` cross-references of a document are checked against that document.

A reference resolves when the document has a heading with that number (``### 6.4 …``), that
claim id (``### X-1 …``) or that family (``## P. …``); ``§12.8`` with no heading ``12.8`` resolves
to item 8 of §12, and ``item 6`` / ``(4)`` / ``#13`` / ``(A5)`` must exist as a numbered item, a
table row or a labelled assumption in the body of their section.

Also checked: every convention profile field and each of its allowed values (as the Profile
constructor enforces them) is documented in CONVENTIONS §1.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "docs" / "spec"
DOCS = ("MATH", "CLAIMS", "CONVENTIONS")
SCAN_SUFFIXES = {".py", ".md", ".json", ".toml", ".txt", ".cfg", ".yml", ".yaml", ".ini", ".sh"}
SKIP_DIRS = {".git", "build", "dist", "__pycache__", ".hypothesis", ".pytest_cache", "runs", "out"}

# ------------------------------------------------------------------------------ the spec index
_HEADING = re.compile(r"^(#{2,4})\s+(?P<key>\d+(?:\.\d+)*|[A-Z]-\d+|[A-Z])(?=[.\s])", re.M)


@dataclass
class SpecDoc:
    """Headings of one spec document and the body text under each (up to the next heading)."""

    name: str
    bodies: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, name: str, text: str) -> "SpecDoc":
        doc = cls(name)
        marks = list(_HEADING.finditer(text))
        for i, m in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            doc.bodies.setdefault(m["key"], text[m.end():end])
        return doc

    def has_item(self, key: str, item: str) -> bool:
        """A numbered item ``N.``/``N)``, a table row ``| N |`` or a label ``(A5)`` in the section body."""
        body = self.bodies.get(key)
        if body is None:
            return False
        n = re.escape(item)
        return bool(re.search(rf"(?m)^\s*(?:[*-]\s+)?(?:\*\*)?\(?{n}[.)](?:\*\*)?\s"
                              rf"|^\|\s*#?{n}\s*\||\({n}′?[),]", body))

    def resolve(self, ref: str, item: str | None = None) -> bool:
        """Does ``ref`` (``7.3``, ``P``, ``X-1``, ``L-4a``) with optional ``item`` exist here?"""
        ref = re.sub(r"^([A-Z]-\d+)[a-z]$", r"\1", ref)  # L-4a: part (a) of claim L-4
        if ref in self.bodies:
            return item is None or self.has_item(ref, item)
        parent, _, last = ref.rpartition(".")  # §12.8: item 8 of §12
        return bool(parent) and item is None and self.has_item(parent, last)


def load_spec(spec_dir: Path = SPEC) -> dict[str, SpecDoc]:
    return {d: SpecDoc.parse(d, (spec_dir / f"{d}.md").read_text(encoding="utf-8")) for d in DOCS}


# ------------------------------------------------------------------------------ citation grammar
_NUM = r"\d+(?:\.\d+)*"
_CLAIM = r"[A-Z]-\d+[a-z]?"
_ITEMS = r"\d+(?![.\d])(?:\s*(?:,|–|-|and)\s*#?\d+(?![.\d]))*"
#: one reference with its optional item part
_REF = re.compile(
    rf"(?:§(?P<sec>{_NUM}|[A-Z](?![-\w]))|(?P<claim>{_CLAIM})(?!\w)|(?P<bare>\d+\.\d+(?:\.\d+)*)(?![\d.]*\w))"
    rf"(?:\((?P<paren>\d+)\)|\s*\((?P<assume>A\d+)′?\)|,?\s+items?\s+(?P<items>{_ITEMS})"
    rf"|\s+entries\s+(?P<entries>{_ITEMS})|\s+(?P<hash>#{_ITEMS}))?")
#: what may join two references of one citation list
_JOIN = re.compile(r"\s*(?:,|;|/|\band\b)\s*(?=§|[A-Z]-\d|\d+\.\d)|\s*(?P<range>–|…|\.\.\.)\s*")
_DOC = re.compile(r"(?<![A-Za-z_])(?P<doc>MATH|CLAIMS|CONVENTIONS)(?:\.md)?(?=[\s(\[]*(?:§|[A-Z]-\d))\s*")


@dataclass(frozen=True)
class Citation:
    doc: str
    ref: str
    item: str | None
    where: str

    def __str__(self) -> str:
        return f"{self.where}: {self.doc} §{self.ref}" + (f" item {self.item}" if self.item else "")


def _items(spec: str | None) -> list[str]:
    """``1–3`` → 1, 2, 3; ``1, 6`` → 1, 6; ``#1, #2`` → 1, 2."""
    if not spec:
        return []
    out: list[str] = []
    for part in re.split(r"\s*(?:,|and)\s*", spec.replace("#", "")):
        lo, sep, hi = part.replace("-", "–").partition("–")
        out += [str(i) for i in range(int(lo), int(hi) + 1)] if sep else [lo.strip()]
    return out


def _expand(a: str, b: str) -> list[str]:
    """Both ends of a range, plus the claim ids between (``M-1…M-8``)."""
    ma, mb = re.fullmatch(r"([A-Z])-(\d+)", a), re.fullmatch(r"([A-Z])-(\d+)", b)
    if ma and mb and ma[1] == mb[1]:
        return [f"{ma[1]}-{i}" for i in range(int(ma[2]), int(mb[2]) + 1)]
    return [a, b]


def _normalise(text: str) -> str:
    """Join physical lines (comments, docstrings, adjacent string literals) into one line."""
    text = re.sub(r"[\"']\s*\n\s*f?[\"']", "", text)  # "… CLAIMS "\n "X-1 …" → one literal
    return re.sub(r"\s*\n\s*(?:#+\s*|//+\s*|\*\s+(?=\S))?", " ", text)


def _chain(text: str, pos: int, doc: str, where: str, found: list[Citation]) -> int:
    """Read one citation list starting at ``pos``; returns where it ends."""
    prev: str | None = None
    pending_range = False
    end = pos
    while True:
        m = _REF.match(text, pos)
        if m is None or (m["bare"] and prev is None):  # a bare 6.3 only continues a list
            break
        ref = m["sec"] or m["claim"] or m["bare"]
        items = [m["paren"] or m["assume"]] if m["paren"] or m["assume"] else _items(
            m["items"] or m["entries"] or m["hash"])
        refs = _expand(prev, ref)[1:] if pending_range and prev is not None else [ref]
        for r in refs:
            found += [Citation(doc, r, it, where) for it in items] or [Citation(doc, r, None, where)]
        prev, pos = ref, m.end()
        end = pos
        j = _JOIN.match(text, pos)
        if j is None:
            break
        pending_range = j["range"] is not None
        pos = j.end()
    return end


def extract(text: str, where: str, default_doc: str | None = None) -> list[Citation]:
    """All spec citations in ``text``; with ``default_doc``, bare ``§N`` refer to that document."""
    text = _normalise(text)
    found: list[Citation] = []
    covered: list[tuple[int, int]] = []
    for m in _DOC.finditer(text):
        covered.append((m.start(), _chain(text, m.end(), m["doc"], where, found)))
    if default_doc is not None:
        for m in re.finditer(r"§", text):
            before = text[max(0, m.start() - 40):m.start()].split()
            if before and re.fullmatch(r"[A-Z][\w-]*|\d+", before[-1]):
                continue  # "HyperP §3.1", "part 2 §2": a section of another source
            if not any(a <= m.start() < b for a, b in covered):
                covered.append((m.start(), _chain(text, m.start(), default_doc, where, found)))
    return found


def _files() -> list[Path]:
    me = Path(__file__).resolve()
    out = []
    for p in ROOT.rglob("*"):
        rel = p.relative_to(ROOT).parts
        if (p.is_file() and p.suffix in SCAN_SUFFIXES and p.resolve() != me
                and not any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel)):
            out.append(p)
    return sorted(out)


def all_citations() -> list[Citation]:
    cites: list[Citation] = []
    for p in _files():
        rel = p.relative_to(ROOT).as_posix()
        default = p.stem if p.parent == SPEC and p.stem in DOCS else None
        cites += extract(p.read_text(encoding="utf-8", errors="replace"), rel, default)
    return cites


def unresolved(cites: list[Citation], spec: dict[str, SpecDoc]) -> list[Citation]:
    return [c for c in cites if not spec[c.doc].resolve(c.ref, c.item)]


# ------------------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def spec() -> dict[str, SpecDoc]:
    return load_spec()


def test_every_spec_citation_resolves(spec: dict[str, SpecDoc]) -> None:
    cites = all_citations()
    # the code cites the spec a few hundred times; far fewer means the extractor went blind
    assert len(cites) >= 400, len(cites)
    assert {c.doc for c in cites} == set(DOCS)
    bad = unresolved(cites, spec)
    assert not bad, f"{len(bad)} of {len(cites)} citations do not resolve:\n" + "\n".join(map(str, bad))


@pytest.mark.parametrize("text, expected", [
    ("see MATH.md §7.3 and", [("MATH", "7.3", None)]),
    ("(MATH §6.4 item 6; CLAIMS L-3)", [("MATH", "6.4", "6"), ("CLAIMS", "L-3", None)]),
    ("MATH §6.2, 6.3, 6.4 item 5, 6.7; CLAIMS L-1,", [("MATH", "6.2", None), ("MATH", "6.3", None),
                                                     ("MATH", "6.4", "5"), ("MATH", "6.7", None),
                                                     ("CLAIMS", "L-1", None)]),
    ("MATH §7.2(4)); MACRO", [("MATH", "7.2", "4")]),
    ("MATH.md §8.1 (A5)", [("MATH", "8.1", "A5")]),
    ("CONVENTIONS §10 #1–3).", [("CONVENTIONS", "10", "1"), ("CONVENTIONS", "10", "2"),
                                ("CONVENTIONS", "10", "3")]),
    ("CONVENTIONS §10 #18; §12.8).", [("CONVENTIONS", "10", "18"), ("CONVENTIONS", "12.8", None)]),
    ("MATH.md §7; CLAIMS.md M-1…M-3).", [("MATH", "7", None), ("CLAIMS", "M-1", None),
                                         ("CLAIMS", "M-2", None), ("CLAIMS", "M-3", None)]),
    ("CONVENTIONS.md §4–§8, and", [("CONVENTIONS", "4", None), ("CONVENTIONS", "8", None)]),
    ("MATH §9.4/§6.4: h", [("MATH", "9.4", None), ("MATH", "6.4", None)]),
    ('"the bound (CLAIMS "\n    "X-1).",', [("CLAIMS", "X-1", None)]),
    ("# tolerance (MATH\n# §2.3)", [("MATH", "2.3", None)]),
    ("CLAIMS.md §V).", [("CLAIMS", "V", None)]),
    ("MATH §6.6, item 2 and §9.5;", [("MATH", "6.6", "2"), ("MATH", "9.5", None)]),
    ("CLAIMS.md id, statement", []),
    ("MATHS §1", []),
])
def test_extractor_reads_every_citation_form(text: str, expected: list[tuple]) -> None:
    assert [(c.doc, c.ref, c.item) for c in extract(text, "t")] == expected


def test_bogus_citations_are_caught(spec: dict[str, SpecDoc]) -> None:
    """The check has power: made-up sections, items and claim ids do not resolve, real ones do."""
    real = extract("MATH §7.3; MATH §6.4 item 6; CLAIMS X-1; CONVENTIONS §10 #13; CONVENTIONS §12.8", "t")
    assert unresolved(real, spec) == []
    bogus = extract("MATH §7.99; MATH §6.4 item 60; CLAIMS X-99; CLAIMS Q-1; CONVENTIONS §10 #99; "
                    "CONVENTIONS §12.80; MATH §8.1 (A9); CLAIMS §0.9", "t")
    assert len(bogus) == 8 and unresolved(bogus, spec) == bogus


def test_spec_documents_have_stable_numbering(spec: dict[str, SpecDoc]) -> None:
    """The section and claim numbers the code cites exist (the shared spec's numbering is kept)."""
    for key in [str(i) for i in range(12)] + ["6.9", "7.3", "9.8", "10.6"]:
        assert key in spec["MATH"].bodies, key
    for key in ["0.1", "0.2", "0.3", "P", "G", "L", "M", "V", "A", "R", "S", "I", "X", "T",
                "P-7", "G-13", "L-11", "M-9", "V-5", "A-8", "R-7", "S-3", "I-10", "X-3", "T-1", "T-2"]:
        assert key in spec["CLAIMS"].bodies, key
    for key in [str(i) for i in range(14)]:
        assert key in spec["CONVENTIONS"].bodies, key


def _allowed_values(fname: str) -> tuple[object, ...] | None:
    """The values the Profile constructor accepts for ``fname`` (read from its own error message)."""
    from manifold_oracle.conformance.profiles import Profile
    from manifold_oracle.reference.errors import InvalidInputError

    if fname == "name":
        return None
    try:
        Profile(**{"name": "probe", fname: "__not_a_value__"})
    except InvalidInputError as exc:
        m = re.search(r"not in (\(.*\))\s*$", str(exc))
        return ast.literal_eval(m[1]) if m else None
    return None


def test_every_profile_field_and_value_is_in_conventions_section_1(spec: dict[str, SpecDoc]) -> None:
    from manifold_oracle.conformance.profiles import ManifoldDecl, Profile

    body = spec["CONVENTIONS"].bodies["1"]
    missing = []
    for cls in (Profile, ManifoldDecl):
        for f in dataclasses.fields(cls):
            if f"`{f.name}`" not in body:
                missing.append(f"{cls.__name__}.{f.name}")
    enumerated = 0
    for f in dataclasses.fields(Profile):
        allowed = _allowed_values(f.name)
        if allowed is None:
            continue
        enumerated += 1
        row = next((ln for ln in body.splitlines() if ln.startswith(f"| `{f.name}`")), "")
        missing += [f"{f.name}={v!r}" for v in allowed if f"`{v}`" not in row]
    assert enumerated >= 15  # the constructor validates the enumerated fields (probe works)
    assert not missing, f"CONVENTIONS §1 does not document: {missing}"
