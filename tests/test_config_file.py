"""train.py --config FILE.toml: any flag by its name, the command line winning over the file; every
run directory holds its configuration as config.toml, and that file repeats the run."""
import os
import tomllib

import pytest

from conftest import TINY_FLAGS, assert_one_line_error, run_script
import train
from tinychar.metrics import read_metrics
from tinychar.settings import config_toml, parse_args, resolve_configs


def configs(*argv):
    return resolve_configs(parse_args(list(argv)))


def test_a_config_file_sets_any_flag_by_its_name_and_the_command_line_wins(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('lr = 0.5\nn-layers = 3\npos = "rope"\ndropout_attention = false\nbytes = true\n'
                    'warmup_steps = 7\n', encoding="utf-8")
    model_cfg, cfg, _, _ = configs("--config", str(path), "--lr", "0.01")
    assert (model_cfg.n_layers, model_cfg.pos_encoding, model_cfg.dropout_attention) == (3, "rope", False)
    assert (cfg.lr, cfg.unit, cfg.warmup_steps) == (0.01, "bytes", 7)


def test_a_preset_in_the_file_applies_and_its_fields_give_way_to_the_files_and_the_command_lines(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "cpu30"\nn_layers = 3\n', encoding="utf-8")
    model_cfg, cfg, _, _ = configs("--config", str(path), "--dropout", "0.2")
    assert (cfg.time_budget, model_cfg.n_layers, model_cfg.dropout) == (30.0, 3, 0.2)


def test_an_unknown_key_is_a_one_line_error_naming_the_closest_flag(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("d_modle = 64\n", encoding="utf-8")
    assert_one_line_error(run_script("train.py", "--config", str(path)), "d_modle", "--d-model")


@pytest.mark.parametrize("argv", [["--d_model", "64", "--warmup_steps", "7", "--no_tie_weights"],
                                  ["--d_model=64", "--warmup_steps=7", "--no_tie_weights"]])
def test_a_flag_may_be_spelled_with_underscores_as_the_file_spells_it(argv):
    model_cfg, cfg, _, _ = configs(*argv)
    assert (model_cfg.d_model, cfg.warmup_steps, model_cfg.tie_weights) == (64, 7, False)


def test_every_scripts_flags_take_underscores_but_not_after_a_bare_double_dash():
    import bench
    import eval as eval_script
    import generate
    assert bench.parse_args(["--d_model", "64", "--gen_chars=5", "--no_compile"]).d_model == 64
    args = eval_script.parse_args(["run", "--batch_size", "8", "--no_references", "--dynamic_decay=0.5", "--dynamic", "1"])
    assert (args.batch_size, args.no_references, args.dynamic_decay) == (8, True, 0.5)
    assert generate.parse_args(["--ckpt", "run", "--max_new_tokens", "5"]).max_new_tokens == 5
    args = eval_script.parse_args(["--batch_size", "8", "--", "--no_references"])   # after --: a run's name
    assert (args.batch_size, args.runs, args.no_references) == (8, ["--no_references"], False)


@pytest.mark.slow
def test_a_malformed_file_a_wrong_value_or_a_missing_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 1\n", encoding="utf-8")
    assert_one_line_error(run_script("train.py", "--config", str(bad)), str(bad), "TOML")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('lr = "fast"\n', encoding="utf-8")
    assert_one_line_error(run_script("train.py", "--config", str(wrong)), "--lr", "fast")
    assert_one_line_error(run_script("train.py", "--config", str(tmp_path / "none.toml")), "none.toml")


def test_every_run_writes_its_configuration_and_that_file_repeats_the_run(tmp_path):
    first = str(tmp_path / "first")
    train.main(["--out", first, "--steps", "8", "--eval-every", "4", "--pos", "rope", "--keep-last", "1",
                *TINY_FLAGS])
    with open(os.path.join(first, "config.toml"), "rb") as f:
        saved = tomllib.load(f)
    assert saved["pos"] == "rope" and saved["steps"] == 8 and saved["keep-last"] == 1 and saved["bytes"] is False
    again = str(tmp_path / "again")
    train.main(["--config", os.path.join(first, "config.toml"), "--out", again])
    drop_timing = [{k: v for k, v in row.items() if k not in ("tokens_per_s", "elapsed_s")}
                   for row in read_metrics(os.path.join(first, "metrics.csv"))]
    assert drop_timing == [{k: v for k, v in row.items() if k not in ("tokens_per_s", "elapsed_s")}
                           for row in read_metrics(os.path.join(again, "metrics.csv"))]


def test_a_time_budgets_config_file_plans_again_instead_of_fixing_the_steps(tmp_path):
    model_cfg, cfg, _, _ = configs("--time-budget", "5", "--out", str(tmp_path / "r"))
    path = tmp_path / "config.toml"
    path.write_text(config_toml(model_cfg, cfg), encoding="utf-8")
    assert "steps" not in tomllib.loads(path.read_text(encoding="utf-8"))
    assert configs("--config", str(path))[1].time_budget == 5.0
