"""Notebook tooling for authors and ``make demo`` (not used by the lessons themselves).

- :data:`SETUP_CELL`: the setup cell every notebook has right under its title (JupyterLab and
  Colab), and :func:`colab_badge` for the title.
- :func:`new_notebook`: write a notebook from ``[("md", text), ("code", text), …]``.
- :func:`execute`: run a notebook in place, headless, in offline mode (outputs committed).
- ``python -m ogclip_utils.nbtools demo [--out outputs]``: execute every notebook into
  ``outputs/`` and write browsable HTML copies.
- ``python -m ogclip_utils.nbtools portability [--config NAME …]``: execute every notebook
  under other numeric configurations (:data:`NUMERIC_CONFIGS`) and report, cell by cell, how
  far each output moved from the committed one (what the cells' tolerances are based on).
- ``python -m ogclip_utils.nbtools real-smoke``: every notebook top to bottom in real mode with
  random-init stand-ins in a temporary cache and the network refused (``make test-real``).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from pathlib import Path

from . import nbcheck, standins
from .paths import NOTEBOOK_DIR, REPO_ROOT, REPO_URL


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


#: The setup cell every notebook starts with (after its title), with ``{repo}`` = :data:`paths.REPO_URL`;
#: its output is not compared (cell tag ``nbval-ignore-output``).
#: It cannot import the package (in Colab the package is what it installs), so it is written
#: here once and checked in every notebook by ``tests/test_notebook_setup.py``.
SETUP_CELL = """# Setup: run this cell first (JupyterLab: `make lab`; Google Colab: it installs the course).
import subprocess, sys

def _step(*cmd):  # a failed step stops the cell with the command's own error message
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"setup step failed: {' '.join(cmd)}\\n{(r.stderr or r.stdout)[-3000:]}")

if "google.colab" in sys.modules:
    import os, torch, torchvision
    REPO = "{repo}"  # = ogclip_utils.paths.REPO_URL
    if not os.path.isdir("/content/ogclip"):
        _step("git", "clone", "-q", "--depth", "1", REPO, "/content/ogclip")
    with open("/tmp/keep-colab-torch.txt", "w") as f:  # pip must not replace Colab's CUDA torch
        f.write(f"torch=={torch.__version__}\\ntorchvision=={torchvision.__version__}\\n")
    _step(sys.executable, "-m", "pip", "install", "-q", "-c", "/tmp/keep-colab-torch.txt", "-e", "/content/ogclip")
    sys.path.insert(0, "/content/ogclip")
    from google.colab import output
    output.enable_custom_widget_manager()  # the sliders need it
else:  # a clone opened in JupyterLab: the repository root is the folder that holds ogclip_utils/
    from pathlib import Path
    sys.path.insert(0, str(next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "ogclip_utils").is_dir())))
%matplotlib inline
from ogclip_utils import env
print(env.describe())
print("mode:", env.mode_reason())"""


def colab_badge(notebook: str) -> str:
    """The "Open in Colab" badge (markdown) for ``notebooks/<notebook>``."""
    slug = REPO_URL.removeprefix("https://github.com/")
    return (f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{slug}/blob/main/notebooks/{notebook})")


def setup_cell_source() -> str:
    """:data:`SETUP_CELL` with the repository address filled in."""
    return SETUP_CELL.replace("{repo}", REPO_URL)


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


NUMERIC_CONFIGS: dict[str, dict[str, str]] = {
    "default": {},
    "threads1": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "OPENBLAS_CORETYPE": "Haswell"},
    "scalar": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41",
               "OPENBLAS_CORETYPE": "Prescott", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
}
"""Numeric configurations one machine can imitate: the environment variables choose torch's
vectorised kernels (``ATEN_CPU_CAPABILITY``), MKL's and oneDNN's instruction sets, numpy's
OpenBLAS kernels (``OPENBLAS_CORETYPE``: numpy's matrix products do not go through torch) and the
thread count. ``scalar`` is the one ``make test-portable`` runs: it differs from every real
processor's default, so a knife-edge output shows up there whatever machine runs it."""


def _sanitizer(cfg: Path = NOTEBOOK_DIR / "nbval_sanitize.cfg"):
    """The same regex replacements nbval applies (``notebooks/nbval_sanitize.cfg``)."""
    import re

    pairs, regex = [], None
    for line in cfg.read_text(encoding="utf-8").splitlines():
        if line.startswith("regex:"):
            regex = line[len("regex:"):].strip()
        elif line.startswith("replace:") and regex is not None:
            pairs.append((re.compile(regex), line[len("replace:"):].strip()))
            regex = None

    def sanitize(s: str) -> str:
        for rx, rep in pairs:
            s = rx.sub(rep, s)
        return s

    return sanitize


def _ignored(cell) -> bool:
    tags = cell.get("metadata", {}).get("tags", [])
    return ("NBVAL_IGNORE_OUTPUT" in cell.source or "NBVAL_SKIP" in cell.source
            or "nbval-ignore-output" in tags or "nbval-skip" in tags)


def compare_executed(reference: str | os.PathLike, executed: str | os.PathLike) -> list[dict]:
    """Cell-by-cell comparison of an executed copy with the committed notebook.

    Returns one row per compared cell that differs: ``{"cell", "status", "max_abs", "detail",
    "tolerance"}``, where ``status`` is ``"within tolerance"``, ``"numbers moved"`` (only numbers
    differ; ``max_abs`` is the largest change) or ``"text changed"``.
    """
    import nbformat

    sanitize = _sanitizer()
    ref = nbformat.read(reference, as_version=4)
    new = nbformat.read(executed, as_version=4)
    rows = []
    for i, (rc, nc) in enumerate(zip(ref.cells, new.cells)):
        if rc.cell_type != "code" or _ignored(rc):
            continue
        tol = nbcheck.cell_tolerance(rc.get("metadata"))
        rt, nt = nbcheck.cell_text(rc.outputs, sanitize), nbcheck.cell_text(nc.outputs, sanitize)
        if rt == nt:
            continue
        row = {"cell": i, "tolerance": tol.abs if tol else None, "max_abs": None, "detail": ""}
        if [k for k, _ in rt] != [k for k, _ in nt]:
            row.update(status="text changed", detail=f"outputs {[k for k, _ in rt]} -> {[k for k, _ in nt]}")
        else:
            diffs, moved, changed = [], [], ""
            for (_, a), (_, b) in zip(rt, nt):
                sa, na = nbcheck.split_numbers(a)
                sb, nb_ = nbcheck.split_numbers(b)
                if sa != sb or len(na) != len(nb_):
                    changed = nbcheck.compare_text(a, b, nbcheck.Tolerance(0.0))[0].message
                    break
                diffs += [abs(x - y) for x, y in zip(na, nb_)]
                moved += [m.message.split(" > ")[0] for m in nbcheck.compare_text(a, b, nbcheck.Tolerance(0.0))]
            if changed:
                row.update(status="text changed", detail=changed)
            else:
                row["max_abs"] = max(diffs)
                ok = tol is not None and not nbcheck.compare_cell(rc.outputs, nc.outputs, tol, sanitize)
                row.update(status="within tolerance" if ok else "numbers moved",
                           detail=f"{len(moved)} of {len(diffs)} numbers moved" + "".join(f"\n      {m}" for m in moved[:8]))
        rows.append(row)
    return rows


@contextlib.contextmanager
def _environment(**values: str):
    """Set environment variables for the duration of a block (kernels started inside inherit
    them); the previous values, or their absence, come back afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def portability(configs: list[str], out_dir: str | os.PathLike = "outputs/portability",
                notebooks: list[str] | None = None) -> int:
    """Execute the notebooks under each of ``configs`` (names of :data:`NUMERIC_CONFIGS`) and
    print how each compared cell moved. Returns 1 if any cell fails what nbval would check."""
    unknown = [c for c in configs if c not in NUMERIC_CONFIGS]
    if unknown:
        raise ValueError(f"unknown numeric configuration(s) {unknown}; choose from {sorted(NUMERIC_CONFIGS)}")
    paths = [Path(p) for p in notebooks] if notebooks else sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    failures = 0
    for name in configs:
        env = NUMERIC_CONFIGS[name]
        print(f"== {name}: {' '.join(f'{k}={v}' for k, v in env.items()) or '(machine default)'}", flush=True)
        with _environment(**env):
            for nbp in paths:
                dst = Path(out_dir) / name / nbp.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    dt = execute(nbp, dst)
                except Exception as exc:  # noqa: BLE001 - a failing notebook is a result; go on with the next
                    failures += 1
                    print(f"  {nbp.name:36s} FAILED: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
                    continue
                rows = compare_executed(nbp, dst)
                bad = [r for r in rows if r["status"] != "within tolerance"]
                failures += bool(bad)
                print(f"  {nbp.name:36s} {dt:6.1f} s  {len(rows)} cell(s) differ, {len(bad)} beyond tolerance", flush=True)
                for r in rows:
                    tol = "exact" if r["tolerance"] is None else f"tol {r['tolerance']:g}"
                    size = "" if r["max_abs"] is None else f" max |Δ| {r['max_abs']:.4g}"
                    print(f"    cell {r['cell']:3d} [{tol}] {r['status']}{size}: {r['detail']}", flush=True)
    return 1 if failures else 0


def real_smoke(out_dir: str | os.PathLike = "outputs/real-smoke", notebooks: list[str] | None = None,
               timeout: int = 900) -> int:
    """Execute every notebook in ``OGCLIP_MODE=real`` with random-init stand-ins and the network off.

    Stand-ins of every official file (:mod:`ogclip_utils.standins`) are written into a fresh
    temporary ``$OGCLIP_CACHE``; the kernels run with ``tests/netguard`` on ``PYTHONPATH``,
    which refuses every connection that is not loopback, and ``HF_HUB_OFFLINE=1``;
    ``OGCLIP_SMOKE=1`` shrinks the lessons' loops where a notebook reads it. Outputs
    are written to ``out_dir`` and not compared (stand-ins carry no knowledge): this checks
    that each notebook runs top to bottom in real mode. Returns the number of failures."""
    import tempfile

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="ogclip-real-cache-"))
    guard = str(REPO_ROOT / "tests" / "netguard")
    pythonpath = os.pathsep.join([guard, str(REPO_ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    paths_ = [Path(p) for p in notebooks] if notebooks else sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    failures = 0
    try:
        with _environment(OGCLIP_CACHE=str(cache), OGCLIP_MODE="real", HF_HUB_OFFLINE="1", PYTHONPATH=pythonpath,
                          OGCLIP_SMOKE="1"):
            t = time.time()
            standins.write_all()
            print(f"stand-ins written to {cache} in {time.time() - t:.0f} s; network refused in the kernels", flush=True)
            for p in paths_:
                try:
                    dt = execute(p, out / p.name, timeout=timeout)
                    print(f"  {p.name:36s} ran in real mode  {dt:6.1f} s", flush=True)
                except Exception as exc:  # noqa: BLE001 - report every notebook, then fail
                    failures += 1
                    print(f"  {p.name:36s} FAILED: {type(exc).__name__}: {str(exc)[-1500:]}", flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"real-mode smoke run: {len(paths_) - failures} of {len(paths_)} notebooks ran", flush=True)
    return failures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogclip_utils.nbtools")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="execute every notebook and export HTML")
    d.add_argument("--out", default="outputs")
    e = sub.add_parser("execute", help="execute notebooks in place (refresh committed outputs)")
    e.add_argument("paths", nargs="+")
    q = sub.add_parser("portability", help="execute notebooks under other numeric configurations and report what moved")
    q.add_argument("--config", action="append", choices=sorted(NUMERIC_CONFIGS),
                   help="repeatable; default: all of " + ", ".join(NUMERIC_CONFIGS))
    q.add_argument("--out", default="outputs/portability")
    q.add_argument("notebooks", nargs="*", help="default: every numbered notebook")
    r = sub.add_parser("real-smoke", help="execute every notebook in real mode with random-init stand-ins, network off")
    r.add_argument("--out", default="outputs/real-smoke")
    r.add_argument("notebooks", nargs="*", help="default: every numbered notebook")
    w = sub.add_parser("with-config", help="run a command under a numeric configuration (used by make test-portable)")
    w.add_argument("config", choices=sorted(NUMERIC_CONFIGS))
    w.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    a = p.parse_args(argv)
    if a.cmd == "with-config":
        cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
        if not cmd:
            p.error("with-config: give the command to run after --")
        env = {**os.environ, **NUMERIC_CONFIGS[a.config]}
        print(f"numeric configuration {a.config}: {' '.join(f'{k}={v}' for k, v in NUMERIC_CONFIGS[a.config].items())}",
              flush=True)
        os.execvpe(cmd[0], cmd, env)
    if a.cmd == "demo":
        return demo(a.out)
    if a.cmd == "real-smoke":
        return 1 if real_smoke(a.out, a.notebooks or None) else 0
    if a.cmd == "portability":
        return portability(a.config or list(NUMERIC_CONFIGS), a.out, a.notebooks or None)
    for pth in a.paths:
        print(f"{pth}: {execute(pth):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
