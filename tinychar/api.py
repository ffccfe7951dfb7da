"""tinychar from Python (a notebook): a run loaded once, then sampled, scored and read.

    from tinychar.api import load
    run = load("checkpoints/quickstart")                 # best.pt; load(path, "last"), load(path, 5000)
    print(run.generate("ROMEO:", max_new_tokens=200))    # generate.py RUN --prompt "ROMEO:" ... prints the same
    run.bpc("To be, or not to be")                       # eval.py --surprisal's figure for that text
    run.score()                                          # eval.py's full-pass validation BPC
    run.metrics()[-1]                                    # the last row of the run's metrics.csv

Nothing here computes on its own: each method calls what the scripts call (checkpoint.py's loader,
sampling.py's stream_text, scoring.py's surprisal and score_run, metrics.py's reader), so a figure
or a sample is the scripts' to the bit, and a mistake raises cli.UserError with the line the
scripts print. docs/python.md shows each in use.
"""
import os

from tinychar import runtime
from tinychar.checkpoint import checkpoint_choice, describe_choice, load_checkpoint, model_from_checkpoint
from tinychar.cli import UserError
from tinychar.metrics import read_metrics
from tinychar.sampling import check_prompt, check_sampling, stream_text
from tinychar.scoring import run_autocast, score_run, surprisal, surprisal_bpc


def load(run, checkpoint="best", device="auto"):
    """A Run: run (a run directory, a checkpoint file or an export.py folder) loaded onto device
    (auto: cuda, then mps, then cpu). checkpoint: which of a run directory's, as the scripts'
    --checkpoint: "best", "last" or a step number."""
    if device not in runtime.DEVICES:
        raise UserError(f"device must be one of {', '.join(runtime.DEVICES)}, got {device!r}")
    device = runtime.resolve_device(device)
    ckpt = load_checkpoint(os.fspath(run), checkpoint_choice(str(checkpoint)))
    model, vocab = model_from_checkpoint(ckpt, device)
    return Run(model, vocab, ckpt, device)


class Run:
    """One checkpoint of a run, loaded: model (a CharTransformer in eval mode, on device), vocab,
    checkpoint (load_checkpoint's dict: settings, plan, step, run record, ...) and run_dir (the
    folder the checkpoint is in, where its metrics.csv is)."""

    def __init__(self, model, vocab, checkpoint, device):
        self.model, self.vocab, self.checkpoint, self.device = model, vocab, checkpoint, device
        self.run_dir = os.path.dirname(checkpoint["path"])

    def __repr__(self):
        params = sum(p.numel() for p in self.model.parameters())
        return f"<tinychar run {self.run_dir}: {describe_choice(self.checkpoint)}; {params:,} parameters on {self.device}>"

    def stream(self, prompt="\n", max_new_tokens=500, temperature=0.8, top_k=None, top_p=None, seed=1337):
        """The continuation of prompt (not the prompt itself), a piece of text at a time as it is
        sampled: an iterator. The settings are generate.py's flags of the same names; a byte model's
        text is decoded as UTF-8, an invalid byte as U+FFFD."""
        check_prompt(prompt)
        check_sampling(max_new_tokens, temperature, top_k, top_p)
        prompt_ids = self.vocab.encode(prompt)   # checked here, not at the iterator's first step
        return stream_text(self.model, self.vocab, prompt_ids, max_new_tokens, temperature=temperature, top_k=top_k,
                           top_p=top_p, seed=seed)

    def generate(self, prompt="\n", max_new_tokens=500, temperature=0.8, top_k=None, top_p=None, seed=1337):
        """The continuation of prompt as one str: what generate.py prints after the prompt, for the
        same settings and seed (one sample)."""
        return "".join(self.stream(prompt, max_new_tokens, temperature, top_k, top_p, seed))

    def bpc(self, text):
        """Bits per character of text: the mean over its characters after the first (the first has
        nothing to be predicted from) of the bits the model spends on each, as eval.py --surprisal
        reports it; a byte model's character costs the bits of all its UTF-8 bytes."""
        _, bits = surprisal(self.model, self.vocab, text, run_autocast(self.checkpoint, "auto", self.device)[0])
        return surprisal_bpc(bits)

    def score(self, split="val", data=None):
        """The full-pass BPC of the run's validation (or test) split, as eval.py prints it. data: the
        corpus, if it is no longer where the run read it (eval.py --data)."""
        if split not in ("val", "test"):
            raise UserError(f"split must be val or test, got {split!r}")
        rows, _ = score_run(self.checkpoint, self.model, self.vocab, data, device=self.device, part=split)
        return rows[0]["val_bpc"]

    def metrics(self):
        """The rows of the run's metrics.csv, one a validation, as dicts (metrics.py's read_metrics)."""
        path = os.path.join(self.run_dir, "metrics.csv")
        if not os.path.exists(path):
            raise UserError(f"no metrics.csv in {self.run_dir}: a checkpoint or export copied without its run")
        return read_metrics(path)
