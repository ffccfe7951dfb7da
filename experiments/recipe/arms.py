"""The recipe's arms: name -> train.py flags (on top of train.py's defaults, which are the study's
baseline: 2 layers x 256, 4 heads, sinusoidal positions, batch 32 x 128, AdamW lr 1e-3 cosine to
1e-4, weight decay 0.1, no dropout). Stage A changes one thing at a time against the baseline.
Arms are only ever added, never edited once run: a run directory is named after its arm.
A stack of levers is an arm too, and needs its own step cost (step_cost.py ARM ...)."""

BASELINE = "--n-heads 4 --pos sinusoidal"
ARMS_C2_BEST = BASELINE + " --dropout 0.1"   # stage C2's lowest at 30 minutes
# --preset cpu30 as the arms below ran, before their stack (WSD + Muon at 3e-3) became the preset;
# without the preset's time budget: run.py gives each run its minutes or its steps
CPU30 = ARMS_C2_BEST + " --n-layers 4"

ARMS = {
    "baseline": BASELINE,
    # stage A: one lever at a time, against the baseline
    "rope": BASELINE + " --pos rope",
    "relu2": BASELINE + " --activation relu2",
    "qk_norm": BASELINE + " --qk-norm",
    "zero_init": BASELINE + " --zero-init",
    "untied": BASELINE + " --no-tie-weights",
    "softcap15": BASELINE + " --logit-softcap 15",
    "muon": BASELINE + " --optimizer muon",
    "lr2e-3": BASELINE + " --lr 2e-3",
    "wsd": BASELINE + " --schedule wsd",
    "dropout0.1": BASELINE + " --dropout 0.1",
    "dropout0.2": BASELINE + " --dropout 0.2",
    "dropout0.1_resid": BASELINE + " --dropout 0.1 --no-dropout-attention",   # residual dropout only: ~half the masks
    "dropout0.2_resid": BASELINE + " --dropout 0.2 --no-dropout-attention",
    "wd0.3": BASELINE + " --weight-decay 0.3",
    "d384": BASELINE + " --d-model 384 --n-heads 6",
    "layers4": BASELINE + " --n-layers 4",
    "seq256": BASELINE + " --seq-len 256",
    "batch64": BASELINE + " --batch-size 64",
    "batch16": BASELINE + " --batch-size 16",
    # stage C3 (the 30-minute budget): shape on dropout0.1, the best of C1-C2 at seed 1
    "dropout0.1+layers4": ARMS_C2_BEST + " --n-layers 4",
    "dropout0.1+d384": ARMS_C2_BEST + " --d-model 384 --n-heads 6",
    "dropout0.1+layers4_d384": ARMS_C2_BEST + " --n-layers 4 --d-model 384 --n-heads 6",
    "dropout0.1+seq256": ARMS_C2_BEST + " --seq-len 256",
    "dropout0.1+batch64": ARMS_C2_BEST + " --batch-size 64",
    # the presets, timed for real (run.py --minutes M): the lowest candidate at each budget
    "cpu30": CPU30,   # its rows: the preset before its stack (cpu30_stack, below, is --preset cpu30 now)
    "cpu15": "--preset cpu15",
    "cpu7": "--preset cpu7",
    "cpu5": "--preset cpu5 --schedule cosine",   # its rows: cpu5 before it became WSD
    # the presets' no-cost levers, timed for real (fixed before their runs: experiments/recipe/README.md)
    "cpu7_ema": "--preset cpu7 --ema 0.999",
    "cpu30_late_ema": CPU30 + " --dropout-from 0.5 --ema 0.999",
    "cpu7_wsd": "--preset cpu7 --schedule wsd",
    "cpu5_wsd": "--preset cpu5 --schedule wsd",
    "cpu30_wsd": CPU30 + " --schedule wsd",
    "cpu30_masks": CPU30,   # cpu30 as it stands, with keep_mask's dropout masks (model.py)
    # cheaper steps on cpu30 (cheaper_steps.py times them; experiments/recipe/README.md)
    "cpu30_no_bias": CPU30 + " --no-bias",
    "cpu30_rmsnorm": CPU30 + " --norm rmsnorm",
    "cpu30_gelu_tanh": CPU30 + " --activation gelu_tanh",
    "cpu30_resid_dropout": CPU30 + " --no-dropout-attention",
    "cpu30_foreach": CPU30 + " --adamw-kernel foreach",
    "cpu30_fused": CPU30 + " --adamw-kernel fused",
    "cpu30_cheap": CPU30 + " --no-bias --norm rmsnorm --activation gelu_tanh --adamw-kernel fused",
    "cpu30_compile": CPU30 + " --compile",
    # better steps on cpu30, timed beside them (their cost on this machine sets their stand-in steps)
    "cpu30_muon": CPU30 + " --optimizer muon",
    "cpu30_qk_norm": CPU30 + " --qk-norm",
    "cpu30_lr2e-3": CPU30 + " --lr 2e-3",
    "cpu30_muon_lr3e-3": CPU30 + " --optimizer muon --muon-lr 3e-3",
    "cpu30_ema": CPU30 + " --ema 0.999",
    "cpu30_dropout0": BASELINE + " --n-layers 4 --dropout 0",   # cheaper steps, less to regularise?
    "cpu30_late_dropout": CPU30 + " --dropout-from 0.5",   # its first half's steps cost cpu30_dropout0's
    "cpu30_batch_warmup": CPU30 + " --batch-warmup 0.5",   # its first half's batches grow from 8 to 32 windows
    "cpu30_batch8": CPU30 + " --batch-size 8",     # timed only: the cost of a step of 8 windows,
    "cpu30_batch20": CPU30 + " --batch-size 20",   # and of 20 (the warmup's mean batch, 19.5, rounded up)
    # stage 3: the levers kept at the stand-in, together (experiments/recipe/README.md); kept, it is
    # now --preset cpu30 itself, the flags left as its runs were named
    "cpu30_stack": "--preset cpu30 --schedule wsd --optimizer muon --muon-lr 3e-3",
}

# arms whose step does the baseline's arithmetic (a schedule, a learning rate, a decay, an
# initialisation, a head matrix of the same shape): they get the baseline's steps, not a ratio
# measured at 1.00-1.02x by a noisy clock
SAME_COMPUTE = {"lr2e-3", "wsd", "wd0.3", "zero_init", "untied", "cpu30_lr2e-3", "cpu30_wsd"}
# arms whose step is another arm's with other numbers (a learning rate): timed as that one
TIMED_AS = {"cpu30_muon_lr3e-3": "cpu30_muon"}
# arms whose step changes during the run: [(the fraction of its steps, the arm those steps are timed as), ...]
COST_MIX = {"cpu30_late_dropout": [(0.5, "cpu30_dropout0"), (0.5, "cpu30")],
            "cpu30_batch_warmup": [(0.5, "cpu30_batch20"), (0.5, "cpu30")]}


def timed_flags(arm, minutes):
    """train.py's flags for an arm timed for real. A cpu<M> preset carries its own time budget
    (train.py PRESETS), so its runs are README's command itself; any other arm gets --time-budget."""
    flags = ARMS[arm].split()
    return flags if flags == ["--preset", f"cpu{minutes:g}"] else flags + ["--time-budget", f"{minutes:g}"]
