"""Training health: a one-line summary per log line naming the known failure modes it sees,
and the early-stopping rule of periodic evaluation.

Failure modes (thresholds are rules of thumb, named in the message so a reader can judge):
  critic far ahead   the Wasserstein estimate grew at each of the last `window` log lines and
                     by more than half over them: the critic outruns the generator (for a WGAN
                     critic the estimate should level off or fall as G improves);
  mode collapse      the generator's batch diversity (per-pixel std across a batch of fakes,
                     within classes for a conditional model: engine.metrics.batch_spread)
                     below a quarter of the real batches', or, with periodic evaluation,
                     within-sample diversity nn_self below half the real baseline's;
  constant output    fakes barely vary at all (std of every value < 0.02 in the normalised
                     domain, where real data has std ~ 1/3);
  silence            fakes sit at the floor of the range (mean < -0.95: every bin near its
                     mean - 3 std).
"""

from __future__ import annotations

import collections
import math
from typing import Optional

WINDOW = 5  # log lines the Wasserstein trend is read over


class Health:
    """Feed it each log line's metrics (and evaluation rows); `summary()` is the line."""

    def __init__(self, window: int = WINDOW):
        self.w = collections.deque(maxlen=window)
        self.last: dict = {}
        self.eval_row: dict = {}

    def observe(self, metrics: dict) -> None:
        if "wasserstein" in metrics and math.isfinite(metrics["wasserstein"]):
            self.w.append(float(metrics["wasserstein"]))
        self.last = dict(metrics)

    def observe_eval(self, row: dict) -> None:
        self.eval_row = dict(row)

    def problems(self) -> list[str]:
        out = []
        w = list(self.w)
        if (len(w) == self.w.maxlen and all(b > a for a, b in zip(w, w[1:]))
                and w[-1] - w[0] > 0.5 * abs(w[0])):
            out.append(f"critic far ahead (Wasserstein estimate rose over the last {len(w)} "
                       f"log lines, {w[0]:.3g} -> {w[-1]:.3g})")
        m = self.last
        if "fake_batch_std" in m and "real_batch_std" in m and m["real_batch_std"] > 0:
            if m["fake_batch_std"] < 0.25 * m["real_batch_std"]:
                out.append(f"mode collapse? (batch diversity {m['fake_batch_std']:.3g} vs "
                           f"real {m['real_batch_std']:.3g})")
        gen, real = self.eval_row.get("eval/nn_self"), self.eval_row.get("eval/nn_self_real_baseline")
        if gen is not None and real and gen < 0.5 * real:
            out.append(f"mode collapse? (nn_self {gen:.3g} vs real {real:.3g})")
        if "fake_std" in m and m["fake_std"] < 0.02:
            out.append(f"constant output (fake std {m['fake_std']:.3g}, normalised)")
        if "fake_mean" in m and m["fake_mean"] < -0.95:
            out.append(f"silence (fake mean {m['fake_mean']:.3g}: at the floor)")
        return out

    def summary(self) -> str:
        p = self.problems()
        return "health: " + ("; ".join(p) if p else "ok")


def evaluations_without_improvement(step: int, best_step: Optional[int], eval_every: int) -> int:
    """Evaluations since the best one (0 when `step` is the best step or none exists): a
    function of the best step alone, so a resumed run stops where an uninterrupted one does."""
    if best_step is None or eval_every <= 0:
        return 0
    return max(0, (step - best_step) // eval_every)


def should_stop(step: int, best_step: Optional[int], eval_every: int, patience: int) -> bool:
    """Early stopping: `patience` evaluations in a row without a new best (patience 0: never)."""
    return patience > 0 and evaluations_without_improvement(step, best_step, eval_every) >= patience
