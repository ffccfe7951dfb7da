"""What a user sees of a long job as it goes (a training run, eval.py's full pass).

Where stderr is a terminal, tqdm's bar. Elsewhere (a log file, nohup, a notebook cell) a bar
cannot be redrawn in place, so plain lines stand in for it: one at least every EVERY_S seconds of
wall time (Lines), each flushed at once. The clock is time.monotonic, read once each time a job
asks whether a line is due: a fraction of a microsecond, nothing beside a training step.
"""
import sys
import time

from tqdm import tqdm

EVERY_S = 30.0   # a log shows a line at least this often: a run's first validation can be minutes away


def on_terminal():
    """Whether a bar can be drawn: stderr, where tqdm draws it, is a terminal."""
    return sys.stderr.isatty()


def clock_text(seconds):
    """Seconds as a clock shows them: 0:31, 8:40, 1:02:05."""
    minutes, s = divmod(max(0, round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


def say(line, file):
    """A progress line on file (sys.stdout or sys.stderr), flushed. stdout is flushed first: a
    redirected stdout is block-buffered, and `> log 2>&1` would otherwise put a line on stderr
    above lines printed before it on stdout."""
    sys.stdout.flush()
    print(line, file=file, flush=True)


class Lines:
    """When the next plain line is due: at the first ask if `first` (a log then shows life as soon
    as the job has done anything), then at the first ask EVERY_S seconds or more after the last
    line. clock: a function giving seconds (default time.monotonic)."""

    def __init__(self, first=True, every_s=EVERY_S, clock=None):
        self.every_s, self.clock = every_s, clock or time.monotonic
        self.started = self.clock()
        self.last = None if first else self.started

    def due(self):
        """Whether a line is due now: the one read of the clock."""
        now = self.clock()
        if self.last is not None and now - self.last < self.every_s:
            return False
        self.last = now
        return True

    def elapsed(self):
        """Seconds from the start to the line last due."""
        return (self.last if self.last is not None else self.started) - self.started


class Counter:
    """tqdm's update(n) and close() as plain lines on stderr, with Lines' cadence (none before
    EVERY_S seconds: a short job prints nothing): "scored 1,200,000/5,000,000 chars (24%)  elapsed
    0:31  left ~1:38"."""

    def __init__(self, total, unit, what, clock=None):
        self.total, self.unit, self.what, self.done = total, unit, what, 0
        self.lines = Lines(first=False, clock=clock)

    def update(self, n):
        self.done += n
        if self.lines.due():
            elapsed = self.lines.elapsed()
            left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
            say(f"{self.what} {self.done:,}/{self.total:,} {self.unit}s ({100 * self.done / max(1, self.total):.0f}%)  "
                f"elapsed {clock_text(elapsed)}  left ~{clock_text(left)}", sys.stderr)

    def close(self):
        pass


def bar(total, unit, what, show):
    """What a job over `total` units reports to (update(n), close()): nothing unless show; where
    stderr is a terminal, tqdm's bar (shown after 3 s, gone when done); elsewhere a Counter's lines.
    Both on stderr: the job's results (eval.py's table or JSON) are on stdout."""
    if show and not on_terminal():
        return Counter(total, unit, what)
    return tqdm(total=total, unit=unit, unit_scale=True, file=sys.stderr, delay=3, leave=False, disable=not show,
                dynamic_ncols=True)
