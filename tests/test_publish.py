import shutil

import nbformat
import pytest

from helpers.errors import CourseError
from helpers.publish import BADGE, check, first_cell, notebooks, publish, settings

from conftest import ROOT


def test_every_badge_first_cell_and_binder_file_agrees_with_course_toml():
    assert check() == []


def copy_of_the_course(tmp_path):
    for name in ("course.toml", "requirements.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("notebooks", "solutions", "binder"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def test_a_badge_to_another_repository_or_to_a_missing_notebook_is_caught(tmp_path):
    root = copy_of_the_course(tmp_path)
    path = root / "notebooks" / "03_lora_setup.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("blob/main/notebooks/03_lora_setup.ipynb",
                                                    "blob/main/notebooks/03_lora.ipynb")
    nbformat.write(nb, path)
    other = root / "notebooks" / "05_evaluation.ipynb"
    other.write_text(other.read_text().replace(settings()[0], "someone/else"))
    problems = check(root)
    assert "notebooks/03_lora_setup.ipynb: the badge opens notebooks/03_lora.ipynb, not this notebook " \
           "(no such file)" in problems
    assert any(p.startswith("notebooks/05_evaluation.ipynb: the badge points to someone/else@main") for p in problems)
    assert any(p.startswith("notebooks/05_evaluation.ipynb: the first code cell") for p in problems)


def test_publishing_a_fork_rewrites_the_badges_first_cells_and_course_toml(tmp_path):
    root = copy_of_the_course(tmp_path)
    changed = publish("my-org/icd10-fork", "dev", root=root)
    assert len(changed) == len(notebooks(root)) > len(list((root / "notebooks").glob("*.ipynb")))  # + solutions/
    assert settings(root / "course.toml") == ("my-org/icd10-fork", "dev")
    assert check(root) == []
    nb = nbformat.read(root / "notebooks" / "01_curation.ipynb", as_version=4)
    assert BADGE.search(nb.cells[0].source)["repo"] == "my-org/icd10-fork"
    code = next(c for c in nb.cells if c.cell_type == "code")
    assert code.source == first_cell("my-org/icd10-fork") and 'REPOSITORY = "my-org/icd10-fork"' in code.source
    assert publish("my-org/icd10-fork", "dev", root=root) == []  # a second run changes nothing


@pytest.mark.parametrize("name", ["icd10-course", "a/b/c", "owner/name; rm -rf /", ""])
def test_a_repository_that_is_not_owner_slash_name_is_refused(tmp_path, name):
    root = copy_of_the_course(tmp_path)
    before = (root / "course.toml").read_text()
    with pytest.raises(CourseError, match="write it as owner/name"):
        publish(name, root=root)
    assert (root / "course.toml").read_text() == before
