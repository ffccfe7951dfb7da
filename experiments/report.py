"""Regenerate every table and figure of REPORT.md from the committed metrics (no training).

    python experiments/report.py

Reads experiments/study/runs/<config>_s<seed>/{metrics.csv,eval.json,extrapolation.json} (written by
experiments/study.sh; extrapolation.json also from experiments/study/runs/rerun/), rewrites the tables
between the <!-- generated:NAME --> markers of REPORT.md, and writes the figures:
figures/curves_all.png, figures/final_bpc.png, figures/memorisation.png,
figures/extrapolation.png, figures/training_length.png, figures/loss_curve_baseline.png,
figures/loss_curve_nopos.png. The training-length table and figure read the curve.json files
of experiments/checkpoint_curve.py (full-pass BPC at every kept checkpoint). A configuration with
no finished run is listed as not run, never estimated.

Runs are grouped by configuration and machine (run.json, or experiments/machines.json for runs
from before run records): bf16 arithmetic differs between machines, so a table never draws a
contrast across two of them; an effect measured on both machines has a row for each.

Effects are differences of means with a 95% Welch interval (unequal variances, Welch-Satterthwaite
degrees of freedom, Student's t quantile: tinychar/compare.py and stats.py, as eval.py's group table):
"better" or "worse" only when the interval excludes 0. The interactions table asks whether a change (4
layers, 15,000 steps) moves the no-position gap: a difference of two differences, its interval by
Welch-Satterthwaite over the four groups.
"""
import fnmatch
import functools
import json
import math
import os
import re
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tinychar import record  # noqa: E402
from tinychar.files import AtomicFile, save_figure  # noqa: E402
from tinychar.metrics import plot_curves, read_metrics  # noqa: E402
from tinychar.compare import difference, side  # noqa: E402
from tinychar.stats import mean_std, welch_contrast  # noqa: E402
CONFIGS = {  # name: (heads, positional encoding, description)
    "baseline": (4, "sinusoidal", "baseline"),
    "ablation": (1, "none", "classic ablation"),
    "heads4_nopos": (4, "none", "heads kept, positions removed"),
    "heads1_sinusoidal": (1, "sinusoidal", "positions kept, heads removed"),
    "heads4_learned": (4, "learned", "learned positions, N(0, 0.02) init"),
    "heads4_learnedsin": (4, "learned", "learned positions, sinusoidal init"),
    "heads4_rope": (4, "rope", "rotary positions"),
    "heads4_alibi": (4, "alibi", "ALiBi"),
    "long_baseline": (4, "sinusoidal", "baseline, 15,000 steps"),
    "long_heads4_nopos": (4, "none", "no positions, 15,000 steps"),
    "layers4_nopos": (4, "none", "4 layers, no positions"),
    "layers4_sinusoidal": (4, "sinusoidal", "4 layers, sinusoidal"),
}
EFFECTS = [   # (label, configuration a, configuration b): the difference is a - b
    ("4 heads instead of 1, with sinusoidal positions", "baseline", "heads1_sinusoidal"),
    ("4 heads instead of 1, without positions", "heads4_nopos", "ablation"),
    ("sinusoidal positions instead of none, 4 heads", "baseline", "heads4_nopos"),
    ("sinusoidal positions instead of none, 1 head", "heads1_sinusoidal", "ablation"),
    ("learned positions (N(0, 0.02) init) instead of sinusoidal, 4 heads", "heads4_learned", "baseline"),
    ("learned positions (sinusoidal init) instead of sinusoidal, 4 heads", "heads4_learnedsin", "baseline"),
    ("learned positions: sinusoidal init instead of N(0, 0.02)", "heads4_learnedsin", "heads4_learned"),
    ("RoPE instead of sinusoidal, 4 heads", "heads4_rope", "baseline"),
    ("ALiBi instead of sinusoidal, 4 heads", "heads4_alibi", "baseline"),
    ("RoPE instead of ALiBi, 4 heads", "heads4_rope", "heads4_alibi"),
    ("RoPE instead of none, 4 heads", "heads4_rope", "heads4_nopos"),
    ("ALiBi instead of none, 4 heads", "heads4_alibi", "heads4_nopos"),
    ("both (baseline vs classic ablation)", "baseline", "ablation"),
    ("15,000 steps instead of 5000, sinusoidal", "long_baseline", "baseline"),
    ("15,000 steps instead of 5000, no positions", "long_heads4_nopos", "heads4_nopos"),
    ("sinusoidal positions instead of none, at 15,000 steps", "long_baseline", "long_heads4_nopos"),
    ("4 layers instead of 2, no positions", "layers4_nopos", "heads4_nopos"),
    ("4 layers instead of 2, sinusoidal", "layers4_sinusoidal", "baseline"),
    ("sinusoidal positions instead of none, 4 layers", "layers4_sinusoidal", "layers4_nopos"),
]
INTERACTIONS = [   # (change, (positions, none) with it, (positions, none) without it): the gap is none - positions
    ("4 layers instead of 2", ("layers4_sinusoidal", "layers4_nopos"), ("baseline", "heads4_nopos")),
    ("15,000 steps instead of 5000", ("long_baseline", "long_heads4_nopos"), ("baseline", "heads4_nopos")),
]
# pairs of runs (with positions, without) whose full-pass curves (curve.json) show how the
# no-position gap moves with training: the 15,000-step pair, and 2 against 4 layers at 5000 steps.
# The first study's 2-layer runs kept no checkpoints: their pairs are the reruns on the machine the
# later runs used (rerun/, within the seed spread of the study's own: baseline s1 2.1521 vs 2.1646),
# and heads4_nopos_s2, first trained there.
GAP_PAIRS = [
    ("2 layers, 15,000 steps, seed 1", "long_baseline_s1", "long_heads4_nopos_s1"),
    ("2 layers, 5000 steps, seed 1", "rerun/baseline_s1", "rerun/heads4_nopos_s1"),
    ("2 layers, 5000 steps, seed 2", "rerun/baseline_s2", "heads4_nopos_s2"),
    ("4 layers, 5000 steps, seed 1", "layers4_sinusoidal_s1", "layers4_nopos_s1"),
    ("4 layers, 5000 steps, seed 2", "layers4_sinusoidal_s2", "layers4_nopos_s2"),
]
# the words of a verdict for each side of 0 its interval lies on (compare.side: -1 below, 1 above, 0 holding 0)
EFFECT_WORDS = {-1: "better", 1: "worse", 0: "no difference shown (the interval holds 0)"}
GAP_WORDS = {-1: "the gap is smaller", 1: "the gap is larger", 0: "no change shown (the interval holds 0)"}
STUDY = os.path.join("experiments", "study", "runs")   # the study's run records, under the repository root
NANOGPT_VAL_LOSS = 1.4697   # nats: nanoGPT's shakespeare_char (6 layers, 384 wide, 10.7M params), 5000 iterations


@functools.lru_cache(maxsize=None)
def known_machines(experiments_dir):
    """experiments_dir's machines.json (read once), or no entries where there is none."""
    machines_file = os.path.join(experiments_dir, "machines.json")
    if not os.path.exists(machines_file):
        return dict(aliases={}, runs={})
    with open(machines_file) as f:
        return json.load(f)


def machine_of(run_dir, experiments_dir):
    """The machine a run trained on: its run.json's (every session's, if they differ), else
    experiments/machines.json's entry for its folder (relative to experiments/), else "unknown"."""
    known = known_machines(experiments_dir)
    path = os.path.join(run_dir, "run.json")
    if os.path.exists(path):
        with open(path) as f:
            names = [record.machine(s) for s in json.load(f)["sessions"]]
        names = sorted({known["aliases"].get(n, n) for n in names})
        return names[0] if len(names) == 1 else "mixed: " + " / ".join(names)
    folder = os.path.relpath(run_dir, experiments_dir).replace(os.sep, "/")
    return next((machine for pattern, machine in known["runs"].items() if fnmatch.fnmatch(folder, pattern)), "unknown")


def load_runs(study):
    """{config: [run dict]} of the finished study runs (those with an eval.json) in the study folder
    and its rerun/ folder, each with its machine (a seed may have run on two machines)."""
    runs = {name: [] for name in CONFIGS}
    for folder in (study, os.path.join(study, "rerun")):
        for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            match = re.fullmatch(r"(.+)_s(\d+)", entry)
            path = os.path.join(folder, entry)
            if not match or match.group(1) not in CONFIGS or not os.path.exists(os.path.join(path, "eval.json")):
                continue
            with open(os.path.join(path, "eval.json")) as f:
                result = json.load(f)["runs"][0]
            rows = read_metrics(os.path.join(path, "metrics.csv"))
            runs[match.group(1)].append(dict(
                seed=int(match.group(2)), rows=rows, val_bpc=result["val_bpc"], params=result["params"],
                steps=result["steps"], tokens_seen=result["tokens_seen"], folder=os.path.relpath(path, study),
                machine=machine_of(path, os.path.dirname(os.path.dirname(study)))))
    return runs


def by_machine(done):
    """{machine: [runs]} of one configuration's runs, machines in a fixed order."""
    groups = {}
    for r in sorted(done, key=lambda r: (r["machine"], r["seed"])):
        groups.setdefault(r["machine"], []).append(r)
    return groups


def fmt_mean_std(values):
    mean, std = mean_std(values)
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def results_table(runs):
    """One row per configuration and machine."""
    lines = ["| configuration | machine | heads | positions | params | steps | tokens seen | wall-clock (s) "
             "| train tokens/s | val BPC per seed | val BPC mean ± std |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, (heads, pos, description) in CONFIGS.items():
        if not runs[name]:
            lines.append(f"| {name} ({description}) | - | {heads} | {pos} | - | - | - | - | - | not run yet | - |")
        for machine, done in by_machine(runs[name]).items():
            tokens = done[0]["tokens_seen"]
            wall = statistics.mean(r["rows"][-1]["elapsed_s"] for r in done)
            speed = statistics.median(row["tokens_per_s"] for r in done for row in r["rows"])
            per_seed = ", ".join(f"{r['val_bpc']:.4f} (s{r['seed']})" for r in done)
            lines.append(f"| {name} ({description}) | {machine} | {heads} | {pos} | {done[0]['params']:,} "
                         f"| {done[0]['steps']} | {tokens / 1e6:.1f}M | {wall:.0f} | {speed:,.0f} | {per_seed} "
                         f"| {fmt_mean_std([r['val_bpc'] for r in done])} |")
    return "\n".join(lines)


def machines_of(runs, names):
    """The machines on which every one of the configurations `names` ran (at least the first
    machine any of them ran on, so that a missing group is reported rather than skipped)."""
    sets = [set(by_machine(runs[name])) for name in names]
    common = sorted(set.intersection(*sets))
    return common or sorted(set.union(*sets))[:1] or ["-"]


def on(runs, name, machine):
    return [r["val_bpc"] for r in runs[name] if r["machine"] == machine]


def interactions_table(runs):
    """Does a change move the no-position gap? The gap (BPC without positions - with them) with the
    change minus the gap without it, with a 95% Welch-Satterthwaite interval over the four groups,
    all four from one machine."""
    lines = ["| change | machine | n (with it: positions, none; without: positions, none) | gap (none - positions) "
             "without it | gap with it | change of the gap | std. error | 95% interval | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, (a, b), (c, d), machine in [(*i, m) for i in INTERACTIONS for m in machines_of(runs, [*i[1], *i[2]])]:
        label = f"{label} | {machine}"
        values = [on(runs, name, machine) for name in (a, b, c, d)]
        positions_with, none_with, positions_without, none_without = values
        counts = ", ".join(str(len(v)) for v in values)
        gap_without = difference(none_without, positions_without)["diff"] if positions_without and none_without else None
        if not all(values):
            known = "-" if gap_without is None else f"{gap_without:+.4f}"
            lines.append(f"| {label} | {counts} | {known} | not run yet | - | - | - | - |")
            continue
        gap_with = difference(none_with, positions_with)["diff"]
        change = gap_with - gap_without
        cells = f"| {label} | {counts} | {gap_without:+.4f} | {gap_with:+.4f} | {change:+.4f}"
        if min(len(v) for v in values) < 2:
            lines.append(cells + " | - | - | no interval: one seed in a group (a hint, not a verdict) |")
            continue
        w = welch_contrast(list(zip(values, (-1, 1, 1, -1))))
        verdict = GAP_WORDS[side(w)] + (" (fewer than 3 seeds)" if min(len(v) for v in values) < 3 else "")
        lines.append(cells + f" | {w['se']:.4f} | [{w['low']:+.4f}, {w['high']:+.4f}] (df {w['df']:.1f}) | {verdict} |")
    return "\n".join(lines)


def effects_table(runs):
    """Each factor's own effect: the difference between two configurations that differ in it
    alone, both from one machine, with a 95% Welch interval; the verdict follows the interval. An
    effect measured on two machines has a row for each."""
    lines = ["| change | machine | n (a, b) | BPC difference a - b | std. error | 95% interval (Welch) | verdict |",
             "|---|---|---|---|---|---|---|"]
    for label, a, b, machine in [(*e, m) for e in EFFECTS for m in machines_of(runs, e[1:])]:
        values_a, values_b = on(runs, a, machine), on(runs, b, machine)
        label = f"{label} | {machine}"
        if not values_a or not values_b:
            lines.append(f"| {label} | {len(values_a)}, {len(values_b)} | not run yet | - | - | - |")
            continue
        found = difference(values_a, values_b)
        if found["welch"] is None:
            lines.append(f"| {label} | {len(values_a)}, {len(values_b)} | {found['diff']:+.4f} | - | - "
                         f"| no interval: one seed on a side (a hint, not a verdict) |")
            continue
        w = found["welch"]
        few = " (fewer than 3 seeds)" if min(len(values_a), len(values_b)) < 3 else ""
        lines.append(f"| {label} | {len(values_a)}, {len(values_b)} | {w['diff']:+.4f} | {w['se']:.4f} "
                     f"| [{w['low']:+.4f}, {w['high']:+.4f}] (df {w['df']:.1f}) | {EFFECT_WORDS[side(w)]}{few} |")
    return "\n".join(lines)


def load_extrapolation(study):
    """{(config, machine): {context: [val_bpc per seed]}} from every extrapolation.json in the study
    folder and its rerun/ folder (a seed counted once per machine, the study's own run first)."""
    found, seen = {}, set()
    for folder in (study, os.path.join(study, "rerun")):
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            match = re.fullmatch(r"(.+)_s(\d+)", entry)
            path = os.path.join(folder, entry, "extrapolation.json")
            if not match or match.group(1) not in CONFIGS or not os.path.exists(path):
                continue
            machine = machine_of(os.path.join(folder, entry), os.path.dirname(os.path.dirname(study)))
            if (entry, machine) in seen:
                continue
            seen.add((entry, machine))
            with open(path) as f:
                for row in json.load(f)["runs"]:
                    found.setdefault((match.group(1), machine), {}).setdefault(row["context"], []).append(row["val_bpc"])
    return dict(sorted(found.items(), key=lambda item: (list(CONFIGS).index(item[0][0]), item[0][1])))


def extrapolation_table(extrapolation):
    contexts = sorted({c for by_context in extrapolation.values() for c in by_context})
    if not contexts:
        return "(no extrapolation.json yet: bash experiments/study.sh writes one per run)"
    lines = ["| configuration | machine | positions | " + " | ".join(f"context {c}" for c in contexts) + " |",
             "|---|---|---|" + "---|" * len(contexts)]
    for (name, machine), by_context in extrapolation.items():
        cells = []
        for c in contexts:
            values = by_context.get(c)
            cells.append("-" if not values else f"{fmt_mean_std(values)} (n={len(values)})")
        lines.append(f"| {name} | {machine} | {CONFIGS[name][1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_extrapolation(extrapolation, path):
    """Validation BPC against the evaluation context, one line per configuration (the mean over
    seeds), the band from the lowest to the highest seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11.5, 4.8))
    for i, ((name, machine), by_context) in enumerate(extrapolation.items()):
        contexts = sorted(by_context)
        means = [statistics.mean(by_context[c]) for c in contexts]
        n = min(len(by_context[c]) for c in contexts)
        reruns = " (the reruns, not the results table's runs)" if name == "baseline" else ""
        ax.plot(contexts, means, color=f"C{i % 10}", marker="o", linestyle="-" if i < 10 else "--",
                label=f"{name}, {machine}, n={n}{reruns}")
        ax.fill_between(contexts, [min(by_context[c]) for c in contexts], [max(by_context[c]) for c in contexts],
                        color=f"C{i % 10}", alpha=0.2)
    ax.axvline(128, color="gray", linestyle=":", label="trained context (128)")
    ax.set_xscale("log", base=2)
    every_context = sorted({c for by_context in extrapolation.values() for c in by_context})
    ax.set_xticks(every_context, [str(c) for c in every_context])
    ax.set(xlabel="evaluation context (characters)", ylabel="validation BPC, full pass",
           title="length extrapolation: trained at 128, scored at other lengths")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    save_figure(fig, path)


def load_curves(study):
    """{run: {step: full-pass val BPC}} from each GAP_PAIRS run's curve.json (missing ones left out)."""
    curves = {}
    for _, *pair in GAP_PAIRS:
        for run in pair:
            path = os.path.join(study, run, "curve.json")
            if os.path.exists(path):
                with open(path) as f:
                    curve = json.load(f)
                curves[run] = dict(zip(curve["steps"], curve["val_bpc"]))
    return curves


def gap_table(curves):
    """Per pair and checkpoint: BPC with positions, without, and the gap (none - positions)."""
    pairs = [(label, a, b) for label, a, b in GAP_PAIRS if a in curves and b in curves]
    if not pairs:
        return "(no curve.json yet: python experiments/checkpoint_curve.py <runs>)"
    steps = sorted({s for _, a, b in pairs for s in set(curves[a]) & set(curves[b])})
    lines = ["| step | " + " | ".join(f"{label}: sinusoidal / none / gap" for label, _, _ in pairs) + " |",
             "|---|" + "---|" * len(pairs)]
    for step in steps:
        cells = []
        for _, a, b in pairs:
            if step in curves[a] and step in curves[b]:
                cells.append(f"{curves[a][step]:.4f} / {curves[b][step]:.4f} / **{curves[b][step] - curves[a][step]:+.4f}**")
            else:
                cells.append("-")
        lines.append(f"| {step:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_gaps(curves, path):
    """Left: full-pass BPC at each checkpoint, with positions (solid) and without (dashed);
    right: the gap between them (none - positions)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (label, a, b) in enumerate(GAP_PAIRS):
        if a not in curves or b not in curves:
            continue
        steps = sorted(set(curves[a]) & set(curves[b]))
        left.plot(steps, [curves[a][s] for s in steps], color=f"C{i}", marker="o", markersize=3, label=f"{label}: sinusoidal")
        left.plot(steps, [curves[b][s] for s in steps], color=f"C{i}", marker="o", markersize=3, linestyle="--",
                  label=f"{label}: none")
        right.plot(steps, [curves[b][s] - curves[a][s] for s in steps], color=f"C{i}", marker="o", markersize=3, label=label)
    left.set(xlabel="step", ylabel="validation BPC, full pass", title="with positions (solid) and without (dashed)")
    right.set(xlabel="step", ylabel="BPC without positions - with", title="the no-position gap during training")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def reference_table(study):
    path = os.path.join(study, "references.json")
    if not os.path.exists(path):
        return "(references.json not computed yet: python eval.py <run> --json > experiments/study/runs/references.json)"
    with open(path) as f:
        references = json.load(f)["references"]
    lines = ["| reference (same validation split) | val BPC |", "|---|---|"]
    for name, bpc in references.items():
        cell = name.replace("|", r"\|")   # eval.py's "bz2 -9 | train": a bare pipe would split the cell
        lines.append(f"| {cell} | {bpc:.4f} |")
    lines.append(f"| nanoGPT shakespeare_char, published: 6 layers x 384, 10.7M params, 5000 iterations, best val "
                 f"loss {NANOGPT_VAL_LOSS} nats (random 256-char batches, not a full pass) | {NANOGPT_VAL_LOSS / math.log(2):.4f} |")
    return "\n".join(lines)


def plot_figures(runs, root):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = os.path.join(root, "figures")
    os.makedirs(figures, exist_ok=True)
    machines = sorted({r["machine"] for done in runs.values() for r in done})
    colour = {m: f"C{i}" for i, m in enumerate(machines)}   # one colour per machine, the same in both figures
    plot_all_curves(plt, runs, colour, os.path.join(figures, "curves_all.png"))
    if machines:
        plot_final_bpc(plt, runs, colour, os.path.join(figures, "final_bpc.png"))

    for name, filename in (("baseline", "loss_curve_baseline.png"), ("ablation", "loss_curve_nopos.png")):
        if runs[name]:
            plot_curves({f"{name} s{r['seed']}": r["rows"] for r in runs[name]},
                        os.path.join(figures, filename))

    memorise = os.path.join(root, STUDY, "memorise_primer_s1")
    if os.path.exists(os.path.join(memorise, "eval_checkpoints.json")):
        plot_memorisation(memorise, os.path.join(figures, "memorisation.png"))


def plot_all_curves(plt, runs, colour, path):
    """One panel per configuration (same axes in all): each run's validation estimate (solid) and
    training BPC (dashed), coloured by machine, nothing clipped."""
    names = [name for name, done in runs.items() if done] or list(runs)[:1]
    columns = 4
    rows_n = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows_n, columns, figsize=(13, 2.6 * rows_n + 0.8), sharex=True, sharey=True,
                             squeeze=False)
    every = [row for done in runs.values() for r in done for row in r["rows"]]
    low = min([min(row["train_bpc"], row["val_bpc"]) for row in every], default=1.0)
    high = max([max(row["train_bpc"], row["val_bpc"]) for row in every], default=4.0)
    for ax, name in zip(axes.flat, names):
        for r in runs[name]:
            steps = [row["step"] for row in r["rows"]]
            ax.plot(steps, [row["val_bpc"] for row in r["rows"]], color=colour[r["machine"]], linewidth=1)
            ax.plot(steps, [row["train_bpc"] for row in r["rows"]], color=colour[r["machine"]], linewidth=1,
                    linestyle="--", alpha=0.6)
        ax.set_title(f"{name} ({len(runs[name])} runs)", fontsize=9)
        ax.set_ylim(low - 0.05, min(high, 4.5) + 0.05)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("step")
    for ax in axes[:, 0]:
        ax.set_ylabel("BPC")
    handles = [plt.Line2D([], [], color=c, label=m) for m, c in colour.items()]
    handles += [plt.Line2D([], [], color="grey", label="validation (fixed batches)"),
                plt.Line2D([], [], color="grey", linestyle="--", label="training (mean since last validation)")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle("every study run: validation and training BPC against step, by configuration; colour = machine")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save_figure(fig, path)


def plot_final_bpc(plt, runs, colour, path):
    """Each configuration and machine: every seed's full-pass BPC (dots), the mean (a bar mark) and
    the standard deviation (a line; none for one seed). Points, not bars from zero: the axis starts
    where the data do, and says so."""
    groups = [(name, machine, [r["val_bpc"] for r in done]) for name in runs
              for machine, done in by_machine(runs[name]).items()]
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(groups) + 1.4))
    for y, (name, machine, values) in enumerate(reversed(groups)):
        mean, std = mean_std(values)
        if std is not None:
            ax.plot([mean - std, mean + std], [y, y], color=colour[machine], linewidth=2, alpha=0.5)
        ax.plot([mean], [y], marker="|", markersize=14, color=colour[machine])
        ax.scatter(values, [y] * len(values), color=colour[machine], s=14, zorder=3)
    ax.set_yticks(range(len(groups)), [f"{name} (n={len(values)})" for name, _, values in reversed(groups)], fontsize=8)
    ax.set_xlabel("validation BPC, full pass (axis starts near the lowest run, not at 0)")
    handles = [plt.Line2D([], [], color=c, marker="o", linestyle="", label=m) for m, c in colour.items()]
    ax.legend(handles=handles, fontsize=8, loc="lower right", title="machine", title_fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("final validation BPC: each seed (dots), mean (mark), ± 1 std (line, n >= 2)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_memorisation(run_dir, path):
    """The baseline trained on the small primer: training BPC, the validation estimate, the
    full-pass validation BPC of every checkpoint, and uniform guessing (log2 V) for scale."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(os.path.join(run_dir, "metrics.csv"))
    with open(os.path.join(run_dir, "eval_checkpoints.json")) as f:
        scored = json.load(f)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["train_bpc"] for r in rows], "C0--", label="training BPC (mean since last validation)")
    ax.plot(steps, [r["val_bpc"] for r in rows], "C1", marker="o", markersize=3, label="validation BPC (20 fixed batches)")
    ax.plot([r["steps"] for r in scored["runs"]], [r["val_bpc"] for r in scored["runs"]], "C3s",
            label="validation BPC (eval.py full pass, each checkpoint)")
    ax.axhline(scored["references"]["uniform (log2 V)"], color="gray", linestyle=":", label="uniform guessing, log2 V")
    ax.set(xlabel="step", ylabel="bits per character",
           title="the baseline on the 36 KB primer: memorisation, not learning")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def fill(report, name, content):
    pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- end:{name} -->)", re.S)
    if not pattern.search(report):
        raise SystemExit(f"REPORT.md has no <!-- generated:{name} --> ... <!-- end:{name} --> block")
    return pattern.sub(lambda m: m.group(1) + content + "\n" + m.group(2), report)


# Blocks added to REPORT.md after the first three: main fills them only where REPORT.md has their
# markers, so a REPORT.md from before them (and the tests' fake ones) is still filled
LATER_BLOCKS = ("interactions", "extrapolation", "training_length")


def blocks(root=ROOT):
    """{("REPORT.md", block name): text} of every generated block, from the committed runs under root.
    Writes nothing: main writes these, tests/test_generated.py compares them with REPORT.md."""
    study = os.path.join(root, STUDY)
    runs = load_runs(study)
    tables = dict(results=results_table(runs), effects=effects_table(runs), interactions=interactions_table(runs),
                  references=reference_table(study), extrapolation=extrapolation_table(load_extrapolation(study)),
                  training_length=gap_table(load_curves(study)))
    return {("REPORT.md", name): text for name, text in tables.items()}


def main(root=ROOT):
    path = os.path.join(root, "REPORT.md")
    with open(path, encoding="utf-8") as f:
        report = f.read()
    for (_, name), text in blocks(root).items():
        if name not in LATER_BLOCKS or f"<!-- generated:{name} -->" in report:
            report = fill(report, name, text)
    with AtomicFile(path) as f:
        f.write(report)
    study = os.path.join(root, STUDY)
    runs, extrapolation, curves = load_runs(study), load_extrapolation(study), load_curves(study)
    plot_figures(runs, root)
    if extrapolation:
        plot_extrapolation(extrapolation, os.path.join(root, "figures", "extrapolation.png"))
    if any(a in curves and b in curves for _, a, b in GAP_PAIRS):
        plot_gaps(curves, os.path.join(root, "figures", "training_length.png"))
    print(f"REPORT.md tables and figures/ regenerated from {sum(len(v) for v in runs.values())} finished runs")


if __name__ == "__main__":
    from tinychar.cli import ArgumentParser  # no flags: --help says what it does, a stray argument is an error
    ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    main()
