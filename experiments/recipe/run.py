"""Train and score recipe arms at equal wall-clock, resumably (a finished run is skipped, an
interrupted one continues with --resume).

    python experiments/recipe/run.py --base-steps 5000 --seeds 1 rope relu2 ...
    python experiments/recipe/run.py --base-steps 5000 --seeds 1,2,3 baseline
    python experiments/recipe/run.py --minutes 30 --seeds 11,12,13 baseline     # timed for real
    python experiments/recipe/run.py --minutes 30 --seeds 11,12,13 --tag clock cpu30   # into m30_clock/
    python experiments/recipe/run.py --steps 4155 --seeds 11,12,13 cpu30   # exactly 4155 steps, into s4155/
    python experiments/recipe/run.py --steps 4155 --seeds 11 cpu30_no_bias   # 4155 / its cost ratio, into s4155/


Equal wall-clock: an arm gets round(base_steps / ratio) steps (arms.SAME_COMPUTE: base_steps), where ratio is its step time over
the baseline's measured in one interleaved run (step_cost.json, from step_cost.py), so that each
arm spends about what the baseline's base_steps cost; the runs themselves can then share the
machine without changing their result. The baseline's 5000 steps are 5000 x 81 ms = ~7 minutes
of steps on this machine's two idle cores (step_cost.txt). The preset rows of README are timed for
real: --minutes M runs train.py --time-budget M instead (alone on the machine: its steps are
fitted to the pace measured at its start), into experiments/recipe/runs/m{M}/; the cpu{M} preset carries
its budget, so its runs are README's command with --seed.

Runs: experiments/recipe/runs/b{BASE_STEPS}/{ARM}_s{SEED}/ (or m{M}/) with its log beside it; each
gets eval.json (eval.py's full pass over the validation split, fp32 scoring, as the study's); an arm
with --ema also eval_trained.json, the weights as trained (eval.py --trained-weights).
"""
import argparse
import json
import os
import subprocess
import sys

from arms import ARMS, COST_MIX, SAME_COMPUTE, TIMED_AS, timed_flags

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, ROOT)
from tinychar.cli import ArgumentParser  # noqa: E402  (bad flags: one 'error:' line)
from tinychar.files import AtomicFile  # noqa: E402


def arm_steps(arm, base_steps, costs):
    if arm == "baseline" or arm in SAME_COMPUTE:
        return base_steps
    if arm not in costs:
        sys.exit(f"error: no step cost for {arm}: run python experiments/recipe/step_cost.py {arm} (with the others)")
    return max(1, round(base_steps / costs[arm]["ratio"]))


def stand_in_steps(arm, steps):
    """--steps N stands in for a slower machine on which cpu30 trains N steps in its budget: an arm of
    the same arithmetic gets N, any other round(N / its step's cost over cpu30's), timed on that
    machine by cheaper_steps.py (cheaper_steps.json): the steps its cost buys there. An arm whose
    step changes during the run (arms.COST_MIX) costs the mean of its parts', by their share of its steps."""
    if arm == "cpu30" or arm in SAME_COMPUTE:
        return steps
    with open(os.path.join(HERE, "cheaper_steps.json")) as f:
        timed = json.load(f)

    def ratio(name):
        found = timed["arms"].get(TIMED_AS.get(name, name), {}).get(f"ratio_{timed['default_threads']}_threads")
        if found is None:
            sys.exit(f"error: no step cost for {name} in cheaper_steps.json: time it with "
                     f"python experiments/recipe/cheaper_steps.py {name}")
        return found
    mean_ratio = sum(share * ratio(part) for share, part in COST_MIX[arm]) if arm in COST_MIX else ratio(arm)
    return max(1, round(steps / mean_ratio))


def run_arm(arm, seed, base_steps, costs, minutes=None, tag="", steps=None):
    """base_steps: the arm's steps from its step cost; minutes: train.py --time-budget instead;
    steps: cpu30's steps on a slower machine, stood in for on this one (stand_in_steps: the arm's
    own steps at its cost there), into runs/s<steps>/; tag: a word added to the budget's folder (runs of new code beside the old ones)."""
    budget = (f"m{minutes:g}" if minutes else f"s{steps}" if steps else f"b{base_steps}") + (f"_{tag}" if tag else "")
    out = os.path.join("experiments", "recipe", "runs", budget, f"{arm}_s{seed}")
    if os.path.exists(os.path.join(out, "eval.json")):
        return out
    resume = os.path.isdir(out) and any(n.endswith(".pt") for n in os.listdir(out))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if minutes:
        length, final = [], None   # the run fixes its steps: resume to find out
        print(f"{out}: {minutes:g} minutes{' (resumed)' if resume else ''}", flush=True)
    else:
        steps = stand_in_steps(arm, steps) if steps else arm_steps(arm, base_steps, costs)
        length, final = ["--steps", str(steps)], os.path.join(out, f"step_{steps:06d}.pt")
        print(f"{out}: {steps} steps{' (resumed)' if resume else ''}", flush=True)
    # a cpu<M> preset's time budget gives way to --steps (train.py: explicit steps replace it)
    flags = timed_flags(arm, minutes) if minutes else ARMS[arm].split()
    command = [sys.executable, "train.py", "--data", "data/tinyshakespeare.txt", "--out", out, "--seed", str(seed),
               *length, *flags] + (["--resume"] if resume else [])
    with open(out + ".log", "a") as log:
        if final is None or not os.path.exists(final):   # a finished time-budget run resumes and stops at once
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            subprocess.run(command, cwd=ROOT, stdout=log, stderr=log, check=True)
        # an arm with --ema saves the weights' average as its model and the weights as trained beside it;
        # eval.json last: it marks the run done
        for name, extra in [("eval_trained.json", ["--trained-weights"])] * ("--ema" in flags) + [("eval.json", [])]:
            scored = subprocess.run([sys.executable, "eval.py", out, "--checkpoint", "last", "--precision", "fp32",
                                     "--json", "--no-references", *extra],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, check=True).stdout
            with AtomicFile(os.path.join(ROOT, out, name)) as f:
                f.write(scored)
    return out


def minutes(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"minutes must be positive, got {text!r}")
    return value


def positive_steps(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"steps must be a positive whole number, got {text!r}")
    return int(text)


def tag_word(text):
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"a tag is one word of letters, digits and _, got {text!r}")
    return text


def seed_list(text):
    try:
        return [int(seed) for seed in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are integers separated by commas, got {text!r}") from None


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arms", nargs="+", choices=sorted(ARMS), help="arms to run, in order")
    length = parser.add_mutually_exclusive_group(required=True)
    length.add_argument("--base-steps", type=int, help="the baseline's steps; other arms get equal time")
    length.add_argument("--minutes", type=minutes, help="train.py --time-budget MINUTES (timed for real)")
    length.add_argument("--steps", type=positive_steps, help="cpu30's STEPS on a slower machine: each arm the steps "
                                                             "its cost buys there (cheaper_steps.json), into runs/s<STEPS>/")
    # one comma-separated value, so that the arms can follow it: with nargs="+" they would be read as seeds
    parser.add_argument("--seeds", type=seed_list, required=True, help="seeds, fixed before any run: 1 or 2,3,4")
    parser.add_argument("--tag", default=None, type=tag_word,   # None: argparse would check a "" default too
                        help="runs go to experiments/recipe/runs/m<M>_<TAG>/ (or b<N>_<TAG>/): new code beside the old runs")
    return parser.parse_args(argv)


def main():
    args = parse_args()
    with open(os.path.join(HERE, "step_cost.json")) as f:
        costs = json.load(f)
    os.chdir(ROOT)
    for arm in args.arms:
        for seed in args.seeds:
            print(run_arm(arm, seed, args.base_steps, costs, args.minutes, args.tag, args.steps), "done", flush=True)


if __name__ == "__main__":
    main()
