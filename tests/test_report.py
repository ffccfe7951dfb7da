"""experiments/report.py turns the committed study metrics into REPORT.md's tables and figures: means and
standard deviations over seeds, each factor's effect with a 95% Welch interval that decides the
verdict, the length-extrapolation table and figure, and 'not run yet' for what has not been run."""
import json
import os
import re
import statistics
import sys

from conftest import ROOT
from tinychar.metrics import write_metrics

sys.path.insert(0, os.path.join(ROOT, "experiments"))
import report  # noqa: E402
from tinychar import stats  # noqa: E402

MARKERS = "".join(f"<!-- generated:{n} -->\nold\n<!-- end:{n} -->\n"
                  for n in ("results", "effects", "references", "extrapolation"))


def fake_run(root, name, val_bpc):
    run_dir = root / "experiments" / "study" / "runs" / name
    run_dir.mkdir(parents=True)
    rows = [dict(step=s, train_loss=1.5, train_bpc=2.2, val_loss=1.6, val_bpc=2.3, lr=1e-3,
                 tokens_per_s=20000.0, elapsed_s=s / 10) for s in (500, 1000)]
    write_metrics(str(run_dir / "metrics.csv"), rows)
    result = dict(name=name, params=1000, steps=1000, tokens_seen=4096000, val_bpc=val_bpc, val_chars=100)
    (run_dir / "eval.json").write_text(json.dumps({"runs": [result], "references": {}}))


def fake_extrapolation(root, name, bpc_by_context, folder="study"):
    study = root / "experiments" / "study" / "runs"
    run_dir = study / name if folder == "study" else study / folder / name
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = [dict(context=c, val_bpc=b) for c, b in bpc_by_context.items()]
    (run_dir / "extrapolation.json").write_text(json.dumps({"runs": rows, "references": {}}))


def test_tables_give_mean_and_std_over_seeds_and_effects_with_welch_intervals(tmp_path):
    (tmp_path / "REPORT.md").write_text("intro\n" + MARKERS + "outro\n")
    for seed, bpc in ((1, 2.20), (2, 2.22), (3, 2.24)):
        fake_run(tmp_path, f"baseline_s{seed}", bpc)
    for seed, bpc in ((1, 2.40), (2, 2.50)):
        fake_run(tmp_path, f"ablation_s{seed}", bpc)
    fake_run(tmp_path, "heads4_nopos_s1", 2.25)   # 0.03 from the baseline: inside the spread
    fake_run(tmp_path, "memorise_primer_s1", 6.3)  # not a study configuration: only its own figure
    (tmp_path / "experiments" / "study" / "runs" / "memorise_primer_s1" / "eval_checkpoints.json").write_text(json.dumps(
        {"runs": [dict(steps=1000, val_bpc=6.3)], "references": {"uniform (log2 V)": 6.1085}}))
    (tmp_path / "experiments" / "study" / "runs" / "references.json").write_text(
        json.dumps({"runs": [], "references": {"uniform (log2 V)": 6.0224, "bz2 -9 | train": 2.3979}}))
    report.main(str(tmp_path))
    text = (tmp_path / "REPORT.md").read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "\nold\n" not in text
    assert f"2.2200 ± {statistics.stdev([2.20, 2.22, 2.24]):.4f}" in text
    assert f"2.4500 ± {statistics.stdev([2.40, 2.50]):.4f}" in text
    assert "4.1M" in text and "| 6.0224 |" in text and "| 2.3979 |" in text
    cells = lambda line: len(re.split(r"(?<!\\)\|", line))   # a pipe escaped as \| stays inside its cell
    tables = re.findall(r"(?m)(?:^\|.*\n)+", text)
    assert len(tables) == 3   # no extrapolation.json: a sentence, not a table
    for table in tables:
        rows = table.splitlines()
        assert all(cells(row) == cells(rows[0]) for row in rows), table
    lines = {line.split(" | ")[0]: line for line in text.splitlines()}
    assert "not run yet" in lines["| heads1_sinusoidal (positions kept, heads removed)"]
    assert "no interval: one seed" in lines["| sinusoidal positions instead of none, 4 heads"]
    both = welch = stats.welch_interval([2.20, 2.22, 2.24], [2.40, 2.50])
    assert (f"| 3, 2 | -0.2300 | {both['se']:.4f} | [{welch['low']:+.4f}, {welch['high']:+.4f}]"
            in lines["| both (baseline vs classic ablation)"])
    # se = sqrt(0.0004/3 + 0.005/2) = 0.0513, df ~ 1.1: t_0.975 ~ 11, so the interval holds 0
    assert "no difference shown" in lines["| both (baseline vs classic ablation)"]
    assert "fewer than 3 seeds" in lines["| both (baseline vs classic ablation)"]
    assert "not run yet" in lines["| 4 heads instead of 1, with sinusoidal positions"]
    for figure in ("figures/curves_all.png", "figures/final_bpc.png", "figures/memorisation.png",
                   "figures/loss_curve_baseline.png", "figures/loss_curve_nopos.png"):
        assert (tmp_path / figure).read_bytes()[:4] == b"\x89PNG"


def test_regenerating_twice_changes_nothing(tmp_path):
    (tmp_path / "REPORT.md").write_text(MARKERS)
    fake_run(tmp_path, "baseline_s1", 2.2)
    report.main(str(tmp_path))
    first = (tmp_path / "REPORT.md").read_text()
    report.main(str(tmp_path))
    assert (tmp_path / "REPORT.md").read_text() == first


def test_a_clear_effect_with_three_seeds_a_side_is_a_verdict(tmp_path):
    (tmp_path / "REPORT.md").write_text(MARKERS)
    for seed, (a, b) in enumerate(((2.150, 2.200), (2.152, 2.204), (2.148, 2.199)), start=1):
        fake_run(tmp_path, f"heads4_rope_s{seed}", a)
        fake_run(tmp_path, f"baseline_s{seed}", b)
    report.main(str(tmp_path))
    line = next(l for l in (tmp_path / "REPORT.md").read_text().splitlines() if l.startswith("| RoPE instead of sinusoidal"))
    assert line.endswith("| better |") and "| 3, 3 |" in line


def test_extrapolation_table_and_figure_pool_the_study_and_its_reruns(tmp_path):
    (tmp_path / "REPORT.md").write_text(MARKERS)
    fake_run(tmp_path, "baseline_s1", 2.2)
    fake_extrapolation(tmp_path, "heads4_rope_s1", {64: 2.4, 128: 2.2, 1024: 2.25})
    fake_extrapolation(tmp_path, "heads4_rope_s2", {64: 2.42, 128: 2.22, 1024: 2.27})
    fake_extrapolation(tmp_path, "baseline_s1", {64: 2.4, 128: 2.2, 1024: 3.9}, folder="rerun")
    report.main(str(tmp_path))
    lines = {l.split(" | ")[0]: l for l in (tmp_path / "REPORT.md").read_text().splitlines()}
    assert lines["| configuration"].startswith("| configuration | machine | positions | context 64 | context 128 | context 1024")
    assert "2.2600 ± 0.0141 (n=2)" in lines["| heads4_rope"] and "3.9000 (n=1)" in lines["| baseline"]
    assert (tmp_path / "figures" / "extrapolation.png").read_bytes()[:4] == b"\x89PNG"


def test_gap_table_and_figure_follow_the_full_pass_curves_of_each_pair(tmp_path):
    (tmp_path / "REPORT.md").write_text(MARKERS + "<!-- generated:training_length -->\nold\n<!-- end:training_length -->\n")
    report.main(str(tmp_path))
    assert "(no curve.json yet" in (tmp_path / "REPORT.md").read_text()
    study = tmp_path / "experiments" / "study" / "runs"
    for run, bpc in (("long_baseline_s1", {1000: 2.50, 2000: 2.30}), ("long_heads4_nopos_s1", {1000: 2.90, 2000: 2.55}),
                     ("layers4_sinusoidal_s1", {1000: 2.45}), ("layers4_nopos_s1", {1000: 2.60}),
                     ("rerun/baseline_s1", {1000: 2.4})):    # its pair's other run is missing: left out
        (study / run).mkdir(parents=True)
        (study / run / "curve.json").write_text(json.dumps({"steps": list(bpc), "val_bpc": list(bpc.values())}))
    report.main(str(tmp_path))
    lines = {l.split(" | ")[0]: l for l in (tmp_path / "REPORT.md").read_text().splitlines()}
    assert lines["| step"] == ("| step | 2 layers, 15,000 steps, seed 1: sinusoidal / none / gap "
                               "| 4 layers, 5000 steps, seed 1: sinusoidal / none / gap |")
    assert lines["| 1,000"] == "| 1,000 | 2.5000 / 2.9000 / **+0.4000** | 2.4500 / 2.6000 / **+0.1500** |"
    assert lines["| 2,000"] == "| 2,000 | 2.3000 / 2.5500 / **+0.2500** | - |"
    assert (tmp_path / "figures" / "training_length.png").read_bytes()[:4] == b"\x89PNG"


def test_interactions_ask_whether_a_change_moves_the_no_position_gap_with_a_four_group_interval(tmp_path):
    (tmp_path / "REPORT.md").write_text(MARKERS + "<!-- generated:interactions -->\nold\n<!-- end:interactions -->\n")
    groups = {"layers4_sinusoidal": (2.10, 2.12), "layers4_nopos": (2.30, 2.33),              # gap 0.205
              "baseline": (2.15, 2.16, 2.17), "heads4_nopos": (2.50, 2.52, 2.53),           # gap 0.3567
              "long_baseline": (2.08,), "long_heads4_nopos": (2.40,)}
    for name, values in groups.items():
        for seed, bpc in enumerate(values, start=1):
            fake_run(tmp_path, f"{name}_s{seed}", bpc)
    report.main(str(tmp_path))
    lines = {l.split(" | ")[0]: l for l in (tmp_path / "REPORT.md").read_text().splitlines()}
    # by hand: change (2.315 - 2.11) - (2.5167 - 2.16) = -0.1517; se sqrt(1e-4 + 2.25e-4 + 3.33e-5 + 7.78e-5)
    # = 0.0209; df 2.96 (Welch-Satterthwaite), t_0.975 = 3.2055: [-0.2186, -0.0847]
    assert lines["| 4 layers instead of 2"] == ("| 4 layers instead of 2 | unknown | 2, 2, 3, 3 | +0.3567 | +0.2050 | -0.1517 "
                                                "| 0.0209 | [-0.2186, -0.0847] (df 3.0) | the gap is smaller (fewer than 3 seeds) |")
    assert "no interval: one seed" in lines["| 15,000 steps instead of 5000"]
    assert "| +0.3200 |" in lines["| 15,000 steps instead of 5000"]


def test_an_interaction_inside_the_noise_is_no_change_and_a_missing_side_is_not_run(tmp_path):
    (tmp_path / "REPORT.md").write_text(MARKERS + "<!-- generated:interactions -->\nold\n<!-- end:interactions -->\n")
    for name, values in {"layers4_sinusoidal": (2.10, 2.16), "layers4_nopos": (2.40, 2.50),
                         "baseline": (2.15, 2.16, 2.17), "heads4_nopos": (2.50, 2.52, 2.53)}.items():
        for seed, bpc in enumerate(values, start=1):
            fake_run(tmp_path, f"{name}_s{seed}", bpc)
    report.main(str(tmp_path))
    lines = {l.split(" | ")[0]: l for l in (tmp_path / "REPORT.md").read_text().splitlines()}
    assert "no change shown (the interval holds 0)" in lines["| 4 layers instead of 2"]
    assert lines["| 15,000 steps instead of 5000"] == ("| 15,000 steps instead of 5000 | unknown | 0, 0, 3, 3 | +0.3567 "
                                                       "| not run yet | - | - | - | - |")


def test_runs_are_grouped_by_machine_and_no_contrast_crosses_two_machines(tmp_path):
    (tmp_path / "REPORT.md").write_text(MARKERS)
    machines = {"xeon": dict(cpu="Xeon", cores=2, bf16_hardware="amx", gpu=None, processes=1),
                "epyc": dict(cpu="EPYC", cores=2, bf16_hardware="avx512_bf16", gpu=None, processes=1)}
    for seed in (1, 2, 3):   # sinusoidal on both machines, RoPE on the Xeon only
        for name, machine, bpc in (("baseline", "epyc", 2.30), ("baseline", "xeon", 2.20), ("heads4_rope", "xeon", 2.25)):
            folder = f"{name}_s{seed}" if machine == "xeon" else f"rerun/{name}_s{seed}"
            fake_run(tmp_path, folder, bpc + seed / 1000)
            (tmp_path / "experiments" / "study" / "runs" / folder / "run.json").write_text(
                json.dumps({"sessions": [machines[machine]]}))
    report.main(str(tmp_path))
    text = (tmp_path / "REPORT.md").read_text()
    assert "| baseline (baseline) | EPYC, 2 cores, avx512_bf16 |" in text and "| baseline (baseline) | Xeon, 2 cores, amx |" in text
    rope = [l for l in text.splitlines() if l.startswith("| RoPE instead of sinusoidal")]
    assert rope == [next(l for l in rope if "| Xeon, 2 cores, amx | 3, 3 | +0.0500 |" in l)]   # never against the EPYC
