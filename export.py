"""Export a trained model to share it: weights as safetensors, settings as JSON, and a model card.

    python export.py checkpoints/cpu30 --out exported/cpu30            # the run's best checkpoint
    python generate.py exported/cpu30 --prompt "ROMEO:"                # read back without pickle
    python eval.py exported/cpu30                                      # needs the corpus, as a run does

DIR gets model.safetensors (the weights; a tied head saved once, as the token embedding),
config.json (format, model settings, vocabulary, unit, the corpus's sha256 and split, the step,
and the full-pass validation BPC, and test BPC where the run has a test split) and README.md, a
model card: what the model was trained on and for how long, its BPC with the protocol, and how to
sample from it. No optimizer or random state: an export is for using a model, not resuming it.
"""
import argparse
import json
import os

import torch

from tinychar import cli
from tinychar.checkpoint import EXPORT_CONFIG, EXPORT_FORMAT, EXPORT_WEIGHTS, checkpoint_choice, describe_choice, load_checkpoint
from tinychar.cli import ArgumentParser, UserError
from tinychar.corpus import parse_split
from tinychar.files import AtomicFile
from tinychar.scoring import evaluate_run


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("run", nargs="?", help="run directory or checkpoint file")
    parser.add_argument("--ckpt", metavar="RUN", help="the same as run above (generate.py's old spelling)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the export to: new or empty")
    parser.add_argument("--checkpoint", default="best", type=checkpoint_choice,
                        help="which checkpoint of a run directory: best, last or a step number (default best)")
    parser.add_argument("--data", help="the corpus, if it is no longer at the path saved in the checkpoint (its "
                                       "BPC goes into config.json and the card)")
    args = parser.parse_args(argv)
    args.run = cli.given_run(args.run, args.ckpt, "export.py")
    return args


def weights(ckpt):
    """The state dict as safetensors takes it: contiguous tensors, each stored once (a tied head is
    the token embedding: load_export puts it back)."""
    tied = ckpt["model_config"]["tie_weights"]
    return {k: v.contiguous() for k, v in ckpt["model"].items() if not (tied and k == "head.weight")}


def model_card(config, run):
    m, t = config["model_config"], config["train_config"]
    unit = "characters" if config["unit"] == "chars" else "bytes"
    scores = f"**{config['val_bpc']:.4f}** on its validation split"
    if config.get("test_bpc") is not None:
        scores += f" and **{config['test_bpc']:.4f}** on its test split (the unbiased figure: validation chose it)"
    minutes = config["elapsed_s"] / 60 if config.get("elapsed_s") else None
    return f"""# tinychar model: {os.path.basename(os.path.normpath(run))}

A character-level transformer language model trained with tinychar ({"bytes" if config["unit"] == "bytes" else
"Unicode characters"} as tokens).

- **Trained on**: `{os.path.basename(t["data"])}` (sha256 `{config["data_fingerprint"]}`), split `{t["split"]}`
  (train, validation[, test] parts, in order)
- **Training**: {config["step"]:,} steps of {t["batch_size"]} windows of {m["seq_len"]} {unit}
  ({config["step"] * t["batch_size"] * m["seq_len"]:,} {unit} seen){f", {minutes:.1f} minutes" if minutes else ""},
  {config["plan"]["precision"]} precision; exported from {config["exported_from"]}
- **Model**: {config["params"]:,} parameters; {m["n_layers"]} layers x {m["d_model"]}, {m["n_heads"]} heads,
  context {m["seq_len"]}, positions {m["pos_encoding"]}, vocabulary {len(config["vocab"])} {unit}
- **Bits per {unit[:-1]}**: {scores}. Protocol: eval.py's full pass, every {unit[:-1]} of the split
  scored once by windows of {m["seq_len"]} with stride {m["seq_len"] // 2}, each seeing at least
  {m["seq_len"] // 2} {unit} of context; {config["bpc_precision"]} arithmetic.

Sample from it, or score it again (with the corpus), with tinychar:

```
python generate.py {run} --prompt "..." --temperature 0.8
python eval.py {run}
```

Files: `model.safetensors` (weights), `config.json` (settings, vocabulary, scores), this card.
"""


def main(argv=None):
    args = parse_args(argv)
    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
        raise UserError(f"--out {args.out} is not an empty folder: an export never overwrites")
    ckpt = load_checkpoint(args.run, args.checkpoint)
    if "exported_from" in ckpt:
        raise UserError(f"{args.run} is already an export")
    rows, _ = evaluate_run(ckpt["path"], args.data, part="val")
    test = None
    if len(parse_split(ckpt["train_config"]["split"])) == 3:
        test = evaluate_run(ckpt["path"], args.data, part="test")[0][0]["val_bpc"]
    config = dict(format=EXPORT_FORMAT, step=ckpt["step"], model_config=ckpt["model_config"],
                  train_config=ckpt["train_config"], plan=ckpt["plan"], vocab=ckpt["vocab"], unit=ckpt["train_config"]["unit"],
                  data_fingerprint=ckpt["data_fingerprint"], params=rows[0]["params"], val_bpc=rows[0]["val_bpc"],
                  test_bpc=test, bpc_precision=rows[0]["precision"], elapsed_s=ckpt.get("elapsed_s"),
                  exported_from=f"{args.run}: {describe_choice(ckpt)}",
                  chosen_by_validation=ckpt["chosen_by_validation"], run_record=ckpt["run_record"])
    from safetensors.torch import save
    os.makedirs(args.out, exist_ok=True)
    with AtomicFile(os.path.join(args.out, EXPORT_WEIGHTS), "wb") as f:
        f.write(save(weights(ckpt), metadata={"format": EXPORT_FORMAT}))
    with AtomicFile(os.path.join(args.out, EXPORT_CONFIG)) as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
    with AtomicFile(os.path.join(args.out, "README.md")) as f:
        f.write(model_card(config, args.out))
    print(f"exported {config['exported_from']} to {args.out}: {EXPORT_WEIGHTS} "
          f"({os.path.getsize(os.path.join(args.out, EXPORT_WEIGHTS)):,} bytes), {EXPORT_CONFIG}, README.md; "
          f"validation BPC {config['val_bpc']:.4f}" + (f", test {test:.4f}" if test is not None else ""))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    cli.run(main)
