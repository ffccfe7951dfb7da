"""docs/flags.md documents every flag of every script, each flag has its help text, README.md's test
command is the one CI runs, README.md stays a front page whose commands work in a fresh clone in
the order it gives them, and no document a user reads cites the tracker's issue numbers."""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from tinychar.settings import FLAG_GROUPS, parse_args


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def readme():
    return read("README.md")


def script_help(script):
    # wide enough that argparse never wraps a line (it may break a flag's name at its hyphen)
    done = subprocess.run([sys.executable, os.path.join(ROOT, script), "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "2000"})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-300:]
    return done.stdout


def help_entries(text):
    """{section of a --help text: [the entries of its flags]}. A section is argparse's "options" or an
    argument group (train.py's "run", "data", ...); an entry is a flag's first line and the lines of
    its help text below it (where the flag's name is too long to share a line with it)."""
    sections, section, entry = {}, None, None
    for line in text.splitlines():
        if re.fullmatch(r"[a-z][a-z ]*:", line):      # "options:", "positional arguments:", "time budget:"
            section, entry = line[:-1], None
        elif line.startswith("  -"):
            entry = [line]
            sections.setdefault(section, []).append(entry)
        elif entry and line.startswith("   ") and line.strip():
            entry.append(line)
        else:                                          # a blank line, a positional, the usage or the epilog
            entry = None
    return sections


def entry_flags(entry):
    """The flags an entry lists: the --names before its help text (not those its help text mentions)."""
    return re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", re.split(r" {2,}", entry[0].strip())[0])


def script_flags(script):
    """The flags --help lists, in every section (a --no-X of an on/off --X counts as --X)."""
    flags = {flag for entries in help_entries(script_help(script)).values() for entry in entries
             for flag in entry_flags(entry)}
    return {f for f in flags if not (f.startswith("--no-") and "--" + f[5:] in flags)} - {"--help"}


def documented_flags(script):
    """The flags named in the first column of the table of docs/flags.md's "## SCRIPT flags" section."""
    section = re.search(rf"^## {re.escape(script)} flags\n(.*?)(?=^## |\Z)", read("docs/flags.md"), re.M | re.S)
    return {flag for row in re.findall(r"^\|([^|]*)\|", section.group(1), re.M)
            for flag in re.findall(r"`(--[a-z][a-z0-9-]*)", row)}


def undocumented_flags(script):
    """Flags whose --help entry has no text after the flag itself."""
    entries = [entry for entries in help_entries(script_help(script)).values() for entry in entries]
    return [entry[0].split()[0] for entry in entries
            if not (re.search(r"\S {2,}\S", entry[0]) or len(entry) > 1)]


def test_train_py_lists_each_flag_in_a_section_of_its_kind_and_none_among_the_bare_options(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "2000")   # argparse's width: no wrapped lines
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    sections = help_entries(capsys.readouterr().out)
    assert [entry_flags(entry) for entry in sections.pop("options")] == [["--help"]]
    assert list(sections) == list(FLAG_GROUPS)   # in this order, none empty
    listed = [flag for entries in sections.values() for entry in entries for flag in entry_flags(entry)]
    assert {"--out", "--preset", "--d-model", "--lr", "--steps", "--time-budget", "--ckpt-every", "--device",
            "--bytes", "--compile", "--no-compile"} <= set(listed) and len(listed) == len(set(listed))


@pytest.mark.slow
@pytest.mark.parametrize("script", ["train.py", "eval.py", "generate.py", "export.py", "data/prepare.py", "bench.py"])
def test_every_flag_in_help_has_its_help_text(script):
    assert script_flags(script) and undocumented_flags(script) == []


@pytest.mark.slow
@pytest.mark.parametrize("script", ["train.py", "eval.py", "generate.py", "export.py", "data/prepare.py", "bench.py"])
def test_every_flag_is_in_its_scripts_table_of_docs_flags(script):
    missing = script_flags(script) - documented_flags(script)
    assert not missing, f"{script} flags missing from docs/flags.md: {sorted(missing)}"


def test_the_readme_is_a_front_page_whose_links_lead_somewhere():
    text = readme()
    assert len(text.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#:]+)\)", text)
    assert "docs/flags.md" in links and [link for link in links if not os.path.exists(os.path.join(ROOT, link))] == []


# every script of experiments/ but levers/, whose one-off A/B timings are records run at their own commit
EXPERIMENTS = ["experiments/report.py", "experiments/checkpoint_curve.py", "experiments/oracle_diffs.py",
               "experiments/mutation/run.py", "experiments/plain_baseline/run.py", "experiments/recipe/run.py",
               "experiments/recipe/summarize.py", "experiments/recipe/step_cost.py", "experiments/recipe/dropout_cost.py",
               "experiments/refactor/compare.py", "experiments/scale/measure.py",
               "experiments/finetune/run.py", "experiments/faults/soak.py",
               "experiments/budget/run.py", "experiments/dynamic/run.py", "experiments/recipe/candidates.py",
               "experiments/recipe/auto_demo.py", "experiments/eval_speed.py", "experiments/recipe/cheaper_steps.py",
               "experiments/recipe/slower.py"]


def test_the_experiments_list_names_every_script_of_experiments():
    scripts = {os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")
               for folder, _, names in os.walk(os.path.join(ROOT, "experiments")) for name in names
               if name.endswith(".py") and "levers" not in folder}
    modules = {"experiments/mutation/mutants.py", "experiments/recipe/arms.py"}   # imported, never run
    assert scripts - modules == set(EXPERIMENTS)


@pytest.mark.parametrize("script", ["train.py", "eval.py", "generate.py", "export.py", "data/prepare.py", "bench.py",
                                    *EXPERIMENTS])
@pytest.mark.slow
def test_every_script_prints_its_help(script):
    # argparse reads a lone % in a help text as a format: --help then dies with a traceback
    done = subprocess.run([sys.executable, os.path.join(ROOT, script), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() and "Traceback" not in done.stderr, done.stderr[-300:]


def test_ci_runs_the_readme_test_command():
    block = re.search(r"## Tests\n\n```\n(.*?)\n```", readme(), re.S).group(1)
    command = block.splitlines()[0].split("#")[0].strip()   # the first: the whole suite
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        assert command == "python -m pytest -q" and command in f.read().splitlines()


def readme_commands(section=None):
    """The commands of README's code blocks (of one section's first block, if named), comments cut."""
    text = readme()
    if section:
        text = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## )", text, re.S | re.M).group(1)
    blocks = re.findall(r"^```\w*\n(.*?)^```", text, re.S | re.M)
    commands = [line.split("   #")[0].split(" # ")[0].strip() for block in blocks[:1 if section else None]
                for line in block.splitlines()]
    return [c for c in commands if c.split(" ")[0] in ("python", "pip", "bash", "torchrun")]


def test_every_flag_a_readme_command_gives_is_one_its_script_takes():
    scripts = {}
    for command in readme_commands():
        words = shlex.split(command)
        script = next((w for w in words if w.endswith(".py")), None)
        if words[0] != "python" or script is None or script.startswith("experiments/"):
            continue
        if script not in scripts:
            scripts[script] = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", script_help(script)))
        unknown = {w.split("=")[0] for w in words if w.startswith("--")} - scripts[script]
        assert not unknown, f"README: {command}: {unknown}"


def test_the_readme_prepares_tiny_shakespeare_before_it_trains_on_it():
    commands = readme_commands()
    prepare = commands.index("python data/prepare.py shakespeare")
    assert [c for c in commands[:prepare] if "tinyshakespeare" in c] == []


@pytest.mark.parametrize("document", ["README.md", "REPORT.md", *[os.path.relpath(p, ROOT) for pattern in
                                                                 ("docs/*.md", "experiments/**/README.md")
                                                                 for p in sorted(glob.glob(os.path.join(ROOT, pattern),
                                                                                           recursive=True))]])
def test_no_document_a_user_reads_cites_an_issue_number(document):
    # a user of the repository has no tracker: say what was measured and where its files are
    cited = re.findall(r"(?i)\bissues? #?\d+|(?<![\w&/])#\d+", read(document))
    assert not cited, f"{document}: {cited}"


@pytest.mark.parametrize("section,transcript", [("Quick start", "experiments/quickstart/chars/quickstart.log"),
                                                ("Comparing runs", "experiments/groups/compare.log")])
def test_a_readme_section_prints_what_it_shows_from_its_transcript(section, transcript):
    # a script (experiments/quickstart/run.sh, experiments/groups/run.sh) ran the section's commands;
    # README shows lines of what they printed
    with open(os.path.join(ROOT, transcript), encoding="utf-8") as f:
        log = f.read().splitlines()
    assert [line[2:] for line in log if line.startswith("$ ")] == readme_commands(section)
    section = re.search(rf"^## {section}\n(.*?)(?=^## )", readme(), re.S | re.M).group(1)
    shown = re.search(r"^```text\n(.*?)^```", section, re.S | re.M).group(1).splitlines()
    assert shown and [line for line in shown if line.rstrip() not in {entry.rstrip() for entry in log}] == []


def git(*args, cwd):
    done = subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_quick_start_runs_in_a_fresh_clone_and_leaves_git_status_empty(tmp_path):
    if shutil.which("git") is None or not os.path.isdir(os.path.join(ROOT, ".git")) and \
            not os.path.isfile(os.path.join(ROOT, ".git")):
        pytest.skip("needs git and a repository")
    clone = tmp_path / "clone"   # the tracked files, as a fresh clone has them (uncommitted edits included)
    for name in git("ls-files", "-z", cwd=ROOT).split("\0"):
        if name and os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(clone / os.path.dirname(name), exist_ok=True)
            shutil.copy(os.path.join(ROOT, name), clone / name)
    git("init", "-q", cwd=clone)
    git("add", "-A", cwd=clone)
    git("commit", "-q", "-m", "clone", cwd=clone)
    commands = readme_commands("Quick start")
    assert [c.split()[1] for c in commands] == ["train.py", "eval.py", "generate.py"]
    for command in commands:   # README's commands, shorter: 40 steps instead of 1000
        words = shlex.split(command.replace("--steps 1000", "--steps 40").replace("--eval-every 200", "--eval-every 20"))
        done = subprocess.run([sys.executable, *words[1:]], cwd=clone, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0 and "Traceback" not in done.stderr, f"{command}\n{done.stderr[-2000:]}"
    assert "tokenization is" in done.stdout                   # generate.py's sample continues the prompt
    assert git("status", "--porcelain", "--untracked-files=all", cwd=clone) == ""
