"""What a training run shows and writes as it goes: its progress (a bar, or plain lines where
there is no terminal), a line at each validation, metrics.csv and loss_curve.png (RunLog), the run
record's sessions (run.json), its first lines (announce) and its last (say_done).
"""
import json
import math
import os
import sys
import time

from tqdm import tqdm

from tinychar import cli, record
from tinychar.checkpoint import describe_choice
from tinychar.files import AtomicFile
from tinychar.metrics import plot_curves, write_metrics
from tinychar.progress import Lines, clock_text, say
from tinychar.scoring import score_checkpoint, validation_loss
from model import count_params


class RunLog:
    """What a run shows and logs: its progress, metrics.csv and its curve, and tokens/s over the
    training since the last validation or checkpoint (validations and saves not counted).

    progress: "bar" (tqdm's, on stderr: a terminal), "lines" (no terminal: a plain line at least
    every 30 s, the first at the first read of the loss; progress.Lines), or None (nothing: the
    ranks after 0, tests)."""

    def __init__(self, cfg, model_cfg, plan, rows, step, progress):
        self.cfg, self.plan, self.rows, self.curve_failed = cfg, plan, rows, False
        self.path = os.path.join(cfg.out, "metrics.csv")
        self.seq_len = model_cfg.seq_len
        self.bar = tqdm(total=plan.steps, initial=step, disable=progress != "bar", dynamic_ncols=True, file=sys.stderr)
        self.lines, self.first_step = Lines() if progress == "lines" else None, step
        self.restart_clock()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()

    def restart_clock(self):
        self.interval_start, self.interval_tokens = time.perf_counter(), 0
        return self.interval_start

    def step_done(self, windows):
        """A step of `windows` windows (its global batch: --batch-warmup's may be smaller) is done."""
        self.interval_tokens += windows * self.seq_len
        self.bar.total = self.plan.steps   # a timed run's plan may change at the end of its warmup
        self.bar.update(1)

    def progress(self, step, loss, budget):
        """At a read of the loss (every step on a CPU), the plain line, if one is due: "step
        120/4155  loss 2.3102  41,200 tok/s  elapsed 0:31  left ~8:40". loss: the last step's;
        elapsed: the run's (budget.elapsed); left: the budget's remaining time where there is one,
        else the steps left at this session's pace (validations and checkpoints included)."""
        if not (self.lines and self.lines.due()):
            return
        trained_s = time.perf_counter() - self.interval_start
        speed = f"  {self.interval_tokens / trained_s:,.0f} tok/s" if trained_s > 0 else ""
        if budget.minutes:
            left = f"{clock_text(budget.minutes * 60 - budget.elapsed())} of the budget"
        else:
            left = "~" + clock_text(self.lines.elapsed() / (step - self.first_step) * (self.plan.steps - step))
        # on stdout, where the validation lines go: a run's log is its stdout, in one stream, in
        # order, whatever the redirection; stderr keeps only warnings and errors (a user's
        # mistake: one line)
        say(f"step {step}/{self.plan.steps}  loss {loss:.4f}{speed}  elapsed {clock_text(budget.elapsed())}  "
            f"left {left}", sys.stdout)

    def say(self, line):
        """A line of the run's log, printed above the progress bar."""
        tqdm.write(line)

    def tokens_per_s(self):
        return self.interval_tokens / (time.perf_counter() - self.interval_start)

    def validation(self, step, train_loss, val_loss, lr, tokens_per_s, elapsed_s, checkpoint_bpc=None):
        self.rows.append(dict(step=step, train_loss=train_loss, train_bpc=train_loss / math.log(2), val_loss=val_loss,
                              val_bpc=val_loss / math.log(2), lr=lr, tokens_per_s=tokens_per_s, elapsed_s=elapsed_s,
                              checkpoint_bpc=checkpoint_bpc))
        write_metrics(self.path, self.rows)
        try:
            plot_curves({os.path.basename(os.path.normpath(self.cfg.out)): self.rows},
                        os.path.join(self.cfg.out, "loss_curve.png"))
        except Exception as error:   # the curve is a convenience: metrics.csv holds the numbers
            if not self.curve_failed:
                tqdm.write(f"warning: loss_curve.png not drawn ({cli.storage_error(error) or error}); training "
                           f"goes on (said once)", file=sys.stderr)
            self.curve_failed = True
        self.bar.set_postfix(loss=f"{train_loss:.3f}", val_bpc=f"{val_loss / math.log(2):.3f}", tok_s=f"{tokens_per_s:,.0f}")
        scored = f", checkpoint {checkpoint_bpc:.4f} BPC (full pass)" if checkpoint_bpc is not None else ""
        tqdm.write(f"step {step}: train loss {train_loss:.4f}, val loss {val_loss:.4f} (val BPC "
                   f"{val_loss / math.log(2):.4f}, {self.cfg.eval_batches} batches){scored}, lr {lr:.2e}, "
                   f"{tokens_per_s:,.0f} tokens/s")
        sys.stdout.flush()  # a log redirected to a file shows progress as it happens


def validate(model, val_batches, train_ids, val_ids, autocast, log, budget, step, train_loss, lr, score):
    """Rank 0's validation at step: the quick estimate on the fixed batches and, with score, the
    checkpoint's full pass, logged with the training loss since the last validation. The budget
    learns what the validation cost (the full pass's seconds count to the checkpoint's). Returns
    (the full pass's BPC or None, its seconds)."""
    now, tokens_per_s = time.perf_counter(), log.tokens_per_s()
    val_loss = validation_loss(model, val_batches, autocast)
    bpc, score_s = score_checkpoint(model, train_ids, val_ids, autocast) if score else (None, 0.0)
    log.validation(step, train_loss, val_loss, lr, tokens_per_s, budget.elapsed(), bpc)
    budget.measured("validation_s", log.restart_clock() - now - score_s)
    return bpc, score_s


def record_session(cfg, plan, resumed, device, world_size, main_process):
    """The run's sessions (record.py), this one appended: written to RUN/run.json (rank 0) and
    saved in every checkpoint, so a run resumed elsewhere says where each part of it ran."""
    sessions = (list(resumed["run_record"]) if resumed else []) + [record.session(device, plan.precision, world_size)]
    if main_process:
        with AtomicFile(os.path.join(cfg.out, "run.json")) as f:
            json.dump({"sessions": sessions}, f, indent=2)
            f.write("\n")
        print(f"machine: {record.describe(sessions[-1])}")
    return sessions


def announce(model, cfg, plan, vocab, train_ids, val_ids, source, device, world_size, compiled):
    """The new run's first line: its size, data, device and precision (and where it started from)."""
    print(f"{count_params(model):,} parameters, vocabulary {len(vocab)}, {len(train_ids):,} training / "
          f"{len(val_ids):,} validation {cfg.unit.replace('chars', 'characters')}, device {device}, {plan.precision}"
          + (f", {world_size} processes" if world_size > 1 else "") + (", compiled" if compiled else ""))
    if source:
        print(f"started from {cfg.init_from}: {describe_choice(source)}; {len(source['vocab'])} symbols it knew, "
              f"{len(vocab) - len(source['vocab'])} new")


def say_done(cfg, plan, step, last_good, best, stopped_early, budget_spent_s):
    """The run's last lines: why it stopped, where its checkpoints are."""
    if stopped_early:
        print(f"early stop: {cfg.early_stop} checkpoints in a row did not improve on step {best['step']:,}'s "
              f"{best['bpc']:.4f} BPC (best.pt)")
    if budget_spent_s:
        print(f"time budget spent: stopped at step {step:,} of the {plan.steps:,} planned ({budget_spent_s:.1f} s of "
              f"{cfg.time_budget * 60:g})")
    kept = f", best.pt = step {best['step']:,} ({best['bpc']:.4f} BPC)" if best["step"] is not None else ""
    print(f"done: {step} steps, checkpoint {last_good}{kept}; full-pass BPC: python eval.py {cfg.out}")
