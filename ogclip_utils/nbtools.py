"""Notebook tooling for authors and ``make demo`` (not used by the lessons themselves).

- :data:`SETUP_CELL`: the first code cell of every notebook (JupyterLab and Colab).
- :func:`new_notebook`: write a notebook from ``[("md", text), ("code", text), …]``.
- :func:`execute`: run a notebook in place, headless, in offline mode (outputs committed).
- ``python -m ogclip_utils.nbtools demo [--out outputs]``: execute every notebook into
  ``outputs/`` and write browsable HTML copies.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"

SETUP_CELL = '''# NBVAL_IGNORE_OUTPUT
# Setup — works in JupyterLab (`make lab`) and Google Colab. Run this cell first.
import os, sys
if "google.colab" in sys.modules:
    # Colab: fetch the repository and install it WITHOUT reinstalling Colab's own torch.
    REPO = os.environ.get("OGCLIP_REPO", "https://github.com/ogclip/object-guided-clip")
    if not os.path.exists("/content/ogclip"):
        os.system(f"git clone -q {REPO} /content/ogclip")
    os.system("pip install -q --no-deps -e /content/ogclip && pip install -q open-clip-torch sam2 diffusers ipywidgets")
    sys.path.insert(0, "/content/ogclip")
    from google.colab import output
    output.enable_custom_widget_manager()  # sliders need it
else:
    sys.path.insert(0, os.path.abspath(".."))  # the repository root, when run from notebooks/
%matplotlib inline
from ogclip_utils import env
print(env.describe())  # mode: OGCLIP_MODE=offline|real|auto (auto = real when the weights are on disk)
'''


def new_notebook(path: str | os.PathLike, cells: list[tuple[str, str]]) -> Path:
    """Write ``cells`` (``("md"|"code", source)``) as a notebook with the project's kernel metadata."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        src = src.strip("\n")
        nb.cells.append(nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src))
    path = Path(path)
    nbformat.write(nb, path)
    return path


def execute(path: str | os.PathLike, out: str | os.PathLike | None = None, timeout: int = 900) -> float:
    """Execute a notebook headless in offline mode (cwd = its folder); write it to ``out``
    (default: in place). Returns the wall time in seconds."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("OGCLIP_MODE", "offline")
    os.environ.setdefault("OGCLIP_HEADLESS", "1")  # panels draw their default figure (widgets.headless)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    t = time.time()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    dt = time.time() - t
    nb.metadata.pop("widgets", None)  # no widget state from a headless run
    nbformat.write(nb, Path(out) if out else path)
    return dt


def demo(out_dir: str | os.PathLike = "outputs") -> int:
    """Execute every notebook into ``out_dir/notebooks`` and export HTML into ``out_dir/html``."""
    import nbformat
    from nbconvert import HTMLExporter

    out = Path(out_dir)
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    (out / "html").mkdir(parents=True, exist_ok=True)
    failures = 0
    for nbp in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")):
        dst = out / "notebooks" / nbp.name
        try:
            # execute a copy next to the originals so relative paths behave the same
            tmp = nbp.with_name(f".demo_{nbp.name}")
            tmp.write_bytes(nbp.read_bytes())
            dt = execute(tmp, dst)
            tmp.unlink()
            body, _ = HTMLExporter().from_notebook_node(nbformat.read(dst, as_version=4))
            (out / "html" / nbp.with_suffix(".html").name).write_text(body, encoding="utf-8")
            print(f"  {nbp.name:40s} {dt:6.1f} s  -> {out / 'html' / nbp.with_suffix('.html').name}")
        except Exception as exc:  # noqa: BLE001 - report and go on with the next notebook
            failures += 1
            print(f"  {nbp.name:40s} FAILED: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
            tmp = nbp.with_name(f".demo_{nbp.name}")
            if tmp.exists():
                tmp.unlink()
    print(f"\nExecuted notebooks: {out / 'notebooks'}\nHTML copies:        {(out / 'html').resolve()}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogclip_utils.nbtools")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="execute every notebook and export HTML")
    d.add_argument("--out", default="outputs")
    e = sub.add_parser("execute", help="execute notebooks in place (refresh committed outputs)")
    e.add_argument("paths", nargs="+")
    a = p.parse_args(argv)
    if a.cmd == "demo":
        return demo(a.out)
    for pth in a.paths:
        print(f"{pth}: {execute(pth):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
