"""bench.py runs end to end and reports every figure it promises (tiny shape: no timing is asserted)."""
import json

import pytest

from conftest import run_script


def test_bench_reports_training_breakdown_generation_eval_and_memory():
    result = run_script("bench.py", "--d-model", "32", "--n-heads", "4", "--seq-len", "16", "--batch-size", "4",
                        "--repeats", "1", "--steps", "1", "--no-compile", "--gen-chars", "40", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert set(report["training"]) == {"plain nanoGPT-style", "tinychar fp32", "tinychar bf16"}
    for row in report["training"].values():
        assert row["tokens_per_s"] > 0 and 0 < row["mfu"] and row["ms_min"] <= row["ms_per_step"] <= row["ms_max"]
    assert report["training"]["plain nanoGPT-style"]["speedup_vs_plain"] == 1.0
    assert set(report["breakdown"]) == {"matmuls", "attention", "GELU", "LayerNorm", "optimizer", "other"}
    assert sum(report["breakdown"].values()) == pytest.approx(1.0)
    assert report["breakdown"]["matmuls"] > 0 and report["breakdown"]["optimizer"] > 0
    gen = report["generation_chars_per_s"]
    assert gen["speedup"] == pytest.approx(gen["cached"] / gen["recomputed"])
    assert report["eval_chars_per_s"] > 0 and report["peak_rss_mb"] > 0
    assert report["matmul_gflops"]["fp32"] > 0 and report["matmul_gflops"]["bf16"] > 0
