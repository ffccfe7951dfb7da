"""The repository's shape: the scripts a user runs at the top, the machinery they share in
tinychar/, listed in docs/architecture.md in an order where no module imports a later one (so
there is no import cycle), no script importing another script, and files and functions short
enough to read."""
import ast
import glob
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPTS = ["train.py", "eval.py", "generate.py", "export.py", "bench.py", "data/prepare.py"]
TOP_LEVEL_MODULES = {"model", "attention_np"}   # the files the study is about: scripts may import them


def imported(path):
    """The repository modules a file imports: top-level names and tinychar.NAME."""
    found = set()
    for node in ast.walk(ast.parse(open(os.path.join(ROOT, path), encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= ({f"tinychar.{a.name}" for a in node.names} if node.module == "tinychar" else {node.module})
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_the_top_level_holds_the_scripts_and_the_two_files_the_study_is_about():
    top = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "*.py"))}
    assert top == {os.path.basename(s) for s in SCRIPTS if "/" not in s} | {f"{m}.py" for m in TOP_LEVEL_MODULES}


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_script_imports_another_script(script):
    scripts = {os.path.basename(s)[:-3] for s in SCRIPTS}
    assert not imported(script) & scripts


def test_architecture_md_lists_every_module_in_an_order_where_none_imports_a_later_one():
    with open(os.path.join(ROOT, "docs", "architecture.md"), encoding="utf-8") as f:
        order = [m.group(1) for m in re.finditer(r"^\| `([\w/]+)\.py` \|", f.read(), re.M)]
    package = {p[len(ROOT) + 1:-3] for p in glob.glob(os.path.join(ROOT, "tinychar", "*.py"))} - {"tinychar/__init__"}
    assert set(order) == package | {"model"}
    position = {name.replace("/", "."): i for i, name in enumerate(order)}
    for i, name in enumerate(order):
        later = {dep for dep in imported(name + ".py") if position.get(dep, -1) > i}
        assert not later, f"{name} imports {later}, listed after it"
    for script in SCRIPTS:   # and tinychar never imports a script
        assert not {dep for name in order for dep in imported(name + ".py")} & {os.path.basename(script)[:-3]}


def functions(path):
    tree = ast.parse(open(os.path.join(ROOT, path), encoding="utf-8").read())
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_function_of_the_scripts_or_the_package_is_over_60_lines():
    paths = SCRIPTS + ["model.py", "attention_np.py"] + [p[len(ROOT) + 1:] for p in glob.glob(os.path.join(ROOT, "tinychar", "*.py"))]
    long = [(path, name, n) for path in paths for name, n in functions(path) if n > 60]
    assert long == []


def test_train_py_and_model_py_stay_short():
    lines = {name: sum(1 for _ in open(os.path.join(ROOT, name), encoding="utf-8")) for name in ("train.py", "model.py")}
    assert lines["train.py"] <= 330 and lines["model.py"] <= 400, lines


# modules of Python's library that Windows lacks: a script or module that imports one unguarded
# fails there at its first line
POSIX_ONLY = ("fcntl", "resource", "termios", "pwd", "grp", "pty", "tty")


def without_posix_modules(code, *args, timeout=120):
    """code run by a Python that has none of POSIX_ONLY (each set to None in sys.modules before any
    import, so importing it raises ImportError as on Windows), in the repository root."""
    hide = f"import sys\nfor name in {POSIX_ONLY!r}:\n    sys.modules[name] = None\n"
    return subprocess.run([sys.executable, "-c", hide + code, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_every_script_and_module_imports_where_posix_only_modules_do_not_exist():
    modules = sorted(p[len(ROOT) + 1:-3].replace(os.sep, ".") for p in glob.glob(os.path.join(ROOT, "tinychar", "*.py")))
    result = without_posix_modules(
        "import importlib, runpy\n"
        "try:\n    import fcntl\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit('fcntl was not hidden')\n"
        f"for script in {SCRIPTS!r}:\n    runpy.run_path(script, run_name='imported')   # its imports, not its main()\n"
        f"for module in {modules!r}:\n    importlib.import_module(module)\n"
        "from tinychar import files\nassert files.fcntl is None\nprint('imported')\n")
    assert result.returncode == 0 and result.stdout == "imported\n", result.stderr[-3000:]
