"""Print the import graph's circles (strongly connected components) and its number of arrows
among perfmodel's modules. Module-level and function-level imports count alike (parsed with
ast, nothing is imported). Exit 1 when a circle remains.

    python tools/import_graph.py [--arrows]
"""

from __future__ import annotations

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def modules(root: pathlib.Path = ROOT) -> dict[str, pathlib.Path]:
    """Dotted module name -> file, for every .py file under perfmodel/."""
    mods = {}
    for f in (root / "perfmodel").rglob("*.py"):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def graph(mods: dict[str, pathlib.Path]) -> dict[str, set[str]]:
    """module -> the perfmodel modules it imports (a `from pkg import sub` names pkg.sub)."""
    out = {m: set() for m in mods}
    for m, f in mods.items():
        pkg = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(pkg[:len(pkg) - node.level + 1]) if node.level else ""
                mod = ".".join(x for x in (base, node.module or "") if x)
                names = [mod] + [mod + "." + a.name for a in node.names]
            out[m].update(n for n in names if n in mods and n != m)
    return out


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
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

    for v in sorted(g):
        if v not in index:
            visit(v)
    return sorted(out)


def main(argv: list[str]) -> int:
    g = graph(modules())
    found = cycles(g)
    if "--arrows" in argv:
        for m in sorted(g):
            for n in sorted(g[m]):
                print(f"{m} -> {n}")
    for comp in found:
        print("cycle: " + " <-> ".join(comp))
    print(f"{len(g)} modules, {sum(map(len, g.values()))} arrows, {len(found)} cycles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
