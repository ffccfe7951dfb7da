"""Mutation testing of tinychar's suite: put one small, realistic bug into the code at a time and
check that the tests covering that code fail.

    python experiments/mutation/run.py                    # every mutant (~20 minutes on 2 cores)
    python experiments/mutation/run.py --only top_p_tie   # some of them, by name
    python experiments/mutation/run.py --list             # names, files and what each one breaks
    python experiments/mutation/run.py --only clip_never_runs --tests tests/test_train.py::test_gradient_clipping_bounds_the_step_of_a_huge_loss
    python experiments/mutation/run.py --out experiments/mutation/results.txt

Each mutant in mutants.py replaces one exact piece of source (it must occur exactly once in its
file, or the mutant is stale and the run stops) and names the tests that cover that code. The
runner copies the repository's files (git ls-files, new files included) into a scratch folder,
runs those tests once unmutated (they must pass), then for each mutant writes the mutated file,
runs its tests with pytest -x, and restores the file. A mutant is killed when a test fails (the
first failing test is printed) and survives when they all pass; a hang past --timeout counts as
killed. The kill rate is over every mutant; a survivor marked equivalent says why no test can tell
it from the original. Nothing in the working tree is touched.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from mutants import MUTANTS, Mutant  # noqa: E402,F401


def stale_mutants(root=ROOT, mutants=MUTANTS):
    """Why each mutant that no longer fits the code does not ([] when all fit): its piece of source
    must occur exactly once in its file, and every test it names must exist."""
    problems = []
    names = [m.name for m in mutants]
    problems += [f"{name}: named twice" for name in sorted({n for n in names if names.count(n) > 1})]
    for m in mutants:
        with open(os.path.join(root, m.path), encoding="utf-8") as f:
            count = f.read().count(m.old)
        if count != 1:
            problems.append(f"{m.name}: its source occurs {count} times in {m.path}, not once")
        if m.old == m.new:
            problems.append(f"{m.name}: the mutation changes nothing")
        for i, test in enumerate(m.tests):
            if test.startswith("-") or (i and m.tests[i - 1] == "-k"):
                continue   # a pytest option, or the keyword expression after -k
            path, _, function = test.partition("::")
            function = function.split("[")[0]
            if not os.path.exists(os.path.join(root, path)):
                problems.append(f"{m.name}: no test file {path}")
                continue
            with open(os.path.join(root, path), encoding="utf-8") as f:
                if function and not re.search(rf"^def {re.escape(function)}\(", f.read(), flags=re.M):
                    problems.append(f"{m.name}: no test {test}")
    return problems


# the committed run records, and checkpoints/ (your runs)
RUN_RECORDS = ("checkpoints/", "experiments/study/runs/", "experiments/recipe/runs/", "experiments/quickstart/")
# of those, the small files tests read: each recipe run's settings (arms.py must still train them) and
# score (candidates.json must list them)
READ_FROM_RUNS = ("config.toml", "eval.json")


def repository_files(root):
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    return [p for p in listed if os.path.isfile(os.path.join(root, p))]


def copy_repository(root, scratch):
    for path in repository_files(root):
        record = path.startswith(RUN_RECORDS) and not (path.startswith("experiments/recipe/runs/")
                                                       and path.endswith(READ_FROM_RUNS))
        if (path.endswith((".pt", ".png")) and not path.startswith("tests/")) or record:
            continue   # checkpoints, figures and run records: large, and tests read none but READ_FROM_RUNS
        os.makedirs(os.path.join(scratch, os.path.dirname(path)), exist_ok=True)
        shutil.copy2(os.path.join(root, path), os.path.join(scratch, path))


def run_tests(repo, tests, timeout):
    """(passed, first failing test or a reason, seconds)."""
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rf", *tests],
                              cwd=repo, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout} s", time.perf_counter() - start
    seconds = time.perf_counter() - start
    if done.returncode == 0:
        return True, "", seconds
    failed = re.findall(r"^FAILED (\S+)", done.stdout, flags=re.M)
    error = re.findall(r"^ERROR (\S+)", done.stdout, flags=re.M)
    return False, (failed or error or [f"pytest exit {done.returncode}"])[0], seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--tests", nargs="+", metavar="TEST",
                        help="run these tests (pytest node ids or files) against each mutant instead of its own "
                             "selection: to see whether one given test kills it")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=int, default=600, help="seconds one mutant's tests may take (default 600)")
    parser.add_argument("--out", metavar="PATH", help="also write the report to this file")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.only and len(mutants) != len(set(args.only)):
        parser.error(f"no mutant named {', '.join(sorted(set(args.only) - {m.name for m in mutants}))}")
    if args.list:
        for m in mutants:
            print(f"{m.name:<32} {m.path:<14} {m.what}")
        return
    if args.tests:
        mutants = [m._replace(tests=args.tests) for m in mutants]
    problems = stale_mutants(mutants=mutants)
    if problems:
        sys.exit("error: stale mutants (update mutants.py to the code):\n  " + "\n  ".join(problems))
    lines = []

    def report(line=""):
        print(line, flush=True)
        lines.append(line)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()   # read when the copy is taken: later edits are not in it
    with tempfile.TemporaryDirectory(prefix="tinychar-mutants-") as repo:
        copy_repository(ROOT, repo)
        seconds = 0.0
        for selection in dict.fromkeys(tuple(m.tests) for m in mutants):   # each distinct selection, once
            passed, why, took = run_tests(repo, list(selection), args.timeout)
            if not passed:
                sys.exit(f"error: the tests fail before any mutation ({why}): fix them first")
            seconds += took
        report(f"# mutation run: {len(mutants)} mutants, commit {commit}{' + uncommitted changes' if dirty else ''}, "
               f"{time.strftime('%Y-%m-%d %H:%M')}; the covering tests pass unmutated ({seconds:.0f} s)")
        report()
        killed = 0
        for m in mutants:
            path = os.path.join(repo, m.path)
            with open(path, encoding="utf-8") as f:
                original = f.read()
            with open(path, "w", encoding="utf-8") as f:
                f.write(original.replace(m.old, m.new))
            try:
                survived, killer, seconds = run_tests(repo, m.tests, args.timeout)
            finally:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(original)
            killed += not survived
            verdict = "SURVIVED" if survived else "killed"
            detail = (f"equivalent: {m.equivalent}" if m.equivalent else "NO TEST TELLS IT APART") if survived else killer
            report(f"{verdict:<8} {m.name:<32} {m.path:<14} {seconds:5.1f} s  {m.what}")
            report(f"{'':<8} {'':<32} -> {detail}")
        report()
        report(f"{killed} of {len(mutants)} mutants killed ({100 * killed / len(mutants):.1f}%), "
               f"{len(mutants) - killed} survived")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
