"""The run record: where and how a run ran, so that every figure can be traced to its machine and
its code. The same CPU and command give other step counts and other BPC on another machine (bf16
arithmetic, and the steps a time budget affords, differ), so a comparison is drawn only between
runs of one machine.

A session is one process (or one torchrun job) of training: its machine (CPU model, cores, bf16
hardware, GPU), its software (OS, Python, torch and its build), its code (git commit, and whether
the tree had uncommitted changes), its device, precision and processes, the command line and the
start time. A run resumed three times has four sessions: train.py writes them to RUN/run.json and
into every checkpoint; eval.py's --json carries them with each row.
"""
import os
import platform
import shlex
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_model():
    """The CPU's name as Linux reports it ("Intel(R) Xeon(R) Processor"), else platform's."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bf16_hardware():
    """"amx" (Intel AMX tiles), "avx512_bf16", or None: what decides a CPU's bf16 speed and rounding."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return None
    return "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else None


def git_state():
    """(commit, dirty) of the code being run, or (None, None) outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None, None
    if commit.returncode or status.returncode:
        return None, None
    return commit.stdout.strip(), bool(status.stdout.strip())


def session(device, precision, processes=1, argv=None):
    """This process's record (see the module's docstring)."""
    device = torch.device(device)
    commit, dirty = git_state()
    return dict(
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        command=shlex.join([os.path.basename(sys.executable), *(sys.argv if argv is None else argv)]),
        cpu=cpu_model(), cores=os.cpu_count(), bf16_hardware=bf16_hardware(),
        gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        os=platform.platform(), python=platform.python_version(), torch=str(torch.__version__),
        torch_cuda=torch.version.cuda, threads=torch.get_num_threads(),
        device=device.type, precision=precision, processes=processes, commit=commit, dirty=dirty)


def machine(record):
    """The machine a session ran on, in a few words: "Intel(R) Xeon(R) Processor, 2 cores, amx"
    or the GPU's name. Runs compare only where these are equal."""
    if record.get("gpu"):
        return f"{record['gpu']} x {record['processes']}"
    bf16 = f", {record['bf16_hardware']}" if record.get("bf16_hardware") else ""
    return f"{record['cpu']}, {record['cores']} cores{bf16}"


def describe(record):
    """One line: machine, torch, precision, code."""
    commit = (record["commit"] or "no git")[:10] + (" + uncommitted changes" if record.get("dirty") else "")
    return f"{machine(record)}; torch {record['torch']}, {record['precision']}; commit {commit}"


def machine_line(here=None):
    """The first line of a benchmark's output: "# machine: <machine>; torch <version>" of the session
    `here` (this process's, if not given), so that a committed timing names the machine it was
    measured on (experiments/quickstart/run.sh writes the same line at the top of its transcript)."""
    here = here or session("cpu", "as the benchmark says")
    return f"# machine: {machine(here)}; torch {here['torch']}"
