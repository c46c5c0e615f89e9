"""The import graph (tools/import_graph.py): no circles and no two rooms importing each other,
and the checker finds a planted circle."""

from __future__ import annotations

import importlib.util
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "import_graph.py"


def _tool():
    spec = importlib.util.spec_from_file_location("import_graph", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_perfmodel_has_no_import_circle_and_no_two_way_rooms():
    ig = _tool()
    graph = ig.graph(ig.modules())
    assert "perfmodel.cost.predict" in graph and len(graph) > 50
    assert ig.cycles(graph) == []
    assert ig.two_way_rooms(graph) == []


def test_the_checker_finds_a_planted_circle(tmp_path):
    ig = _tool()
    pkg = tmp_path / "perfmodel"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from perfmodel.a import x\n")  # the module a.x
    (pkg / "a" / "x.py").write_text("def f():\n    from perfmodel.b import y\n")
    (pkg / "b.py").write_text("from perfmodel.a.x import f\ny = 1\n")
    graph = ig.graph(ig.modules(tmp_path))
    assert graph["perfmodel.a"] == {"perfmodel.a.x"}
    assert ig.cycles(graph) == [["perfmodel.a.x", "perfmodel.b"]]
    assert ig.two_way_rooms(graph) == [("perfmodel.a", "perfmodel.b")]
