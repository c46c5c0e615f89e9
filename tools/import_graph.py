"""Print the import graph's circles (strongly connected components) and its number of arrows
among perfmodel's modules. Module-level and function-level imports count alike (parsed with
ast, nothing is imported); `from pkg import sub` of a module sub is an arrow to pkg.sub alone,
as `import pkg.sub` is, of any other name an arrow to pkg. Also prints the pairs of rooms
(top-level packages) with arrows both ways. Exit 1 when a circle or such a pair remains.

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
    """module -> the perfmodel modules it imports."""
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
                subs = [mod + "." + a.name for a in node.names]
                # `from pkg import sub` binds the module pkg.sub, as `import pkg.sub` does: an
                # arrow to pkg.sub alone; a name that is no module is an arrow to pkg
                names = [n for n in subs if n in mods]
                if len(names) < len(subs):
                    names.append(mod)
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


def room(module: str) -> str:
    """The top-level package (room) of a module: perfmodel.cost.predict -> perfmodel.cost."""
    return ".".join(module.split(".")[:2])


def two_way_rooms(g: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of rooms with arrows both ways between their modules (perfmodel.cli.* counts as
    one room, top-level modules such as perfmodel.api as rooms of their own)."""
    arrows = {(room(m), room(n)) for m, targets in g.items() for n in targets
              if room(m) != room(n)}
    return sorted((a, b) for a, b in arrows if a < b and (b, a) in arrows)


def main(argv: list[str]) -> int:
    g = graph(modules())
    found = cycles(g)
    if "--arrows" in argv:
        for m in sorted(g):
            for n in sorted(g[m]):
                print(f"{m} -> {n}")
    for comp in found:
        print("cycle: " + " <-> ".join(comp))
    both = two_way_rooms(g)
    for a, b in both:
        print(f"rooms importing each other: {a} <-> {b}")
    rooms = {(room(m), room(n)) for m, targets in g.items() for n in targets
             if room(m) != room(n)}
    print(f"{len(g)} modules, {sum(map(len, g.values()))} arrows ({len(rooms)} between "
          f"{len({room(m) for m in g})} rooms), {len(found)} cycles, {len(both)} pairs of "
          "rooms importing each other")
    return 1 if found or both else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
