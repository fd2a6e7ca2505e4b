"""The package's shape, checked from its source: layers that import one way, no cycles, no
private name crossing a module boundary, small files, and no citation of a file the
repository does not contain (docs/architecture.md describes the layers).

Everything is read with :mod:`ast` from the files on disk (no ``git``, so the checks hold
in an exported tree too), counting imports inside functions as well as at the top.
Imports made from a string (the registries' ``importlib.import_module`` of their own
package, which is how adding a file adds a component) are not imports of the code.

Mutation tried: a function in ``core/io.py`` importing ``pipeline.stages`` and a private
name of ``claims.judge`` fails the layer, cycle and private-name tests; the evaluation
families' former import of the stages (a cycle through ``evaluation/__init__``) is the
self-test's fixture.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ebm_bench"
MAX_LINES = 500

LAYERS = ["core", "data", "nets", "samplers", "methods", "training", "metrics", "evaluation",
          "reports", "claims", "pipeline", "experiments", "bench", "cli"]
LONG_FILE_MARK = "Longer than 500 lines because"


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """``ebm_bench.X...`` is in layer X; the package's own ``__init__`` / ``__main__`` and
    ``cli`` are the top."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__", "cli"):
        return "cli"
    return parts[1] if parts[1] in LAYERS else None


def long_file_reason(path: Path) -> bool:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return LONG_FILE_MARK in doc


class ImportGraph:
    def __init__(self) -> None:
        self.edges: dict[str, set[str]] = {}
        self.private: list[tuple[str, str, str]] = []

    def cycles(self) -> list[list[str]]:
        """Strongly connected components of more than one module (Tarjan), each sorted."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on: set[str] = set()
        out: list[list[str]] = []

        def visit(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            on.add(v)
            for w in sorted(self.edges.get(v, ())):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

        for v in sorted(self.edges):
            if v not in index:
                visit(v)
        return sorted(out)


def import_graph(package: Path) -> ImportGraph:
    """Module -> modules it imports (anywhere in the file), within ``package``; importing
    ``a.b.c`` also imports the packages ``a.b`` and ``a`` (their ``__init__`` runs)."""
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    root = package.name
    g = ImportGraph()

    def known(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".")[: len(mod.split(".")) - (0 if is_pkg else 1)]
                    base = base[: len(base) - (node.level - 1)]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                if src.split(".")[0] != root:
                    continue
                for a in node.names:
                    full = f"{src}.{a.name}"
                    if full in files:
                        targets.add(full)
                    else:
                        targets.add(src)
                        if a.name.startswith("_") and not a.name.startswith("__") and known(src) != mod:
                            g.private.append((mod, known(src) or src, a.name))
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.split(".")[0] == root)
        # the module and every package above it, except the packages that hold ``mod``
        # itself (they are always being imported already when ``mod`` runs)
        own = {mod.rsplit(".", k)[0] for k in range(1, mod.count(".") + 1)}
        edges: set[str] = set()
        for t in targets:
            t = known(t)
            while t:
                if t != mod and t not in own:
                    edges.add(t)
                t = t.rpartition(".")[0]
        g.edges[mod] = edges
    return g


@pytest.fixture(scope="module")
def graph():
    return import_graph(PACKAGE)


def test_every_module_has_a_layer(graph):
    modules = {module_name(p, PACKAGE) for p in PACKAGE.rglob("*.py")}
    assert modules, "no modules found"
    assert [m for m in modules if layer_of(m) is None] == []


def test_layers_import_one_way(graph):
    """A module imports only modules of its own layer or of the layers below it
    (core -> data -> nets -> samplers -> methods -> training -> metrics -> evaluation
    -> reports -> claims -> pipeline -> experiments -> bench -> cli)."""
    upward = [(src, dst) for src, edges in graph.edges.items() for dst in edges
              if LAYERS.index(layer_of(dst)) > LAYERS.index(layer_of(src))]
    assert upward == []


def test_no_import_cycle(graph):
    """Importing ``a.b.c`` runs ``a/b/__init__.py`` too, so a package's ``__init__`` counts
    as imported by every import of its modules."""
    assert graph.cycles() == []


def test_no_private_name_crosses_a_module(graph):
    assert graph.private == []


def test_files_are_small_or_say_why():
    long = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
            if len(p.read_text().splitlines()) > MAX_LINES and not long_file_reason(p)]
    assert long == []


def test_the_repository_cites_only_what_it_contains():
    """Two files of the founders' workspace are not part of the repository; a user has
    neither, so nothing here may send them there."""
    skip = {".git", ".venv", "results", ".snakemake", "__pycache__", ".pytest_cache"}
    this = Path(__file__).resolve()
    hits = []
    for p in ROOT.rglob("*"):
        if not p.is_file() or skip & set(p.relative_to(ROOT).parts) or p.resolve() == this:
            continue
        if p.suffix not in {".py", ".md", ".yaml", ".yml", ".smk", ".rst", ".toml", ".txt", ".json", ".c", ".sh", ""}:
            continue
        try:
            text = p.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for name in ("METHODS" + ".md", "DESIGN" + ".md"):
            if name in text:
                hits.append(f"{p.relative_to(ROOT)}: {name}")
    assert hits == []


def test_the_graph_sees_imports_inside_functions(tmp_path):
    """The checker itself: an import in a function body is an edge, a cycle through a
    package ``__init__`` is found, and a private name is reported."""
    pkg = tmp_path / "ebm_bench"
    (pkg / "core").mkdir(parents=True)
    (pkg / "evaluation").mkdir()
    (pkg / "pipeline").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "io.py").write_text("def _hidden():\n    pass\n")
    (pkg / "evaluation" / "__init__.py").write_text("import importlib\n")
    (pkg / "evaluation" / "fid.py").write_text(
        "def f():\n    from ebm_bench.pipeline.stages import g\n    from ..core.io import _hidden\n")
    (pkg / "pipeline" / "__init__.py").write_text("")
    (pkg / "pipeline" / "stages.py").write_text("from ebm_bench import evaluation\nimport ebm_bench.evaluation.fid\n")
    g = import_graph(pkg)
    assert "ebm_bench.pipeline.stages" in g.edges["ebm_bench.evaluation.fid"]
    assert g.cycles() == [["ebm_bench.evaluation.fid", "ebm_bench.pipeline.stages"]]
    assert g.private == [("ebm_bench.evaluation.fid", "ebm_bench.core.io", "_hidden")]
    assert ast.parse((pkg / "evaluation" / "fid.py").read_text())  # the fixture is valid Python
