"""Atomic file writes: write a temporary file in the target's folder, then `os.replace` it.

A reader, or a process killed mid-write, sees the old file or the new one, never half of one
(os.replace is atomic within a filesystem). Every artefact the project writes — config.json,
moments.npz, previews, generated CSVs, eval.json, exported weights — goes through here.
Temporary names start with ".tmp-", so a crash leaves at most such a file, never a truncated
real one. The file gets the permissions a plain open() would give it (0666 less the umask):
mkstemp's own 0600 would hide a user's generated files from their group.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; set back at once, at import time
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", *, fsync: bool = False) -> Iterator[IO]:
    """`with atomic_open(p, "wb") as fh: ...`: p appears, complete, only if the block succeeds.

    mode: "w" (text, UTF-8) or "wb". fsync: also force the bytes to disk before the rename
    (for caches that must survive a power loss, not only a killed process). The folder is
    created if missing. The temporary file keeps p's extension.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb'; got {mode!r}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text(path: str, text: str, *, fsync: bool = False) -> None:
    with atomic_open(path, "w", fsync=fsync) as fh:
        fh.write(text)


def write_bytes(path: str, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def save_figure(fig, path: str) -> str:
    """A matplotlib figure as PNG at `path`, atomically."""
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png")
    return path
