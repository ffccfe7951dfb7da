"""Groups of runs in eval.py: which runs form a group, each group's mean full-pass BPC with its
95% t interval, each group against the first (or --against), and a verdict by a stated rule.

A group is a folder of seeds (train.py --seeds: OUT/group.json, OUT/s<N>/), runs named with
--group NAME=GLOB, or a run on its own (a group of one). A difference is a verdict only when its
Welch interval says so; the paired interval over the seeds both groups share (the same initial
weights and batches) is shown beside it but does not decide.
"""
import csv
import glob
import io
import json
import os
import re
import statistics

from tinychar.checkpoint import is_export, list_checkpoints
from tinychar.cli import UserError
from tinychar.stats import paired_interval, t_interval, welch_interval

RULE = ("rule: a difference when the Welch 95% interval of (group - against) lies wholly on one side of 0 "
        "(lower BPC is better); else no difference shown at these n; a group of one run is a hint, never a verdict")


def is_run(path):
    """A checkpoint file, a run directory with checkpoints, or an export folder."""
    if os.path.isfile(path):
        return path.endswith(".pt")
    return os.path.isdir(path) and (bool(list_checkpoints(path)) or is_export(path))


def seed_runs(folder):
    """The runs of a folder of seeds (s<N>/ or any run subfolder), in seed order."""
    names = [n for n in os.listdir(folder) if is_run(os.path.join(folder, n))]
    order = lambda n: (0, int(n[1:]), n) if re.fullmatch(r"s\d+", n) else (1, 0, n)   # noqa: E731
    return [os.path.join(folder, n) for n in sorted(names, key=order)]


def gather(paths, named):
    """{group name: [run paths]}, in the order given. paths: runs and folders of runs (a folder of
    runs is one group; a run s<N>/ in a group's folder joins that group); named: ["NAME=GLOB"]."""
    groups = {}
    for path in paths:
        path = os.path.normpath(path)
        parent = os.path.dirname(path)
        if is_run(path):
            grouped = re.fullmatch(r"s\d+", os.path.basename(path)) and os.path.isfile(os.path.join(parent, "group.json"))
            name = os.path.basename(parent if grouped else path)
            members = [path]
        elif os.path.isdir(path) and seed_runs(path):
            name, members = os.path.basename(path), seed_runs(path)
        else:   # not a run: loading it says why (not found, no checkpoint in it, ...)
            name, members = os.path.basename(path), [path]
        groups.setdefault(name, [])
        groups[name] += [m for m in members if m not in groups[name]]
    for spec in named:
        name, sep, pattern = spec.partition("=")
        if not sep or not name or not pattern:
            raise UserError(f"--group {spec}: give NAME=GLOB, e.g. --group rope='runs/rope_s*'")
        members = sorted(p for p in glob.glob(pattern) if is_run(p))
        if not members:
            raise UserError(f"--group {spec}: no run matches {pattern}")
        if name in groups:
            raise UserError(f"--group {name}: two groups have that name")
        groups[name] = members
    return groups


def describe(values):
    """A group's n, mean, std and the 95% t interval of its mean (low, high): std, low and high are
    None for one value."""
    if len(values) < 2:
        return dict(n=len(values), mean=values[0], std=None, low=None, high=None)
    mean, half = t_interval(values)
    return dict(n=len(values), mean=mean, std=statistics.stdev(values), low=mean - half, high=mean + half)


def summarize(rows):
    """{(group, label): summary} of scored rows (each with "group", "seed", "val_bpc" and "label":
    what was scored, e.g. a context length): describe's figures, the runs, their seeds and values."""
    found = {}
    for row in rows:
        found.setdefault((row["group"], row["label"]), []).append(row)
    summaries = {}
    for key, members in found.items():
        values = [r["val_bpc"] for r in members]
        summaries[key] = dict(group=key[0], label=key[1], **describe(values),
                              runs=[r["name"] for r in members], seeds=[r["seed"] for r in members], values=values)
    return summaries


def difference(a, b):
    """dict(diff: group a's mean minus group b's (lists of values), welch: Welch's 95% interval of
    it, dict(diff, se, df, low, high), or None unless both groups have two or more values)."""
    welch = welch_interval(a, b) if len(a) > 1 and len(b) > 1 else None
    return dict(diff=statistics.mean(a) - statistics.mean(b), welch=welch)


def side(interval):
    """The side of 0 an interval (a dict with low and high) lies wholly on: -1 below, 1 above, 0 when
    it holds 0."""
    low, high = interval["low"], interval["high"]
    if high < 0:
        return -1
    return 1 if low > 0 else 0


def verdict(welch, n_a, n_b):
    """The rule (RULE) applied to a Welch interval of n_a runs against n_b."""
    if min(n_a, n_b) < 2:
        return f"a hint (n = {n_a} vs {n_b}): one run is no verdict"
    return {-1: "lower (better)", 1: "higher (worse)", 0: f"no difference shown at n = {n_a} vs {n_b}"}[side(welch)]


def compare(summaries, against):
    """Each group's difference from `against` (per label): Welch's interval, the paired one over the
    seeds both share (two or more), and the verdict."""
    found = []
    for (name, label), s in summaries.items():
        base = summaries.get((against, label))
        if name == against or base is None:
            continue
        d = difference(s["values"], base["values"])
        row = dict(group=name, against=against, label=label, diff=d["diff"], welch=None, paired=None)
        if d["welch"]:
            row["welch"] = {k: d["welch"][k] for k in ("low", "high", "df")}   # the table shows no se
        by_seed = dict(zip(base["seeds"], base["values"]))
        pairs = [(v, by_seed[seed]) for seed, v in zip(s["seeds"], s["values"]) if seed in by_seed]
        if len(pairs) > 1:
            row["paired"] = paired_interval(pairs)
        row["verdict"] = verdict(row["welch"], s["n"], base["n"])
        found.append(row)
    return found


def interval(low, high, signed=False):
    if low is None:
        return "-"
    return f"[{low:+.4f}, {high:+.4f}]" if signed else f"[{low:.4f}, {high:.4f}]"


def table_rows(summaries, comparisons):
    """The table's rows as cells: one per group (and label), with its comparison if it has one."""
    by_key = {(c["group"], c["label"]): c for c in comparisons}
    rows = []
    for key, s in summaries.items():
        c = by_key.get(key)
        rows.append([s["group"], s["label"], str(s["n"]), f"{s['mean']:.4f}",
                     "-" if s["std"] is None else f"{s['std']:.4f}", interval(s["low"], s["high"]),
                     f"{c['diff']:+.4f}" if c else "-", interval(c["welch"]["low"], c["welch"]["high"], True)
                     if c and c["welch"] else "-",
                     f"{interval(c['paired']['low'], c['paired']['high'], True)} ({c['paired']['n']} pairs)"
                     if c and c["paired"] else "-", c["verdict"] if c else "(the reference)"])
    return rows


HEADER = ["group", "scored", "n", "mean BPC", "std", "95% t interval", "difference", "Welch 95% interval",
          "paired 95% interval", "verdict"]


def as_text(summaries, comparisons, against):
    rows = [HEADER] + table_rows(summaries, comparisons)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines + [f"differences: each group minus {against}; {RULE}"])


def as_markdown(summaries, comparisons, against):
    rows = [HEADER, ["---"] * len(HEADER)] + table_rows(summaries, comparisons)
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + f"\n\nDifferences: each group minus {against}; {RULE}."


def as_csv(summaries, comparisons):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["group", "scored", "n", "mean", "std", "low", "high", "against", "diff", "welch_low", "welch_high",
                     "paired_low", "paired_high", "pairs", "verdict"])
    by_key = {(c["group"], c["label"]): c for c in comparisons}
    for key, s in summaries.items():
        c = by_key.get(key) or {}
        w, p = c.get("welch") or {}, c.get("paired") or {}
        writer.writerow([s["group"], s["label"], s["n"], s["mean"], s["std"], s["low"], s["high"], c.get("against"),
                         c.get("diff"), w.get("low"), w.get("high"), p.get("low"), p.get("high"), p.get("n"),
                         c.get("verdict")])
    return out.getvalue().rstrip("\n")


def as_json(summaries, comparisons, against):
    groups = [{k: v for k, v in s.items() if k != "values"} | {"bpc": s["values"]} for s in summaries.values()]
    return json.dumps(dict(groups=groups, against=against, comparisons=comparisons, rule=RULE), indent=2)


def band(curves):
    """(steps, mean, low, high) of validation BPC at the steps every curve has: the mean of the runs
    and its 95% t interval (low = high = mean for one run)."""
    shared = sorted(set.intersection(*[{r["step"] for r in rows if r.get("val_bpc") is not None}
                                       for rows in curves.values()]))
    at = [{r["step"]: r["val_bpc"] for r in rows} for rows in curves.values()]
    steps, means, lows, highs = [], [], [], []
    for step in shared:
        values = [curve[step] for curve in at]
        mean, half = t_interval(values) if len(values) > 1 else (values[0], 0.0)
        steps.append(step), means.append(mean), lows.append(mean - half), highs.append(mean + half)
    return steps, means, lows, highs


def plot_groups(curves_by_group, summaries, path):
    """Two panels a column wide: each group's mean validation curve with its 95% band, and its
    final full-pass BPC (mean, 95% interval whiskers), one colour per group."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tinychar.files import save_figure

    names = list(dict.fromkeys(group for group, _ in summaries))
    colors = {name: f"C{i % 10}" for i, name in enumerate(names)}
    fig, (curves_ax, bars_ax) = plt.subplots(1, 2, figsize=(7, 2.8), gridspec_kw=dict(width_ratios=[3, 2]))
    for name, curves in curves_by_group.items():
        steps, means, lows, highs = band(curves)
        curves_ax.plot(steps, means, color=colors[name], linewidth=1.2, label=f"{name} (n = {len(curves)})")
        curves_ax.fill_between(steps, lows, highs, color=colors[name], alpha=0.25, linewidth=0)
    curves_ax.set(xlabel="step", ylabel="validation BPC (fixed batches)")
    curves_ax.grid(alpha=0.3)
    curves_ax.legend(fontsize=7)
    shown = [s for s in summaries.values() if s["label"] == next(iter(summaries.values()))["label"]]
    for i, s in enumerate(shown):
        error = [[s["mean"] - s["low"]], [s["high"] - s["mean"]]] if s["low"] is not None else None
        bars_ax.bar(i, s["mean"], yerr=error, capsize=3, color=colors[s["group"]])
        bars_ax.text(i, s["high"] if s["high"] is not None else s["mean"], f"{s['mean']:.3f}", ha="center",
                     va="bottom", fontsize=7)
    bars_ax.set_xticks(range(len(shown)), [s["group"] for s in shown], rotation=20, ha="right", fontsize=7)
    low = min(s["low"] if s["low"] is not None else s["mean"] for s in shown)
    high = max(s["high"] if s["high"] is not None else s["mean"] for s in shown)
    bars_ax.set_ylim(low - 0.1 * (high - low + 0.01), high + 0.15 * (high - low + 0.01))
    bars_ax.set(ylabel=f"{shown[0]['label']} BPC, 95% interval")
    for ax in (curves_ax, bars_ax):
        ax.tick_params(labelsize=7)
        ax.xaxis.label.set_size(8), ax.yaxis.label.set_size(8)
    fig.tight_layout()
    save_figure(fig, path, dpi=200)
