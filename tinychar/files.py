"""Writing files so that a crash never leaves half of one: every file the project writes
(checkpoints, token caches, metrics, figures, reports) goes through AtomicFile."""
import errno
import os
import re
import shutil
import socket
import sys
import time

from tinychar.cli import UserError

try:
    import fcntl
except ImportError:   # Windows: no flock; runs there are not locked (RunLock says so, once)
    fcntl = None
NO_LOCK_WARNING = ("warning: no file locking on this system: a second training run in this folder would not be "
                   "refused")

TEMPORARY_NAME = re.compile(r"\.\d+\.tmp$")   # AtomicFile's and replace_with_link's: name.PID.tmp
LOCK_NAME = "train.lock"


class AtomicFile:
    """`with AtomicFile(path, "wb") as f:` writes go to a temporary file beside path, flushed to
    disk and renamed over path when the block ends, or removed if it raises: a crash leaves the old
    file or the new one, never half of one. The temporary file is opened here, when the object is
    made, so a folder that cannot be written fails before any work is done."""

    def __init__(self, path, mode="w"):
        self.path, self.tmp = path, f"{path}.{os.getpid()}.tmp"
        try:
            self.file = open(self.tmp, mode, **({} if "b" in mode else dict(newline="", encoding="utf-8")))
        except OSError as error:
            raise naming(error, path) from None

    def __enter__(self):
        return self.file

    def __exit__(self, error_type, error, traceback):
        try:
            with self.file:
                if error_type is None:
                    self.file.flush()
                    os.fsync(self.file.fileno())   # a full disk often shows only here
            if error_type is None:
                os.replace(self.tmp, self.path)
                sync_folder(os.path.dirname(os.path.abspath(self.path)))
                return False
        except OSError as failed:
            self.discard()
            raise naming(failed, self.path) from None
        except BaseException:
            self.discard()
            raise
        self.discard()
        if isinstance(error, OSError):   # a write inside the block failed: say which file it was for
            raise naming(error, self.path) from None
        return False

    def discard(self):
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


def naming(error, path):
    """error, an OSError, naming the file it was about (a failed write() or fsync() names none)."""
    if error.filename is None or str(error.filename).endswith(".tmp"):
        error = type(error)(error.errno, error.strerror or str(error), path)
    return error


def replace_with_link(source, path):
    """path becomes the file at source, atomically: a hard link (the same file, no copy) where the
    file system has them, else a copy. Replacing source later (AtomicFile renames a new file over
    it) leaves path as it was."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        try:
            os.link(source, tmp)
        except OSError:   # no hard links here (some network and FAT file systems)
            with open(source, "rb") as f, AtomicFile(tmp, "wb") as out:
                shutil.copyfileobj(f, out)
        os.replace(tmp, path)
    except OSError as error:
        raise naming(error, path) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    sync_folder(os.path.dirname(os.path.abspath(path)))


def sync_folder(path):
    """fsync a folder, so that a rename into it survives a power cut as well as a crash. POSIX only
    (Windows cannot open a folder); a file system that cannot sync folders (EINVAL) is left as it is."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def save_figure(fig, path, dpi=110):
    """A matplotlib figure to a PNG file, atomically, then closed (its memory freed)."""
    import matplotlib.pyplot as plt
    with AtomicFile(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)
    plt.close(fig)


class RunLock:
    """`with RunLock(run_dir):` holds an exclusive lock on run_dir/train.lock for the block, so that
    a second training run in the same folder stops at once, naming the first (its pid, host, start
    and command, which the holder writes into the file). The lock is flock's: the kernel drops it
    when its process ends, however it ends, so a killed run never blocks the next. Holding it, the
    run knows every temporary file in the folder (name.PID.tmp) is left over from a killed process,
    and removes them. Readers (eval.py, generate.py) ignore the lock: they read only whole files.
    Where there is no flock (Windows: no fcntl), the run says so in one line, once a process, and
    goes on unlocked; it removes no temporary file then, which might be a running run's."""
    warned = False   # the warning without flock, said once a process

    def __init__(self, run_dir):
        self.run_dir, self.path = run_dir, os.path.join(run_dir, LOCK_NAME)

    def __enter__(self):
        os.makedirs(self.run_dir, exist_ok=True)
        self.file = open(self.path, "a+", encoding="utf-8")
        if not fcntl:
            if not RunLock.warned:
                print(NO_LOCK_WARNING, file=sys.stderr, flush=True)
            RunLock.warned = True
        else:
            try:
                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.file.seek(0)
                holder = self.file.read().strip() or "a process that has not yet said who it is"
                self.file.close()
                raise UserError(f"{self.run_dir} is in use by another training run ({holder}): wait for it to end, "
                                f"or pass another --out") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                        f"{' '.join(sys.argv)}\n")
        self.file.flush()
        for name in os.listdir(self.run_dir) if fcntl else []:
            if TEMPORARY_NAME.search(name):
                os.remove(os.path.join(self.run_dir, name))
        return self

    def __exit__(self, *exc):
        self.file.close()   # releases the lock; the file stays (removing it would race with a new run)
