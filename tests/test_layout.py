"""The package's module map: every module names one idea, and the README's layout table says the same."""
import ast
import pathlib
import re

PKG = pathlib.Path(__file__).resolve().parent.parent / "ogclip_utils"
README = PKG.parent / "README.md"


def _modules():
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG).with_suffix("")
        if rel.name == "__main__":
            continue
        name = ".".join(rel.parts[:-1]) if rel.name == "__init__" else ".".join(rel.parts)
        if name:
            yield name, p


def test_every_module_has_a_one_line_idea():
    for name, path in _modules():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc, f"{name} has no module docstring"
        first = doc.split("\n")[0]
        assert first.endswith(".") and len(first) <= 120, f"{name}: the first docstring line must be one sentence ({first!r})"


def test_readme_layout_lists_every_module_with_its_first_line():
    text = README.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\|[^|]*\| `([a-z_.]+)` \| (.*) \|$", text, re.M))
    for name, path in _modules():
        first = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))).split("\n")[0]
        assert name in rows, f"README.md's layout table lacks {name}"
        assert rows[name] == first, f"README.md says {rows[name]!r} for {name}, its docstring {first!r}"


def test_no_module_imports_a_sibling_inside_a_function():
    """Sibling modules are imported at module level (the layers contract then sees every edge);
    only optional heavy packages are imported lazily."""
    for name, path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.ImportFrom) and sub.level > 0:
                        raise AssertionError(f"{name}.{node.name} imports .{sub.module or ''} inside a function")
