"""Validation bits per character (BPC) of trained runs, with reference points, and plots.

    python eval.py checkpoints/baseline checkpoints/ablation
    python eval.py checkpoints/baseline checkpoints/ablation --plot compare.png --json
    python eval.py checkpoints/baseline --attention "ROMEO: " --attention-dir figures
    python eval.py checkpoints/rope --context 64 128 256 512 1024     # length extrapolation

Protocol (every run, every time): the validation split is the last 10% of the corpus the run
was trained on. Every validation character is scored exactly once, by sliding windows of
seq_len characters with stride seq_len / 2: a window scores only its last seq_len / 2
predictions, so each scored character sees at least seq_len / 2 characters of context (the
first ones take theirs from the end of the training split, which is not scored).
BPC = total cross-entropy in bits / number of validation characters. With --context N the
windows are N characters long instead (stride N / 2): shorter or longer than the context the
model was trained on, to measure how it extrapolates.

Reference rows on the same split: uniform guessing (log2 V); a unigram model of the training
split (add-one smoothed); and the bz2 and lzma compressors' conditional cost of the
validation text given the training text: (size(train + val) - size(train)) * 8 / chars.
"""
import argparse
import bz2
import json
import lzma
import math
import os
import sys

import torch
import torch.nn.functional as F

from checkpoint import load_checkpoint, model_from_checkpoint
from corpus import ArgumentParser, UserError, load_corpus, read_text, split


def scoring_windows(n_context, n_scored, seq_len):
    """Windows over a stream of n_context unscored + n_scored scored characters.

    Returns [(start, first)]: the window's inputs are stream[start:start + seq_len], its targets
    stream[start + 1:start + seq_len + 1], and it scores targets first..seq_len - 1 of the window.
    """
    stride = seq_len // 2 or 1
    end = n_context + n_scored                      # one past the last target position
    windows, scored_up_to = [], n_context - 1       # target positions <= scored_up_to are done
    start = max(0, n_context - 1 - (seq_len - stride))
    while scored_up_to < end - 1:
        start = min(start, end - 1 - seq_len)       # the last window ends exactly at the stream's end
        first = scored_up_to + 1 - (start + 1)      # index in the window of the first new target
        windows.append((start, first))
        scored_up_to = start + seq_len
        start += stride
    return windows


@torch.no_grad()
def full_pass_bpc(model, train_ids, val_ids, batch_size=64, device="cpu", context=None):
    """(BPC, characters scored) over the whole validation split; see the module docstring.
    context: the window length (default the model's seq_len)."""
    seq_len = context or model.cfg.seq_len
    # at least one character before the first scored one: with seq_len 1 that is all there is
    n_context = min(max(1, seq_len // 2), len(train_ids))
    stream = torch.cat([train_ids[len(train_ids) - n_context:], val_ids])
    windows = scoring_windows(n_context, len(val_ids), seq_len)
    total_nats, n_scored = 0.0, 0
    for i in range(0, len(windows), batch_size):
        chunk = windows[i:i + batch_size]
        starts = torch.tensor([s for s, _ in chunk])
        rows = stream[starts[:, None] + torch.arange(seq_len + 1)]              # (b, T + 1)
        x, y = rows[:, :-1].to(device), rows[:, 1:].to(device)
        logits, _ = model(x)
        nats = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")   # (b, T)
        keep = torch.arange(seq_len, device=device)[None, :] >= torch.tensor([f for _, f in chunk], device=device)[:, None]
        total_nats += nats[keep].double().sum().item()
        n_scored += int(keep.sum())
    assert n_scored == len(val_ids), f"scored {n_scored} of {len(val_ids)} characters"
    return total_nats / n_scored / math.log(2), n_scored


def reference_bpcs(text):
    """Uniform, unigram, bz2 and lzma BPC of the validation split of text."""
    train_text, val_text = split(text)
    vocab = sorted(set(text))
    counts = {c: 1 for c in vocab}                                            # add-one smoothing
    for c in train_text:
        counts[c] += 1
    total = sum(counts.values())
    unigram = -sum(math.log2(counts[c] / total) for c in val_text) / len(val_text)

    def conditional(compress):
        both, alone = compress((train_text + val_text).encode()), compress(train_text.encode())
        return (len(both) - len(alone)) * 8 / len(val_text)

    return {
        "uniform (log2 V)": math.log2(len(vocab)),
        "unigram (train counts)": unigram,
        "bz2 -9 | train": conditional(lambda b: bz2.compress(b, 9)),
        "lzma -9e | train": conditional(lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)),
    }


def context_note(cfg, context):
    """Why a context length cannot be scored (UserError), or what to know about its figure."""
    if cfg.pos_encoding == "learned" and context > cfg.seq_len:
        raise UserError(f"--context {context}: learned positions exist only for the {cfg.seq_len} positions "
                        f"the model was trained with")
    if context <= cfg.seq_len:
        return ""
    if cfg.pos_encoding == "sinusoidal":
        return f"sinusoids past position {cfg.seq_len - 1} computed, never trained"
    return f"past the trained seq_len {cfg.seq_len}"


def evaluate_run(path, data=None, batch_size=64, device="cpu", contexts=(None,)):
    """One result dict per context length (None: the model's own seq_len)."""
    ckpt = load_checkpoint(path)
    model, vocab = model_from_checkpoint(ckpt, device)
    data = data or ckpt["train_config"]["data"]
    _, train_ids, val_ids, _ = load_corpus(data, model.cfg.seq_len, vocab, ckpt["data_fingerprint"])
    run_dir = path if os.path.isdir(path) else os.path.dirname(path)
    results = []
    for context in contexts:
        note = "" if context is None else context_note(model.cfg, context)
        if context is not None and context + 1 > len(val_ids):
            raise UserError(f"--context {context} is longer than the validation split ({len(val_ids)} characters)")
        bpc, n_chars = full_pass_bpc(model, train_ids, val_ids, batch_size, device, context)
        results.append(dict(name=os.path.basename(os.path.normpath(run_dir)), checkpoint=ckpt["path"], data=data,
                            params=sum(p.numel() for p in model.parameters()), steps=ckpt["step"],
                            tokens_seen=ckpt["step"] * ckpt["train_config"]["batch_size"] * model.cfg.seq_len,
                            pos_encoding=model.cfg.pos_encoding, seq_len=model.cfg.seq_len,
                            context=context or model.cfg.seq_len, note=note,
                            val_bpc=bpc, val_chars=n_chars, run_dir=run_dir))
    return results


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
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


@torch.no_grad()
def plot_attention(model, vocab, prompt, path, title):
    """Every head of every layer for one prompt: a grid of (query x key) attention weights."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = vocab.encode(prompt[-model.cfg.seq_len:])[None, :]
    _, _, weights = model(idx, need_weights=True)                  # per layer: (1, nh, T, T)
    n_layers, n_heads = len(weights), weights[0].size(1)
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(2.6 * n_heads + 0.6, 2.6 * n_layers + 0.6), squeeze=False)
    labels = [repr(c)[1:-1] for c in prompt[-model.cfg.seq_len:]]
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer][head]
            ax.imshow(weights[layer][0, head].numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=8)
            if len(labels) <= 40:
                ax.set_xticks(range(len(labels)), labels, fontsize=5)
                ax.set_yticks(range(len(labels)), labels, fontsize=5)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle(f"{title}: attention weights (rows: query, columns: key) for {prompt!r}", fontsize=9)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def format_table(results, references, with_context=False):
    if with_context:
        lines = [f"{'run':<28} {'params':>10} {'steps':>7} {'context':>8} {'val BPC':>8}  note", "-" * 72]
        for r in results:
            lines.append(f"{r['name']:<28} {r['params']:>10,} {r['steps']:>7} {r['context']:>8} {r['val_bpc']:>8.4f}"
                         f"  {r['note']}".rstrip())
        for name, bpc in references.items():
            lines.append(f"{name:<28} {'-':>10} {'-':>7} {'-':>8} {bpc:>8.4f}")
        return "\n".join(lines)
    lines = [f"{'run':<28} {'params':>10} {'steps':>7} {'val BPC':>8}", "-" * 56]
    for r in results:
        lines.append(f"{r['name']:<28} {r['params']:>10,} {r['steps']:>7} {r['val_bpc']:>8.4f}")
    for name, bpc in references.items():
        lines.append(f"{name:<28} {'-':>10} {'-':>7} {bpc:>8.4f}")
    return "\n".join(lines)


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("runs", nargs="+", help="run directories (their latest checkpoint) or checkpoint files")
    parser.add_argument("--data", help="the corpus, if it is no longer at the path saved in the checkpoint")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per forward pass (default 64)")
    parser.add_argument("--device", choices=["cpu", "cuda", "mps"], default="cpu", help="default cpu")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG: every run's BPC curves and a bar chart of final BPC")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--attention", metavar="PROMPT",
                        help="also plot every head of every layer's attention weights for this prompt")
    parser.add_argument("--attention-dir", metavar="DIR",
                        help="write the attention plots as DIR/attention_<run>.png (default: <run dir>/attention.png)")
    parser.add_argument("--no-references", action="store_true", help="skip the uniform/unigram/bz2/lzma rows")
    parser.add_argument("--context", type=int, nargs="+", metavar="N",
                        help="score with windows of N characters instead of the trained seq_len (stride N/2); "
                             "several values give one row each (length extrapolation)")
    args = parser.parse_args(argv)
    try:
        if args.batch_size <= 0:
            raise UserError(f"--batch-size must be positive, got {args.batch_size}")
        for n in args.context or []:
            if n <= 0:
                raise UserError(f"--context must be positive, got {n}")
        if args.device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA GPU is available here")
        results = [r for run in args.runs
                   for r in evaluate_run(run, args.data, args.batch_size, args.device, args.context or (None,))]
        references = {} if args.no_references else reference_bpcs(read_text(results[0]["data"])[0])
        if args.plot:
            from train import read_metrics
            curves = {r["name"]: read_metrics(os.path.join(r["run_dir"], "metrics.csv")) for r in results
                      if os.path.exists(os.path.join(r["run_dir"], "metrics.csv"))}
            plot_curves(curves, args.plot, {r["name"]: (r["val_bpc"], 0.0) for r in results})
        for r in results if args.attention else []:
            model, vocab = model_from_checkpoint(load_checkpoint(r["checkpoint"]))
            if args.attention_dir:
                os.makedirs(args.attention_dir, exist_ok=True)
            r["attention_plot"] = (os.path.join(args.attention_dir, f"attention_{r['name']}.png") if args.attention_dir
                                   else os.path.join(r["run_dir"], "attention.png"))
            plot_attention(model, vocab, args.attention, r["attention_plot"], r["name"])
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if args.json:
        print(json.dumps({"runs": results, "references": references}, indent=2))
    else:
        print(format_table(results, references, with_context=bool(args.context)))
        window = "windows of --context N, stride N/2" if args.context else "windows of seq_len, stride seq_len/2"
        print(f"\nfull pass over {results[0]['val_chars']:,} validation characters, {window}; "
              f"references on the same split")
        if args.plot:
            print(f"plot written to {args.plot}")
        for r in results if args.attention else []:
            print(f"attention of {r['name']} written to {r['attention_plot']}")


if __name__ == "__main__":
    main()
