"""perfmodel/fitted.py holds every fitted value: each is defined there only, read from there by
the modules its record names, and the figures docs/serving.md gives are the ones in the code."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from perfmodel import fitted

ROOT = Path(__file__).resolve().parent.parent


def _module_file(name: str) -> Path:
    path = ROOT.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _imported_from_fitted(path: Path) -> set[str]:
    return {alias.name for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module == "perfmodel.fitted"
            for alias in node.names}


def _assigned(path: Path) -> set[str]:
    """Module-level names a file assigns (plain or annotated)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        out.update(t.id for t in targets if isinstance(t, ast.Name))
    return out


def test_every_record_names_a_constant_read_by_its_modules():
    names = [f.name for f in fitted.FITTED]
    assert len(names) == len(set(names)) >= 5
    for record in fitted.FITTED:
        assert hasattr(fitted, record.name), record.name
        assert record.rule and record.data and record.half
        for module in record.read_by:
            assert record.name in _imported_from_fitted(_module_file(module)), (record, module)


def test_no_other_module_defines_a_fitted_value():
    names = {f.name for f in fitted.FITTED} | {"MARGIN"}  # cli/planning.py's old name
    for path in (ROOT / "perfmodel").rglob("*.py"):
        if path.name != "fitted.py":
            assert not names & _assigned(path), path


def test_docs_give_the_host_overheads_in_the_code():
    """docs/serving.md records what `validate-serving --fit` printed; the code holds those."""
    text = (ROOT / "docs" / "serving.md").read_text()
    printed = re.search(r"validate-serving --fit\s+# (\{.*?\})", text)
    assert printed is not None
    assert json.loads(printed.group(1)) == fitted.HOST_OVERHEAD_S


def test_the_request_count_rule():
    """max(4·C, 40) for the published rows, capped at 2 M output tokens but never below 2·C."""
    from perfmodel.validate.silicon import num_requests_for

    assert [num_requests_for(c, 128) for c in (1, 10, 11, 64)] == [40, 40, 44, 256]
    assert num_requests_for(256, 20_000) == 512  # 2 M / 20k = 100, floored at 2·C
