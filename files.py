"""Writing files so that a crash never leaves half of one: every file the project writes
(checkpoints, token caches, metrics, figures, reports) goes through AtomicFile."""
import errno
import os
import shutil


class AtomicFile:
    """`with AtomicFile(path, "wb") as f:` writes go to a temporary file beside path, flushed to
    disk and renamed over path when the block ends, or removed if it raises: a crash leaves the old
    file or the new one, never half of one. The temporary file is opened here, when the object is
    made, so a folder that cannot be written fails before any work is done."""

    def __init__(self, path, mode="w"):
        self.path, self.tmp = path, f"{path}.{os.getpid()}.tmp"
        self.file = open(self.tmp, mode, **({} if "b" in mode else dict(newline="", encoding="utf-8")))

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
        except BaseException:
            self.discard()
            raise
        self.discard()
        return False

    def discard(self):
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


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
