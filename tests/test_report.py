"""report.py turns the committed study metrics into REPORT.md's tables and figures: means and
standard deviations over seeds, each factor's effect judged against the seed spread, and
'not run yet' for what has not been run."""
import json
import re
import statistics

import report
from train import METRICS_FIELDS, write_metrics

MARKERS = "".join(f"<!-- generated:{n} -->\nold\n<!-- end:{n} -->\n" for n in ("results", "effects", "references"))


def fake_run(root, name, val_bpc):
    run_dir = root / "checkpoints" / "study" / name
    run_dir.mkdir(parents=True)
    rows = [dict(step=s, train_loss=1.5, train_bpc=2.2, val_loss=1.6, val_bpc=2.3, lr=1e-3,
                 tokens_per_s=20000.0, elapsed_s=s / 10) for s in (500, 1000)]
    write_metrics(str(run_dir / "metrics.csv"), rows)
    result = dict(name=name, params=1000, steps=1000, tokens_seen=4096000, val_bpc=val_bpc, val_chars=100)
    (run_dir / "eval.json").write_text(json.dumps({"runs": [result], "references": {}}))


def test_tables_give_mean_and_std_over_seeds_and_judge_effects_against_the_spread(tmp_path):
    (tmp_path / "REPORT.md").write_text("intro\n" + MARKERS + "outro\n")
    for seed, bpc in ((1, 2.20), (2, 2.22), (3, 2.24)):
        fake_run(tmp_path, f"baseline_s{seed}", bpc)
    for seed, bpc in ((1, 2.40), (2, 2.50)):
        fake_run(tmp_path, f"ablation_s{seed}", bpc)
    fake_run(tmp_path, "heads4_nopos_s1", 2.25)   # 0.03 from the baseline: inside the spread
    fake_run(tmp_path, "memorise_primer_s1", 6.3)  # not a study configuration: only its own figure
    (tmp_path / "checkpoints" / "study" / "memorise_primer_s1" / "eval_checkpoints.json").write_text(json.dumps(
        {"runs": [dict(steps=1000, val_bpc=6.3)], "references": {"uniform (log2 V)": 6.1085}}))
    (tmp_path / "checkpoints" / "study" / "references.json").write_text(
        json.dumps({"runs": [], "references": {"uniform (log2 V)": 6.0224, "bz2 -9 | train": 2.3979}}))
    report.main(str(tmp_path))
    text = (tmp_path / "REPORT.md").read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    assert f"2.2200 ± {statistics.stdev([2.20, 2.22, 2.24]):.4f}" in text
    assert f"2.4500 ± {statistics.stdev([2.40, 2.50]):.4f}" in text
    assert "4.1M" in text and "| 6.0224 |" in text and "| 2.3979 |" in text
    cells = lambda line: len(re.split(r"(?<!\\)\|", line))   # a pipe escaped as \| stays inside its cell
    tables = re.findall(r"(?m)(?:^\|.*\n)+", text)
    assert len(tables) == 3
    for table in tables:
        rows = table.splitlines()
        assert all(cells(row) == cells(rows[0]) for row in rows), table
    lines = {line.split(" | ")[0]: line for line in text.splitlines()}
    assert "not run yet" in lines["| heads1_sinusoidal (positions kept, heads removed)"]
    assert "no difference" in lines["| sinusoidal positions instead of none, 4 heads"]   # -0.03 vs std 0.07
    assert "-0.2300 | better" in lines["| both (baseline vs classic ablation)"]
    assert "not run yet" in lines["| 4 heads instead of 1, with sinusoidal positions"]
    for figure in ("figures/curves_all.png", "figures/final_bpc.png", "figures/memorisation.png",
                   "checkpoints/loss_curve_baseline.png", "checkpoints/loss_curve_nopos.png"):
        assert (tmp_path / figure).read_bytes()[:4] == b"\x89PNG"


def test_regenerating_twice_changes_nothing(tmp_path):
    (tmp_path / "REPORT.md").write_text(MARKERS)
    fake_run(tmp_path, "baseline_s1", 2.2)
    report.main(str(tmp_path))
    first = (tmp_path / "REPORT.md").read_text()
    report.main(str(tmp_path))
    assert (tmp_path / "REPORT.md").read_text() == first
