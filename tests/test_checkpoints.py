"""A run keeps its best checkpoint and uses it: every checkpoint is scored by eval.py's full pass,
best.pt is the lowest so far, --early-stop ends a run that stopped improving, --keep-last prunes
the rest, and eval.py and generate.py take best.pt unless --checkpoint says otherwise."""
import csv
import json
import os

import pytest
import torch

from conftest import TINY_FLAGS, assert_one_line_error, run_script
import eval as eval_script
import train
from tinychar import run_log, scoring
from tinychar.checkpoint import list_checkpoints, load_checkpoint
from tinychar.cli import UserError
from tinychar.scoring import BEST_SCORED

RUN = ["--eval-every", "5", "--ckpt-every", "10", *TINY_FLAGS]


def scripted_scores(monkeypatch, scores):
    """Checkpoints score these BPCs in turn instead of a real full pass."""
    left = list(scores)
    monkeypatch.setattr(run_log, "score_checkpoint", lambda *args: (left.pop(0), 0.0))


def checkpoint_column(out):
    with open(os.path.join(out, "metrics.csv"), newline="") as f:
        return {int(row["step"]): row["checkpoint_bpc"] for row in csv.DictReader(f)}


def same_weights(a, b):
    return a["step"] == b["step"] and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


@pytest.mark.slow
def test_each_checkpoint_is_scored_and_best_pt_is_the_lowest_so_far(tmp_path, monkeypatch):
    scripted_scores(monkeypatch, [3.0, 2.0, 2.5, 2.6])
    out = str(tmp_path / "r")
    train.main(["--out", out, "--steps", "40", *RUN])
    # validated at every checkpoint, scored only there
    assert checkpoint_column(out) == {5: "", 10: "3.0", 15: "", 20: "2.0", 25: "", 30: "2.5", 35: "", 40: "2.6"}
    best = load_checkpoint(os.path.join(out, "best.pt"))
    assert same_weights(best, load_checkpoint(out, which=20)) and best["best"]["bpc"] == 2.0
    assert load_checkpoint(out)["best"] == dict(step=20, bpc=2.0, scored=4, since=2)


@pytest.mark.slow
def test_the_recorded_score_is_eval_pys_full_pass_bpc_of_that_checkpoint(tmp_path):
    out = str(tmp_path / "r")
    train.main(["--out", out, "--steps", "20", *RUN])
    row = scoring.evaluate_run(os.path.join(out, "step_000010.pt"), precision="fp32")[0][0]
    assert row["val_chars"] < BEST_SCORED   # the primer's whole validation split is scored
    assert float(checkpoint_column(out)[10]) == pytest.approx(row["val_bpc"], abs=1e-9)


@pytest.mark.slow
def test_early_stop_ends_the_run_validated_and_saved_after_n_checkpoints_without_improvement(tmp_path, monkeypatch,
                                                                                             capsys):
    scripted_scores(monkeypatch, [3.0, 2.0, 2.5, 2.6, 1.0])
    out = str(tmp_path / "r")
    train.main(["--out", out, "--steps", "100", "--early-stop", "2", *RUN])
    assert [step for step, _ in list_checkpoints(out)] == [10, 20, 30, 40]
    assert max(checkpoint_column(out)) == 40
    assert "early stop: 2 checkpoints in a row did not improve on step 20's 2.0000 BPC" in capsys.readouterr().out


@pytest.mark.slow
def test_the_early_stop_count_and_the_best_carry_over_a_resume(tmp_path, monkeypatch):
    scripted_scores(monkeypatch, [3.0, 2.0, 2.5, 2.6])
    out = str(tmp_path / "r")
    train.main(["--out", out, "--steps", "30", "--early-stop", "2", *RUN])   # 2.5 at step 30: one without gain
    train.main(["--out", out, "--steps", "100", "--resume"])                   # 2.6 at step 40: the second
    assert [step for step, _ in list_checkpoints(out)] == [10, 20, 30, 40]
    assert load_checkpoint(os.path.join(out, "best.pt"))["step"] == 20


@pytest.mark.slow
def test_keep_last_keeps_the_last_k_step_checkpoints_and_best_pt_and_the_run_resumes(tmp_path, monkeypatch):
    scripted_scores(monkeypatch, [3.0, 2.0, 2.5, 2.6, 2.7, 2.8])
    out = str(tmp_path / "r")
    train.main(["--out", out, "--steps", "50", "--keep-last", "2", *RUN])
    assert [step for step, _ in list_checkpoints(out)] == [40, 50]
    assert load_checkpoint(os.path.join(out, "best.pt"))["step"] == 20   # its step file is gone; best.pt stays
    train.main(["--out", out, "--steps", "60", "--resume"])
    assert [step for step, _ in list_checkpoints(out)] == [50, 60]


@pytest.mark.parametrize("flags,message", [(["--keep-last", "0"], "--keep-last must be at least 1"),
                                           (["--early-stop", "-1"], "--early-stop must not be negative")])
@pytest.mark.slow
def test_bad_keep_last_or_early_stop_is_a_one_line_error(tmp_path, flags, message):
    assert_one_line_error(run_script("train.py", "--out", str(tmp_path / "r"), *flags), message)


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    """A run whose best checkpoint is not its last: step 10 of 20 (the learning rate is far too high
    after it)."""
    out = str(tmp_path_factory.mktemp("best") / "run")
    patch = pytest.MonkeyPatch()
    scores = [2.0, 3.0]
    patch.setattr(run_log, "score_checkpoint", lambda *args: (scores.pop(0), 0.0))
    try:
        train.main(["--out", out, "--steps", "20", "--split", "0.8,0.1,0.1", *RUN])
    finally:
        patch.undo()
    return out


@pytest.mark.slow
def test_eval_and_generate_use_best_pt_and_say_which_checkpoint(scored_run):
    done = run_script("eval.py", scored_run, "--json", "--no-references")
    assert f"{scored_run}: step 10, best of 2 by validation BPC (best.pt)" in done.stderr
    assert '"steps": 10' in done.stdout
    done = run_script("generate.py", "--ckpt", scored_run, "--max-new-tokens", "5")
    assert done.returncode == 0 and "step 10, best of 2 by validation BPC (best.pt)" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("choice,step,said", [("last", 20, "step 20 (the last)"), ("10", 10, "step 10")])
def test_checkpoint_last_or_a_step_chooses_another(scored_run, choice, step, said):
    done = run_script("eval.py", scored_run, "--json", "--no-references", "--checkpoint", choice)
    assert f'"steps": {step}' in done.stdout and f"{scored_run}: {said}" in done.stderr
    done = run_script("generate.py", "--ckpt", scored_run, "--max-new-tokens", "5", "--checkpoint", choice)
    assert done.returncode == 0 and said in done.stderr


@pytest.mark.parametrize("choice,message", [("7", "has no checkpoint of step 7 (kept: 10, 20)"),
                                            ("first", "--checkpoint must be best, last or a step number")])
@pytest.mark.slow
def test_a_checkpoint_that_is_not_there_is_a_one_line_error(scored_run, choice, message):
    assert_one_line_error(run_script("eval.py", scored_run, "--checkpoint", choice), message)
    assert_one_line_error(run_script("generate.py", "--ckpt", scored_run, "--checkpoint", choice), message)


@pytest.mark.slow
def test_with_a_test_split_eval_reports_the_best_checkpoints_test_bpc_as_the_unbiased_figure(scored_run):
    done = run_script("eval.py", scored_run, "--no-references")
    test = run_script("eval.py", scored_run, "--no-references", "--split", "test", "--json")
    import json
    test_bpc = json.loads(test.stdout)["runs"][0]["val_bpc"]
    assert (f"run: step 10, best of 2 by validation BPC (best.pt): its validation figure chose it, so it is biased "
            f"low; its test BPC, the unbiased figure: {test_bpc:.4f}") in done.stdout


@pytest.mark.slow
def test_a_run_from_before_best_pt_is_evaluated_at_its_last_checkpoint(tmp_path):
    out = str(tmp_path / "old")
    train.main(["--out", out, "--steps", "20", *RUN])
    os.remove(os.path.join(out, "best.pt"))
    done = run_script("eval.py", out, "--json", "--no-references")
    assert '"steps": 20' in done.stdout and "step 20 (the last)" in done.stderr


def scored(capsys, *args):
    """eval.py's JSON row of a run, scored in this process."""
    capsys.readouterr()
    eval_script.main([*args, "--json", "--no-references"])
    return json.loads(capsys.readouterr().out)["runs"][0]


@pytest.mark.slow
def test_a_run_moved_with_its_corpus_is_scored_and_resumed_from_any_folder(tmp_path, monkeypatch, capsys):
    first, moved, elsewhere = tmp_path / "first", tmp_path / "moved", tmp_path / "elsewhere"
    (first / "data").mkdir(parents=True)
    elsewhere.mkdir()
    text = "to be or not to be, that is the question " * 60
    (first / "data" / "t.txt").write_text(text, encoding="utf-8")
    monkeypatch.chdir(first)   # the corpus and the run given relative to the folder the run starts in
    train.main(["--data", "data/t.txt", "--out", "runs/r", "--steps", "4", "--eval-every", "2", *TINY_FLAGS])
    corpus = str(first / "data" / "t.txt")
    assert load_checkpoint("runs/r")["train_config"]["data"] == corpus   # saved absolute, as is config.toml
    assert f"data = {json.dumps(corpus)}" in (first / "runs" / "r" / "config.toml").read_text(encoding="utf-8").split("\n")
    monkeypatch.chdir(elsewhere)
    before = scored(capsys, str(first / "runs" / "r"))
    first.rename(moved)   # the run and its corpus move together: the saved path is gone
    after = scored(capsys, str(moved / "runs" / "r"))
    assert after["val_bpc"] == before["val_bpc"] and after["data"] == str(moved / "data" / "t.txt")
    train.main(["--out", str(moved / "runs" / "r"), "--resume", "--steps", "6"])
    assert load_checkpoint(str(moved / "runs" / "r"))["train_config"]["data"] == str(moved / "data" / "t.txt")
    # --data still wins; another text where the corpus was is refused by its sha256
    (elsewhere / "copy.txt").write_text(text, encoding="utf-8")
    assert scored(capsys, str(moved / "runs" / "r"), "--data", "copy.txt")["data"] == "copy.txt"
    (moved / "data" / "t.txt").write_text(text.upper(), encoding="utf-8")
    with pytest.raises(UserError, match="is not the text this run was trained on"):
        scored(capsys, str(moved / "runs" / "r"))


@pytest.mark.slow
def test_a_run_saved_before_paths_were_absolute_finds_its_corpus_from_the_run_folder_once_moved(
        tmp_path, monkeypatch, capsys):
    # the checkpoints of older code: paths as given, relative to the folder the run started in
    first, moved = tmp_path / "first", tmp_path / "moved"
    (first / "data").mkdir(parents=True)
    (first / "data" / "t.txt").write_text("to be or not to be, that is the question " * 60, encoding="utf-8")
    monkeypatch.chdir(first)
    train.main(["--data", "data/t.txt", "--out", "runs/r", "--steps", "2", "--eval-every", "2", *TINY_FLAGS])
    path = os.path.join("runs", "r", "step_000002.pt")
    old = torch.load(path, weights_only=True)
    del old["data_from_run"]
    old["train_config"].update(data="data/t.txt", out="runs/r")
    torch.save(old, path)
    os.remove(os.path.join("runs", "r", "best.pt"))
    assert scored(capsys, "runs/r")["data"] == "data/t.txt"   # from the current folder, as before
    first.rename(moved)
    monkeypatch.chdir(tmp_path)
    assert scored(capsys, str(moved / "runs" / "r"))["data"] == str(moved / "data" / "t.txt")
