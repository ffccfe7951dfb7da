"""generate.py: continues the prompt, streams, is seeded, batches samples, reads a prompt from
stdin, answers prompt after prompt in a terminal, and rejects characters outside the vocabulary."""
import io
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import CYCLE, ROOT, assert_one_line_error, run_script, signals_as_in_a_terminal
import generate
from tinychar import sampling
from tinychar.checkpoint import load_checkpoint, model_from_checkpoint


def generated(capsys, *argv):
    """generate.py's output, run in this process (no interpreter start: a tenth of a second)."""
    generate.main(list(argv))
    return capsys.readouterr().out


@pytest.mark.slow
def test_generates_the_prompt_then_the_requested_number_of_characters(tiny_run):
    result = run_script("generate.py", tiny_run, "--prompt", "tokenization is", "--max-new-tokens", "40")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("tokenization is")
    assert len(result.stdout) == len("tokenization is") + 40 + 1   # and a final newline


@pytest.mark.slow
def test_same_seed_same_text_other_seed_other_text(tiny_run):
    args = ["generate.py", tiny_run, "--max-new-tokens", "60", "--top-k", "10", "--top-p", "0.95"]
    first = run_script(*args, "--seed", "1").stdout
    assert first == run_script(*args, "--seed", "1").stdout
    assert first != run_script(*args, "--seed", "2").stdout


@pytest.mark.slow
def test_cached_and_uncached_greedy_text_is_the_fitted_cycle_past_the_context(cycle_run):
    args = ["generate.py", cycle_run, "--prompt", "the", "--max-new-tokens", "80", "--temperature", "0"]
    cached = run_script(*args).stdout
    assert cached.startswith(CYCLE[:12])   # the model follows the cycle (only nearly fitted: a margin for other CPUs)
    assert len(cached) == 3 + 80 + 1 and len(set(cached[40:])) >= 10   # varied through five slides of the window
    assert run_script(*args, "--no-cache").stdout == cached


@pytest.mark.slow
def test_compiled_decoding_prints_the_same_sample(cycle_run):
    # temperature 2 makes the fitted model's sample wander: varied text, not the cycle
    args = ["generate.py", cycle_run, "--prompt", "the", "--max-new-tokens", "60", "--seed", "5",
            "--temperature", "2"]
    compiled = run_script(*args, "--compile")
    assert compiled.returncode == 0 and "warning" not in compiled.stderr, compiled.stderr
    assert len(set(compiled.stdout)) >= 8 and compiled.stdout not in ("the" + CYCLE * 2)
    assert compiled.stdout == run_script(*args).stdout


def test_compile_without_the_cache_is_a_one_line_error(tiny_run):
    assert_one_line_error(run_script("generate.py", tiny_run, "--compile", "--no-cache"), "--no-cache")


def test_several_samples_are_printed_one_after_another_each_of_its_own(tiny_run):
    result = run_script("generate.py", tiny_run, "--prompt", "a", "--max-new-tokens", "20", "--num-samples", "3")
    assert result.returncode == 0, result.stderr
    assert re.findall(r"^--- sample \d+ ---$", result.stdout, flags=re.M) == \
        ["--- sample 1 ---", "--- sample 2 ---", "--- sample 3 ---"]
    samples = [text[:-1] for text in re.split(r"^--- sample \d+ ---\n", result.stdout, flags=re.M)[1:]]
    assert [len(text) for text in samples] == [1 + 20] * 3 and all(text.startswith("a") for text in samples)
    assert len(set(samples)) == 3


def test_a_prompt_character_outside_the_vocabulary_is_named(tiny_run):
    result = run_script("generate.py", tiny_run, "--prompt", "naïve ☃")
    assert_one_line_error(result, "'ï'", "'☃'")


@pytest.mark.slow
def test_bad_sampling_flags_are_one_line_errors(tiny_run):
    for flag, value in (("--top-k", "0"), ("--top-p", "1.5"), ("--temperature", "-1"), ("--num-samples", "0")):
        assert_one_line_error(run_script("generate.py", tiny_run, flag, value), flag)


def test_each_sampling_flag_changes_the_sample_and_top_p_or_top_k_of_one_token_is_greedy(tiny_run, capsys):
    base = [tiny_run, "--max-new-tokens", "60", "--seed", "1"]
    sample = generated(capsys, *base)
    for flag, value in (("--temperature", "1.5"), ("--top-k", "3"), ("--top-p", "0.5"), ("--seed", "2")):
        assert generated(capsys, *base, flag, value) != sample, f"{flag} {value} changed nothing"
    greedy = generated(capsys, *base, "--temperature", "0")
    assert greedy != sample and len(set(greedy)) > 2
    assert generated(capsys, *base, "--top-p", "1e-6") == greedy
    assert generated(capsys, *base, "--top-k", "1", "--seed", "2") == greedy


def test_a_byte_model_continues_a_non_ascii_prompt_from_its_utf8_bytes(byte_run, capsys):
    text = generated(capsys, byte_run, "--prompt", "café", "--temperature", "0", "--max-new-tokens", "30")
    model, vocab = model_from_checkpoint(load_checkpoint(byte_run))
    # the prompt as five bytes, c a f 0xc3 0xa9, looked up by hand in the byte vocabulary
    prompt = torch.tensor([[vocab.chars.index(chr(b)) for b in "café".encode("utf-8")]])
    assert vocab.encode("café").tolist() == prompt[0].tolist()   # five ids, not four: é is two bytes
    continuation = sampling.generate(model, prompt, 30, temperature=0)[0, prompt.size(1):].tolist()
    assert text == "café" + vocab.decode(continuation).decode("utf-8", errors="replace") + "\n"


def test_the_run_may_be_given_as_ckpt_and_must_be_given_once(tiny_run, capsys):
    positional = generated(capsys, tiny_run, "--max-new-tokens", "30", "--seed", "3")
    assert generated(capsys, "--ckpt", tiny_run, "--max-new-tokens", "30", "--seed", "3") == positional
    assert_one_line_error(run_script("generate.py", "--prompt", "a"), "generate.py RUN")
    assert_one_line_error(run_script("generate.py", tiny_run, "--ckpt", tiny_run), "given twice")


def test_prompt_dash_reads_the_whole_prompt_from_stdin(tiny_run, capsys, monkeypatch):
    prompt = "the cat\nsat on"   # two lines: all of stdin, not its first line
    given = generated(capsys, tiny_run, "--prompt", prompt, "--max-new-tokens", "30")
    monkeypatch.setattr(sys, "stdin", io.StringIO(prompt))
    assert generated(capsys, tiny_run, "--prompt", "-", "--max-new-tokens", "30") == given
    assert given.startswith(prompt) and len(given) == len(prompt) + 30 + 1
    empty = subprocess.run([sys.executable, "generate.py", tiny_run, "--prompt", "-"], cwd=ROOT, input="",
                           capture_output=True, text=True, timeout=60)
    assert_one_line_error(empty, "--prompt must not be empty")


def test_interactive_refuses_several_samples_or_a_prompt(tiny_run):
    assert_one_line_error(run_script("generate.py", tiny_run, "--interactive", "--num-samples", "2"), "--num-samples")
    assert_one_line_error(run_script("generate.py", tiny_run, "--interactive", "--prompt", "a"), "--prompt")


class Terminal:
    """generate.py run in a pseudo terminal, as a person at a keyboard runs it: stdin, stdout and
    stderr are the terminal's, so input() edits lines with readline and Ctrl-D is end of input."""

    def __init__(self, *args):
        master, slave = os.openpty()
        # TERM=dumb: readline draws no escape sequences (bracketed paste) around its prompt
        self.proc = subprocess.Popen([sys.executable, "generate.py", *args], cwd=ROOT, stdin=slave, stdout=slave,
                                     stderr=slave, env={**os.environ, "TERM": "dumb", "INPUTRC": os.devnull},
                                     preexec_fn=signals_as_in_a_terminal)
        os.close(slave)
        self.master, self.raw = master, b""

    def text(self):
        """What the terminal showed, its line ends as "\\n"."""
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.raw.decode("utf-8", errors="replace")).replace("\r\n", "\n")

    def wait_for(self, expected, since=0, timeout=60):
        """Read until the terminal shows expected (past its first `since` characters)."""
        deadline = time.monotonic() + timeout
        while expected not in self.text()[since:]:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no {expected!r} within {timeout} s; the terminal showed:\n{self.text()}"
            try:
                self.raw += os.read(self.master, 4096)
            except OSError:   # the process has ended and closed the terminal
                assert expected in self.text()[since:], f"no {expected!r}; the terminal showed:\n{self.text()}"

    def type(self, keys):
        os.write(self.master, keys)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        os.close(self.master)


@pytest.mark.slow
def test_interactive_continues_prompt_after_prompt_each_with_its_own_seed_until_ctrl_d(tiny_run, capsys):
    # the n-th answer is the one-sample answer of --seed + n - 1: differing answers, a repeatable session
    answers = [generated(capsys, tiny_run, "--prompt", prompt, "--max-new-tokens", "30", "--seed", seed)
               for prompt, seed in (("the", "5"), ("and", "6"))]
    assert all(answer.startswith(prompt) for answer, prompt in zip(answers, ("the", "and")))
    terminal = Terminal(tiny_run, "--interactive", "--max-new-tokens", "30", "--seed", "5")
    try:
        terminal.wait_for("Ctrl-D ends\n> ")
        terminal.type(b"the\r")
        terminal.wait_for("> the\n" + answers[0] + "> ")
        terminal.type(b"and\r")
        terminal.wait_for("> and\n" + answers[1] + "> ")
        terminal.type(b"\x04")
        assert terminal.proc.wait(30) == 0, terminal.text()
        assert "Traceback" not in terminal.text()
    finally:
        terminal.close()


@pytest.mark.slow
def test_ctrl_c_in_interactive_stops_the_continuation_and_asks_for_the_next_prompt(tiny_run):
    terminal = Terminal(tiny_run, "--interactive", "--max-new-tokens", "10000000")
    try:
        terminal.wait_for("Ctrl-D ends\n> ")
        terminal.type(b"the\r")
        terminal.wait_for("> the\nthe")
        time.sleep(0.5)   # well into the continuation
        stopped_at = len(terminal.text())
        terminal.proc.send_signal(signal.SIGINT)   # what Ctrl-C sends (the terminal is not its controlling one)
        terminal.wait_for("\n> ", since=stopped_at)
        terminal.type(b"\x04")
        assert terminal.proc.wait(30) == 0, terminal.text()
        assert "Traceback" not in terminal.text() and terminal.text().count("> ") == 2
    finally:
        terminal.close()
