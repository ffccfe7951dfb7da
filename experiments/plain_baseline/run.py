"""Train plain_gpt.py's nanoGPT-style model for 5000 steps on Tiny Shakespeare, to compare quality
for the time with tinychar's baseline on the same split and protocol. Resumable.

    python experiments/plain_baseline/run.py > experiments/plain_baseline/log.txt        # fp32, seed 1
    python experiments/plain_baseline/run.py --precision bf16 --seed 2 --out experiments/plain_baseline/bf16_s2

Same shape and optimisation as tinychar's baseline (AdamW betas 0.9/0.99, weight decay 0.1, peak
lr 1e-3, 100 warmup steps, cosine to 1e-4, gradient clipping 1.0, batch 32 x 128, no dropout),
nanoGPT's initialisation (normal 0.02, residual projections 0.02 / sqrt(2 * layers)) and its
weight decay on every matrix including the embedding. --precision bf16 runs its step under the
same bf16 autocast as tinychar's (the fused attention kernel stays: nanoGPT's model has no other).
Every 1000 steps the model is scored by eval.py's full pass (every validation character once; in
fp32, that time not counted as training), metrics.csv is rewritten and a checkpoint saved
(checkpoint.pt in --out, atomically): rerunning the same command continues from it, exactly.
"""
import csv
import math
import os
import sys
import time
from contextlib import nullcontext

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from tinychar.checkpoint import save_checkpoint  # noqa: E402
from tinychar.cli import ArgumentParser  # noqa: E402
from tinychar.corpus import get_batch, load_corpus  # noqa: E402
from tinychar.scoring import full_pass_bpc  # noqa: E402
from tinychar.files import AtomicFile  # noqa: E402
from model import ModelConfig, count_params  # noqa: E402
from tinychar.plain_gpt import PlainGPT, plain_optimizer  # noqa: E402
from tinychar.settings import TrainConfig  # noqa: E402
from tinychar.plan import RunPlan  # noqa: E402
from tinychar.step import lr_at, train_step  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def nanogpt_init(model, n_layers):
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            torch.nn.init.zeros_(p)
        elif p.dim() >= 2:
            std = 0.02 / math.sqrt(2 * n_layers) if name.endswith("c_proj.weight") else 0.02
            torch.nn.init.normal_(p, mean=0.0, std=std)


def write_rows(path, rows):
    with AtomicFile(path) as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/tinyshakespeare.txt", help="the corpus (default Tiny Shakespeare)")
    parser.add_argument("--steps", type=int, default=5000, help="optimizer steps (default 5000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of initialisation and batches (default 1)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="the step's precision (default fp32)")
    parser.add_argument("--eval-every", type=int, default=1000, help="full-pass scoring and checkpoint every N steps")
    parser.add_argument("--out", default=HERE, help="where metrics.csv and checkpoint.pt go (default: beside this script)")
    args = parser.parse_args(argv)
    cfg = TrainConfig(data=args.data, steps=args.steps, seed=args.seed)
    plan = RunPlan(steps=args.steps, precision=args.precision)
    model_cfg = ModelConfig(vocab_size=1)
    vocab, train_ids, val_ids, _ = load_corpus(args.data, model_cfg.seq_len)
    model_cfg.vocab_size = len(vocab)
    torch.manual_seed(args.seed)
    model = PlainGPT(model_cfg)
    model.cfg = model_cfg          # full_pass_bpc reads the window length from model.cfg
    nanogpt_init(model, model_cfg.n_layers)
    optimizer = plain_optimizer(model, cfg)
    batch_rng = torch.Generator().manual_seed(args.seed)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext()
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    rows, trained_s, start_step = [], 0.0, 0
    if os.path.exists(ckpt_path):
        ckpt = torch.load(ckpt_path, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"])
        batch_rng.set_state(ckpt["batches"])
        rows, trained_s, start_step = list(ckpt["rows"]), ckpt["trained_s"], ckpt["step"]
        print(f"resumed at step {start_step}", flush=True)
    else:
        print(f"plain nanoGPT-style, {args.precision}: {count_params(model):,} parameters, lr {cfg.lr}, "
              f"{args.steps} steps, seed {args.seed}", flush=True)
    for step in range(start_step, args.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg, plan)
        x, y = get_batch(train_ids, cfg.batch_size, model_cfg.seq_len, batch_rng)
        start = time.perf_counter()
        loss = train_step(model, optimizer, x, y, cfg.grad_clip, autocast)
        trained_s += time.perf_counter() - start
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            model.eval()
            bpc, _ = full_pass_bpc(model, train_ids, val_ids)
            model.train()
            rows.append({"step": step + 1, "train_loss": round(loss.item(), 4), "val_bpc_full_pass": round(bpc, 4),
                         "train_s": round(trained_s, 1)})
            print(f"step {step + 1}: train loss {loss.item():.4f}, val BPC {bpc:.4f} (full pass), "
                  f"{trained_s:.0f} s of training", flush=True)
            write_rows(os.path.join(args.out, "metrics.csv"), rows)
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "rng": torch.get_rng_state(), "batches": batch_rng.get_state(), "rows": rows,
                             "trained_s": trained_s, "step": step + 1}, ckpt_path)


if __name__ == "__main__":
    main()
