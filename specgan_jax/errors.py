"""User errors: one base class, `SpecganError`, whose message is complete on its own.

Every console entry point (specgan_jax/cli/) catches SpecganError once, prints `error: <message>`
to stderr without a traceback and exits with status 1 (README, "Exit codes"). Anything else
that escapes is a bug and keeps its traceback. The subclasses say where a problem lies; their
messages name the file, option or directory concerned.
"""

from __future__ import annotations

from typing import Optional


class SpecganError(Exception):
    """A problem the user can fix (bad option, bad file, unusable run directory, ...)."""


class ConfigError(SpecganError, ValueError):
    """A bad option or config file; the message names the file and the key."""


class DataError(SpecganError):
    """A data problem. The message names the file, the 1-based line and column where they
    apply, and what is wrong."""

    def __init__(self, path: str, problem: str, line: Optional[int] = None,
                 column: Optional[int] = None):
        self.path, self.problem, self.line, self.column = str(path), problem, line, column
        super().__init__(f"{self.path}{self._where()}: {problem}")

    def _where(self) -> str:
        return ((f", line {self.line}" if self.line is not None else "")
                + (f", column {self.column}" if self.column is not None else ""))

    @property
    def reason(self) -> str:
        """The message without the path: 'line 3, column 7: non-numeric value ...'."""
        return f"{self._where().lstrip(', ')}: {self.problem}".lstrip(": ")

    def __reduce__(self):  # pickles across the parser's worker processes
        return (DataError, (self.path, self.problem, self.line, self.column))


class RunDirError(SpecganError):
    """A run directory that is missing, incomplete, or holds a run with another config."""


class CheckpointError(RunDirError):
    """No readable checkpoint (or not the one asked for)."""


class RunWriteError(RunDirError):
    """The operating system refused a write into a run directory (disk full, read-only or
    unwritable folder). The message names the directory and the last good checkpoint."""


class NonFiniteError(SpecganError):
    """A loss became NaN/inf; the message names the step and the loss."""


class EvaluateError(SpecganError):
    """Evaluation cannot run as asked (too few real files, wrong shapes, ...)."""


class ExportError(SpecganError):
    """Export to / import from PyTorch cannot run as asked (torch missing, bad file, ...)."""


class DistributedError(SpecganError):
    """jax.distributed.initialize could not be set up."""
