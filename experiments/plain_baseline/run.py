"""Train plain_gpt.py's nanoGPT-style model (fp32) for 5000 steps on Tiny Shakespeare, to compare
quality for the time with tinychar's baseline on the same split and protocol.

    python experiments/plain_baseline/run.py > experiments/plain_baseline/log.txt

Same shape and optimisation as tinychar's baseline (AdamW betas 0.9/0.99, weight decay 0.1, peak
lr 1e-3, 100 warmup steps, cosine to 1e-4, gradient clipping 1.0, batch 32 x 128, no dropout),
nanoGPT's initialisation (normal 0.02, residual projections 0.02 / sqrt(2 * layers)) and its
weight decay on every matrix including the embedding. Every 1000 steps the model is scored by
eval.py's full pass (every validation character once); that time is not counted as training.
Writes metrics.csv beside this script.
"""
import csv
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from plain_gpt import PlainGPT, plain_optimizer  # noqa: E402
from corpus import get_batch, load_corpus  # noqa: E402
from eval import full_pass_bpc  # noqa: E402
from model import ModelConfig, count_params  # noqa: E402
from train import TrainConfig, lr_at, train_step  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def nanogpt_init(model, n_layers):
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            torch.nn.init.zeros_(p)
        elif p.dim() >= 2:
            std = 0.02 / math.sqrt(2 * n_layers) if name.endswith("c_proj.weight") else 0.02
            torch.nn.init.normal_(p, mean=0.0, std=std)


def main(data="data/tinyshakespeare.txt", steps=5000, seed=1, eval_every=1000):
    cfg = TrainConfig(data=data, steps=steps, seed=seed)
    model_cfg = ModelConfig(vocab_size=1)
    vocab, train_ids, val_ids, _ = load_corpus(data, model_cfg.seq_len)
    model_cfg.vocab_size = len(vocab)
    torch.manual_seed(seed)
    model = PlainGPT(model_cfg)
    model.cfg = model_cfg          # full_pass_bpc reads the window length from model.cfg
    nanogpt_init(model, model_cfg.n_layers)
    optimizer = plain_optimizer(model, cfg)
    batch_rng = torch.Generator().manual_seed(seed)
    print(f"plain nanoGPT-style, fp32: {count_params(model):,} parameters, lr {cfg.lr}, {steps} steps", flush=True)
    rows, trained_s = [], 0.0
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        x, y = get_batch(train_ids, cfg.batch_size, model_cfg.seq_len, batch_rng)
        start = time.perf_counter()
        loss = train_step(model, optimizer, x, y, cfg.grad_clip)
        trained_s += time.perf_counter() - start
        if (step + 1) % eval_every == 0:
            model.eval()
            bpc, _ = full_pass_bpc(model, train_ids, val_ids)
            model.train()
            rows.append({"step": step + 1, "train_loss": round(loss.item(), 4), "val_bpc_full_pass": round(bpc, 4),
                         "train_s": round(trained_s, 1)})
            print(f"step {step + 1}: train loss {loss.item():.4f}, val BPC {bpc:.4f} (full pass), "
                  f"{trained_s:.0f} s of training", flush=True)
    with open(os.path.join(HERE, "metrics.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
