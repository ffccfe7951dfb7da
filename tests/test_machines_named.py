"""Every speed or time figure names its machine. Two CPUs made this project's timings (a 2-core AMD
EPYC with AVX512-BF16 and no AMX, and a 2-core Intel Xeon with AMX: experiments/machines.json), and
a figure from one says nothing about the other. So: each benchmark script writes the machine it ran
on as the first line of its output; each committed benchmark output starts with it (those made
before the scripts wrote it: assigned afterwards, from the session that committed them); and each
figure quoted in prose below is recomputed from its file, with the machine that file names, and
must appear so written, the machine in the same sentence."""
import csv
import json
import os
import re
import select
import subprocess
import sys

import pytest

from conftest import ROOT
from test_numbers import text
from tinychar import record

THIS_MACHINE = record.machine(record.session("cpu", "fp32"))


def first_line_written(tmp_path, script, *args, timeout=30):
    """The first line `script` writes to stdout; the script is then killed (the timings after it take
    minutes). Unbuffered, so that a line printed is a line read; temporary files go to tmp_path."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, script), *args], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
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


# ---- the figures in prose, each with the machine its file names ----

SHORT = {"2-core AMD EPYC": "AMD", "2-core Intel Xeon with AMX": "Xeon"}   # "the same Xeon", "on the AMD"
NUMBER = {3: "three", 4: "Four"}


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def header_machine(path):
    """The machine a hand-written header names (the first line of the levers' README, of the bench
    records made before bench.py wrote its machine)."""
    found = {words for words in WORDS.values() if words in read(path).splitlines()[0]}
    assert len(found) == 1, f"{path}'s first line names {found or 'no machine'}"
    return found.pop()


def run_machine(*folders):
    """The machine the runs trained on (run.json or machines.json), in the documents' words: one for all."""
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import report
    found = {report.machine_of(os.path.join(ROOT, "experiments", f), os.path.join(ROOT, "experiments")) for f in folders}
    assert len(found) == 1, found
    return named(found.pop())


def rows(path):
    with open(os.path.join(ROOT, path), newline="") as f:
        return list(csv.DictReader(f))


def last_row(path):
    return rows(path)[-1]


def dropout_ratios():
    """bf16 step ratios to no dropout in experiments/recipe/dropout_cost.txt: F.dropout, fp32 uniforms, keep_mask."""
    found = dict(re.findall(r"^bf16, dropout 0\.1, ([\w. ]+?) +[\d.]+ ms/step .*? ([\d.]+)x no dropout$",
                            read("experiments/recipe/dropout_cost.txt"), re.M))
    return found["F.dropout"], found["fp32 uniforms"], found["model.dropout"]


def step_costs():
    """{arm: ratio} of experiments/recipe/step_cost.txt's first block, and its baseline's ms."""
    block = read("experiments/recipe/step_cost.txt").split("bf16 autocast, ")[1]
    ratios = dict(re.findall(r"^(\S+) +[\d.]+ ms/step .*? ([\d.]+)x baseline", block, re.M))
    base, = re.findall(r"^baseline +([\d.]+) ms/step", block, re.M)
    return ratios, float(base)


def claim_slow_bf16_attention():
    share, = re.findall(r"bf16 backward at [\d.]+ ms per call \((\d+)% of the step\)", read("experiments/levers/README.md"))
    runs = read("experiments/bench_three_runs.txt").split("## run ")[1:]
    ms = [[re.search(rf"^tinychar {p} +([\d.]+) ", run, re.M)[1] for p in ("fp32", "bf16")] for run in runs]
    ratios = [float(fp32) / float(bf16) for fp32, bf16 in ms]
    return "REPORT.md", (f"backward took {share}% of the step on the {header_machine('experiments/levers/README.md')} "
                         f"(`experiments/levers/README.md`)"), (
        f"making the bf16 step {min(ratios):.2f}-{max(ratios):.2f}x the fp32 one (three bench runs on the "
        f"{header_machine('experiments/bench_three_runs.txt')}, `experiments/bench_three_runs.txt`: "
        f"{', '.join(f'{a} vs {b}' for a, b in ms)} ms)")


def claim_rope_step_cost():
    path = "experiments/levers/pos_encoding_step_cost.txt"
    rope, = re.findall(r"^rope +[\d.]+ ms/step .*? ([\d.]+)x sinusoidal", read(path), re.M)
    machine = machine_of_output(path)
    return "REPORT.md", f"RoPE costs {rope}x a training step on the {machine} (`{path}`)", (
        f"beside it; {machine.removeprefix('2-core ')}, bf16): a training step costs {rope}x the sinusoidal one with RoPE")


def claim_four_layer_step():
    ratios, _ = step_costs()
    return "REPORT.md", (f"a 4-layer step costs {ratios['layers4']}x the 2-layer one on the "
                         f"{machine_of_output('experiments/recipe/step_cost.txt')} (`experiments/recipe/step_cost.txt`)")


def claim_study_hours():
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import report
    hours = {}
    for runs in report.load_runs(os.path.join(ROOT, "experiments", "study", "runs")).values():
        for run in runs:
            hours.setdefault(run["machine"], []).append(float(run["rows"][-1]["elapsed_s"]) / 3600)
    (n_amd, h_amd), (n_xeon, h_xeon) = ((len(hours[m]), sum(hours[m])) for m in ("AMD EPYC", "Intel Xeon AMX"))
    assert set(hours) == {"AMD EPYC", "Intel Xeon AMX"}
    return "REPORT.md", (f"the first study's {n_amd} runs trained for {h_amd:.1f} hours on the {named('AMD EPYC')}, the "
                         f"extended study's {n_xeon} runs for {h_xeon:.1f} hours on the {named('Intel Xeon AMX')}")


def eval_speed():
    """(the baseline shape's scored-rows ratios over both runs and precisions, the machine of every run)."""
    record_text = read("experiments/eval_speed.txt")
    ratios = [float(r) for r in re.findall(r"^baseline \(2 layers x 256\) +\w+ +[\d,]+ +[\d,]+ +([\d.]+)x", record_text, re.M)]
    said = {named(line[2:].split(";")[0]) for line in record_text.splitlines() if line.startswith("# ")}
    assert len(said) == 1 and len(ratios) == 4, (said, ratios)
    return ratios, said.pop()


def claim_eval_speed_in_evaluation():
    ratios, machine = eval_speed()
    return "docs/evaluation.md", (f"{min(ratios):.2f}-{max(ratios):.2f}x faster for the 2-layer baseline on the "
                                  f"{machine} (docs/performance.md)")


def claim_eval_speed_in_performance():
    _, machine = eval_speed()
    return "docs/performance.md", f"two runs on the {machine} (`experiments/eval_speed.txt`): the baseline shape"


def claim_dropout_in_performance():
    f_x, u_x, k_x = dropout_ratios()
    machine = machine_of_output("experiments/recipe/dropout_cost.txt")
    return "docs/performance.md", (f"The dropout-0.1 step costs {k_x}x the step without dropout on the {machine} "
                                   f"({u_x}x with fp32 uniforms, {f_x}x with F.dropout's mask; bf16, baseline shape, "
                                   f"`experiments/recipe/dropout_cost.txt`)")


def claim_dropout_in_flags():
    _, _, k_x = dropout_ratios()
    return "docs/flags.md", (f"on the {machine_of_output('experiments/recipe/dropout_cost.txt')} a dropout-0.1 step costs "
                             f"{k_x}x the step without it: experiments/recipe/dropout_cost.txt")


def claim_dropout_and_step_costs_in_the_recipe():
    f_x, u_x, k_x = dropout_ratios()
    machine, _, base = machine_of_output("experiments/recipe/dropout_cost.txt"), *step_costs()
    assert machine_of_output("experiments/recipe/step_cost.txt") == machine
    return "experiments/recipe/README.md", (
        f"on the {machine} the dropout-0.1 step costs {k_x}x the step without dropout, not {u_x}x"), (
        f"(alone on the {machine}, interleaved, median of 7 rounds): the bf16 step with dropout 0.1 costs {f_x}x the "
        f"step without it with F.dropout's mask, {u_x}x with the fp32 uniforms model.py drew until now and **{k_x}x** "
        f"with keep_mask"), (
        f"(`python experiments/recipe/step_cost.py`, alone on the {machine}): one baseline step is ~{base:.0f} ms"), (
        f"(its masks, timed on the same {SHORT[machine]}: `dropout_cost.txt`: drawing them with `torch.rand` instead of "
        f"F.dropout's generator took the dropout-0.1 step from {f_x}x to {u_x}x; since then a random byte an "
        f"element, `keep_mask` (now tinychar/dropout.py), takes it to {k_x}x")


def claim_byte_quick_start():
    seconds = float(last_row("experiments/quickstart/bytes/metrics.csv")["elapsed_s"])
    return "docs/data.md", f"It trained in {seconds:.0f} s, alone on the {run_machine('quickstart/bytes')}."


def claim_scale():
    machine = machine_of_output("experiments/scale/results.json")
    rows = []
    for row in json.loads(read("experiments/scale/results.json"))["results"]:
        size = f"{row['size_mb']} MB" if row["size_mb"] < 1000 else f"{row['size_mb'] // 1000} GB"
        peaks = sorted({round(row["cold_peak_rss_mb"]), round(row["warm_peak_rss_mb"])})
        rows.append(f"| {size} | {row['cold_first_step_s']:.1f} s | {row['warm_first_step_s']:.1f} s | "
                    f"{'-'.join(str(p) for p in peaks)} MB |")
    before = re.search(r"same machine and 100 MB corpus, .*?first step after ([\d.]+) s, peak RSS ([\d,]+) MB",
                       " ".join(read("experiments/scale/README.md").split()))
    assert f"this session's {machine}" in read("experiments/scale/README.md")   # its "same machine"
    return ("docs/data.md", f"Measured on the {machine} (`python experiments/scale/measure.py`", *rows,
            f"took {before[1]} s and {before[2]} MB for the same 100 MB on the same {SHORT[machine]}")


def claim_amd_bench():
    path, amd = "experiments/bench_three_runs.txt", header_machine("experiments/bench_three_runs.txt")
    runs = read(path).split("## run ")[1:]
    vs_plain = [re.search(r"^tinychar bf16 +[\d.]+ \([\d.-]+\) +[\d,]+ +[\d.]+ +[\d.]+% +[\d.]+% +([\d.]+x)", run, re.M)[1]
                for run in runs]
    cached = re.search(r"generation, 1000 characters: ([\d,]+) chars/s with the KV cache", runs[2])[1]   # run 3, the table's
    warm = {int(s) for s in re.findall(r"generate\.py --compile; (\d+) s to compile", read(path))}
    cold, = re.findall(r"^compile max-autotune: (\d+) s$", read("experiments/levers/README.md"), re.M)
    assert header_machine("experiments/levers/README.md") == amd and len(warm) == 1
    return "docs/performance.md", (
        f"Three bench runs in a row on the {amd} (`{path}`) gave the bf16 step {vs_plain[0]}, {vs_plain[1]} and "
        f"{vs_plain[2]} the plain one"), f"Generation on the {amd}, one 1000-character sample (same run): {cached} chars/s", (
        f"Compiling took {warm.pop()} s on the {SHORT[amd]} with inductor's disk cache warm, about {cold} s the first "
        f"time (`experiments/levers/README.md`)")


def claim_precision_times():
    fp32, bf16 = (float(last_row(f"experiments/precision/metrics_{p}.csv")["elapsed_s"]) for p in ("fp32", "bf16"))
    return "docs/performance.md", (f"in {fp32:.0f} s and {bf16:.0f} s of training on the {run_machine('precision')} "
                                   f"(`bash experiments/precision/run.sh`")


def claim_xeon_plain_bf16():
    path = "experiments/bench_plain_bf16.txt"
    xeon, runs = header_machine(path), read(path).split("# run ")[1:]
    same = [re.search(r"^tinychar bf16 +.* ([\d.]+x)$", run, re.M)[1] for run in runs]
    fp32 = sorted(re.search(r"^tinychar fp32 +.* ([\d.]+)x$", run, re.M)[1] for run in runs)
    old, new = re.findall(r"model\.py: ([\d,]+) chars/s", read("experiments/levers/decoder_before_after.txt"))
    assert machine_of_output("experiments/levers/decoder_before_after.txt") == xeon and len(runs) == 2
    return "docs/performance.md", f"{same[0]} and {same[1]} in two bench runs in a row on the {xeon} (`{path}`", (
        f"side by side on the same {SHORT[xeon]}, give {old} and {new} chars/s, "
        f"`experiments/levers/decoder_before_after.txt`"), (
        f"In fp32 the two implementations step at the same speed on the {SHORT[xeon]} ({fp32[0]}-{fp32[-1]}x)")


def claim_levers_and_quality_for_time():
    reruns = [f"study/runs/rerun/baseline_s{s}" for s in (1, 2, 3)]
    xeon = run_machine(*[f"plain_baseline/bf16_s{s}" for s in (1, 2, 3)], *reruns)
    plain = last_row("experiments/plain_baseline/metrics.csv")
    best = min(rows("experiments/plain_baseline/metrics.csv"), key=lambda r: float(r["val_bpc_full_pass"]))
    amd = run_machine("plain_baseline")
    return "docs/performance.md", (
        f"What else was tried on the {header_machine('experiments/levers/README.md')} (scripts and outputs in "
        f"`experiments/levers/`"), f"**Speed, tinychar's own, on the {xeon}:**", (
        f"(on the {amd.removeprefix('2-core ')} machine: the plain model in fp32, one seed, {plain['val_bpc_full_pass']} at "
        f"step {plain['step']}, best {best['val_bpc_full_pass']} at step {best['step']}, {float(plain['train_s']):.0f} s;")


def claim_compile_times_in_flags():
    amd = header_machine("experiments/levers/README.md")
    warm = {int(s) for p in ("experiments/bench_default.txt", "experiments/bench_three_runs.txt")
            for s in re.findall(r"generate\.py --compile; (\d+) s to compile", read(p))}
    cold, = re.findall(r"^compile max-autotune: (\d+) s$", read("experiments/levers/README.md"), re.M)
    step, = re.findall(r"^compile time ([\d.]+)$", read("experiments/levers/README.md"), re.M)
    assert len(warm) == 1 and header_machine("experiments/bench_three_runs.txt") == amd
    assert {machine_of_output("experiments/bench_default.txt"), amd} == set(WORDS.values())   # "on either CPU"
    warm = warm.pop()
    return "docs/flags.md", (
        f"after {warm}-{cold} s of compiling ({warm} s on either CPU with inductor's disk cache warm, "
        f"`experiments/bench_default.txt` and `experiments/bench_three_runs.txt`; {cold} s cold on the {amd}, "
        f"`experiments/levers/README.md`)"), (
        f"(about {round(float(step)) + warm} s of compilation on the {amd}: a training step took {float(step):.0f} s to "
        f"compile there, `experiments/levers/README.md`, the decoding step {warm} s, `experiments/bench_three_runs.txt`)")


def claim_time_budget_in_flags():
    results = read("experiments/budget/results.md")
    # cpu7_s1_load120_replan2 is left out: "the test suite ran for ~40 s at the start of this run by mistake"
    assert "the test suite ran for ~40 s at the start of this run" in " ".join(results.split())
    rows = re.findall(r"^\| (cpu7\w+) \| [\d,]+ \(([\d.]+) ms\) \| [\d,]+ \(([\d.]+) ms\) \|.*\| ([^|]+) \|$", results, re.M)
    off = [100 * abs(float(probe) - float(own)) / float(own) for name, probe, own, _ in rows if not name.endswith("replan2")]
    machine, = {named(said.split(";")[0].strip()) for *_, said in rows}
    cpu30 = [f"recipe/runs/m30_clock/cpu30_stack_s{s}" for s in (11, 12, 13)]   # README's 30-minute row
    shares = [100 * float(last_row(f"experiments/{run}/metrics.csv")["elapsed_s"]) / 1800 for run in cpu30]
    return "docs/flags.md", (
        f"by {min(off):.1f}-{max(off):.1f}% in the {NUMBER[len(off)]} runs of `experiments/budget/results.md` that nothing else "
        f"slowed at their start, on the {machine})"), (
        f"On the {run_machine(*cpu30)}, the three `--preset cpu30` runs of README's table ended at "
        f"{shares[0]:.1f}%, {shares[1]:.1f}% and {shares[2]:.1f}% of their 30 minutes")


def claim_soak_and_finetune():
    path = "experiments/faults/results.txt"
    machine = machine_of_output(path)
    ctrl_c = sorted(float(s) for s in re.findall(r"SIGINT +after ([\d.]+) s .*\(traceback: KeyboardInterrupt\)", read(path)))
    return "docs/checkpoints.md", f"**Measured** on the {machine} (`python experiments/faults/soak.py`", (
        f"{NUMBER[len(ctrl_c)]} Ctrl-Cs landed {ctrl_c[0]:.2f} to {ctrl_c[-1]:.2f} s after the start, inside Python's imports on the "
        f"{SHORT[machine]}"), (
        f"Measured (experiments/finetune/README.md; {run_machine('finetune/finetuned_s1', 'finetune/scratch_s1')}, "
        f"3 seed pairs")


CLAIMS = [claim_slow_bf16_attention, claim_rope_step_cost, claim_four_layer_step, claim_study_hours,
          claim_eval_speed_in_evaluation, claim_eval_speed_in_performance, claim_dropout_in_performance,
          claim_dropout_in_flags, claim_dropout_and_step_costs_in_the_recipe, claim_byte_quick_start, claim_scale,
          claim_amd_bench, claim_precision_times, claim_xeon_plain_bf16, claim_levers_and_quality_for_time,
          claim_compile_times_in_flags, claim_time_budget_in_flags, claim_soak_and_finetune]


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.__name__[6:] for c in CLAIMS])
def test_a_figure_quoted_in_prose_names_the_machine_its_file_gives(claim):
    document, *sentences = claim()
    for sentence in sentences:
        assert sentence in text(document), f"{document} should say: {sentence}"
