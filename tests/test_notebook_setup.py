"""Every notebook opens the same way: title (with its Colab badge), then the one setup cell; no `../` paths."""
import json
import re

import pytest

from ogclip_utils import nbtools, paths

NOTEBOOKS = sorted(paths.NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def test_there_are_seven_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_title_first_with_its_own_colab_badge(path):
    first = _cells(path)[0]
    text = "".join(first["source"])
    assert first["cell_type"] == "markdown" and text.startswith("# "), "the title comes before any code"
    assert nbtools.colab_badge(path.name) in text, "the badge opens this very notebook from REPO_URL"
    assert "## What you will learn" in text or "### What you will learn" in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_setup_cell_is_the_one_setup_cell(path):
    setup = _cells(path)[1]
    assert setup["cell_type"] == "code"
    assert "".join(setup["source"]) == nbtools.setup_cell_source()
    assert "nbval-ignore-output" in setup.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_directives_are_cell_tags_not_comments_in_student_code(path):
    for i, c in enumerate(_cells(path)):
        if c["cell_type"] == "code":
            assert "NBVAL_" not in "".join(c["source"]), f"cell {i}: use the tag nbval-ignore-output / nbval-skip"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_relative_parent_paths_and_no_os_system(path):
    for i, c in enumerate(_cells(path)):
        if c["cell_type"] != "code":
            continue
        src = "".join(c["source"])
        assert "../" not in src, f"cell {i}: use paths.REPO_ROOT / paths.outputs_dir, not ../ (breaks in Colab)"
        assert "os.system" not in src, f"cell {i}: os.system hides failures; use subprocess with a checked return code"


def test_the_setup_cell_is_valid_python_and_uses_the_one_address():
    src = nbtools.setup_cell_source()
    compile("\n".join(l for l in src.split("\n") if not l.startswith("%")), "setup", "exec")
    assert re.findall(r'REPO = "([^"]+)"', src) == [paths.REPO_URL]
    readme = (paths.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for p in NOTEBOOKS:
        assert nbtools.colab_badge(p.name) in readme, f"README's notebook map lacks the Colab badge of {p.name}"


def test_outputs_dir_stays_inside_the_repository():
    d = paths.outputs_dir("../../etc")
    assert d.parent == paths.OUTPUT_DIR and d.name == "etc"
