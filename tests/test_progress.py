"""What a user sees of a long job where no bar can be drawn (a log file, nohup, a notebook): a
training run prints a plain line at its first step and then at least every 30 s, on stdout with
its validations and flushed at once; eval.py's full pass a line every 30 s on stderr."""
import os
import subprocess
import sys
import threading
import types

from conftest import ROOT, TINY_FLAGS
from tinychar import budget, progress, run_log
from tinychar.budget import Budget
from tinychar.plan import RunPlan
from tinychar.run_log import RunLog
from tinychar.settings import parse_args, resolve_configs


def fake_clock(monkeypatch):
    """One clock for time.monotonic (progress's) and time.perf_counter (the run's); returns [seconds]."""
    clock = [0.0]
    fake = types.SimpleNamespace(monotonic=lambda: clock[0], perf_counter=lambda: clock[0])
    for module in (progress, run_log, budget):
        monkeypatch.setattr(module, "time", fake)
    return clock


def log_steps(tmp_path, monkeypatch, capsys, minutes=0.0, steps=300, step_s=0.25, windows=4):
    """A RunLog without a terminal through `steps` steps of step_s seconds and `windows` windows of 16
    tokens, the loss read after each (as on a CPU); returns the steps a line was printed at, and the lines."""
    clock = fake_clock(monkeypatch)
    model_cfg, cfg, _, _ = resolve_configs(parse_args(["--out", str(tmp_path), *TINY_FLAGS]))   # 4 x 16 tokens a step
    timed = Budget(minutes, sync_every=1)
    with RunLog(cfg, model_cfg, RunPlan(steps=4155, precision="fp32"), [], 0, progress="lines") as log:
        for step in range(1, steps + 1):
            clock[0] += step_s
            log.step_done(windows)
            log.progress(step, 2.5, timed)
    out = capsys.readouterr().out
    return [int(line.split()[1].split("/")[0]) for line in out.splitlines()], out.splitlines()


def test_without_a_terminal_a_run_prints_a_line_at_its_first_step_then_every_30_seconds(tmp_path, monkeypatch, capsys):
    steps, lines = log_steps(tmp_path, monkeypatch, capsys)
    assert steps == [1, 121, 241]   # 0.25 s, 30.25 s, 60.25 s
    # 121 steps of 64 tokens in 30.25 s; the 4,034 steps left at 0.25 s each
    assert lines[1] == "step 121/4155  loss 2.5000  256 tok/s  elapsed 0:30  left ~16:48"


def test_tokens_per_second_count_the_windows_each_step_trained(tmp_path, monkeypatch, capsys):
    _, lines = log_steps(tmp_path, monkeypatch, capsys, windows=1)   # a --batch-warmup step of 1 window
    assert lines[1] == "step 121/4155  loss 2.5000  64 tok/s  elapsed 0:30  left ~16:48"


def test_a_timed_run_says_how_much_of_its_budget_is_left(tmp_path, monkeypatch, capsys):
    _, lines = log_steps(tmp_path, monkeypatch, capsys, minutes=10)
    assert lines[1] == "step 121/4155  loss 2.5000  256 tok/s  elapsed 0:30  left 9:30 of the budget"


def test_slow_steps_print_a_line_at_each_read_of_the_loss_once_30_seconds_have_passed(tmp_path, monkeypatch, capsys):
    steps, _ = log_steps(tmp_path, monkeypatch, capsys, steps=6, step_s=40.0)
    assert steps == [1, 2, 3, 4, 5, 6]


def test_on_a_terminal_or_with_no_progress_asked_no_line_is_printed(tmp_path, monkeypatch, capsys):
    clock = fake_clock(monkeypatch)
    model_cfg, cfg, _, _ = resolve_configs(parse_args(["--out", str(tmp_path), *TINY_FLAGS]))
    for shown in ("bar", None):
        with RunLog(cfg, model_cfg, RunPlan(steps=10, precision="fp32"), [], 0, progress=shown) as log:
            for step in range(1, 11):
                clock[0] += 40.0
                log.step_done(cfg.batch_size)
                log.progress(step, 2.5, Budget(0, 1))
    assert capsys.readouterr().out == ""


def test_a_full_pass_without_a_terminal_prints_a_line_every_30_seconds_on_stderr(monkeypatch, capsys):
    clock = fake_clock(monkeypatch)
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    counter = progress.bar(1_000_000, "char", "scored", show=True)
    for _ in range(100):   # 10,000 characters a second
        clock[0] += 1.0
        counter.update(10_000)
    counter.close()
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [
        "scored 300,000/1,000,000 chars (30%)  elapsed 0:30  left ~1:10",
        "scored 600,000/1,000,000 chars (60%)  elapsed 1:00  left ~0:40",
        "scored 900,000/1,000,000 chars (90%)  elapsed 1:30  left ~0:10"]


def test_clock_text_shows_minutes_and_seconds_then_hours():
    assert [progress.clock_text(s) for s in (0, 31, 520, 3725, -3)] == ["0:00", "0:31", "8:40", "1:02:05", "0:00"]


def test_train_py_writing_to_a_pipe_shows_a_progress_line_while_it_runs(tmp_path):
    """stdout to a pipe, as to a log file: block-buffered (unless PYTHONUNBUFFERED, left out here),
    so the line shows while the run goes on only if it is flushed."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    # no validation or checkpoint for minutes: they flush stdout, and would bring the line along
    proc = subprocess.Popen([sys.executable, "train.py", "--out", str(tmp_path / "run"), "--steps", "100000",
                             "--eval-every", "100000", "--ckpt-every", "100000", *TINY_FLAGS], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=env)
    watchdog = threading.Timer(120, proc.kill)   # a line that never comes must not hang the suite
    watchdog.start()
    try:
        lines = []
        while not (lines and lines[-1].startswith("step ")):
            line = proc.stdout.readline()
            assert line, f"train.py ended without a progress line:\n{''.join(lines)}{proc.stderr.read()}"
            lines.append(line)
        alive = proc.poll() is None
    finally:
        watchdog.cancel()
        proc.kill()
        _, stderr = proc.communicate()
    assert alive, "the line came only when the run ended"
    assert lines[-1].startswith("step 1/100000  loss ") and " tok/s  elapsed " in lines[-1] and "left ~" in lines[-1]
    assert "step 1/" not in stderr
