"""Where and how a script runs: the device, the matmul precision and its autocast, torch.compile
with a fallback, torchrun's process group, the random generators that a checkpoint saves, and how
often a training loop reads back from the device. Shared by train.py, eval.py, generate.py and bench.py.
"""
import os
import sys
from contextlib import nullcontext

import torch

from tinychar import record
from tinychar.cli import UserError

SYNC_EVERY_GPU = 16     # see host_sync_interval
DEVICES = ("auto", "cpu", "cuda", "mps")   # every script's --device; auto: cuda, then mps, then cpu (resolve_device)


def autocast(precision, device):
    """bf16 autocast for precision "bf16", else a context that does nothing."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def cpu_has_native_bf16():
    """True where the CPU multiplies bf16 in hardware (x86 AVX512-BF16 or AMX, read from Linux's
    /proc/cpuinfo); elsewhere bf16 matmuls are emulated and slower than fp32."""
    return record.bf16_hardware() is not None


def resolve_precision(precision, device):
    if precision == "auto":
        native = ((device.type == "cuda" and torch.cuda.is_bf16_supported())    # Ampere (sm_80) and newer
                  or (device.type == "cpu" and cpu_has_native_bf16()))
        return "bf16" if native else "fp32"
    return precision


def use_threads(threads):
    """--threads: this many CPU threads for torch's operations (0: torch's default, one per core)."""
    if threads:
        torch.set_num_threads(threads)


def resolve_device(name):
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is available here (try --device cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: Apple's Metal backend is not available here (try --device cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    return torch.device(name)


def compile_model(model, example=None, autocast=nullcontext()):
    """torch.compile(model), tried once on the example batch (x, y) so that a machine without a
    working compiler falls back to eager mode with one warning instead of failing mid-run.
    The example must have the real batch's shape, device and precision (autocast): torch.compile
    specialises on them, so a trial on anything else would leave the first real step to compile
    again, outside this fallback."""
    compiled = torch.compile(model)
    if example is None:
        return compiled
    try:
        device = example[0].device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):   # keep the real run's RNG
            with autocast:
                loss = compiled(*example)[1]
            loss.backward()
    except Exception as e:  # no C++ compiler, unsupported backend, ...
        print(f"warning: torch.compile is not available here ({type(e).__name__}); training in eager mode",
              file=sys.stderr)
        compiled = model
    model.zero_grad(set_to_none=True)
    return compiled


def host_sync_interval(device):
    """Steps between reads of the loss back to the host (where the NaN guard and Ctrl-C are
    checked). On a CPU reading a loss costs nothing, so every step. On a GPU each read waits for
    the whole queue of kernels, so every SYNC_EVERY_GPU steps, and always at validations and
    checkpoints: a NaN is then caught up to SYNC_EVERY_GPU - 1 steps late (those steps are wasted
    but never saved) and Ctrl-C answers up to SYNC_EVERY_GPU - 1 steps late."""
    return 1 if device.type == "cpu" else SYNC_EVERY_GPU


def to_device(t, device):
    """A CPU batch onto the training device; on CUDA through pinned memory without blocking the host."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def rng_state(device):
    """This process's random state that dropout draws from: the CPU generator, and on a GPU the
    generator of the training device."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state, device):
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def gather_rng_states(device, world_size):
    """[rng_state of rank 0, rank 1, ...], on every rank (a collective: all ranks must call it)."""
    if world_size == 1:
        return [rng_state(device)]
    states = [None] * world_size
    torch.distributed.all_gather_object(states, rng_state(device))
    return states


def setup_distributed(device):
    """(rank, world_size) under torchrun, after joining the process group; (0, 1) otherwise.
    NCCL between GPUs, gloo between CPU processes."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1
    torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return torch.distributed.get_rank(), world_size
