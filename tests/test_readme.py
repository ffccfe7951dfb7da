"""README.md documents every flag of every script, and its test command is the one CI runs."""
import os
import re

import pytest

from conftest import ROOT


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def script_flags(script):
    with open(os.path.join(ROOT, script), encoding="utf-8") as f:
        source = f.read()
    return set(re.findall(r'"(--[a-z][a-z-]*)"', source)) - {"--help"}


@pytest.mark.parametrize("script", ["train.py", "eval.py", "generate.py", "data/prepare.py", "bench.py"])
def test_every_flag_is_in_a_readme_table(script):
    table_flags = set(re.findall(r"^\| `(--[a-z-]+)", readme(), flags=re.M))
    missing = script_flags(script) - table_flags
    assert not missing, f"{script} flags missing from README tables: {sorted(missing)}"


def test_ci_runs_the_readme_test_command():
    command = re.search(r"```\n(python -m pytest[^\n]*)\n```", readme()).group(1)
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        assert command in f.read().splitlines()
