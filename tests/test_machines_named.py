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


def machines():
    with open(os.path.join(ROOT, "experiments", "machines.json")) as f:
        return json.load(f)


# machines.json's names for the two CPUs -> the documents' words (which its description starts with)
WORDS = {"AMD EPYC": "2-core AMD EPYC", "Intel Xeon AMX": "2-core Intel Xeon with AMX"}


def named(machine):
    """The documents' words for a machine of machines.json, or for one record.machine describes."""
    known = machines()
    machine = known["aliases"].get(machine, machine)
    assert known["machines"][machine].startswith(WORDS[machine]), machine
    return WORDS[machine]


def machine_line(path):
    """The machine a committed benchmark output names first: its first line, `# machine: ...` (a
    JSON output: its "machine")."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        line = f"# machine: {json.load(f)['machine']}" if path.endswith(".json") else f.readline()
    assert line.startswith("# machine: "), f"{path} begins with {line!r}"
    return line[len("# machine: "):]


def machine_of_output(path):
    """That machine in the documents' words: a line a script wrote names it as record.machine does,
    a line assigned afterwards in the documents' words."""
    said = machine_line(path)
    written = said.split(";")[0]
    if written in machines()["aliases"]:
        return named(written)
    found = [words for words in WORDS.values() if said.startswith(words)]
    assert len(found) == 1, f"{path}: {said!r} names no machine of experiments/machines.json"
    return found[0]


# the committed benchmark outputs made before their scripts wrote their machine
OUTPUTS = ["experiments/bench_default.txt", "experiments/recipe/step_cost.txt", "experiments/recipe/dropout_cost.txt",
           "experiments/levers/pos_encoding_step_cost.txt", "experiments/levers/decoder_before_after.txt",
           "experiments/levers/decoder_block_reuse.txt", "experiments/scale/results.json",
           "experiments/faults/results.txt", "experiments/precision/eval_bf16_vs_fp32.txt"]


@pytest.mark.parametrize("path", OUTPUTS)
def test_each_committed_benchmark_output_names_its_machine_first(path):
    assert machine_of_output(path) in WORDS.values()


def run_folders():
    """Every folder of experiments/ that holds a run's log or metrics (the study's RUN.log files
    beside their run folders aside)."""
    for folder, _, names in os.walk(os.path.join(ROOT, "experiments")):
        if any(n in ("metrics.csv", "eval.json", "train.log") or re.fullmatch(r"\w*metrics\w*\.csv", n) for n in names):
            yield os.path.relpath(folder, os.path.join(ROOT, "experiments")).replace(os.sep, "/")


def test_every_run_folder_has_a_machine_from_its_run_json_or_machines_json():
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import report
    folders = list(run_folders())
    assert {"finetune/source", "plain_baseline", "plain_baseline/bf16_s1", "precision", "quickstart/bytes"} <= set(folders)
    unknown = [f for f in folders if report.machine_of(os.path.join(ROOT, "experiments", f),
                                                        os.path.join(ROOT, "experiments")) == "unknown"]
    assert unknown == []
