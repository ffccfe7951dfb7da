"""Metrics files and training curves: the one home of what train.py writes and eval.py and
experiments/report.py read and plot (so that none of the scripts imports another).

metrics.csv has one row per validation: step, mean training loss since the last one (nats and
bits), the fixed-batch validation estimate (nats and bits), learning rate, training tokens/s,
and wall-clock seconds of training so far (elapsed_s, summed over resumed sessions); at a
checkpoint, checkpoint_bpc: its full-pass BPC over the first train.BEST_SCORED units of the
validation split (eval.py's protocol), which chooses best.pt (empty elsewhere, and in files
written before it existed).
"""
import csv

from tinychar.files import AtomicFile, save_figure

METRICS_FIELDS = ["step", "train_loss", "train_bpc", "val_loss", "val_bpc", "lr", "tokens_per_s", "elapsed_s",
                  "checkpoint_bpc"]


def read_metrics(path):
    """Rows of a metrics.csv as dicts of floats (step as int; an empty cell, None)."""
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "step" else float(v) if v != "" else None) for k, v in row.items()}
                for row in csv.DictReader(f)]


def write_metrics(path, rows):
    with AtomicFile(path) as f:
        writer = csv.DictWriter(f, fieldnames=METRICS_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def plot_curves(named_rows, path, final_bpc=None):
    """Training and validation BPC against step for each run; with final_bpc ({name: (mean, std)}),
    a bar chart of the full-pass BPC beside it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_panels = 2 if final_bpc else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(7 * n_panels, 4.5), squeeze=False)
    ax = axes[0][0]
    for i, (name, rows) in enumerate(named_rows.items()):
        color = f"C{i % 10}"
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r["train_bpc"] for r in rows], color=color, linestyle="--", alpha=0.7, label=f"{name} train")
        ax.plot(steps, [r["val_bpc"] for r in rows], color=color, marker="o", markersize=3, label=f"{name} val")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.set_title("train (mean since last validation) and validation (fixed batches) BPC")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if final_bpc:
        ax = axes[0][1]
        names = list(final_bpc)
        means = [final_bpc[n][0] for n in names]
        stds = [final_bpc[n][1] for n in names]
        ax.bar(range(len(names)), means, yerr=stds, capsize=4, color=[f"C{i % 10}" for i in range(len(names))])
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
        ax.set_ylabel("validation BPC (full pass)")
        ax.set_title("final validation BPC")
        for i, m in enumerate(means):
            ax.text(i, m, f"{m:.3f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
