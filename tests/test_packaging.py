"""pyproject.toml: the Python version the code needs, the same packages as requirements.txt, and a
package that installs: its wheel holds tinychar/ (candidates.json included) and model.py, and
they import from any folder."""
import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT


def pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_it_asks_for_python_3_11_which_tomllib_needs():
    assert pyproject()["project"]["requires-python"] == ">=3.11"


def test_its_packages_are_requirements_txt():
    project = pyproject()["project"]
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
        required = [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]
    assert sorted(project["dependencies"] + project["optional-dependencies"]["test"]) == sorted(required)


def test_it_packages_every_module_the_scripts_import():
    setuptools = pyproject()["tool"]["setuptools"]
    top = {name[:-3] for name in os.listdir(ROOT) if name.endswith(".py")}
    scripts = {"train", "eval", "generate", "export", "bench"}
    assert set(setuptools["py-modules"]) == top - scripts and setuptools["packages"] == ["tinychar"]


@pytest.mark.slow
def test_the_built_package_imports_from_another_folder(tmp_path):
    pytest.importorskip("setuptools")
    source = tmp_path / "source"   # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(os.path.join(ROOT, "tinychar"), source / "tinychar", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "model.py", "attention_np.py"):
        shutil.copy(os.path.join(ROOT, name), source / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            str(source), "-w", str(tmp_path / "wheel")], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel, = (tmp_path / "wheel").glob("tinychar-*.whl")
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = ("import tinychar.choose, tinychar.settings, model; "
             "print(tinychar.choose.__file__); print(len(tinychar.choose.load_candidates()))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0].startswith(str(site))   # the installed copy, not the repository's
    assert int(done.stdout.splitlines()[1]) > 0                 # candidates.json came with it
