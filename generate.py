"""Sample text from a trained run.

    python generate.py checkpoints/quickstart --prompt "tokenization is"
    python generate.py checkpoints/baseline --prompt "ROMEO:" --temperature 0.8 --top-k 40 --num-samples 3
    python generate.py checkpoints/baseline --max-new-tokens 20000 --compile   # long: compile the step
    python generate.py checkpoints/baseline --prompt - < opening.txt           # the prompt from stdin
    python generate.py checkpoints/baseline --interactive                      # prompt after prompt

RUN is a run directory (its best.pt, or --checkpoint), a checkpoint file or a folder written by
export.py; --ckpt RUN says the same. One sample streams to stdout character by character; several
are sampled together as a batch and printed one after another. --interactive reads a prompt a
line and streams its continuation, until Ctrl-D. Generation uses the key/value cache; past
seq_len the context window slides (see sampling.Window). From Python: tinychar/api.py.
"""
import argparse
import itertools
import sys

from tinychar.checkpoint import checkpoint_choice, describe_choice, load_checkpoint, model_from_checkpoint
from tinychar import cli
from tinychar import runtime
from tinychar.cli import ArgumentParser, UserError
from tinychar.sampling import check_prompt, check_sampling, compile_decoder, sample_texts, stream_text


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", metavar="RUN",
                        help="run directory, checkpoint file or export.py folder to sample from")
    parser.add_argument("--ckpt", metavar="RUN", help="the same as RUN (its older spelling)")
    parser.add_argument("--checkpoint", default="best", type=checkpoint_choice,
                        help="which checkpoint of a run directory: best (best.pt; the last for runs trained before "
                             "it existed), last, or a step number (default best)")
    parser.add_argument("--prompt", help="text to continue, or - to read it from stdin (all of it); every character "
                                         "(a byte model: every byte of its UTF-8) must be in the vocabulary "
                                         "(default: a newline)")
    parser.add_argument("--interactive", action="store_true",
                        help="read prompts from the terminal, one a line, and stream each one's continuation "
                             "(an empty line continues a newline); Ctrl-C stops a continuation, Ctrl-D ends. "
                             "The n-th prompt samples with seed --seed + n - 1: answers differ, a session repeats")
    parser.add_argument("--max-new-tokens", type=int, default=500, help="characters (bytes for a byte model) to generate per sample (default 500)")
    parser.add_argument("--temperature", type=float, default=0.8, help="divide logits by this; 0 = greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely characters (default: all)")
    parser.add_argument("--top-p", type=float, default=None, help="sample from the smallest set with this much probability (default: all)")
    parser.add_argument("--num-samples", type=int, default=1, help="independent samples, generated as one batch (default 1)")
    parser.add_argument("--seed", type=int, default=1337, help="random seed of the sampler (default 1337)")
    parser.add_argument("--device", choices=runtime.DEVICES, default="auto",
                        help="auto: cuda if there is a GPU, else mps, else cpu (default auto)")
    parser.add_argument("--no-cache", action="store_true", help="recompute the whole context every step (slow; for checking)")
    parser.add_argument("--compile", action="store_true",
                        help="compile the one-character decoding step (torch.compile, max-autotune, frozen weights): "
                             "~2x the characters/s on a CPU after 4-30 s of compiling; for long or many samples")
    return parser.parse_args(argv)


def check_args(args):
    """A mistake in the flags: one line, before any work. Returns the run to sample from."""
    run = cli.given_run(args.run, args.ckpt, "generate.py")
    check_sampling(args.max_new_tokens, args.temperature, args.top_k, args.top_p)
    if args.num_samples <= 0:
        raise UserError(f"--num-samples must be positive, got {args.num_samples}")
    if args.interactive and args.num_samples > 1:
        raise UserError("--interactive streams one continuation a prompt: drop --num-samples")
    if args.interactive and args.prompt is not None:
        raise UserError("--interactive reads its prompts from the terminal: drop --prompt")
    if args.compile and args.no_cache:
        raise UserError("--compile speeds up the cached decoding step: drop --no-cache")
    return run


def read_prompt(prompt):
    """--prompt's text: as given, all of stdin for "-", a newline when not given."""
    if prompt == "-":
        prompt = sys.stdin.read()
    prompt = "\n" if prompt is None else prompt
    check_prompt(prompt)
    return prompt


def print_stream(prompt, pieces):
    """The prompt, then its continuation's pieces as they come, then a newline."""
    sys.stdout.write(prompt)
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()


def step_decoder(model, batch_size):
    """--compile's decoding step, or None (with one warning) where it cannot be compiled here."""
    decoder, why_not = compile_decoder(model, batch_size)
    if decoder is None:
        print(f"warning: the decoding step cannot be compiled here ({why_not}); generating in eager mode",
              file=sys.stderr)
    return decoder


def converse(model, vocab, args, settings):
    """--interactive: a prompt a line, each streamed as one sample is, until Ctrl-D (Ctrl-C at the
    prompt ends too, as anywhere in a script; during a continuation it stops only that one)."""
    try:
        import readline  # noqa: F401  (imported, it gives input() line editing and a history)
    except ImportError:   # not everywhere (Windows)
        pass
    print("type a prompt and Enter to continue it (an empty line: a newline); Ctrl-C stops a continuation, "
          "Ctrl-D ends", file=sys.stderr)
    for n in itertools.count():
        try:
            line = input("> ")
        except EOFError:
            print()   # the shell's prompt on a line of its own
            return
        prompt = line or "\n"
        try:
            # each prompt its own seed: answers differ, and the same session gives the same answers
            print_stream(prompt, stream_text(model, vocab, vocab.encode(prompt), args.max_new_tokens,
                                             seed=args.seed + n, **settings))
        except UserError as e:   # a character not in the vocabulary: say so, and ask again
            print(f"error: {e}", file=sys.stderr)
        except KeyboardInterrupt:
            print()


def main(argv=None):
    args = parse_args(argv)
    run = check_args(args)
    device = runtime.resolve_device(args.device)   # one that is not here: a one-line error, before any work
    prompt = None if args.interactive else read_prompt(args.prompt)
    ckpt = load_checkpoint(run, args.checkpoint)
    model, vocab = model_from_checkpoint(ckpt, device)
    prompt_ids = None if args.interactive else vocab.encode(prompt)
    print(f"{run}: {describe_choice(ckpt)}", file=sys.stderr)   # after the last check: an error is one line
    settings = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, use_cache=not args.no_cache,
                    decoder=step_decoder(model, args.num_samples) if args.compile else None)
    if args.interactive:
        converse(model, vocab, args, settings)
    elif args.num_samples == 1:
        print_stream(prompt, stream_text(model, vocab, prompt_ids, args.max_new_tokens, seed=args.seed, **settings))
    else:
        texts = sample_texts(model, vocab, prompt_ids, args.num_samples, args.max_new_tokens, seed=args.seed,
                             **settings)
        for i, text in enumerate(texts):
            print(f"--- sample {i + 1} ---")
            print(prompt + text)


if __name__ == "__main__":
    cli.run(main)
