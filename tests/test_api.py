"""tinychar.api, the Python API: a run loads as best, last or a step; its samples, bits per
character, full-pass score and metrics are the scripts' own, to the bit; a mistake raises the
UserError whose line the scripts print."""
import json
import os
import shutil

import pytest

from conftest import TINY_FLAGS
import eval as evaluation
import generate
from tinychar import api
from tinychar.cli import UserError
from tinychar.metrics import read_metrics


@pytest.fixture(scope="module")
def run(tiny_run):
    return api.load(tiny_run)


def printed(capsys, main, argv):
    """What a script's main prints on stdout, run in this process."""
    capsys.readouterr()   # not what came before (a fixture's training run)
    main(argv)
    return capsys.readouterr().out


def test_load_takes_the_best_checkpoint_or_the_last_or_a_step(tiny_run, run):
    assert os.path.basename(run.checkpoint["path"]) == "best.pt" and run.run_dir == tiny_run
    assert run.checkpoint["step"] == 12 and str(run.device) == "cpu" and "best.pt" in repr(run)
    last = api.load(tiny_run, "last")
    assert os.path.basename(last.checkpoint["path"]) == "step_000012.pt" and last.run_dir == tiny_run
    assert api.load(tiny_run, checkpoint=6).checkpoint["step"] == 6
    assert len(run.vocab) == run.model.cfg.vocab_size and not run.model.training


@pytest.mark.parametrize("fixture,prompt", [("tiny_run", "the"), ("byte_run", "café")])
def test_generate_is_seeded_and_is_what_generate_py_prints_after_the_prompt(request, capsys, fixture, prompt):
    path = request.getfixturevalue(fixture)
    loaded = api.load(path)
    # temperature 1.5: a byte model's sample then holds invalid UTF-8 too, decoded the same way
    text = loaded.generate(prompt, max_new_tokens=60, temperature=1.5, top_k=20, seed=4)
    assert len(text) >= 30 and text == loaded.generate(prompt, 60, 1.5, 20, None, 4)
    assert text != loaded.generate(prompt, max_new_tokens=60, temperature=1.5, top_k=20, seed=5)
    script = printed(capsys, generate.main, [path, "--prompt", prompt, "--max-new-tokens", "60", "--temperature", "1.5",
                                             "--top-k", "20", "--seed", "4"])
    assert script == prompt + text + "\n"
    pieces = list(loaded.stream(prompt, max_new_tokens=60, temperature=1.5, top_k=20, seed=4))
    assert "".join(pieces) == text and len(pieces) >= 30   # streamed a token at a time


def test_generate_defaults_are_generate_py_defaults(tiny_run, run, capsys):
    # all of them: prompt, length, temperature, top-k, top-p and seed
    assert printed(capsys, generate.main, [tiny_run]) == "\n" + run.generate() + "\n"


def test_bpc_of_a_text_is_eval_py_surprisal_figure(tiny_run, run, capsys, tmp_path):
    text = "the model predicts the next"
    row = json.loads(printed(capsys, evaluation.main, [tiny_run, "--json", "--no-references", "--surprisal", text,
                                                       "--surprisal-out", str(tmp_path / "s.png")]))["runs"][0]
    assert run.bpc(text) == row["surprisal_bpc"]
    assert 0 < run.bpc(text) != run.bpc("the model predicts the text")


def test_score_is_eval_py_full_pass_bpc(tiny_run, run, capsys):
    for loaded, flags in ((run, []), (api.load(tiny_run, 6), ["--checkpoint", "6"])):
        table = json.loads(printed(capsys, evaluation.main, [tiny_run, "--json", "--no-references", *flags]))
        assert loaded.score() == table["runs"][0]["val_bpc"]
    assert run.score() != api.load(tiny_run, 6).score()


@pytest.mark.slow
def test_a_run_trained_in_bf16_is_scored_in_bf16_as_eval_py_scores_it(tmp_path, capsys):
    from train import main
    out = str(tmp_path / "bf16")
    main(["--out", out, "--steps", "6", "--eval-every", "6", *TINY_FLAGS, "--precision", "bf16"])
    text = "the model predicts the next"
    row = json.loads(printed(capsys, evaluation.main, [out, "--json", "--no-references", "--surprisal", text,
                                                       "--surprisal-out", str(tmp_path / "s.png")]))["runs"][0]
    loaded = api.load(out)
    assert row["precision"] == "bf16"
    assert loaded.score() == row["val_bpc"] and loaded.bpc(text) == row["surprisal_bpc"]


def test_metrics_are_the_rows_of_metrics_csv(tiny_run, run):
    rows = run.metrics()
    assert rows == read_metrics(os.path.join(tiny_run, "metrics.csv"))
    assert [r["step"] for r in rows] == [3, 6, 9, 12]
    assert [r["checkpoint_bpc"] is not None for r in rows] == [False, True, False, True]


def raised(call, *args):
    with pytest.raises(UserError) as error:
        call(*args)
    return str(error.value)


def test_a_mistake_raises_the_user_error_the_scripts_print(tiny_run, run, tmp_path):
    missing = str(tmp_path / "nothing")
    assert raised(api.load, missing) == raised(generate.main, [missing]) == f"checkpoint not found: {missing}"
    assert raised(run.generate, "naïve ☃") == raised(generate.main, [tiny_run, "--prompt", "naïve ☃"])
    assert "'ï' '☃'" in raised(run.generate, "naïve ☃")
    assert raised(run.bpc, "a") == raised(evaluation.main, [tiny_run, "--surprisal", "a", "--no-references"])
    assert raised(run.generate, "the", 10, 0.8, 0) == raised(generate.main, [tiny_run, "--top-k", "0"])
    assert raised(api.load, tiny_run, "first") == raised(generate.main, [tiny_run, "--checkpoint", "first"])
    assert "no test part" in raised(run.score, "test")
    assert "auto, cpu, cuda, mps" in raised(api.load, tiny_run, "best", "tpu")
    alone = tmp_path / "step_000006.pt"   # a checkpoint copied without its run
    shutil.copy(os.path.join(tiny_run, "step_000006.pt"), alone)
    assert "no metrics.csv" in raised(api.load(alone).metrics)
