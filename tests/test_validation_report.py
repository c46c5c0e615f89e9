"""docs/validation.md's generated part (between its marker lines) and docs/roofline-*.svg are
what `python -m perfmodel.validate.report` computes from the raw measurements today (a stale
block fails here, as a stale docs/cli.md does in test_cli.py), and the rewrite keeps every line
of prose outside the markers."""

from __future__ import annotations

import pytest

from perfmodel.validate import silicon
from perfmodel.validate.report_text import DOC, END, START, splice


@pytest.mark.skipif(not silicon.CSV.exists(),
                    reason=f"the serving rows are not here ({silicon.CSV}); the generated "
                           "block's serving table needs them")
def test_generated_report_is_current():
    from perfmodel.validate.report import render

    files = render()
    assert DOC in files and len(files) >= 3  # the page and a roofline plot per measured GPU
    for path, text in files.items():
        assert path.read_text() == text, (
            f"{path.name} is stale: run python -m perfmodel.validate.report")


def test_splice_replaces_the_block_and_keeps_the_prose():
    text = f"# Page\n\nprose before\n{START}\nold line\nold table\n{END}\nprose after\n\nend\n"
    assert splice(text, ["new", "", "| a |"]) == (
        f"# Page\n\nprose before\n{START}\nnew\n\n| a |\n{END}\nprose after\n\nend\n")


def test_the_doc_has_one_generated_block_and_prose_around_it():
    text = DOC.read_text()
    assert text.count(START) == text.count(END) == 1
    before, after = text.split(START)[0], text.split(END)[1]
    assert len(before.splitlines()) > 20 and len(after.splitlines()) > 20  # hand-written prose


@pytest.mark.parametrize("text", ["no markers\n", f"{END}\n{START}\n", f"{START}\n{START}\n{END}\n"])
def test_splice_refuses_a_page_without_one_ordered_pair_of_markers(text):
    with pytest.raises(ValueError, match="generated part"):
        splice(text, ["x"])
