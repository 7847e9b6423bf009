"""Training: `train_and_evaluate(config, workdir)` trains (or resumes) one run directory.

Loop: one host call runs a chunk of generator steps (TrainFns.step per step, or TrainFns.chunk
under lax.scan); the metrics come back once per chunk. Chunks are cut so they end exactly on
log/preview/checkpoint/eval steps. All randomness is folded from the step number, so a run
resumed from a checkpoint computes bitwise the same numbers as an uninterrupted one (on CPU).

Devices: data-parallel over every device of every process (docs/multi-device.md);
train.batch_size is the global batch. Every process runs this same loop; process
0 alone writes config.json, moments.npz, labels.json, previews and metrics, and all processes
take part in orbax's checkpoint saves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import signal
import time
from typing import Callable, Optional

import jax
import numpy as np
from tqdm.auto import tqdm

from specgan_jax.config import Config
from specgan_jax.errors import NonFiniteError
from specgan_jax.run.checkpoint import key_to_json
from specgan_jax.run import run_dir as run_dir_lib
from specgan_jax.run.run_dir import write_failure
from specgan_jax.training import distributed as dist_lib
from specgan_jax.training.health import Health, should_stop
from specgan_jax.training.setup import Run, setup_run
from specgan_jax.training.signals import SignalFlag

_print = functools.partial(print, flush=True)  # lines interleave correctly with tqdm's stderr


@dataclasses.dataclass
class Outcome:
    """What train_and_evaluate did."""

    step: int  # generator steps done at the end
    state: object  # the final TrainState
    interrupted: Optional[int] = None  # the signal number if stopped by SIGINT/SIGTERM
    workdir: str = ""
    stopped_early: Optional[str] = None  # the reason, when train.stop_after_no_improvement hit
    budget_reached: bool = False  # stopped because train.minutes of training were spent
    train_seconds: float = 0.0  # seconds of training calls, summed over the run's resumes


class TrainClock:
    """Seconds spent in training calls, summed over a run's resumes (saved with each checkpoint
    as meta["train_seconds"]; a checkpoint without it counts as 0), against train.minutes.

    The first call of each compiled function is not counted: it compiles (tens of seconds on
    the CPU, again on every resume), and the budget is meant for training. Each timed call
    ends in a device_get of its metrics, so the time covers the computation.
    """

    def __init__(self, minutes: Optional[float], seconds: float,
                 clock: Callable[[], float] = time.monotonic):
        self.limit = None if minutes is None else 60.0 * minutes
        self.seconds = float(seconds)
        self._clock = clock
        self._compiled: set = set()

    @contextlib.contextmanager
    def timing(self, function):
        """Time one call of `function` (a name: "scan", "step"), unless it is its first."""
        t0 = self._clock()
        yield
        elapsed = self._clock() - t0
        if function in self._compiled:
            self.seconds += elapsed
        self._compiled.add(function)

    def spent(self) -> bool:
        return self.limit is not None and self.seconds >= self.limit


def train_and_evaluate(config: Config, workdir: str, *, demo: Optional[bool] = None,
                       log: Callable[[str], None] = _print, progress: bool = True,
                       step_hook: Optional[Callable] = None,
                       clock: Callable[[], float] = time.monotonic) -> Outcome:
    """Train (or resume) the run in `workdir` up to config.train.steps.

    demo: use the built-in synthetic dataset (default: when config.data has no source).
    step_hook: tests only -- called as step_hook(state, metrics, step) -> (state, metrics) after
      every chunk (e.g. to inject a NaN).
    clock: tests only -- the clock the training time of train.minutes is measured with.
    Raises a SpecganError for the user to read: NonFiniteError on a NaN/inf loss (nothing of
    that chunk is saved), RunDirError for a run directory with another config, RunWriteError
    when the OS refuses a write into the run directory, DataError for bad data.
    """
    if demo is None:
        demo = config.data.path is None and config.data.file_list is None
    try:
        with contextlib.ExitStack() as stack:
            run = setup_run(config, workdir, stack, demo=demo, log=log, progress=progress)
            if run.step >= config.train.steps:
                run.log(f"already trained to step {run.step} (train.steps="
                        f"{config.train.steps}); nothing to do. Pass --steps N (N > {run.step}) "
                        "to train further.")
                return Outcome(step=run.step, state=run.state, workdir=workdir)
            t_start = time.monotonic()
            outcome = run_loop(run, step_hook, clock)
    except OSError as e:
        if e.filename is not None and not _inside(e.filename, workdir):
            raise  # not a write into the run directory
        raise write_failure(workdir, e) from e
    if outcome.stopped_early is not None:
        run.log(f"stopped early at step {outcome.step}: {outcome.stopped_early} (written to "
                f"{os.path.join(workdir, run_dir_lib.STOPPED)})")
    elif outcome.budget_reached:
        run.log(f"time budget reached at step {outcome.step}: "
                f"{outcome.train_seconds / 60:.2f} minutes of training (train.minutes="
                f"{config.train.minutes:g}); checkpoint saved. Re-run with a larger "
                "--train.minutes (or without it) to train further.")
    elif outcome.interrupted is not None:
        run.log(f"stopped by {signal.Signals(outcome.interrupted).name} at step {outcome.step}; "
                "checkpoint saved. Re-run the same command to resume.")
    else:
        run.log(f"done: {outcome.step} steps in {time.monotonic() - t_start:.1f} s. Run "
                f"directory: {workdir}")
    return outcome


def run_loop(run: Run, step_hook: Optional[Callable] = None,
             clock: Callable[[], float] = time.monotonic) -> Outcome:
    """Train from run.step to train.steps: chunks, logging, previews, checkpoints, evaluation.
    Stops early (after saving) on SIGINT/SIGTERM on any process, or when train.minutes of
    training are spent."""
    tc = run.config.train
    state, step = run.state, run.step
    timer = TrainClock(tc.minutes, _saved_train_seconds(run), clock)

    def meta() -> dict:  # saved with each checkpoint
        return {"key": key_to_json(run.k_train), "train_seconds": timer.seconds}

    if timer.spent():  # a re-run of a run that already used its budget
        return Outcome(step=step, state=state, workdir=run.workdir, budget_reached=True,
                       train_seconds=timer.seconds)
    use_scan = tc.loop in ("scan", "auto")
    t_start = time.monotonic()
    rate_from = (step, t_start)  # (step, time) the steps/s of the next log line counts from
    health = Health()
    if run.periodic is not None and should_stop(step, run.periodic.best_step, tc.eval_every,
                                                tc.stop_after_no_improvement):
        return _stop_early(run, state, step)  # a re-run of a run that already stopped
    bar = tqdm(total=tc.steps, initial=step, unit="step", dynamic_ncols=True,
               disable=not run.progress, smoothing=0.1)
    with contextlib.closing(bar), SignalFlag() as flag:
        while step < tc.steps:
            n = _next_boundary(tc, step) - step
            with timer.timing("scan" if use_scan and n == tc.steps_per_call else "step"):
                new_state, metrics = _run_chunk(run, state, n, use_scan)
            if step_hook is not None:
                new_state, metrics = step_hook(new_state, metrics, step + n)
            _check_finite(metrics, step, run.ckpt.latest_step())
            state, step = new_state, step + n
            last_m = {k: float(v[-1]) for k, v in metrics.items()}
            now = time.monotonic()
            # Since the last log line: excludes the first chunk's compile once logging starts.
            rate = (step - rate_from[0]) / max(now - rate_from[1], 1e-9)
            bar.update(n)
            bar.set_postfix(d=f"{last_m['d_loss']:.3f}", g=f"{last_m['g_loss']:.3f}",
                            refresh=False)
            if step % tc.log_every == 0 or step == tc.steps:
                _log_step(run, bar, health, step, last_m, rate, time.monotonic() - t_start)
                rate_from = (step, now)
            if step % tc.preview_every == 0 or step == tc.steps:
                run.save_preview(state, step)
            # One decision for all processes (orbax's save and the stop are collective);
            # with one process agree_any returns its arguments.
            save_now, stop, spent = dist_lib.agree_any(
                run.ckpt.should_save(step) or step == tc.steps, flag.signum is not None,
                timer.spent())
            save_now = save_now or spent
            if save_now or stop:
                run.ckpt.save(step, state, meta())
            if run.periodic is not None and step % tc.eval_every == 0:
                row = run.periodic(state, step)
                health.observe_eval(row)
                run.metrics_log.write(step, row)
                rate_from = (step, time.monotonic())  # steps/s without the evaluation
                if should_stop(step, run.periodic.best_step, tc.eval_every,
                               tc.stop_after_no_improvement):
                    if not (save_now or stop):  # the state to resume from is on disk
                        run.ckpt.save(step, state, meta())
                    return _stop_early(run, state, step)
            if stop:
                # A process that got no signal stops because another one did (e.g. a
                # cluster preempting one host): it reports SIGTERM, the usual such signal.
                signum = flag.signum if flag.signum is not None else int(signal.SIGTERM)
                return Outcome(step=step, state=state, interrupted=signum, workdir=run.workdir,
                               train_seconds=timer.seconds)
            if spent and step < tc.steps:
                return Outcome(step=step, state=state, workdir=run.workdir, budget_reached=True,
                               train_seconds=timer.seconds)
    return Outcome(step=step, state=state, workdir=run.workdir, train_seconds=timer.seconds)


def _log_step(run: Run, bar, health: Health, step: int, last_m: dict, rate: float,
              elapsed: float) -> None:
    """A log line (above the progress bar, which keeps its place) and a metrics.jsonl row."""
    health.observe(last_m)
    run.metrics_log.write(step, last_m, elapsed=elapsed)
    line = (_format_line(step, run.config.train.steps, last_m, rate,
                         show_p=run.config.diffaug.enabled) + " | " + health.summary())
    if run.progress:
        bar.write(line)
    else:
        run.log(line)


def _saved_train_seconds(run: Run) -> float:
    """The training seconds saved with the checkpoint the run resumed from (0 without one, or
    for a checkpoint written before they were saved)."""
    if run.step not in run.ckpt.all_steps():
        return 0.0
    return float(run.ckpt.read_meta(run.step).get("train_seconds", 0.0))


def _stop_early(run: Run, state, step: int) -> Outcome:
    """Early stopping: the reason, written to the run directory, and the outcome."""
    tc, p = run.config.train, run.periodic
    reason = (f"{tc.stop_after_no_improvement} evaluations without a better {p.metric} than "
              f"{p.best_score:.4g} at step {p.best_step} (train.stop_after_no_improvement); "
              f"the best checkpoint is in {run_dir_lib.best_checkpoints(p.metric)}/")
    if dist_lib.is_main_process():
        run_dir_lib.write_stopped(run.workdir, step, reason, p.metric, p.best_step,
                                  p.best_score)
    return Outcome(step=step, state=state, workdir=run.workdir, stopped_early=reason)


def _inside(path, folder: str) -> bool:
    path, folder = os.path.abspath(os.fspath(path)), os.path.abspath(folder)
    return os.path.commonpath([path, folder]) == folder


def _next_boundary(tc, s: int) -> int:
    """The next step at which something must happen (log, preview, checkpoint, eval, end)."""
    cands = [tc.steps, s + tc.steps_per_call]
    for every in (tc.log_every, tc.preview_every, tc.checkpoint_every, tc.eval_every):
        if every:
            cands.append((s // every + 1) * every)
    return min(cands)


def _run_chunk(run: Run, state, n: int, use_scan: bool):
    """n generator steps -> (state, metrics as numpy [n] arrays); one host sync. The scan runs
    only full calls of train.steps_per_call steps: its length is static, so each other length
    would compile the scan again (~20 s on the CPU); the rest run as separate steps."""
    if use_scan and n == run.config.train.steps_per_call:
        state, m = run.fns.chunk(state, run.data, run.k_train, n)
        return state, jax.device_get(m)
    ms = []
    for _ in range(n):  # dispatched asynchronously; nothing waits until device_get
        state, m = run.fns.step(state, run.data, run.k_train)
        ms.append(m)
    ms = jax.device_get(ms)
    return state, {k: np.stack([m[k] for m in ms]) for k in ms[0]}


def _check_finite(metrics: dict, start_step: int, last_checkpoint: Optional[int]) -> None:
    """NonFiniteError naming the first non-finite loss of a chunk's metrics, if any."""
    names = [k for k in ("d_loss", "g_loss", "gp", "wasserstein") if k in metrics]
    n = len(next(iter(metrics.values())))
    for i in range(n):
        for k in names:
            v = float(metrics[k][i])
            if not math.isfinite(v):
                raise NonFiniteError(
                    f"non-finite loss at step {start_step + i + 1}: {k} = {v}. Training "
                    "stopped; " + (f"the last good checkpoint (step {last_checkpoint}) stays "
                                   "the latest." if last_checkpoint is not None
                                   else "no checkpoint was saved before it.")
                    + " Lower the learning rates (--optim.g_lr/--optim.d_lr) or check the data.")


def _format_line(step: int, total: int, m: dict, rate: float, show_p: bool = False) -> str:
    """Fixed-width log line (columns line up across the run); p: DiffAugment's strength."""
    return (f"step {step:>8d}/{total:<8d} | d_loss {m['d_loss']:>10.4f} | g_loss "
            f"{m['g_loss']:>10.4f} | gp {m.get('gp', float('nan')):>9.4f} | W "
            f"{m.get('wasserstein', float('nan')):>9.4f} | "
            + (f"p {m.get('aug_p', float('nan')):>5.3f} | " if show_p else "")
            + f"{rate:>7.2f} steps/s")
