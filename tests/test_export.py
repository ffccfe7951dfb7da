"""export.py: a run's model as safetensors + config.json + a model card, which eval.py and
generate.py read without pickle and which computes exactly what the checkpoint computes."""
import json
import os

import pytest
import torch

from conftest import TINY_FLAGS, assert_one_line_error, run_script
from tinychar import checkpoint
from tinychar.checkpoint import load_checkpoint, model_from_checkpoint


@pytest.fixture(scope="module", params=["tied", "untied"])
def exported(tmp_path_factory, request):
    """(run directory, its export): a tiny run with a test split, its best checkpoint exported."""
    root = tmp_path_factory.mktemp("export")
    run, out = str(root / "run"), str(root / "exported")
    flags = ["--no-tie-weights"] if request.param == "untied" else []
    done = run_script("train.py", "--out", run, "--steps", "12", "--eval-every", "6", "--ckpt-every", "6",
                      "--split", "0.8,0.1,0.1", *TINY_FLAGS, *flags)
    assert done.returncode == 0, done.stderr
    done = run_script("export.py", run, "--out", out)
    assert done.returncode == 0, done.stderr
    return run, out


@pytest.mark.slow
def test_the_exported_model_computes_the_checkpoints_logits_bit_for_bit(exported):
    run, out = exported
    assert sorted(os.listdir(out)) == ["README.md", "config.json", "model.safetensors"]
    original, _ = model_from_checkpoint(load_checkpoint(run, "best"))
    copy, vocab = model_from_checkpoint(load_checkpoint(out))
    idx = torch.randint(0, len(vocab), (3, original.cfg.seq_len))
    with torch.no_grad():
        assert torch.equal(original(idx)[0], copy(idx)[0])
    assert (copy.head.weight is copy.tok_emb.weight) == copy.cfg.tie_weights


def test_an_export_is_read_without_pickle(exported, monkeypatch):
    step = load_checkpoint(exported[0], "best")["step"]
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("torch.load (pickle) was called"))
    assert load_checkpoint(exported[1])["step"] == step


@pytest.mark.slow
def test_eval_and_generate_read_the_export_and_give_the_runs_numbers_and_text(exported):
    run, out = exported
    scores = [json.loads(run_script("eval.py", path, "--json", "--no-references").stdout)["runs"][0]["val_bpc"]
              for path in (run, out)]
    assert scores[0] == scores[1]
    texts = [run_script("generate.py", "--ckpt", path, "--seed", "3", "--max-new-tokens", "40").stdout
             for path in (run, out)]
    assert texts[0] == texts[1] and len(texts[0]) > 40


@pytest.mark.slow
def test_config_json_holds_the_settings_and_both_scores_and_the_card_says_them(exported):
    run, out = exported
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    best = load_checkpoint(run, "best")
    assert config["step"] == best["step"] and config["vocab"] == best["vocab"]
    assert config["data_fingerprint"] == best["data_fingerprint"] and config["model_config"] == best["model_config"]
    test = json.loads(run_script("eval.py", run, "--json", "--no-references", "--split", "test").stdout)
    assert config["test_bpc"] == test["runs"][0]["val_bpc"] and config["chosen_by_validation"]
    with open(os.path.join(out, "README.md"), encoding="utf-8") as f:
        card = f.read()
    assert f"{config['val_bpc']:.4f}" in card and f"{config['test_bpc']:.4f}" in card and "generate.py" in card


@pytest.mark.slow
def test_export_into_a_folder_that_is_not_empty_is_a_one_line_error_and_changes_nothing(exported, tmp_path):
    run, out = exported
    before = {name: os.path.getmtime(os.path.join(out, name)) for name in os.listdir(out)}
    assert_one_line_error(run_script("export.py", run, "--out", out), "not an empty folder")
    assert before == {name: os.path.getmtime(os.path.join(out, name)) for name in os.listdir(out)}
    assert_one_line_error(run_script("export.py", str(tmp_path / "nothing"), "--out", str(tmp_path / "e")),
                          "checkpoint not found")


@pytest.mark.slow
def test_a_broken_export_is_a_one_line_error(exported, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / checkpoint.EXPORT_WEIGHTS).write_bytes(b"not safetensors")
    (broken / checkpoint.EXPORT_CONFIG).write_text("{}", encoding="utf-8")
    assert_one_line_error(run_script("generate.py", "--ckpt", str(broken)), "cannot read the exported model")


def test_an_export_from_before_newer_model_settings_loads_with_their_defaults_and_starts_a_run(exported, tmp_path):
    import shutil
    from tinychar.settings import parse_args, resolve_configs
    old = tmp_path / "old"
    shutil.copytree(exported[1], old)
    config = json.loads((old / checkpoint.EXPORT_CONFIG).read_text(encoding="utf-8"))
    for field in ("bias", "norm", "learned_init"):   # as exported before these fields existed
        del config["model_config"][field]
    (old / checkpoint.EXPORT_CONFIG).write_text(json.dumps(config), encoding="utf-8")
    model_config = load_checkpoint(str(old))["model_config"]
    assert (model_config["bias"], model_config["norm"], model_config["learned_init"]) == (True, "layernorm", "sinusoidal")
    model_cfg, _, _, _ = resolve_configs(parse_args(["--init-from", str(old), "--out", str(tmp_path / "r")]))
    assert (model_cfg.bias, model_cfg.norm) == (True, "layernorm")
