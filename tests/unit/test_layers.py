"""Imports flow one way (README, Layout): a module imports only from packages of a lower
layer (or its own package). The layers are listed here and in the README, the same order;
a test fails on any import that runs up (issue #26: `config` read `embedded`, `simulate`
signed with `http`'s helper)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "leadstream"

#: lowest first; a package may import from any package of a lower layer
LAYERS: list[set[str]] = [
    {"domain", "runtime", "retry"},
    {"config", "ingest", "db"},
    {"streams"},
    {"broker", "simulate"},
    {"app", "sink", "summarize", "ops", "reconcile", "team"},
    {"tables", "http"},
    {"agents", "embedded"},
    {"bootstrap"},
    {"cli"},
    {"__main__"},
]
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def _package(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module))
    return [(n, m) for n, m in out if m == "leadstream" or m.startswith("leadstream.")]


def test_every_package_has_a_layer() -> None:
    packages = {_package(p) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"
                or p.parent != PACKAGE}
    assert packages <= set(RANK), sorted(packages - set(RANK))


def test_no_import_runs_up_the_layers() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE and path.name == "__init__.py":
            continue
        src = _package(path)
        for line, module in _imports(path):
            parts = module.split(".")
            if len(parts) < 2:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports the package root")
                continue
            dst = parts[1]
            if dst != src and RANK[dst] >= RANK[src]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} {src} -> {dst}")
    assert not wrong, "imports that run up (or sideways) the layers:\n" + "\n".join(wrong)


def test_the_readme_lists_the_same_layers() -> None:
    readme = (ROOT / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("Layers, lowest first:"))
    listed = [set(part.replace("`", "").replace(" ", "").split(","))
              for part in line.split(":", 1)[1].rstrip(".").split(";")]
    assert listed == LAYERS
