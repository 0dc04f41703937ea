"""Tolerant comparison of notebook outputs (ogclip_utils.nbcheck) and the portability report."""
import json

import nbformat
import pytest

from ogclip_utils import nbcheck, nbtools


def _stdout(*chunks):
    return [{"output_type": "stream", "name": "stdout", "text": c} for c in chunks]


TABLE = ("variant            attribute  relational     all     n\n"
         "masked                 92.8%       16.5%   43.5%   749\n"
         "pseudo-query            9.9%       21.1%   43.7%   749\n")


def test_split_numbers_keeps_words_and_collapses_spaces():
    skel, nums = nbcheck.split_numbers("mIoU  14.1 %, n=749, t2i_r1 -0.5 1e-3")
    assert nums == [14.1, 749.0, 2.0, 1.0, -0.5, 1e-3]
    assert skel[0] == "mIoU "
    # a hyphen inside a name is not a sign
    assert nbcheck.split_numbers("2007-000033")[1] == [2007.0, 33.0]


def test_within_tolerance_passes_even_when_columns_realign():
    moved = TABLE.replace("21.1%   43.7%", "20.9%   43.5%").replace(" 9.9%", "10.1%")
    assert nbcheck.compare_text(TABLE, moved, nbcheck.Tolerance(0.6, "why")) == []


def test_beyond_tolerance_names_the_number_and_its_line():
    moved = TABLE.replace("16.5%", "18.5%")
    problems = nbcheck.compare_text(TABLE, moved, nbcheck.Tolerance(0.6, "why"))
    assert len(problems) == 1
    msg = str(problems[0])
    assert "committed 16.5, now 18.5" in msg and "masked" in msg and "tolerance 0.6" in msg


def test_changed_words_fail_whatever_the_tolerance():
    problems = nbcheck.compare_text("-> object 2 (purple triangle)", "-> object 2 (blue triangle)",
                                    nbcheck.Tolerance(100.0, "why"))
    assert problems and "text differs" in str(problems[0])
    # an extra number is a structural change too
    assert nbcheck.compare_text("a 1 b", "a 1 b 2", nbcheck.Tolerance(100.0, "why"))


def test_compare_cell_joins_stdout_chunks_and_ignores_stderr():
    ref = _stdout("mIoU 14.1 %\n", "pixel acc 84.6 %\n")
    new = _stdout("mIoU 14.3 %\npixel acc 84.6 %\n") + [{"output_type": "stream", "name": "stderr", "text": "warn"}]
    assert nbcheck.compare_cell(ref, new, nbcheck.Tolerance(0.5, "why")) == []
    figure = [{"output_type": "display_data", "data": {"text/plain": "<Figure>"}}]
    assert nbcheck.compare_cell(ref, new + figure, nbcheck.Tolerance(0.5, "why"))  # a missing figure fails


def test_cell_tolerance_from_metadata():
    assert nbcheck.cell_tolerance({}) is None
    assert nbcheck.cell_tolerance({"tags": ["x"]}) is None
    tol = nbcheck.cell_tolerance({"ogclip": {"tolerance": 0.5, "why": "measured 0.2"}})
    assert tol == nbcheck.Tolerance(0.5, "measured 0.2")
    with pytest.raises(ValueError, match="why"):
        nbcheck.cell_tolerance({"ogclip": {"tolerance": 0.5}})
    with pytest.raises(ValueError, match="finite number"):
        nbcheck.cell_tolerance({"ogclip": {"tolerance": -1, "why": "x"}})


def _notebook(path, text, tolerance=None):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(x)")
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    if tolerance is not None:
        cell.metadata["ogclip"] = {"tolerance": tolerance, "why": "test"}
    nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def test_compare_executed_reports_moves_and_tolerance(tmp_path):
    ref = _notebook(tmp_path / "ref.ipynb", "mIoU 14.1 %\n", tolerance=0.5)
    same = _notebook(tmp_path / "same.ipynb", "mIoU 14.1 %\n")
    near = _notebook(tmp_path / "near.ipynb", "mIoU 14.3 %\n")
    far = _notebook(tmp_path / "far.ipynb", "mIoU 15.1 %\n")
    words = _notebook(tmp_path / "words.ipynb", "mAcc 14.1 %\n")
    assert nbtools.compare_executed(ref, same) == []
    assert nbtools.compare_executed(ref, near)[0]["status"] == "within tolerance"
    row = nbtools.compare_executed(ref, far)[0]
    assert row["status"] == "numbers moved" and row["max_abs"] == pytest.approx(1.0)
    assert nbtools.compare_executed(ref, words)[0]["status"] == "text changed"


def test_committed_tolerances_are_well_formed_and_justified():
    """Every tolerance in a committed notebook parses and says why; none is large."""
    for path in sorted(nbtools.NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            tol = nbcheck.cell_tolerance(cell.get("metadata"))
            if tol is not None:
                assert cell["cell_type"] == "code", f"{path.name} cell {i}"
                assert tol.abs <= 2.0, f"{path.name} cell {i}: tolerance {tol.abs} is too loose to catch a regression"
                assert len(tol.why) > 20, f"{path.name} cell {i}: say what measured spread justifies the tolerance"


def test_whole_numbers_stay_exact_unless_the_cell_says_integers():
    tol = nbcheck.Tolerance(1.0, "why")
    problems = nbcheck.compare_text("43.5%   749", "43.7%   748", tol)
    assert len(problems) == 1 and "whole numbers must match exactly" in str(problems[0])
    assert nbcheck.compare_text("3136 confident pixels", "3137 confident pixels",
                                nbcheck.Tolerance(2, "why", integers=True)) == []


def _printing_notebook(path, printed_now, committed, tolerance):
    """A notebook whose one cell prints ``printed_now`` but has ``committed`` as its stored output."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    cell = nbformat.v4.new_code_cell(f"print({printed_now!r})")
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=committed + "\n")]
    if tolerance is not None:
        cell.metadata["ogclip"] = {"tolerance": tolerance, "why": "a test of the nbval hook"}
    nb.cells.append(cell)
    nbformat.write(nb, path)


@pytest.mark.slow
def test_nbval_hook_applies_the_cell_tolerance(tmp_path):
    """The real thing: pytest --nbval with notebooks/conftest.py passes a small move, fails a large one."""
    import shutil
    import subprocess
    import sys

    shutil.copy(nbtools.NOTEBOOK_DIR / "conftest.py", tmp_path / "conftest.py")
    _printing_notebook(tmp_path / "near.ipynb", "mIoU 14.3 %, n=749", "mIoU 14.1 %, n=749", 0.5)
    _printing_notebook(tmp_path / "far.ipynb", "mIoU 15.3 %, n=749", "mIoU 14.1 %, n=749", 0.5)
    _printing_notebook(tmp_path / "exact.ipynb", "mIoU 14.3 %, n=749", "mIoU 14.1 %, n=749", None)
    _printing_notebook(tmp_path / "count.ipynb", "mIoU 14.1 %, n=748", "mIoU 14.1 %, n=749", 0.5)

    # one pytest run over the four notebooks (a kernel start each, not a Python start each)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "--nbval",
                          "--nbval-current-env", "near.ipynb", "far.ipynb", "exact.ipynb", "count.ipynb"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    summary = [ln for ln in run.stdout.splitlines() if ln.startswith(("PASSED", "FAILED"))]

    def outcome(name):
        rows = [ln.split()[0] for ln in summary if f"{name}.ipynb::" in ln]
        assert len(rows) == 1, f"expected one result for {name}.ipynb in:\n{run.stdout[-3000:]}"
        return rows[0]

    assert outcome("near") == "PASSED"
    assert outcome("far") == "FAILED" and "committed 14.1, now 15.3" in run.stdout
    assert outcome("exact") == "FAILED"  # no tolerance: compared exactly, as nbval does
    assert outcome("count") == "FAILED" and "whole numbers must match exactly" in run.stdout
