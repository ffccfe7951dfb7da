"""Measure training, generation and evaluation speed on this machine, in one process.

    python bench.py                      # the baseline shape: 2 layers, 4 heads, d_model 256, seq_len 128, batch 32
    python bench.py --json --repeats 7

Everything is timed after warm-up, as the median (and min-max spread) of --repeats repeats,
with the variants interleaved so that a noisy neighbour slows them all alike:
- training: ms/step, tokens/s, model FLOPs/s, and those FLOPs/s as a fraction of a large fp32
  (and bf16) matmul measured in this run: not MFU, whose denominator is the hardware's peak
  (which no CPU reports): a bf16 step can exceed 100% of the fp32 matmul rate; tinychar's step (tinychar/step.py's train_step) in fp32, in bf16 autocast, and
  compiled, beside a plain nanoGPT-style implementation of the same shape (nn.Linear, exact
  GELU, fused SDPA, learned positions, foreach AdamW), in fp32 and in the same bf16 autocast, whose
  tokens/s give the speed-ups (over plain fp32, and over the plain step in the same precision);
- a breakdown of tinychar's step by operation (torch.profiler, self CPU time);
- generation: characters/s for one 1000-character sample with the KV cache (eager and, with
  --compile, through the compiled decoding step) and without;
- evaluation: eval.py's full-pass characters/s, in fp32 and in bf16 autocast;
- peak memory (RSS) of the process after the training measurements.
Only ratios measured in the same run are worth comparing: these machines are noisy. The output
names its machine: the text's first line, --json's "machine" and "session" (tinychar/record.py).
"""
import argparse
import json
import statistics
import sys
import time
from contextlib import nullcontext

try:
    import resource
except ImportError:   # Windows: no getrusage, so no peak memory figure
    resource = None

import torch

from tinychar import record
from tinychar.cli import ArgumentParser
from model import CharTransformer, ModelConfig, count_params, flops_per_token
from tinychar.plain_gpt import PlainGPT, plain_optimizer
from tinychar.runtime import compile_model, resolve_precision
from tinychar.sampling import compile_decoder, generate
from tinychar.scoring import full_pass_bpc
from tinychar.settings import TrainConfig
from tinychar.step import make_optimizer, train_step


def summary(samples):
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def interleaved(fns, repeats, calls):
    """{name: [seconds per call, one per repeat]}, the variants taking turns each repeat."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls)
    return times


def matmul_flops(dtype, n=2048):
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return lambda: a @ b, 2 * n ** 3


BF16 = torch.autocast("cpu", dtype=torch.bfloat16)
CATEGORIES = (  # (category, substrings of aten op names); first match wins
    ("matmuls", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("attention", ("scaled_dot_product", "attention", "softmax", "masked_fill")),
    ("GELU", ("gelu",)),
    ("LayerNorm", ("layer_norm",)),
)


def step_breakdown(step, n_steps=5):
    """Self CPU time of one training step by category; ops run inside optimizer.step count as
    'optimizer' (found by a record_function range the step is wrapped in)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n_steps):
            step()
    events = prof.events()
    opt_ranges = [(e.time_range.start, e.time_range.end) for e in events if e.name.startswith("Optimizer.step")]
    totals = {"matmuls": 0.0, "attention": 0.0, "GELU": 0.0, "LayerNorm": 0.0, "optimizer": 0.0, "other": 0.0}
    for e in events:
        if e.name.startswith("Optimizer.step") or not e.name.startswith(("aten::", "graph_", "cpp_", "Torch-Compiled")):
            continue
        if any(start <= e.time_range.start <= end for start, end in opt_ranges):
            category = "optimizer"
        else:
            category = next((c for c, keys in CATEGORIES if any(k in e.name for k in keys)), "other")
        totals[category] += e.self_cpu_time_total
    grand = sum(totals.values()) or 1.0
    return {c: t / grand for c, t in totals.items()}


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d-model", type=int, default=256, help="default 256")
    parser.add_argument("--n-layers", type=int, default=2, help="default 2")
    parser.add_argument("--n-heads", type=int, default=4, help="default 4")
    parser.add_argument("--seq-len", type=int, default=128, help="default 128")
    parser.add_argument("--batch-size", type=int, default=32, help="default 32")
    parser.add_argument("--vocab-size", type=int, default=65, help="default 65 (Tiny Shakespeare)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (default 5)")
    parser.add_argument("--steps", type=int, default=5, help="training steps per repeat (default 5)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="also time tinychar's step and generate.py's decoding step under torch.compile (default on)")
    parser.add_argument("--gen-chars", type=int, default=1000, help="characters per generation sample (default 1000)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser.parse_args(argv)


def time_training(cfg, args):
    """{variant: its step's times and rates}, the matmul rates {precision: FLOP/s}, and the default
    step's breakdown by operation."""
    tcfg = TrainConfig(batch_size=args.batch_size)
    x = torch.randint(0, cfg.vocab_size, (args.batch_size, cfg.seq_len))
    y = torch.randint(0, cfg.vocab_size, (args.batch_size, cfg.seq_len))
    tokens_per_step = args.batch_size * cfg.seq_len
    flops_per_step = flops_per_token(cfg) * tokens_per_step

    def variant(model_class, autocast=nullcontext(), compiled=False):
        torch.manual_seed(0)
        model = model_class(cfg)
        optimizer = plain_optimizer(model, tcfg) if model_class is PlainGPT else make_optimizer(model, tcfg)
        runner = compile_model(model) if compiled else model
        return lambda: train_step(runner, optimizer, x, y, tcfg.grad_clip, autocast)

    default_precision = resolve_precision("auto", torch.device("cpu"))   # what train.py picks here
    steps = {
        "plain nanoGPT-style": variant(PlainGPT),
        "plain nanoGPT-style bf16": variant(PlainGPT, BF16),   # so that a speed-up is not only bf16's
        "tinychar fp32": variant(CharTransformer),
        "tinychar bf16": variant(CharTransformer, BF16),
    }
    if args.compile:
        steps[f"tinychar {default_precision} compiled"] = variant(
            CharTransformer, BF16 if default_precision == "bf16" else nullcontext(), compiled=True)
    peaks = {"fp32": matmul_flops(torch.float32), "bf16": matmul_flops(torch.bfloat16)}
    for fn in (*steps.values(), *(f for f, _ in peaks.values())):   # warm-up: allocator, threads, compilation
        for _ in range(3):
            fn()
    timings = interleaved({**steps, **{p: f for p, (f, _) in peaks.items()}}, args.repeats, args.steps)
    peak = {p: work / statistics.median(timings.pop(p)) for p, (_, work) in peaks.items()}
    training = {}
    for name, seconds in timings.items():
        s = summary(seconds)
        flops_s = flops_per_step / s["median"]
        training[name] = dict(ms_per_step=1000 * s["median"], ms_min=1000 * s["min"], ms_max=1000 * s["max"],
                              tokens_per_s=tokens_per_step / s["median"], model_flops_per_s=flops_s,
                              vs_fp32_matmul=flops_s / peak["fp32"],
                              vs_own_matmul=flops_s / peak["bf16" if "bf16" in name else "fp32"])
    reference = training["plain nanoGPT-style"]["tokens_per_s"]
    for name, row in training.items():
        row["speedup_vs_plain"] = row["tokens_per_s"] / reference
        # against the plain step in the same precision (the compiled step: its own precision)
        plain_same = training["plain nanoGPT-style bf16" if "bf16" in name else "plain nanoGPT-style"]
        row["speedup_vs_plain_same_precision"] = row["tokens_per_s"] / plain_same["tokens_per_s"]
    best = f"tinychar {default_precision}"   # the step train.py runs here by default (eager)
    return training, peak, default_precision, best, step_breakdown(steps[best])


def time_generation(model, args):
    """{sampler: characters/s} and the speed-ups between them."""
    prompt = torch.zeros(1, 1, dtype=torch.long)

    def sample(use_cache, n_samples=1, decoder=None):
        rows = prompt.repeat(n_samples, 1)
        return lambda: generate(model, rows, args.gen_chars, temperature=1.0, seed=0, use_cache=use_cache,
                                decoder=decoder)

    samplers = {"cached": sample(True), "recomputed": sample(False),
                "recomputed, last seq_len": lambda: generate_without_cache(model, prompt, args.gen_chars),
                "cached, 8 samples": sample(True, 8)}
    compile_s = None
    if args.compile:
        start = time.perf_counter()
        decoder, why_not = compile_decoder(model)
        compile_s = time.perf_counter() - start
        if decoder is None:
            print(f"warning: the decoding step cannot be compiled here ({why_not})", file=sys.stderr)
        else:
            samplers["cached, compiled decoder"] = sample(True, decoder=decoder)
            samplers["cached, compiled decoder"]()   # warm-up
    gen = interleaved(samplers, max(1, args.repeats // 2), 1)
    generation = {name: args.gen_chars / statistics.median(t) for name, t in gen.items()}
    generation["cached, 8 samples"] *= 8   # characters of all samples together
    generation["speedup"] = generation["cached"] / generation["recomputed"]
    generation["speedup_vs_last_seq_len"] = generation["cached"] / generation["recomputed, last seq_len"]
    if "cached, compiled decoder" in generation:
        generation["decoder_compile_s"] = compile_s
        generation["compiled_speedup"] = generation["cached, compiled decoder"] / generation["recomputed"]
        generation["compiled_speedup_vs_last_seq_len"] = (generation["cached, compiled decoder"]
                                                          / generation["recomputed, last seq_len"])
    return generation


def time_evaluation(model, args):
    """eval.py's full pass, characters/s {precision: rate}."""
    val_ids = torch.randint(0, model.cfg.vocab_size, (20_000,))
    train_ids = torch.randint(0, model.cfg.vocab_size, (model.cfg.seq_len,))
    ev = interleaved({"fp32": lambda: full_pass_bpc(model, train_ids, val_ids),
                      "bf16": lambda: full_pass_bpc(model, train_ids, val_ids, autocast=BF16)},
                     max(1, args.repeats // 2), 1)
    return {precision: len(val_ids) / statistics.median(t) for precision, t in ev.items()}


def main(argv=None):
    args = parse_args(argv)
    here = record.session("cpu", "fp32 and bf16")
    if not args.json:   # the machine first, before the minutes of timing: every output names where it ran
        print(record.machine_line(here), flush=True)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=args.vocab_size, seq_len=args.seq_len, d_model=args.d_model,
                      n_layers=args.n_layers, n_heads=args.n_heads)
    training, peak, default_precision, best, breakdown = time_training(cfg, args)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if resource else None   # Linux: KiB
    torch.manual_seed(0)
    ours = CharTransformer(cfg).eval()
    generation = time_generation(ours, args)
    eval_chars_s = time_evaluation(ours, args)
    results = dict(
        machine=record.machine(here), session=here,
        config=dict(vars(args), params=count_params(ours), flops_per_token=flops_per_token(cfg),
                    threads=torch.get_num_threads(), torch=torch.__version__),
        matmul_gflops={p: f / 1e9 for p, f in peak.items()}, default_precision=default_precision, training=training,
        breakdown_of=best, breakdown=breakdown, generation_chars_per_s=generation, eval_chars_per_s=eval_chars_s,
        peak_rss_mb=peak_rss_mb,
    )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_results(results, cfg, args)


def print_results(results, cfg, args):
    peak = {p: g * 1e9 for p, g in results["matmul_gflops"].items()}
    training, generation, eval_chars_s = results["training"], results["generation_chars_per_s"], results["eval_chars_per_s"]
    print(f"model: {results['config']['params']:,} params, {flops_per_token(cfg) / 1e6:.2f} MFLOP per token (training), "
          f"batch {args.batch_size} x {cfg.seq_len}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"matmul 2048^3 (this run): fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.1f} GFLOP/s; "
          f"train.py's default precision here: {results['default_precision']}\n")
    print(f"{'training step':<26} {'ms/step (min-max)':>22} {'tokens/s':>9} {'GFLOP/s':>8} {'/fp32 mm':>9} "
          f"{'/own mm':>8} {'vs plain':>9} {'same prec.':>10}")
    for name, r in training.items():
        spread = f"{r['ms_per_step']:.1f} ({r['ms_min']:.1f}-{r['ms_max']:.1f})"
        print(f"{name:<26} {spread:>22} {r['tokens_per_s']:>9,.0f} {r['model_flops_per_s'] / 1e9:>8.1f} "
              f"{r['vs_fp32_matmul']:>9.1%} {r['vs_own_matmul']:>8.1%} {r['speedup_vs_plain']:>8.2f}x "
              f"{r['speedup_vs_plain_same_precision']:>9.2f}x")
    print("/fp32 mm = model FLOPs/s over this run's fp32 2048^3 matmul rate; /own mm = over the matmul rate of the "
          "step's own precision (not MFU: neither is the hardware's peak); vs plain = over the plain fp32 step; "
          "same prec. = over the plain step in the same precision")
    print(f"\nbreakdown of {results['breakdown_of']} (self CPU time): " +
          ", ".join(f"{c} {share:.1%}" for c, share in results["breakdown"].items()))
    print(f"generation, {args.gen_chars} characters: {generation['cached']:,.0f} chars/s with the KV cache; "
          f"recomputing the same windows {generation['recomputed']:,.0f} ({generation['speedup']:.1f}x slower); "
          f"recomputing the last seq_len characters as nanoGPT does {generation['recomputed, last seq_len']:,.0f} "
          f"({generation['speedup_vs_last_seq_len']:.1f}x slower); 8 samples as one batch "
          f"{generation['cached, 8 samples']:,.0f} chars/s in all")
    if "compiled_speedup" in generation:
        print(f"generation with the compiled decoding step (generate.py --compile; {generation['decoder_compile_s']:.0f} s "
              f"to compile): {generation['cached, compiled decoder']:,.0f} chars/s, "
              f"{generation['compiled_speedup']:.1f}x recomputing the same windows, "
              f"{generation['compiled_speedup_vs_last_seq_len']:.1f}x nanoGPT's loop")
    print(f"evaluation (full pass, eval.py): {eval_chars_s['fp32']:,.0f} chars/s in fp32, "
          f"{eval_chars_s['bf16']:,.0f} chars/s in bf16 autocast (what eval.py uses for a run trained in bf16)")
    if results["peak_rss_mb"] is not None:
        print(f"peak RSS after the training measurements: {results['peak_rss_mb']:,.0f} MB")


@torch.inference_mode()
def generate_without_cache(model, idx, n):
    """nanoGPT's sampling loop: every step runs the model over the last seq_len characters."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(n):
        logits, _ = model(idx[:, -model.cfg.seq_len:])
        next_token = torch.multinomial(torch.softmax(logits[:, -1], dim=-1), 1, generator=generator)
        idx = torch.cat([idx, next_token], dim=1)
    return idx


if __name__ == "__main__":
    main()
