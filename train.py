"""Train a character-level transformer on a text file.

    python train.py --out checkpoints/quickstart                      # bundled corpus, defaults
    python train.py --data data/tinyshakespeare.txt --out checkpoints/baseline --preset baseline
    python train.py --out checkpoints/baseline --resume               # continue where it stopped
    python train.py --seeds 1 2 3 --out runs/baseline                 # a group: runs/baseline/s1, s2, s3
    torchrun --standalone --nproc_per_node=2 train.py --out checkpoints/ddp   # DistributedDataParallel
    python train.py --data data/tinyshakespeare.txt --preset cpu30 --out checkpoints/cpu30   # 30 minutes

Random windows of the training split; AdamW with linear warmup then cosine decay; gradient
clipping; validation every --eval-every steps on a fixed set of validation batches (a quick
estimate: eval.py gives the full-pass BPC); a checkpoint every --ckpt-every steps and at the
end. The run directory gets metrics.csv and loss_curve.png, rewritten at every validation.
Progress: a bar on a terminal; elsewhere (a log file, nohup, a notebook) a line on stdout at the
first step and then at least every 30 s: step, loss, tokens/s, time elapsed and left.
Ctrl-C or SIGTERM saves a checkpoint and exits (status 130 or 143); SIGUSR1 saves one and goes
on; --resume continues it exactly (same losses as a run that was never interrupted). A run holds
a lock on its folder (train.lock) while it trains: a second run there is refused. A file that
cannot be written (a full disk) stops the run with one line naming it and the last good checkpoint.
See docs/checkpoints.md.
"""
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace

import torch

from tinychar import cli, group, runtime
from tinychar.budget import Budget, plan_steps
from tinychar.checkpoint import TrainingState, list_checkpoints, load_checkpoint, make_checkpoint
from tinychar.cli import UserError
from tinychar.control import StopRequest, check_finite, read_back
from tinychar.corpus import Vocab, check_file, encoded_corpus, get_batch, load_corpus
from tinychar.files import AtomicFile, RunLock
from tinychar.plan import RunPlan
from tinychar.run_checkpoints import RunCheckpoints, checkpoint_rng, restore, start_from
from tinychar.run_log import RunLog, announce, record_session, say_done, validate
from tinychar.scoring import fixed_validation_batches
from tinychar.settings import TrainConfig, config_toml, parse_args, resolve_configs
from tinychar.step import WeightAverage, batch_at, follow_schedule, make_optimizer, train_step, warmup_warning
from model import CharTransformer, ModelConfig


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv, __doc__.split("\n\n")[0])
    out = args.out or TrainConfig.out
    if args.seeds or (args.resume and group.is_group(out)):
        return group.train_group(args, argv, out, train_one)
    train_one(args)


def train_one(args):
    """One run from train.py's parsed flags."""
    model_cfg, cfg, resumed, choice = resolve_configs(args)
    try:
        train(model_cfg, cfg, resumed, choice, progress="bar" if sys.stderr.isatty() else "lines")
        if torch.distributed.is_initialized():
            # every rank is done before any tears its connections down: gloo could abort a rank
            # whose peer closed first ("terminate called without an active exception", exit -6)
            torch.distributed.barrier()
    except OSError as error:
        if not cli.storage_error(error):
            raise
        try:
            saved = list_checkpoints(cfg.out)
        except OSError:   # no folder, or one that cannot be read
            saved = []
        kept = (f"the last good checkpoint is {saved[-1][1]}: make room and continue with python train.py --out "
                f"{cfg.out} --resume") if saved else "no checkpoint was written"
        raise UserError(f"{cli.storage_error(error)}; training stopped, {kept}") from None
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def train(model_cfg: ModelConfig, cfg: TrainConfig, resumed=None, choice=None, progress="bar"):
    """Run (or continue) training; returns the metrics rows. All state goes to cfg.out, whose lock
    (train.lock) the run holds until it ends; under torchrun rank 0 holds it for every rank. Under
    torchrun each rank trains on its slice of the same global batch (DistributedDataParallel); only
    rank 0 validates, logs and writes checkpoints, which hold every rank's generators
    (docs/distributed.md). choice: the preset's, for the run's plan (settings.Settings). progress:
    "bar" (a terminal), "lines" (a plain line every 30 s) or None (run_log.RunLog)."""
    check_file(cfg.data)   # before the run's folder is made
    with RunLock(cfg.out) if int(os.environ.get("RANK", "0")) == 0 else nullcontext():
        run = set_up(model_cfg, cfg, resumed, choice or dict(preset="", chosen_in_s=0.0))
        return train_loop(run, resumed, progress)


@dataclass
class Run:
    """What set_up makes for the loop: the settings (never written to), the plan (what the run
    decides), where it runs, its data, its model and what steps it, its clock and its checkpoints."""
    model_cfg: ModelConfig
    cfg: TrainConfig
    plan: RunPlan
    device: torch.device
    rank: int
    world_size: int
    vocab: Vocab
    train_ids: object
    val_ids: object
    fingerprint: str
    model: CharTransformer
    average: WeightAverage | None
    optimizer: object
    autocast: object
    batch_rng: torch.Generator
    val_batches: list
    budget: Budget
    checkpoints: RunCheckpoints
    sessions: list                 # the run record (record.py): where each session of the run ran
    runner: torch.nn.Module = None   # what runs the step: the model, maybe compiled, maybe DDP-wrapped
    step: int = 0                  # the steps done: a resumed run's checkpoint's
    pending_losses: list = field(default_factory=list)   # losses since the last validation
    rows: list = field(default_factory=list)             # metrics.csv's rows so far

    @property
    def main_process(self):
        return self.rank == 0

    @property
    def scored(self):
        """The model validations, scores and checkpoints take: --ema's average, or the model."""
        return self.average.model if self.average else self.model

    def next_batch(self, step):
        """This rank's slice of the global batch of random windows of `step` (its size: batch_at), on its device."""
        size = batch_at(step, self.cfg, self.plan, self.world_size * self.cfg.grad_accum)
        local = slice(self.rank * size // self.world_size, (self.rank + 1) * size // self.world_size)
        return (runtime.to_device(t[local], self.device)
                for t in get_batch(self.train_ids, size, self.model_cfg.seq_len, self.batch_rng))


def set_up(model_cfg, cfg, resumed, choice):
    """Everything the loop needs, in the order the run's numbers depend on it. The clock starts
    here: reading the corpus, compiling and the budget's probe count against it."""
    model_cfg = replace(model_cfg)   # its vocab_size is the corpus's: the caller's stays as it was
    device = runtime.resolve_device(cfg.device)
    runtime.use_threads(cfg.threads)
    budget = Budget(cfg.time_budget, runtime.host_sync_interval(device),
                    resumed["elapsed_s"] if resumed else choice["chosen_in_s"], resumed["budget_costs"] if resumed else None)
    device, rank, world_size = start_processes(device, cfg, resumed)
    source = load_checkpoint(cfg.init_from, "best") if cfg.init_from and not resumed else None
    vocab, train_ids, val_ids, fingerprint = read_corpus(cfg, model_cfg, resumed, source, rank, world_size)
    model_cfg.vocab_size = len(vocab)
    if rank == 0:   # its folder: made by train()'s RunLock
        with AtomicFile(os.path.join(cfg.out, "config.toml")) as f:
            f.write(config_toml(model_cfg, cfg))
    model, optimizer, average = build_model(model_cfg, cfg, source, device, rank, world_size)
    plan = first_plan(cfg, resumed, choice, device)
    autocast = runtime.autocast(plan.precision, device)
    run = Run(model_cfg=model_cfg, cfg=cfg, plan=plan, device=device, rank=rank, world_size=world_size, vocab=vocab,
              train_ids=train_ids, val_ids=val_ids, fingerprint=fingerprint, model=model, average=average,
              optimizer=optimizer, autocast=autocast, batch_rng=torch.Generator().manual_seed(cfg.seed),
              val_batches=fixed_validation_batches(val_ids, cfg, model_cfg.seq_len, device), budget=budget,
              checkpoints=RunCheckpoints(cfg, resumed, rank == 0),
              sessions=record_session(cfg, plan, resumed, device, world_size, rank == 0))
    if resumed:
        run.step, run.pending_losses, run.rows = restore(resumed, model, average, optimizer, run.batch_rng, cfg.seed,
                                                         device, rank, world_size, os.path.join(cfg.out, "metrics.csv"))
    run.runner, compiled = make_runner(model, cfg, train_ids, device, world_size, autocast)
    if cfg.time_budget and not resumed:
        plan.steps = plan_steps(model, optimizer, cfg, train_ids, val_ids, run.val_batches, autocast, budget, device,
                                rank, world_size)
    if rank == 0 and (warning := warmup_warning(cfg, plan.steps)):   # said once, of the plan the run will follow
        print(f"warning: {warning}", file=sys.stderr)
    if rank == 0 and not resumed:
        announce(model, cfg, plan, vocab, train_ids, val_ids, source, device, world_size, compiled)
    return run


def first_plan(cfg, resumed, choice, device):
    """A new run's plan: --steps (a timed run plans its own: budget.plan_steps), the precision and
    the device resolved here, the preset's choice. A resumed run's: the saved plan on this
    session's device, with the steps and precision of its settings (the saved plan's unless
    flags give others: settings.resumed_settings)."""
    if not resumed:
        return RunPlan(steps=cfg.steps, precision=runtime.resolve_precision(cfg.precision, device), device=str(device),
                       **choice)
    return replace(RunPlan(**resumed["plan"]), steps=cfg.steps, precision=runtime.resolve_precision(cfg.precision, device),
                   device=str(device))


def train_loop(run, resumed, progress):
    """The steps: learning rate, batch, step; at each read of the loss, validate? checkpoint? stop?"""
    cfg, plan, budget, step = run.cfg, run.plan, run.budget, run.step
    last_good = list_checkpoints(cfg.out)[-1][1] if resumed else None
    unread = []   # this rank's losses (device tensors) of the steps since the host last read them
    # a resumed run whose budget is spent ends at once (judged on the saved elapsed_s, which the save
    # itself came after, and costs, so that every rank decides alike); a fresh run trains its first step
    out_of_time = (resumed is not None and step < plan.steps
                   and budget.over(budget.costs["checkpoint_s"], elapsed_s=resumed["elapsed_s"]))
    stopped_early = False
    budget.follow(cfg, step)
    run.model.train()
    with StopRequest() as stop, RunLog(cfg, run.model_cfg, plan, run.rows, step,
                                       progress=progress if run.main_process else None) as log:
        while step < plan.steps and not out_of_time and not stopped_early:
            lr = follow_schedule(run.model, run.optimizer, step, cfg, plan)
            x, y = run.next_batch(step)
            unread.append(train_step(run.runner, run.optimizer, x, y, cfg.grad_clip, run.autocast, cfg.grad_accum).float())
            step += 1
            if run.average:
                run.average.update(step)
            log.step_done(len(x) * run.world_size)
            at_checkpoint = step % cfg.ckpt_every == 0 or step == plan.steps
            at_validation = at_checkpoint or step % cfg.eval_every == 0   # a checkpoint is always validated
            if not (at_validation or budget.read_due(step)):
                continue   # the losses stay on the device: reading them back would wait for it
            news = read_back(unread, stop.requested, stop.take_checkpoint_request(),
                             run.main_process and budget.over(budget.due_costs(at_validation, at_checkpoint)),
                             run.device, run.world_size)
            check_finite(news.losses, step - len(news.losses) + 1, last_good)
            unread = []
            budget.after_read(step, len(news.losses), cfg, plan, run.device, run.world_size, run.main_process)
            out_of_time = news.over_budget and step < plan.steps   # this step is the last: validated and saved
            run.pending_losses.extend(news.losses)
            log.progress(step, news.losses[-1], budget)
            bpc, score_s = None, 0.0
            if run.main_process and (at_validation or out_of_time):
                bpc, score_s = validate(run.scored, run.val_batches, run.train_ids, run.val_ids, run.autocast, log,
                                        budget, step, sum(run.pending_losses) / len(run.pending_losses), lr,
                                        score=at_checkpoint or out_of_time)
            if at_validation or out_of_time:
                run.pending_losses = []
            if at_checkpoint or out_of_time or news.stop or news.save_asked:
                judged = at_checkpoint or out_of_time
                last_good, stopped_early = save(run, step, bpc, score_s, judged, log)
            if news.stop and not out_of_time:   # out of time anyway: the run is done, not paused
                log.bar.close()
                if run.main_process:
                    stop.say_saved(step, last_good, cfg.out, news.stop, run.world_size)
                raise StopRequest.stop(news.stop)
            if news.save_asked and run.main_process:
                log.say(f"checkpoint saved at step {step} to {last_good} on SIGUSR1; training goes on")
            budget.start_window()
    if run.main_process:
        say_done(cfg, plan, step, last_good, run.checkpoints.best, stopped_early, out_of_time and budget.elapsed())
    return run.rows


def save(run, step, bpc, score_s, judged, log):
    """Step's checkpoint, judged against best.pt when it is a scheduled (or last) one; every rank
    takes part. Returns (its path, whether the run stops early)."""
    save_start = time.perf_counter()
    stopped_early = judged and run.checkpoints.judge(step, bpc, run.device, run.world_size) and step < run.plan.steps
    rng = checkpoint_rng(run.batch_rng, run.device, run.world_size)   # a collective: every rank takes part
    payload = make_checkpoint(TrainingState(
        step=step, model_config=asdict(run.model_cfg), train_config=asdict(run.cfg), plan=asdict(run.plan),
        vocab=run.vocab, data_fingerprint=run.fingerprint, model=run.scored, optimizer=run.optimizer, rng=rng,
        elapsed_s=run.budget.elapsed(), pending_losses=run.pending_losses, budget_costs=run.budget.costs,
        best=run.checkpoints.best, run_record=run.sessions,
        trained=run.model if run.average else None)) if run.main_process else None
    path = run.checkpoints.save(step, payload)   # on every rank: rank 0 wrote it
    # tokens/s counts training only; the checkpoint's cost includes scoring it
    run.budget.measured("checkpoint_s", log.restart_clock() - save_start + score_s)
    return path, stopped_early


def start_processes(device, cfg, resumed):
    """The device of this process, its rank under torchrun and the number of processes."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not resumed and os.path.isdir(cfg.out) and list_checkpoints(cfg.out):
        raise UserError(f"{cfg.out} already holds checkpoints: pass --resume to continue it, or a new --out")
    rank, world_size = runtime.setup_distributed(device)
    if cfg.batch_size % world_size:
        raise UserError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes ({world_size})")
    if (cfg.batch_size // world_size) % cfg.grad_accum:
        raise UserError(f"--grad-accum {cfg.grad_accum} must divide each process's batch ({cfg.batch_size // world_size}"
                        f" windows): micro-batches of one size are what make the step the whole batch's")
    return device, rank, world_size


def read_corpus(cfg, model_cfg, resumed, source, rank, world_size):
    """(vocab, train_ids, val_ids, fingerprint). Rank 0 encodes the corpus into its cache (if it is
    not there yet) while the others wait; then every rank memory-maps the same file. The vocabulary
    is the corpus's own, a resumed run's, or (--init-from) the source's with the corpus's new
    symbols appended."""
    def read():
        vocab = Vocab(resumed["vocab"], cfg.unit) if resumed else None
        if source:
            present = encoded_corpus(cfg.data, cfg.unit, cfg.out, log=print)[0].present
            vocab = Vocab(source["vocab"], cfg.unit).extended(present)
        return load_corpus(cfg.data, model_cfg.seq_len, vocab, expected_fingerprint=resumed and resumed["data_fingerprint"],
                           unit=cfg.unit, split_spec=cfg.split, run_dir=cfg.out,
                           log=print)   # the cache's path, on stdout with the rest of the run's log
    corpus = read() if rank == 0 else None
    if world_size > 1:
        torch.distributed.barrier()
    return corpus if rank == 0 else read()


def build_model(model_cfg, cfg, source, device, rank, world_size):
    """(model, optimizer, its WeightAverage or None): the same initial weights on every rank, from
    --seed, or the source's (--init-from); then each rank draws its own dropout masks, as N
    processes' slices should."""
    torch.manual_seed(cfg.seed)
    model = CharTransformer(model_cfg).to(device)
    if source:
        start_from(model, source["model"])
    if world_size > 1:
        torch.manual_seed(cfg.seed + rank)
    return model, make_optimizer(model, cfg), WeightAverage(model, cfg.ema) if cfg.ema else None


def make_runner(model, cfg, train_ids, device, world_size, autocast):
    """What runs the step: the model, maybe compiled, maybe wrapped for DDP; checkpoints and
    validation always use the plain module, so saved keys never gain prefixes. Returns (runner,
    compiled)."""
    runner = model
    if cfg.compile if cfg.compile is not None else device.type == "cuda":
        # the trial batch has the real local batch's shape, device and precision (see compile_model)
        example = get_batch(train_ids, cfg.batch_size // world_size, model.cfg.seq_len, torch.Generator().manual_seed(0))
        runner = runtime.compile_model(model, tuple(t.to(device) for t in example), autocast)
    compiled = runner is not model
    if world_size > 1:
        runner = torch.nn.parallel.DistributedDataParallel(runner)
    return runner, compiled


if __name__ == "__main__":
    cli.run(main)
