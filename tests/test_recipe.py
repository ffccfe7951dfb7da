"""experiments/recipe/summarize.py turns the timed runs (train.py --time-budget, seeds 11-13)
into README's "best model in N minutes" table: mean, std and the 95% t interval of the mean, and
the target verdict by the rule fixed before the runs (met: the mean at or below the target; met
with confidence: the interval's upper end too)."""
import glob
import json
import os
import sys
from dataclasses import asdict

import pytest

from tinychar.metrics import write_metrics
from tinychar.settings import PRESETS, parse_args, resolve_configs

RECIPE = os.path.join(os.path.dirname(__file__), "..", "experiments", "recipe")
sys.path.insert(0, RECIPE)
import arms  # noqa: E402
import summarize  # noqa: E402
import run as recipe_run  # noqa: E402


def fake_timed_run(root, minutes, arm, seed, val_bpc, steps=1000, elapsed_s=1500.0, tag="", commit=None,
                   cpu=("Intel(R) Xeon(R) Processor", "amx")):
    run_dir = root / (f"m{minutes}" + (f"_{tag}" if tag else "")) / f"{arm}_s{seed}"
    run_dir.mkdir(parents=True)
    if commit:   # the run record train.py writes (record.session), in part
        session = dict(cpu=cpu[0], cores=2, bf16_hardware=cpu[1], gpu=None, torch="2.13.0+cpu",
                       torch_cuda=None, device="cpu", precision="bf16", processes=1, commit=commit, dirty=False)
        (run_dir / "run.json").write_text(json.dumps({"sessions": [session]}))
    rows = [dict(step=s, train_loss=1.5, train_bpc=2.2, val_loss=1.6, val_bpc=2.3, lr=1e-3,
                 tokens_per_s=20000.0, elapsed_s=elapsed_s * s / steps) for s in (steps // 2, steps)]
    write_metrics(str(run_dir / "metrics.csv"), rows)
    result = dict(name=f"{arm}_s{seed}", steps=steps, val_bpc=val_bpc)
    (run_dir / "eval.json").write_text(json.dumps({"runs": [result], "references": {}}))


def test_stage_b_judges_an_arm_by_its_welch_interval_and_shows_the_paired_one_beside_it(tmp_path):
    bpcs = {"baseline": (2.150, 2.155, 2.160, 2.165), "wsd": (2.10, 2.12, 2.13, 2.14), "wd0.3": (2.19, 2.20, 2.21, 2.22),
            "rope": (2.19, 2.15, 2.17, 2.19)}
    for arm, values in bpcs.items():
        for seed, bpc in enumerate(values, start=1):
            (tmp_path / f"{arm}_s{seed}").mkdir()
            (tmp_path / f"{arm}_s{seed}" / "eval.json").write_text(json.dumps({"runs": [dict(steps=5000, val_bpc=bpc)]}))
    rows = {cells[0]: cells[3:] for line in summarize.table(5000, summarize.load(str(tmp_path))).splitlines()[4:]
            for cells in [[c.strip() for c in line.split("|")[1:-1]]]}
    assert rows["baseline"][0] == "seeds 1,2,3,4: 2.1575 ± 0.0065"
    # wsd, seeds 2-4: 2.1300 ± 0.0100 against 2.1600 ± 0.0050; Welch se 0.00645, df 2.9, t 3.23: half width 0.0208;
    # paired differences -0.035, -0.030, -0.025: sd 0.005, t(2) 4.3027, half width 0.0124
    assert rows["wsd"] == ["2.1000", "-0.0550", "2.1300 ± 0.0100", "-0.0300", "[-0.0508, -0.0092] (df 2.9)",
                           "[-0.0424, -0.0176]", "better"]
    assert rows["wd0.3"][-1] == "worse" and rows["rope"][-1] == "no difference shown"


@pytest.mark.parametrize("values, verdict", [
    ([2.090, 2.091, 2.092], "met with confidence"),   # the whole interval below 2.10
    ([2.07, 2.10, 2.12], "met by the mean, 0.0033 under 2.10 (the interval reaches 2.1"),   # mean 2.0967
    ([2.09, 2.11, 2.12], "not met"),                   # mean 2.1067
])
def test_the_target_rule(values, verdict):
    assert summarize.target_verdict(values, 2.10).startswith(verdict)


def test_the_table_shows_each_budgets_final_seeds_and_the_candidates_hints(tmp_path):
    for seed, bpc in zip((11, 12, 13), (2.08, 2.10, 2.11)):
        fake_timed_run(tmp_path, 30, "baseline", seed, bpc, steps=18000, elapsed_s=1740.0 + 5 * seed)
    fake_timed_run(tmp_path, 30, "baseline", 1, 2.3, steps=17000, elapsed_s=1700.0)
    fake_timed_run(tmp_path, 5, "baseline", 11, 2.4)   # one final seed of three: no row yet
    table = summarize.minutes_table(summarize.timed_rows(str(tmp_path)))
    rows = [line for line in table.splitlines() if line.startswith("| 30 |")]
    assert len(rows) == 1 and "| 5 |" not in table
    cells = [c.strip() for c in rows[0].split("|")[1:-1]]
    assert cells[1] == "baseline"
    assert cells[2] == "**2.0967** ± 0.0153 (2.0800, 2.1000, 2.1100)"
    assert cells[3] == "[2.0587, 2.1346]"
    assert cells[4] == "met by the mean, 0.0033 under 2.10 (the interval reaches 2.1346)"
    assert cells[5] == "29.9-30.1" and cells[6] == "18,000-18,000"
    assert "30 min, baseline" in table and "2.3000 (17,000 steps, 28.3 min)" in table
    assert cells[7] == "the probe's, once"   # m30/: the first runs
    assert cells[8] == "unknown"   # no run.json, and not a folder experiments/machines.json names
    assert "--time-budget 30 " in cells[9]   # the command that made the row


def test_runs_of_later_budget_code_get_rows_of_their_own_with_their_commit_and_machine(tmp_path):
    for seed in (11, 12, 13):
        fake_timed_run(tmp_path, 30, "cpu30", seed, 2.08)
        fake_timed_run(tmp_path, 30, "cpu30", seed, 2.07, tag="clock", commit="0fefd89aa1b2")
    rows = [[c.strip() for c in line.split("|")[1:-1]]
            for line in summarize.minutes_table(summarize.timed_rows(str(tmp_path))).splitlines()
            if line.startswith("| 30 |")]
    assert [(r[2][:10], r[7]) for r in rows] == [("**2.0800**", "the probe's, once"),
                                                 ("**2.0700**", "the run's own pace, every 100 steps (commit 0fefd89)")]
    assert rows[1][8] == "Intel(R) Xeon(R) Processor, 2 cores, amx"   # from run.json (no alias file here)


def test_readmes_table_is_the_presets_run_with_todays_code_and_nothing_else(tmp_path):
    for seed in (11, 12, 13):
        fake_timed_run(tmp_path, 30, "cpu30", seed, 2.08)                                   # older code
        fake_timed_run(tmp_path, 30, "cpu30", seed, 2.07, tag="clock", commit="0fefd89aa1b2")   # cpu30 before
        fake_timed_run(tmp_path, 30, "cpu30_stack", seed, 2.05, tag="clock", commit="0fefd89aa1b2")   # its stack
        fake_timed_run(tmp_path, 30, "cpu30_stack", seed, 2.06, tag="amd", commit="0fefd89aa1b2",   # the slower
                       cpu=("AMD EPYC", "avx512_bf16"))                                             # machine's
        fake_timed_run(tmp_path, 7, "cpu7_ema", seed, 2.15, tag="clock", commit="0fefd89aa1b2")   # a lever
    fake_timed_run(tmp_path, 7, "baseline", 1, 2.1678, tag="clock")                         # a candidate's hint
    for seed in (21, 22, 23):                                                               # a confirmation's
        fake_timed_run(tmp_path, 30, "cpu30", seed, 2.09, tag="clock", commit="0fefd89aa1b2")
        # cpu5 became WSD on fresh seeds: its row is those runs, not the cosine runs before them
        fake_timed_run(tmp_path, 5, "cpu5", seed - 10, 2.23, tag="clock", commit="0fefd89aa1b2")
        fake_timed_run(tmp_path, 5, "cpu5_wsd", seed, 2.18, tag="clock", commit="0fefd89aa1b2")
    timed = summarize.timed_rows(str(tmp_path))
    readme = summarize.minutes_table(summarize.current_presets(timed), hints=False)
    assert [line.split("|")[2].strip() for line in readme.splitlines()
            if line.startswith("| ")][1:] == ["cpu5_wsd, seeds 21-23", "cpu30_stack", "cpu30_stack"]
    assert "--preset cpu5 --schedule wsd --time-budget 5" in readme and "2.2300" not in readme
    # today's code on each machine: a row each, its machine named
    slower, faster = [line.split("|") for line in readme.splitlines() if line.startswith("| 30 |")]
    assert (slower[3].strip()[:10], slower[9].strip()) == ("**2.0600**", "AMD EPYC, 2 cores, avx512_bf16")
    assert (faster[3].strip()[:10], faster[9].strip()) == ("**2.0500**", "Intel(R) Xeon(R) Processor, 2 cores, amx")
    assert not {"2.0700", "2.0800", "2.0900", "Candidates"} & set(readme.replace("*", " ").split())
    everything = summarize.minutes_table(timed)   # experiments/recipe/README.md's
    assert "2.0800" in everything and "cpu7_ema" in everything and "7 min, baseline" in everything
    assert "| 30 | cpu30, seeds 21-23 | **2.0900**" in everything and "| 30 | cpu30 | **2.0700**" in everything


def test_an_averaged_arm_is_judged_against_its_presets_rows_and_shown_beside_its_trained_weights(tmp_path):
    for seed, (average, trained, preset) in zip((11, 12, 13), ((2.140, 2.150, 2.170), (2.145, 2.160, 2.180),
                                                             (2.150, 2.170, 2.175))):
        fake_timed_run(tmp_path, 7, "cpu7", seed, preset, tag="clock")
        fake_timed_run(tmp_path, 7, "cpu7_ema", seed, average, tag="clock")
        (tmp_path / "m7_clock" / f"cpu7_ema_s{seed}" / "eval_trained.json").write_text(json.dumps(
            {"runs": [dict(steps=1000, val_bpc=trained)], "references": {}}))
    table = summarize.levers_table(str(tmp_path))
    assert "| cpu7_ema | 11 | 1,000 | 1500.0 s | 2.1500 | 2.1400 | -0.0100 |" in table
    # averages 2.145 +- 0.005 against the preset's 2.175 +- 0.005: Welch t(4) half width 0.0113
    assert "the average minus cpu7's rows (today's code, seeds 11-13): -0.0300 BPC" in table
    assert "**kept: better**" in table and "Paired, the average minus the same runs' trained weights: -0.0150" in table
    for seed, bpc in zip((11, 12, 13), (2.17, 2.19, 2.18)):   # a lever without an average: its verdict alone
        fake_timed_run(tmp_path, 7, "cpu7_wsd", seed, bpc, tag="clock")
    assert "cpu7_wsd minus cpu7's rows (today's code, seeds 11-13): +0.0050 BPC" in summarize.levers_table(str(tmp_path))


def test_a_levers_fresh_seeds_are_judged_on_their_own_and_one_seed_is_a_hint(tmp_path):
    for seed, preset, chosen, fresh in zip((11, 12, 13), (2.17, 2.18, 2.19), (2.15, 2.16, 2.17), (2.19, 2.20, 2.21)):
        fake_timed_run(tmp_path, 7, "cpu7", seed, preset, tag="clock")
        fake_timed_run(tmp_path, 7, "cpu7_wsd", seed, chosen, tag="clock")
        fake_timed_run(tmp_path, 7, "cpu7_wsd", seed + 10, fresh, tag="clock")
        fake_timed_run(tmp_path, 30, "cpu30", seed, preset - 0.1, tag="clock")
    fake_timed_run(tmp_path, 30, "cpu30_wsd", 11, 2.05, tag="clock")
    for seed, cosine, wsd in zip((21, 22, 23), (2.23, 2.24, 2.25), (2.20, 2.21, 2.22)):   # fresh seeds on both sides
        fake_timed_run(tmp_path, 5, "cpu5", seed, cosine, tag="clock")
        fake_timed_run(tmp_path, 5, "cpu5_wsd", seed, wsd, tag="clock")
    table = summarize.levers_table(str(tmp_path))
    assert "cpu5_wsd, seeds 21-23, minus cpu5's rows (today's code, seeds 21-23): -0.0300 BPC" in table
    assert "cpu7_wsd minus cpu7's rows (today's code, seeds 11-13): -0.0200 BPC" in table
    assert "cpu7_wsd, seeds 21-23, minus cpu7's rows (today's code, seeds 11-13): +0.0200 BPC" in table
    assert "cpu30_wsd (seed 11: a hint): 2.0500, minus cpu30's rows' mean (2.0800): -0.0300." in table
    rows = summarize.minutes_table(summarize.timed_rows(str(tmp_path)), hints=False)
    assert "| 7 | cpu7_wsd, seeds 21-23 | **2.2000** ± 0.0100 (2.1900, 2.2000, 2.2100) |" in rows
    assert "| 7 | cpu7_wsd | **2.1600** ± 0.0100 (2.1500, 2.1600, 2.1700) |" in rows


def test_the_minutes_figure_draws_readmes_rows_and_the_first_codes_seeds_11_to_13():
    assert summarize.drawn_seeds("clock", "cpu5_wsd") == summarize.PRESET_ROWS["cpu5_wsd"] == (21, 22, 23)
    assert summarize.drawn_seeds("clock", "cpu5") == ()          # today's cosine runs: not README's 5-minute row
    assert summarize.drawn_seeds("clock", "cpu7_wsd") == ()      # a lever's runs
    assert summarize.drawn_seeds("amd", "cpu30_stack") == summarize.PRESET_ROWS["cpu30_stack"]   # today's code
    assert summarize.drawn_seeds("clock", "cpu30") == ()         # cpu30 before its stack was the preset
    assert summarize.drawn_seeds("", "cpu5") == (11, 12, 13)     # the first code's presets


def test_the_minutes_figure_skips_a_checkpoint_with_no_metrics_row(tmp_path):
    for seed in (11, 12, 13):
        fake_timed_run(tmp_path, 5, "baseline", seed, 2.4, steps=1000, elapsed_s=300.0)
    # a Ctrl-C checkpoint at step 731 was scored too; metrics.csv has rows at 500 and 1000 only
    curve = {"steps": [500, 731, 1000], "val_bpc": [2.6, 2.5, 2.4]}
    (tmp_path / "m5" / "baseline_s11" / "curve.json").write_text(json.dumps(curve))
    figure = tmp_path / "minutes.png"
    assert summarize.plot_minutes(summarize.timed_rows(str(tmp_path)), str(tmp_path), str(figure))
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_stage_c_reads_each_arms_seed_1_against_the_baselines_stage_a_mean():
    runs = {"wd0.3": [(2, 2.0, 18000), (1, 2.49, 18000)], "dropout0.1_resid": [(1, 2.15, 13771)]}
    rows = summarize.stage_c_table(18000, runs, baseline=2.16).splitlines()[4:]
    assert rows == ["| dropout0.1_resid | `--n-heads 4 --pos sinusoidal --dropout 0.1 --no-dropout-attention` | 13,771 "
                    "| 2.1500 | -0.0100 |",   # in arms.py's order
                    "| wd0.3 | `--n-heads 4 --pos sinusoidal --weight-decay 0.3` | 18,000 | 2.4900 | +0.3300 |"]


def test_a_rows_command_is_the_preset_alone_when_the_preset_carries_the_minutes(monkeypatch):
    monkeypatch.setitem(summarize.ARMS, "cpu30", "--preset cpu30")
    assert summarize.train_command("cpu30", 30.0) == \
        "python train.py --data data/tinyshakespeare.txt --preset cpu30 --out checkpoints/cpu30"
    assert summarize.train_command("cpu30", 15.0).endswith("--preset cpu30 --time-budget 15 --out checkpoints/cpu30")
    assert summarize.train_command("baseline", 7.0).endswith(
        "--n-heads 4 --pos sinusoidal --time-budget 7 --out checkpoints/baseline")


def test_each_cpu_preset_trains_for_the_minutes_its_name_says_and_has_a_row():
    cpu_presets = [name for name in PRESETS if name.startswith("cpu")]
    assert {"cpu30", "cpu15", "cpu7", "cpu5"} <= set(cpu_presets)
    rows = {arm.split("_")[0] for arm in summarize.PRESET_ROWS}
    for name in cpu_presets:
        _, cfg, _, _ = resolve_configs(parse_args(["--preset", name]))
        assert PRESETS[name]["time_budget"] == cfg.time_budget == float(name[3:])
        assert name in rows   # README's table has a row of it (its arm: below)


def committed_runs():
    """(arm, the config.toml train.py wrote) of every committed recipe run that has one."""
    found = glob.glob(os.path.join(RECIPE, "runs", "*", "*_s*", "config.toml"))
    return [(os.path.basename(os.path.dirname(path)).rsplit("_s", 1)[0], path) for path in sorted(found)]


def test_each_arm_still_trains_what_its_committed_runs_trained():
    # arms are never edited once run: a preset that changes (cpu30 became its stack) must not change
    # what the arms that ran on the old one train (arms.CPU30 spells the old one out)
    runs = committed_runs()
    assert len(runs) >= 50
    for arm, path in runs:
        as_run = [asdict(c) for c in resolve_configs(parse_args(["--config", path]))[:2]]
        length = ["--time-budget", str(as_run[1]["time_budget"])] if as_run[1]["time_budget"] else \
            ["--steps", str(as_run[1]["steps"])]
        as_now = [asdict(c) for c in resolve_configs(parse_args(
            arms.ARMS[arm].split() + length + ["--seed", str(as_run[1]["seed"]), "--out", as_run[1]["out"]]))[:2]]
        for config in as_run + as_now:   # where the corpus was, and what "auto" became, are not the arm's
            config.pop("data", None), config.pop("steps", None), config.update(precision="auto")
        assert as_now == as_run, path


def test_readmes_row_of_each_preset_was_trained_with_the_settings_the_preset_has_now():
    for arm in summarize.PRESET_ROWS:
        preset = arm.split("_")[0]
        as_run = resolve_configs(parse_args(arms.timed_flags(arm, float(preset[3:]))))
        as_now = resolve_configs(parse_args(["--preset", preset]))
        assert [asdict(c) for c in as_run[:2]] == [asdict(c) for c in as_now[:2]], arm


def test_the_study_presets_stay_the_configurations_the_report_compares():
    assert PRESETS["baseline"] == dict(n_heads=4, pos_encoding="sinusoidal")
    assert PRESETS["ablation"] == dict(n_heads=1, pos_encoding="none")


def test_before_any_preset_has_its_three_seeds_the_table_says_so_and_lists_the_candidates(tmp_path):
    fake_timed_run(tmp_path, 7, "baseline", 1, 2.1678, steps=3983, elapsed_s=402.6)
    table = summarize.minutes_table(summarize.timed_rows(str(tmp_path)))
    assert table.splitlines()[0] == "No preset has its three timed seeds yet."
    assert "7 min, baseline (`--n-heads 4 --pos sinusoidal`): 2.1678 (3,983 steps, 6.7 min)" in table


def test_run_py_takes_a_fixed_step_count_with_or_without_a_tag():
    args = recipe_run.parse_args(["--steps", "4155", "--seeds", "11,12,13", "cpu30"])
    assert (args.steps, args.seeds, args.arms, args.tag) == (4155, [11, 12, 13], ["cpu30"], None)
    assert recipe_run.parse_args(["--minutes", "7", "--seeds", "1", "--tag", "clock", "cpu7"]).tag == "clock"
    for wrong in (["--steps", "0"], ["--steps", "5", "--minutes", "3"], ["--tag", "two words", "--minutes", "3"]):
        with pytest.raises(SystemExit):
            recipe_run.parse_args([*wrong, "--seeds", "1", "cpu30"])


def cost_file(folder, later=None):
    """A cheaper_steps.json: cpu30 and three arms at two threads and one; `later` names one timed later."""
    ratios = {"cpu30": 1.0, "cpu30_no_bias": 0.8, "cpu30_dropout0": 0.5, "cpu30_muon": 1.25}
    timed = {name: dict(flags=arms.ARMS[name], ms_2_threads=400 * r, ratio_2_threads=r, ms_1_threads=700 * r,
                        ratio_1_threads=r) for name, r in ratios.items()}
    if later:
        timed[later]["later_run"] = dict(machine="# machine: AMD EPYC, 2 cores, avx512_bf16; torch 2.13.0+cpu",
                                         ms_2_threads=450.0, ms_1_threads=720.0)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "cheaper_steps.json"), "w") as f:
        json.dump(dict(machine="# machine: AMD EPYC, 2 cores, avx512_bf16; torch 2.13.0+cpu", default_threads=2,
                       arms=timed), f)


def test_a_stand_in_arm_trains_the_steps_its_cost_buys_on_the_slower_machine(tmp_path, monkeypatch):
    cost_file(tmp_path)
    monkeypatch.setattr(recipe_run, "HERE", str(tmp_path))
    steps = recipe_run.stand_in_steps
    assert steps("cpu30", 4000) == steps("cpu30_wsd", 4000) == 4000   # cpu30's arithmetic: its steps
    assert steps("cpu30_no_bias", 4000) == 5000                          # 4000 / 0.8
    assert steps("cpu30_muon_lr3e-3", 4000) == 3200                      # timed as cpu30_muon: 4000 / 1.25
    assert steps("cpu30_late_dropout", 4000) == 5333                     # half at 0.5x, half at 1x: 4000 / 0.75
    with pytest.raises(SystemExit, match="no step cost for cpu30_qk_norm"):
        steps("cpu30_qk_norm", 4000)


def test_the_cost_table_marks_an_arm_timed_later_and_gives_its_runs_cpu30(tmp_path):
    import slower
    cost_file(tmp_path / "experiments" / "recipe", later="cpu30_dropout0")
    table = slower.costs_table(str(tmp_path))
    assert f"| cpu30_dropout0 * | `{arms.ARMS['cpu30_dropout0']}` | 200.0 | 0.500x | 350.0 | 0.500x |" in table
    assert f"| cpu30_no_bias | `{arms.ARMS['cpu30_no_bias']}` | 320.0 | 0.800x | 560.0 | 0.800x |" in table
    assert "cpu30_dropout0 (cpu30 450.0 / 720.0 ms, on the AMD EPYC, 2 cores, avx512_bf16)" in table


def test_a_stand_in_hint_says_whether_stage_2_follows_and_three_seeds_a_side_give_a_verdict(tmp_path):
    import slower
    folder = tmp_path / "experiments" / "recipe" / "runs" / slower.STAND_IN
    bpc = {("cpu30", 11): 2.1163, ("cpu30", 12): 2.1151, ("cpu30", 13): 2.1164, ("cpu30_wsd", 11): 2.11589,
           ("cpu30_no_bias", 11): 2.1170, ("cpu30_ema", 11): 2.0900, ("cpu30_ema", 12): 2.0910, ("cpu30_ema", 13): 2.0905}
    for (arm, seed), value in bpc.items():
        (folder / f"{arm}_s{seed}").mkdir(parents=True)
        (folder / f"{arm}_s{seed}" / "eval.json").write_text(json.dumps({"runs": [dict(val_bpc=value, steps=4155)]}))
    said = slower.stand_in_table(str(tmp_path))
    assert "cpu30 at the stand-in, seeds 11-13: mean 2.1159, 95% t interval [2.1141, 2.1177]" in said
    # 2.11589 against the mean 2.115933: too small for four decimals, and its sign decides
    assert "cpu30_wsd (seed 11: a hint): minus cpu30's mean at seeds 11-13 (2.1159): -0.000043: below it, so seeds " \
           "12 and 13 follow (stage 2)." in said
    assert "cpu30_no_bias (seed 11: a hint): minus cpu30's mean at seeds 11-13 (2.1159): +0.0011: not below it, so " \
           "no more seeds." in said
    assert "cpu30_ema minus cpu30 (seeds 11-13 each): -0.0254 BPC, Welch 95% interval" in said


def test_the_stack_is_judged_against_cpu30_at_its_own_fresh_seeds_and_read_against_the_target(tmp_path):
    import slower
    folder = tmp_path / "experiments" / "recipe" / "runs" / slower.STAND_IN
    bpc = {("cpu30", 11): 2.1163, ("cpu30", 12): 2.1151, ("cpu30", 13): 2.1164,
           ("cpu30", 21): 2.1170, ("cpu30", 22): 2.1150, ("cpu30", 23): 2.1160,
           ("cpu30_stack", 21): 2.0880, ("cpu30_stack", 22): 2.0900, ("cpu30_stack", 23): 2.0890,
           ("cpu30_wsd", 11): 2.0876, ("cpu30_wsd", 12): 2.0890}
    for (arm, seed), value in bpc.items():
        (folder / f"{arm}_s{seed}").mkdir(parents=True)
        (folder / f"{arm}_s{seed}" / "eval.json").write_text(json.dumps({"runs": [dict(val_bpc=value, steps=4155)]}))
    said = slower.stand_in_table(str(tmp_path))
    assert "cpu30 at the stand-in, seeds 11-13: mean 2.1159" in said
    assert "cpu30 at the stand-in, seeds 21-23: mean 2.1160" in said
    assert "cpu30_stack at the stand-in, seeds 21-23: mean 2.0890, 95% t interval [2.0865, 2.0915]: the 30-minute " \
           "target met with confidence (<= 2.10); the stretch not met (> 2.05)." in said
    # against cpu30 at 21-23 (mean 2.1160), not at 11-13 (2.1159)
    assert "cpu30_stack minus cpu30 (seeds 21-23 each): -0.0270 BPC, Welch 95% interval" in said
    assert "cpu30_stack minus cpu30 (seeds 11-13 each)" not in said
    # stage 2 under way: its difference so far, no stage to follow
    assert "cpu30_wsd (seeds 11, 12: a hint): minus cpu30's mean at seeds 11-13 (2.1159): -0.0276." in said

