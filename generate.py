"""Sample text from a trained run.

    python generate.py --ckpt checkpoints/quickstart --prompt "tokenization is"
    python generate.py --ckpt checkpoints/baseline --prompt "ROMEO:" --temperature 0.8 --top-k 40 --num-samples 3
    python generate.py --ckpt checkpoints/baseline --max-new-tokens 20000 --compile   # long: compile the step

One sample streams to stdout character by character; several are sampled together as a
batch and printed one after another. Generation uses the key/value cache; past seq_len the
context window slides (see sampling.Window).
"""
import argparse
import codecs
import sys

import torch

from tinychar.checkpoint import checkpoint_choice, describe_choice, load_checkpoint, model_from_checkpoint
from tinychar import cli
from tinychar import runtime
from tinychar.cli import ArgumentParser, UserError
from tinychar.sampling import compile_decoder, generate_tokens


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="run directory or checkpoint file")
    parser.add_argument("--checkpoint", default="best", type=checkpoint_choice,
                        help="which checkpoint of a run directory: best (best.pt; the last for runs trained before "
                             "it existed), last, or a step number (default best)")
    parser.add_argument("--prompt", default="\n", help="text to continue; every character (a byte model: every byte "
                                                        "of its UTF-8) must be in the vocabulary (default: a newline)")
    parser.add_argument("--max-new-tokens", type=int, default=500, help="characters (bytes for a byte model) to generate per sample (default 500)")
    parser.add_argument("--temperature", type=float, default=0.8, help="divide logits by this; 0 = greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely characters (default: all)")
    parser.add_argument("--top-p", type=float, default=None, help="sample from the smallest set with this much probability (default: all)")
    parser.add_argument("--num-samples", type=int, default=1, help="independent samples, generated as one batch (default 1)")
    parser.add_argument("--seed", type=int, default=1337, help="random seed of the sampler (default 1337)")
    parser.add_argument("--device", choices=["cpu", "cuda", "mps"], default="cpu", help="default cpu")
    parser.add_argument("--no-cache", action="store_true", help="recompute the whole context every step (slow; for checking)")
    parser.add_argument("--compile", action="store_true",
                        help="compile the one-character decoding step (torch.compile, max-autotune, frozen weights): "
                             "~2x the characters/s on a CPU after 4-30 s of compiling; for long or many samples")
    return parser.parse_args(argv)


def check_args(args):
    if args.max_new_tokens < 0:
        raise UserError(f"--max-new-tokens must not be negative, got {args.max_new_tokens}")
    if args.temperature < 0:
        raise UserError(f"--temperature must not be negative, got {args.temperature}")
    if args.top_k is not None and args.top_k <= 0:
        raise UserError(f"--top-k must be positive, got {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.num_samples <= 0:
        raise UserError(f"--num-samples must be positive, got {args.num_samples}")
    if not args.prompt:
        raise UserError("--prompt must not be empty")
    if args.compile and args.no_cache:
        raise UserError("--compile speeds up the cached decoding step: drop --no-cache")
    runtime.resolve_device(args.device)   # one that is not here: a one-line error, before any work


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    ckpt = load_checkpoint(args.ckpt, args.checkpoint)
    model, vocab = model_from_checkpoint(ckpt, args.device)
    prompt = vocab.encode(args.prompt)
    print(f"{args.ckpt}: {describe_choice(ckpt)}", file=sys.stderr)   # after the last check: an error is one line
    idx = prompt[None, :].repeat(args.num_samples, 1).to(args.device)
    step_decoder = None
    if args.compile:
        step_decoder, why_not = compile_decoder(model, args.num_samples)
        if step_decoder is None:
            print(f"warning: the decoding step cannot be compiled here ({why_not}); generating in eager mode",
                  file=sys.stderr)
    tokens = generate_tokens(model, idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                                   top_p=args.top_p, seed=args.seed, use_cache=not args.no_cache, decoder=step_decoder)
    # a byte model's sample is decoded as UTF-8 for display: a character cut across two steps is
    # held back until its last byte, and invalid bytes (or a sample cut mid-character) print as U+FFFD
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace") if vocab.unit == "bytes" else None
    if args.num_samples == 1:
        sys.stdout.write(args.prompt)
        for token in tokens:
            piece = vocab.decode([token.item()])
            sys.stdout.write(utf8.decode(piece) if utf8 else piece)
            sys.stdout.flush()
        sys.stdout.write((utf8.decode(b"", final=True) if utf8 else "") + "\n")
        return
    samples = torch.stack(list(tokens), dim=1).tolist() if args.max_new_tokens else [[]] * args.num_samples
    for i, sample in enumerate(samples):
        text = vocab.decode(sample)
        print(f"--- sample {i + 1} ---")
        print(args.prompt + (text.decode("utf-8", errors="replace") if utf8 else text))


if __name__ == "__main__":
    cli.run(main)
