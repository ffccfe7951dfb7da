"""bench.py runs end to end and reports every figure it promises. A smoke test: at this tiny shape
no timing means anything, so nothing about speed is asserted, and ratios bench.py derives from
its own numbers (speed-ups, shares of the breakdown) are not re-derived here."""
import json

import pytest

from conftest import run_script
from tinychar import record


@pytest.mark.slow
def test_bench_reports_training_breakdown_generation_eval_and_memory():
    result = run_script("bench.py", "--d-model", "32", "--n-heads", "4", "--seq-len", "16", "--batch-size", "4",
                        "--repeats", "1", "--steps", "1", "--no-compile", "--gen-chars", "40", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert set(report["training"]) == {"plain nanoGPT-style", "plain nanoGPT-style bf16", "tinychar fp32", "tinychar bf16"}
    for row in report["training"].values():
        assert row["tokens_per_s"] > 0 and row["vs_fp32_matmul"] > 0 and row["speedup_vs_plain"] > 0
        assert row["speedup_vs_plain_same_precision"] > 0
        assert row["ms_min"] <= row["ms_per_step"] <= row["ms_max"]
    assert set(report["breakdown"]) == {"matmuls", "attention", "GELU", "LayerNorm", "optimizer", "other"}
    assert report["breakdown"]["matmuls"] > 0 and report["breakdown"]["optimizer"] > 0
    gen = report["generation_chars_per_s"]
    assert gen["cached"] > 0 and gen["recomputed"] > 0 and gen["cached, 8 samples"] > 0
    assert report["eval_chars_per_s"]["fp32"] > 0 and report["eval_chars_per_s"]["bf16"] > 0
    assert report["peak_rss_mb"] > 0
    assert report["matmul_gflops"]["fp32"] > 0 and report["matmul_gflops"]["bf16"] > 0
    # the machine it ran on: a figure from one CPU says nothing about another (the text's first line: test_machines_named)
    assert report["machine"] == record.machine(report["session"]) == record.machine(record.session("cpu", "fp32"))
