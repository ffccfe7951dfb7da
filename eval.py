"""Validation bits per character (BPC) of trained runs, with reference points, and plots.

    python eval.py checkpoints/baseline checkpoints/ablation
    python eval.py checkpoints/baseline checkpoints/ablation --plot compare.png --json
    python eval.py runs/baseline runs/ablation --plot cmp.png    # groups of seeds (train.py --seeds)
    python eval.py checkpoints/baseline --attention "ROMEO: " --attention-dir figures
    python eval.py checkpoints/rope --context 64 128 256 512 1024     # length extrapolation

Protocol (every run, every time): the validation split is the last 10% of the corpus the run
was trained on. Every validation character is scored exactly once, by sliding windows of
seq_len characters with stride seq_len / 2: a window scores only its last seq_len / 2
predictions, so each scored character sees at least seq_len / 2 characters of context (the
first ones take theirs from the end of the training split, which is not scored).
BPC = total cross-entropy in bits / number of validation characters (tinychar/scoring.py). With
--context N the windows are N characters long instead (stride N / 2): shorter or longer than the
context the model was trained on, to measure how it extrapolates.

Reference rows on the same split: uniform guessing (log2 V); a unigram model of the training
split (add-one smoothed); and the bz2 and lzma compressors' conditional cost of the
validation text given the training text: (size(train + val) - size(train)) * 8 / chars.
The runs of one call share the table, so they must be scored on the same text (corpus, unit,
split): runs trained on different corpora are evaluated one call each.
"""
import argparse
import bz2
import json
import lzma
import math
import os
import sys

import numpy as np

from tinychar import cli, compare, pictures, runtime
from tinychar.checkpoint import as_trained, checkpoint_choice, describe_choice, load_checkpoint, model_from_checkpoint
from tinychar.cli import ArgumentParser, UserError
from tinychar.corpus import parse_split, symbol_counts
from tinychar.metrics import plot_curves, read_metrics
from tinychar.scoring import run_autocast, score_run, surprisal, surprisal_bpc




REFERENCE_CONTEXT = 4_000_000   # the compressors see at most this much of the training split's end ...
REFERENCE_SCORED = 1_000_000    # ... and score at most this much of the validation split's start


def reference_bpcs(vocab, train_ids, val_ids):
    """Uniform, unigram and the bz2 / lzma conditional costs of the validation (or test) split.
    Unigram: add-one smoothed counts of the training split (bincount: any size). The compressors:
    (size(A + B) - size(A)) * 8 / len(B), with A the last REFERENCE_CONTEXT units of the training
    split and B the first REFERENCE_SCORED of the scored split (both whole for Tiny Shakespeare);
    bz2 compresses 900 kB blocks, so it sees only the last < 900 kB of A in any case."""
    V = len(vocab)
    counts = symbol_counts(train_ids, V) + 1                                     # add-one smoothing
    val_counts = symbol_counts(val_ids, V)
    unigram = -float((val_counts * np.log2(counts / counts.sum())).sum()) / len(val_ids)
    codes = vocab.codes()

    def as_bytes(ids):   # ids -> the corpus's own bytes (UTF-8 text for a character model)
        ids = np.asarray(ids)
        if vocab.unit == "bytes":
            return codes[ids].astype(np.uint8).tobytes()
        return codes[ids].astype(np.uint32).tobytes().decode("utf-32-le").encode("utf-8")

    context = as_bytes(train_ids[max(0, len(train_ids) - REFERENCE_CONTEXT):])
    scored_ids = val_ids[:REFERENCE_SCORED]
    scored = as_bytes(scored_ids)

    def conditional(compress):
        return (len(compress(context + scored)) - len(compress(context))) * 8 / len(scored_ids)

    return {
        "uniform (log2 V)": math.log2(V),
        "unigram (train counts)": unigram,
        "bz2 -9 | train": conditional(lambda b: bz2.compress(b, 9)),
        "lzma -9e | train": conditional(lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)),
    }




def scored_text(row):
    """What a result row was scored on: the corpus, its unit, its split and the part scored."""
    return os.path.abspath(row["data"]), row["unit"], row["split_spec"], row["split"]


def describe(row):
    return f"{row['name']}: {row['split']} part of {row['data']} ({row['unit']}, --split {row['split_spec']})"


def format_table(results, references, with_context=False):
    """The results table: one row per run (and context length), then the reference rows."""
    scored = f"{results[0]['split']} BPC"
    context = f" {'context':>8}" if with_context else ""
    lines = [f"{'run':<28} {'params':>10} {'steps':>7}{context} {scored:>9}  {'unit':<5} note".rstrip(), "-" * 78]
    for r in results:
        context = f" {r['context']:>8}" if with_context else ""
        lines.append(f"{r['name']:<28} {r['params']:>10,} {r['steps']:>7}{context} {r['val_bpc']:>9.4f}  "
                     f"{r['unit'][:-1]:<5} {r['note']}".rstrip())
    for name, bpc in references.items():
        context = f" {'-':>8}" if with_context else ""
        lines.append(f"{name:<28} {'-':>10} {'-':>7}{context} {bpc:>9.4f}  {results[0]['unit'][:-1]}")
    return "\n".join(lines)


def add_group_flags(parser):
    """The flags of groups and of the outputs: --group, --against, --plot, --json, --markdown, --csv."""
    parser.add_argument("--group", nargs="+", action="extend", default=[], metavar="NAME=GLOB",
                        help="the runs GLOB matches form the group NAME (quote the glob); a folder of runs given "
                             "as RUN (train.py --seeds' --out) is a group already, named by the folder")
    parser.add_argument("--against", metavar="NAME",
                        help="the group every other is compared with (default: the first)")
    parser.add_argument("--plot", metavar="PATH",
                        help="write a PNG: the validation curves (a group's mean with its 95%% band where its runs "
                             "share steps) and a bar chart of final BPC (a group's mean with its 95%% interval)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    output.add_argument("--markdown", action="store_true", help="print the groups' table as Markdown")
    output.add_argument("--csv", action="store_true", help="print the groups' table as CSV")


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("runs", nargs="*", help="run directories or checkpoint files")
    parser.add_argument("--ckpt", nargs="+", metavar="RUN",
                        help="the same as the run directories or checkpoint files above (generate.py's old spelling)")
    parser.add_argument("--checkpoint", default="best", type=checkpoint_choice,
                        help="which checkpoint of a run directory: best (best.pt: the lowest full-pass validation BPC "
                             "of its checkpoints; the last for runs trained before best.pt existed), last, or a step "
                             "number (default best)")
    parser.add_argument("--trained-weights", action="store_true",
                        help="score the weights as trained instead of their moving average (runs trained with --ema "
                             "save both; the average is the run's model)")
    parser.add_argument("--data", help="the corpus, if it is no longer at the path saved in the checkpoint")
    parser.add_argument("--split", choices=["val", "test"], default="val",
                        help="score the validation split or the test split (runs trained with a 3-part --split) (default val)")
    parser.add_argument("--parts", metavar="SPEC",
                        help="score another division of the corpus than the run's --split, given as train.py's "
                             "--split; its training part must be the run's, so nothing scored was trained on: e.g. "
                             "0.9,0.05,0.05 cuts a 0.9,0.1 run's held-out tenth in a validation and a test half "
                             "(docs/evaluation.md)")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per forward pass (default 64)")
    parser.add_argument("--device", choices=runtime.DEVICES, default="auto",
                        help="where to score (default auto: cuda, then mps, then cpu)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="bf16 autocast or fp32; auto = the precision the run trained in (default auto)")
    add_group_flags(parser)
    parser.add_argument("--attention", metavar="PROMPT",
                        help="also plot every head of every layer's attention weights for this prompt")
    parser.add_argument("--attention-dir", metavar="DIR",
                        help="write the attention plots as DIR/attention_<run>.png (default: <run dir>/attention.png)")
    parser.add_argument("--surprisal", metavar="TEXT_OR_FILE",
                        help="also draw this text (or the text of this file) with each character coloured by the bits "
                             "the model spent on it, titled with its BPC")
    parser.add_argument("--surprisal-out", metavar="PATH",
                        help="where to write the surprisal picture (default: <run dir>/surprisal.png; with several "
                             "runs, <run dir>/surprisal.png each)")
    parser.add_argument("--no-references", action="store_true", help="skip the uniform/unigram/bz2/lzma rows")
    parser.add_argument("--dynamic", type=float, metavar="LR",
                        help="also score each run by dynamic evaluation (a row of its own): the split read once, in "
                             "order, each window scored and then learnt from by one SGD step of learning rate LR "
                             "(docs/evaluation.md)")
    parser.add_argument("--dynamic-decay", type=float, default=0.0, metavar="D",
                        help="with --dynamic: after each step every weight moves back toward its trained value by the "
                             "fraction D (default 0)")
    parser.add_argument("--context", type=int, nargs="+", metavar="N",
                        help="score with windows of N characters instead of the trained seq_len (stride N/2); "
                             "several values give one row each (length extrapolation)")
    args = parser.parse_args(argv)
    if args.runs or args.ckpt or not args.group:
        args.runs = cli.given_run(args.runs, args.ckpt, "eval.py", many=True)
    return check_args(args)


def check_args(args):
    """A mistake in the flags is a one-line error before any work; --surprisal's file is read; the
    device is resolved ("auto": the first of cuda, mps and cpu that is here)."""
    if args.batch_size <= 0:
        raise UserError(f"--batch-size must be positive, got {args.batch_size}")
    for n in args.context or []:
        if n <= 0:
            raise UserError(f"--context must be positive, got {n}")
    if args.dynamic is not None and args.dynamic < 0:
        raise UserError(f"--dynamic must be a learning rate of 0 or more, got {args.dynamic:g}")
    if not 0 <= args.dynamic_decay <= 1:
        raise UserError(f"--dynamic-decay must be between 0 and 1, got {args.dynamic_decay:g}")
    if args.dynamic_decay and args.dynamic is None:
        raise UserError("--dynamic-decay needs --dynamic LR")
    if args.parts:
        parse_split(args.parts)   # a malformed one: its one-line error, before any work
    args.device = str(runtime.resolve_device(args.device))   # one that is not here: a one-line error, before any work
    args.surprisal_text = args.surprisal
    if args.surprisal is not None and os.path.isfile(args.surprisal):
        with open(args.surprisal, encoding="utf-8", errors="replace") as f:
            args.surprisal_text = f.read()
    return args


def draw_pictures(row, ckpt, model, vocab, args, n_runs):
    """eval.py --attention and --surprisal for one run; the pictures' paths go into its row."""
    if args.attention:
        if args.attention_dir:
            os.makedirs(args.attention_dir, exist_ok=True)
        row["attention_plot"] = (os.path.join(args.attention_dir, f"attention_{row['name']}.png") if args.attention_dir
                                 else os.path.join(row["run_dir"], "attention.png"))
        pictures.plot_attention(model, vocab, args.attention, row["attention_plot"], row["name"])
    if args.surprisal_text is not None:
        chars, bits = surprisal(model, vocab, args.surprisal_text, run_autocast(ckpt, args.precision, args.device)[0])
        row["surprisal_bpc"] = surprisal_bpc(bits)
        row["surprisal_plot"] = (args.surprisal_out if args.surprisal_out and n_runs == 1
                                 else os.path.join(row["run_dir"], "surprisal.png"))
        pictures.plot_surprisal(chars, bits, row["surprisal_plot"], row["name"])


def draw_curves(results, summaries, grouped, path):
    """--plot: each run's curves, or with groups each group's mean curve and band (compare.plot_groups)."""
    curves = {r["run_dir"]: read_metrics(os.path.join(r["run_dir"], "metrics.csv")) for r in results
              if os.path.exists(os.path.join(r["run_dir"], "metrics.csv"))}
    if grouped:
        members = {}
        for r in results:
            if r["run_dir"] in curves and r["run_dir"] not in members.setdefault(r["group"], {}):
                members[r["group"]][r["run_dir"]] = curves[r["run_dir"]]
        compare.plot_groups(members, summaries, path)
    else:
        named = {r["name"]: curves[r["run_dir"]] for r in results if r["run_dir"] in curves}
        plot_curves(named, path, {r["name"]: (r["val_bpc"], 0.0) for r in results})


def score_groups(groups, args):
    """Every run of every group scored: (result rows, each run's first row, the corpus for the
    reference rows, which checkpoint each run used). A run of a group is named within it."""
    progress = not (args.json or args.markdown or args.csv)   # a bar on a terminal, else a line every 30 s
    results, first_rows, corpus, choices = [], [], None, []
    for name, run in ((name, run) for name, members in groups.items() for run in members):
        ckpt = load_checkpoint(run, args.checkpoint)
        if args.trained_weights:
            ckpt = as_trained(ckpt)
        model, vocab = model_from_checkpoint(ckpt, args.device)
        choices.append(f"{run}: {describe_choice(ckpt)}")
        rows, run_corpus = score_run(ckpt, model, vocab, args.data, args.batch_size, args.device,
                                     args.context or (None,), args.split, args.precision, progress,
                                     None if args.dynamic is None else (args.dynamic, args.dynamic_decay), args.parts)
        for row in rows:
            row["group"], row["seed"] = name, ckpt["train_config"]["seed"]
            row["label"] = ("dynamic" if "dynamic" in row else f"context {row['context']}" if args.context
                            else "full pass")
            if os.path.basename(os.path.normpath(run)) != name:
                row["name"] = f"{name}/{row['name']}"   # baseline/s1
        if results and scored_text(rows[0]) != scored_text(results[0]):
            # one table has one header, one footer and one set of reference rows: those of one text
            raise UserError(f"{rows[0]['name']} and {results[0]['name']} were not scored on the same text "
                            f"({describe(rows[0])}; {describe(results[0])}): evaluate them one at a time")
        if rows[0]["checkpoint"] not in [r["checkpoint"] for r in first_rows]:   # a run named twice: drawn once
            draw_pictures(rows[0], ckpt, model, vocab, args, len(set(args.runs)))
            first_rows.append(rows[0])
        results += rows
        corpus = corpus or run_corpus
    return results, first_rows, corpus, choices


def print_notes(first_rows, args):
    """The lines under the tables: pictures written, checkpoints chosen by validation, surprisal."""
    if args.plot:
        print(f"plot written to {args.plot}")
    for r in first_rows if args.attention else []:
        print(f"attention of {r['name']} written to {r['attention_plot']}")
    chosen = [r for r in first_rows if r["chosen_by_validation"]]
    if len(chosen) > 1 and not any("test_bpc" in r for r in chosen):   # a group's seeds: said once
        print(f"{len(chosen)} runs' best.pt: their validation figures chose them, so they are biased low "
              f"(--checkpoint last is not)")
    for r in chosen if len(chosen) == 1 or any("test_bpc" in r for r in chosen) else []:
        print(f"{r['name']}: {r['checkpoint_choice']}: its validation figure chose it, so it is biased low"
              + (f"; its test BPC, the unbiased figure: {r['test_bpc']:.4f}" if "test_bpc" in r else ""))
    for r in first_rows if args.surprisal_text is not None else []:
        print(f"surprisal of {r['name']}: {r['surprisal_bpc']:.4f} bits per character, drawn in {r['surprisal_plot']}")


def main(argv=None):
    args = parse_args(argv)
    groups = compare.gather(args.runs, args.group)
    against = args.against or next(iter(groups))
    if against not in groups:
        raise UserError(f"--against {against}: no group has that name (the groups: {', '.join(groups)})")
    grouped = any(len(members) > 1 for members in groups.values()) or bool(args.group)
    results, first_rows, corpus, choices = score_groups(groups, args)
    references = {} if args.no_references else reference_bpcs(*corpus)
    print("\n".join(choices), file=sys.stderr)   # after every check: an error stays one line
    summaries = compare.summarize(results)
    comparisons = compare.compare(summaries, against)
    if args.plot:
        draw_curves(results, summaries, grouped, args.plot)
    if args.json:
        print(json.dumps({"runs": results, "references": references} | (json.loads(compare.as_json(
            summaries, comparisons, against)) if grouped else {}), indent=2))
        return
    if args.markdown or args.csv:
        print(compare.as_markdown(summaries, comparisons, against) if args.markdown else compare.as_csv(summaries, comparisons))
        return
    print(format_table(results, references, with_context=bool(args.context)))
    if grouped or len(groups) > 1:
        print("\n" + compare.as_text(summaries, comparisons, against))
    window = "windows of --context N, stride N/2" if args.context else "windows of seq_len, stride seq_len/2"
    unit = "characters" if results[0]["unit"] == "chars" else "bytes"
    print(f"\nfull pass over {results[0]['val_chars']:,} {results[0]['split']} {unit}, {window}"
          + ("" if args.no_references else "; references on the same split")
          + ". BPC: bits per character; for unit 'byte', bits per byte")
    print_notes(first_rows, args)


if __name__ == "__main__":
    cli.run(main)
