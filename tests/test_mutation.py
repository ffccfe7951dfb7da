"""The mutation harness (experiments/mutation/) stays in step with the code: every mutant still
names source that occurs exactly once in its file and tests that exist, so a refactor that moves
the code shows up here, not as a harness that silently mutates nothing."""
import importlib.util
import os

from conftest import ROOT

# loaded by path under its own name: experiments/recipe has a run.py too
spec = importlib.util.spec_from_file_location("mutation_run", os.path.join(ROOT, "experiments", "mutation", "run.py"))
mutation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutation)


def test_every_mutant_still_applies_to_the_code_it_names():
    assert mutation.stale_mutants() == []
    assert len(mutation.MUTANTS) >= 40
    assert {m.path for m in mutation.MUTANTS} >= {"model.py", "tinychar/sampling.py", "generate.py", "train.py", "eval.py",
                                                  "tinychar/corpus.py", "tinychar/checkpoint.py", "tinychar/files.py",
                                                  "tinychar/budget.py"}


def test_a_stale_mutant_is_reported_with_what_no_longer_fits():
    stale = [mutation.Mutant("gone", "model.py", "this source is nowhere", "x", "nothing", ["tests/test_model.py"]),
             mutation.Mutant("no_test", "tinychar/sampling.py", "def sample_next(", "def sample(", "renamed",
                             ["tests/test_model.py::test_that_does_not_exist", "tests/test_nothing.py"])]
    assert mutation.stale_mutants(mutants=stale) == [
        "gone: its source occurs 0 times in model.py, not once",
        "no_test: no test tests/test_model.py::test_that_does_not_exist",
        "no_test: no test file tests/test_nothing.py"]
