"""The mechanical side of "a chapter is a lesson": what the stored notebooks must hold, checked without running them.

Prose that quotes a figure of the run marks it in an HTML comment at the end of its cell,
``<!-- quoted: 89.6 %; 633 steps -->``, invisible when rendered. Each marked figure must appear in that cell's text
and in the notebook's stored outputs, so a rerun that changes a number cannot leave the prose behind unnoticed.
"""
import json
import re
from pathlib import Path

import pytest

from conftest import ROOT

CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb"))
QUOTED = re.compile(r"<!--\s*quoted:(.*?)-->", re.S)


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def output_text(path: Path) -> str:
    """Every text the stored outputs show: streams, plain-text results, HTML tables."""
    parts = []
    for cell in cells(path):
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            for kind in ("text/plain", "text/html"):
                parts.append("".join(out.get("data", {}).get(kind, "")))
    return "\n".join(parts)


def prose(path: Path) -> list[str]:
    return [source(c) for c in cells(path) if c["cell_type"] == "markdown"]


def quoted_figures(text: str) -> list[str]:
    return [figure.strip() for block in QUOTED.findall(text) for figure in block.split(";") if figure.strip()]


def test_the_quoted_figure_check_finds_a_figure_missing_from_the_outputs():
    text = "The fine-tune scores **91.2 %** on test. <!-- quoted: 91.2 %; 640 steps -->"
    assert quoted_figures(text) == ["91.2 %", "640 steps"]
    outputs = "test exact match 91.2 %"
    assert [f for f in quoted_figures(text) if f not in outputs] == ["640 steps"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_figure_the_prose_quotes_is_in_the_stored_outputs(path):
    outputs = output_text(path)
    for text in prose(path):
        visible = QUOTED.sub("", text)
        for figure in quoted_figures(text):
            assert figure in visible, f"{path.name}: marks {figure!r} as quoted but its prose does not show it"
            assert figure in outputs, f"{path.name}: the prose quotes {figure!r}, which no stored output contains"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_opens_with_runs_on_and_what_you_will_learn(path):
    first = prose(path)[0]
    assert "**Runs on:**" in first and "**You will learn**" in first, path.name


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_ends_with_a_recap_and_a_link_onwards(path):
    text = "\n".join(prose(path))
    assert "## Recap" in text, f"{path.name}: no recap"
    links = re.findall(r"\]\(([^)#]+\.(?:ipynb|md))(?:#[^)]*)?\)", text.split("## Recap")[-1])
    assert links, f"{path.name}: the recap links to no next chapter"
    for link in links:
        assert (path.parent / link).resolve().is_file(), f"{path.name}: links to {link}, which does not exist"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_a_figure_in_its_stored_outputs(path):
    figures = [out for cell in cells(path) for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert figures, f"{path.name}: no figure in the stored outputs"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_prose_reads_the_same_next_year(path):
    for text in prose(path):
        dates = re.findall(r"\b20\d\d-\d\d-\d\d\b", QUOTED.sub("", text))
        assert not dates, f"{path.name}: dated run history in the prose ({dates[0]}): it belongs in docs/experiments.md"
        assert not re.search(r"\b(previous|earlier|last) (stored )?run\b", text, re.I), \
            f"{path.name}: the prose narrates runs; a lesson explains the one in front of the learner"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_stored_outputs_hold_no_absolute_paths(path):
    found = re.findall(r"(?:/tmp/|/work/|/root/|/home/|/content/)\S*", output_text(path))
    assert not found, f"{path.name}: an absolute path in the stored outputs: {found[0]}"


#: Words that stand in for a figure the run has not given yet; a stored chapter says the figure instead.
UNFINISHED = re.compile(r"\(the figure in the output above\)|\ba few GiB\b|\bin about a few minutes\b")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_prose_states_its_figures_instead_of_pointing_at_them(path):
    for text in prose(path):
        found = UNFINISHED.search(text)
        assert not found, f"{path.name}: unfinished prose ({found.group(0)!r}): write the figure the run gave"
