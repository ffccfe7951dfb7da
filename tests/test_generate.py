"""generate.py: continues the prompt, streams, is seeded, batches samples, and rejects
characters outside the vocabulary."""
import re

from conftest import CYCLE, assert_one_line_error, run_script


def test_generates_the_prompt_then_the_requested_number_of_characters(tiny_run):
    result = run_script("generate.py", "--ckpt", tiny_run, "--prompt", "tokenization is", "--max-new-tokens", "40")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("tokenization is")
    assert len(result.stdout) == len("tokenization is") + 40 + 1   # and a final newline


def test_same_seed_same_text_other_seed_other_text(tiny_run):
    args = ["generate.py", "--ckpt", tiny_run, "--max-new-tokens", "60", "--top-k", "10", "--top-p", "0.95"]
    first = run_script(*args, "--seed", "1").stdout
    assert first == run_script(*args, "--seed", "1").stdout
    assert first != run_script(*args, "--seed", "2").stdout


def test_cached_and_uncached_greedy_text_is_the_fitted_cycle_past_the_context(cycle_run):
    args = ["generate.py", "--ckpt", cycle_run, "--prompt", "the", "--max-new-tokens", "80", "--temperature", "0"]
    cached = run_script(*args).stdout
    assert cached.startswith(CYCLE[:12])   # the model follows the cycle (only nearly fitted: a margin for other CPUs)
    assert len(cached) == 3 + 80 + 1 and len(set(cached[40:])) >= 10   # varied through five slides of the window
    assert run_script(*args, "--no-cache").stdout == cached


def test_compiled_decoding_prints_the_same_sample(cycle_run):
    # temperature 2 makes the fitted model's sample wander: varied text, not the cycle
    args = ["generate.py", "--ckpt", cycle_run, "--prompt", "the", "--max-new-tokens", "60", "--seed", "5",
            "--temperature", "2"]
    compiled = run_script(*args, "--compile")
    assert compiled.returncode == 0 and "warning" not in compiled.stderr, compiled.stderr
    assert len(set(compiled.stdout)) >= 8 and compiled.stdout not in ("the" + CYCLE * 2)
    assert compiled.stdout == run_script(*args).stdout


def test_compile_without_the_cache_is_a_one_line_error(tiny_run):
    assert_one_line_error(run_script("generate.py", "--ckpt", tiny_run, "--compile", "--no-cache"), "--no-cache")


def test_several_samples_are_printed_one_after_another_each_of_its_own(tiny_run):
    result = run_script("generate.py", "--ckpt", tiny_run, "--prompt", "a", "--max-new-tokens", "20", "--num-samples", "3")
    assert result.returncode == 0, result.stderr
    assert re.findall(r"^--- sample \d+ ---$", result.stdout, flags=re.M) == \
        ["--- sample 1 ---", "--- sample 2 ---", "--- sample 3 ---"]
    samples = [text[:-1] for text in re.split(r"^--- sample \d+ ---\n", result.stdout, flags=re.M)[1:]]
    assert [len(text) for text in samples] == [1 + 20] * 3 and all(text.startswith("a") for text in samples)
    assert len(set(samples)) == 3


def test_a_prompt_character_outside_the_vocabulary_is_named(tiny_run):
    result = run_script("generate.py", "--ckpt", tiny_run, "--prompt", "naïve ☃")
    assert_one_line_error(result, "'ï'", "'☃'")


def test_bad_sampling_flags_are_one_line_errors(tiny_run):
    for flag, value in (("--top-k", "0"), ("--top-p", "1.5"), ("--temperature", "-1"), ("--num-samples", "0")):
        assert_one_line_error(run_script("generate.py", "--ckpt", tiny_run, flag, value), flag)
