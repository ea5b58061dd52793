"""The output folder (`--out`, a run directory): checked before any work starts, so that a folder that
cannot hold results is one clear line and exit 2, not a traceback after an hour of training."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from slimlab.errors import SlimlabError

# Kernel pseudo file systems: writing results there is never what a user meant, and some of them accept
# the first write and fail later, so they are refused by name.
PSEUDO_ROOTS = (Path("/proc"), Path("/sys"))


class OutputDirError(SlimlabError):
    """The output folder is a file, lies below a file, is read-only or otherwise cannot be written."""


def _why(e: OSError) -> str:
    if e.errno == errno.EROFS:
        return "it is on a read-only file system"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "it is not writable (permission denied)"
    if e.errno == errno.ENOSPC:
        return "the disk is full"
    return e.strerror or type(e).__name__


def _is_under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def writable_dir(path: str | Path, what: str = "--out") -> Path:
    """Create `path` if needed and check that a file can be written in it; else raise OutputDirError
    with one line naming the folder and what is wrong."""
    path = Path(path)
    resolved = path.resolve()
    if any(_is_under(resolved, root) for root in PSEUDO_ROOTS):
        raise OutputDirError(f"{what} {path}: is on a kernel pseudo file system; expected a normal folder")
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"{what} {path}: is a file; expected a folder (or a path that does not exist)")
    for parent in resolved.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputDirError(f"{what} {path}: lies below the file {parent}; expected a folder")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputDirError(f"{what} {path}: cannot create the folder: {_why(e)}") from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".slimlab-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputDirError(f"{what} {path}: cannot write in the folder: {_why(e)}") from None
    return path


def describe_write_error(path: str | Path, e: OSError) -> str:
    """One line for a write that failed after the work was done (the store keeps what was computed)."""
    return f"{path}: cannot write: {_why(e)}"
