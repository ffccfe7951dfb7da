"""Faults a real run meets end in one clear line with nothing lost: SIGTERM under torchrun,
SIGUSR1, a second run in the same folder, a full disk or a read-only folder. (Ctrl-C and SIGTERM
of one process: test_train.py; the soak of many random interruptions: experiments/faults.)"""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, TINY_FLAGS, signals_as_in_a_terminal
import train
from tinychar import cli, files
from tinychar.checkpoint import list_checkpoints, load_checkpoint
from tinychar.files import TEMPORARY_NAME, RunLock, replace_with_link
from tinychar.metrics import read_metrics
from tinychar.settings import parse_args, resolve_configs


def losses(rows):
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in rows]


def command_line(argv):
    """The exit status of train.py's command line, run in this process."""
    with pytest.raises(SystemExit) as exit_:
        cli.run(train.main, argv)
        sys.exit(0)
    return exit_.value.code


def start(out, *flags, torchrun=False, ignoring=None):
    """train.py in a process of its own (started with the signal `ignoring` ignored), once it is
    training (its first validation is logged)."""
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] if torchrun else []

    def signals():
        signals_as_in_a_terminal()
        if ignoring:
            signal.signal(ignoring, signal.SIG_IGN)
    # the threads of this process (no OMP_NUM_THREADS): its losses are compared with in-process runs
    proc = subprocess.Popen([sys.executable, *launcher, "train.py", "--out", str(out), *flags], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            preexec_fn=signals)
    deadline = time.time() + 120
    while not (out / "metrics.csv").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    return proc


def full_disk(monkeypatch, name, after=0, error=errno.ENOSPC, room=100):
    """From the (after + 1)-th time the project opens the file `name` (a name, or a whole path) to
    write it (every write goes through files.AtomicFile), the writes that go past its first `room`
    bytes fail with `error`, as on a disk with little room left."""
    real_open, opened = open, []

    class Failing:
        def __init__(self, file):
            self.file, self.written = file, 0

        def write(self, data):
            self.written += len(data)
            if self.written > room:   # torch's serializer turns this into RuntimeError("unexpected pos")
                raise OSError(error, os.strerror(error))
            return self.file.write(data)

        def __getattr__(self, attribute):
            return getattr(self.file, attribute)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.file.__exit__(*exc)

    def opener(path, mode="r", **kwargs):
        file = real_open(path, mode, **kwargs)
        target = TEMPORARY_NAME.sub("", str(path))
        if not (target == name or target.endswith(os.sep + name)):
            return file
        opened.append(path)
        return Failing(file) if len(opened) > after else file

    monkeypatch.setattr(files, "open", opener, raising=False)


def temporary_files(folder):
    return [name for name in os.listdir(folder) if TEMPORARY_NAME.search(name)]


STEPS = ["--steps", "12", "--eval-every", "2", "--ckpt-every", "4", *TINY_FLAGS]


@pytest.mark.parametrize("name,after,error", [("step_000008.pt", 0, errno.ENOSPC),
                                              ("metrics.csv", 2, errno.ENOSPC),   # its write at step 6
                                              ("step_000008.pt", 0, errno.EROFS)])
@pytest.mark.slow
def test_a_file_that_cannot_be_written_stops_the_run_in_one_line_naming_it_and_the_last_good_checkpoint(
        tmp_path, monkeypatch, capsys, name, after, error):
    out = tmp_path / "run"
    full_disk(monkeypatch, name, after, error)
    assert command_line(["--out", str(out), *STEPS]) == 2
    stderr = capsys.readouterr().err
    assert stderr == (f"error: cannot write {out / name}: {os.strerror(error)}; training stopped, the last good "
                      f"checkpoint is {out / 'step_000004.pt'}: make room and continue with python train.py --out "
                      f"{out} --resume\n")
    assert temporary_files(out) == [] and load_checkpoint(str(out), "last")["step"] == 4
    monkeypatch.undo()   # room again: the resumed run is the run that never failed
    assert command_line(["--out", str(out), "--resume"]) == 0
    assert command_line(["--out", str(tmp_path / "whole"), *STEPS]) == 0
    assert losses(read_metrics(out / "metrics.csv")) == losses(read_metrics(tmp_path / "whole" / "metrics.csv"))


def test_a_full_disk_before_the_first_checkpoint_says_none_was_written(tmp_path, monkeypatch, capsys):
    full_disk(monkeypatch, "step_000004.pt")
    assert command_line(["--out", str(tmp_path / "run"), *STEPS]) == 2
    assert capsys.readouterr().err.endswith("training stopped, no checkpoint was written\n")


def test_a_curve_that_cannot_be_drawn_is_a_warning_and_training_goes_on(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    full_disk(monkeypatch, "loss_curve.png")
    assert command_line(["--out", str(out), *STEPS]) == 0
    stderr = capsys.readouterr().err
    assert stderr == (f"warning: loss_curve.png not drawn (cannot write {out / 'loss_curve.png'}: No space left "
                      f"on device); training goes on (said once)\n")
    assert len(read_metrics(out / "metrics.csv")) == 6 and not (out / "loss_curve.png").exists()
    assert temporary_files(out) == []


def test_a_token_cache_that_cannot_be_written_beside_the_corpus_goes_to_the_users_cache_folder(tmp_path, monkeypatch):
    data = tmp_path / "corpus.txt"
    data.write_text("to be or not to be, that is the question " * 200, encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    full_disk(monkeypatch, str(tmp_path / "corpus.txt.tinychar-chars.ids"))   # its first place: beside the corpus
    assert command_line(["--out", str(tmp_path / "run"), "--data", str(data), *STEPS]) == 0
    assert [name.endswith(".tinychar-chars.ids") for name in os.listdir(tmp_path / "cache" / "tinychar")] == [True]
    assert temporary_files(tmp_path) == [] and not (tmp_path / "corpus.txt.tinychar-chars.ids").exists()


@pytest.mark.slow
def test_a_second_run_in_the_same_folder_is_refused_at_once_naming_the_first(tmp_path):
    out = tmp_path / "run"
    flags = ["--steps", "100000", "--eval-every", "50", "--ckpt-every", "50", *TINY_FLAGS]
    first = start(out, *flags)
    try:
        while not list_checkpoints(out):
            time.sleep(0.05)
        for second in (["--out", str(out), *flags], ["--out", str(out), "--resume"]):
            result = subprocess.run([sys.executable, "train.py", *second], cwd=ROOT, capture_output=True, text=True,
                                    timeout=120)
            assert result.returncode == 2
            assert result.stderr.startswith(f"error: {out} is in use by another training run (pid {first.pid} on ")
            assert result.stderr.count("\n") == 1 and "train.py --out" in result.stderr
        # readers do not wait for the lock: they read whole files only
        subprocess.run([sys.executable, "eval.py", str(out), "--checkpoint", "last"], cwd=ROOT, check=True,
                       capture_output=True, timeout=120)
    finally:
        first.kill()   # SIGKILL: no handler runs, and a temporary file it was writing would stay
        first.communicate()
    leftover = out / "step_000050.pt.999999.tmp"
    leftover.write_bytes(b"half a checkpoint")
    step = load_checkpoint(str(out), "last")["step"]
    # flock's lock died with its process: the next run in the folder takes it, and clears what was left
    assert command_line(["--out", str(out), "--resume", "--steps", str(step + 2)]) == 0
    assert temporary_files(out) == []


@pytest.mark.slow
def test_without_flock_a_run_says_so_in_one_line_once_and_trains(tmp_path):
    # fcntl hidden before any import, as on Windows; two runs in one process: one warning
    hide = "import sys\nsys.modules['fcntl'] = None\n"
    flags = ["--steps", "2", "--eval-every", "2", *TINY_FLAGS]
    code = hide + ("import runpy, train\n"
                   f"train.main(['--out', {str(tmp_path / 'a')!r}, *{flags!r}])\n"
                   f"sys.argv = ['train.py', '--out', {str(tmp_path / 'b')!r}, *{flags!r}]\n"
                   "runpy.run_path('train.py', run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ("warning: no file locking on this system: a second training run in this folder would "
                             "not be refused\n")
    assert result.stdout.count("done: 2 steps") == 2
    assert load_checkpoint(str(tmp_path / "b"))["step"] == 2


def test_a_run_killed_between_saving_its_best_checkpoint_and_linking_best_pt_has_it_linked_on_resume(tmp_path):
    out = tmp_path / "run"
    assert command_line(["--out", str(out), *STEPS]) == 0
    best = load_checkpoint(str(out), "last")["best"]["step"]
    stale = next(path for step, path in list_checkpoints(out) if step != best)
    replace_with_link(stale, str(out / "best.pt"))   # as if killed before the link
    assert command_line(["--out", str(out), "--resume"]) == 0
    assert load_checkpoint(str(out), "best")["step"] == best


def test_the_lock_names_its_holder_and_is_released_when_the_run_ends(tmp_path):
    out = tmp_path / "run"
    with RunLock(str(out)):
        holder = (out / "train.lock").read_text()
        assert holder.startswith(f"pid {os.getpid()} on ")
        with pytest.raises(cli.UserError, match=f"is in use by another training run \\(pid {os.getpid()} on "):
            train.train(*resolve_configs(parse_args(["--out", str(out), *STEPS]))[:2], progress=False)
    assert train.train(*resolve_configs(parse_args(["--out", str(out), *STEPS]))[:2], progress=False)


@pytest.mark.slow
def test_sigusr1_saves_a_checkpoint_and_training_goes_on_unchanged(tmp_path):
    flags = ["--steps", "1000", "--eval-every", "50", "--ckpt-every", "1000", "--dropout", "0.1", *TINY_FLAGS]
    out = tmp_path / "warned"
    proc = start(out, *flags)
    proc.send_signal(signal.SIGUSR1)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    (asked, path), (last, _) = list_checkpoints(out)
    assert 50 <= asked < last == 1000
    assert f"checkpoint saved at step {asked} to {path} on SIGUSR1; training goes on" in stdout
    assert command_line(["--out", str(tmp_path / "whole"), *flags]) == 0
    whole = losses(read_metrics(tmp_path / "whole" / "metrics.csv"))
    assert losses(read_metrics(out / "metrics.csv")) == whole   # the save changed nothing
    os.remove(out / "step_001000.pt")   # and resuming from it is exact
    assert command_line(["--out", str(out), "--resume"]) == 0
    assert losses(read_metrics(out / "metrics.csv")) == whole


@pytest.mark.slow
def test_sigterm_under_torchrun_saves_one_checkpoint_of_every_rank_which_resumes(tmp_path):
    out = tmp_path / "ddp"
    proc = start(out, "--steps", "100000", "--eval-every", "20", "--ckpt-every", "100000", "--dropout", "0.1",
                 *TINY_FLAGS, torchrun=True)
    proc.send_signal(signal.SIGTERM)   # to torchrun's agent, which passes it to each rank
    stdout, stderr = proc.communicate(timeout=120)
    (step, path), = list_checkpoints(out)
    assert 20 <= step < 100000
    assert (f"interrupted by SIGTERM: checkpoint saved at step {step} to {path}; continue with: python train.py "
            f"--out {out} --resume (under torchrun with 2 processes, as before)") in stdout
    assert 'File "train.py"' not in stderr and "train.py\", line" not in stderr   # no traceback from a rank
    assert len(load_checkpoint(path)["rng"]["ranks"]) == 2
    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                              "train.py", "--out", str(out), "--resume", "--steps", str(step + 4)], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and "dropout masks will differ" not in resumed.stderr, resumed.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_the_run_was_started_with_ignored_stays_ignored(tmp_path, signum):
    # `nohup`, or a shell's background job (`python train.py &` ignores SIGINT): as Python does
    out = tmp_path / "run"
    proc = start(out, "--steps", "300", "--eval-every", "50", *TINY_FLAGS, ignoring=signum)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "interrupted" not in stdout and list_checkpoints(out)[-1][0] == 300


def test_sigterm_before_training_starts_exits_143_without_a_traceback_and_runs_cleanups(tmp_path):
    cleaned = []

    def main(argv):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            cleaned.append(True)

    with pytest.raises(SystemExit) as exit_:
        cli.run(main)
    assert exit_.value.code == 143 and cleaned == [True]
