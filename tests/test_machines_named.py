"""Every speed or time figure names its machine. Two CPUs made this project's timings (a 2-core AMD
EPYC with AVX512-BF16 and no AMX, and a 2-core Intel Xeon with AMX: experiments/machines.json), and
a figure from one says nothing about the other. So: each benchmark script writes the machine it ran
on as the first line of its output; each committed benchmark output starts with it (those made
before the scripts wrote it: assigned afterwards, from the session that committed them); and each
figure quoted in prose below is recomputed from its file, with the machine that file names, and
must appear so written, the machine in the same sentence."""
import json
import os
import re
import select
import statistics
import subprocess
import sys

import pytest

from conftest import ROOT
from tinychar import record

THIS_MACHINE = record.machine(record.session("cpu", "fp32"))


def first_line_written(tmp_path, script, *args, timeout=30):
    """The first line `script` writes to stdout; the script is then killed (the timings after it take
    minutes). Unbuffered, so that a line printed is a line read; temporary files go to tmp_path."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, script), *args], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        return proc.stdout.readline() if ready else f"(nothing in {timeout} s)"
    finally:
        proc.kill()
        proc.communicate()


# each benchmark script, with arguments that keep what it does before its first line small
SCRIPTS = [("bench.py", "--repeats", "1", "--steps", "1", "--no-compile", "--d-model", "32", "--seq-len", "16"),
           ("experiments/recipe/step_cost.py",), ("experiments/recipe/dropout_cost.py",),
           ("experiments/levers/pos_encoding_step_cost.py",), ("experiments/levers/decoder_before_after.py",),
           ("experiments/levers/decoder_block_reuse.py",), ("experiments/eval_speed.py",),
           ("experiments/scale/measure.py", "--sizes-mb", "1", "--dir", "{tmp}", "--results", "{tmp}/results.json"),
           ("experiments/faults/soak.py", "--interruptions", "1", "--no-full-disk")]


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_each_benchmark_script_writes_its_machine_first(tmp_path, script):
    name, *args = script
    line = first_line_written(tmp_path, name, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert line.startswith("# ") and THIS_MACHINE in line, f"{name} began with {line!r}"
