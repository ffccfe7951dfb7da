"""What train.py --preset auto chooses on this machine for several budgets, with all its threads
and with one (a stand-in for a slower machine), without training: each line of its table is the
choice train.py would print at the start of the run. Alone on the machine: the choice rests on
timed steps.

    python experiments/recipe/auto_demo.py > experiments/recipe/auto_demo.txt
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, ROOT)
from tinychar import record  # noqa: E402
from tinychar import runtime  # noqa: E402
from tinychar.settings import parse_args, resolve_configs  # noqa: E402
from tinychar.cli import ArgumentParser  # noqa: E402

BUDGETS = (5, 7, 15, 30)
THREADS = (0, 1)   # 0: torch's default, one per core


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "tinyshakespeare.txt"),
                        help="the corpus a run would train on (default data/tinyshakespeare.txt)")
    args = parser.parse_args(argv)
    device = runtime.resolve_device("auto")
    machine = record.describe(record.session(device, runtime.resolve_precision("auto", device)))
    print(f"machine: {machine}")
    for threads in THREADS:
        for minutes in BUDGETS:
            print(f"\n$ python train.py --data {os.path.relpath(args.data, ROOT)} --preset auto --time-budget {minutes}"
                  + (f" --threads {threads}" if threads else ""))
            resolve_configs(parse_args(["--data", args.data, "--preset", "auto", "--time-budget", str(minutes),
                                        "--threads", str(threads or os.cpu_count())]))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
