"""Training metrics on disk: `metrics.jsonl` (one JSON object per logged step) and, when a
writer is importable, TensorBoard event files. TensorBoard is never a hard dependency.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import tempfile
from typing import Optional


def _tensorboard_writer(logdir: str):
    """A SummaryWriter from tensorboardX or torch.utils.tensorboard, or None if neither works."""
    if importlib.util.find_spec("tensorboardX") is not None:
        from tensorboardX import SummaryWriter
        return SummaryWriter(logdir)
    # torch.utils.tensorboard needs the `tensorboard` package; check first so that torch is
    # not imported for nothing.
    if importlib.util.find_spec("tensorboard") is not None and importlib.util.find_spec("torch"):
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(logdir)
    return None


def _jsonable(v: float):
    """Floats as JSON numbers; NaN/inf as strings (strict JSON has no NaN)."""
    v = float(v)
    return v if math.isfinite(v) else str(v)


class MetricsLog:
    """Append-only metrics.jsonl plus optional TensorBoard scalars.

    Each row: {"step": int, "time": seconds since the run started (this process),
    <metric>: float, ...}. Rows are flushed as written, so a killed run keeps what it logged.
    """

    def __init__(self, run_dir: str, tensorboard: bool = True):
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self._fh = open(self.path, "a", encoding="utf-8")
        self.tb = _tensorboard_writer(os.path.join(run_dir, "tensorboard")) if tensorboard else None

    def truncate_after(self, step: int) -> None:
        """Drop rows with step > `step` (logged after the checkpoint a resumed run starts from),
        so a resumed run's metrics.jsonl equals an uninterrupted one's. Atomic rewrite."""
        self._fh.close()
        kept = []
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    if json.loads(line)["step"] <= step:
                        kept.append(line if line.endswith("\n") else line + "\n")
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a half-written last line of a killed run
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(self.path))
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(kept)
        os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, step: int, metrics: dict, elapsed: Optional[float] = None) -> None:
        row = {"step": int(step)}
        if elapsed is not None:
            row["time"] = round(float(elapsed), 3)
        row.update({k: _jsonable(v) for k, v in metrics.items()})
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k, float(v), int(step))

    def close(self) -> None:
        self._fh.close()
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: str) -> list[dict]:
    """All rows of a metrics.jsonl file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
