"""Multi-host wiring: jax.distributed.initialize() from DistributedConfig and the environment.

JAX is the distributed engine (docs/multi-device.md): after `initialize`, `jax.devices()` lists the
devices of every process, the training mesh spans them all, and the jitted step's all-reduces
cross hosts (NCCL on GPU; on CPU the gloo TCP collectives, JAX's default
`jax_cpu_collectives_implementation`). Every process runs the same program on the same
(replicated) inputs; only process 0 writes files other than checkpoints (orbax coordinates
its own multi-process saves).

Value precedence per field: the flag (DistributedConfig) > the environment variable > JAX's
cluster auto-detection (Slurm, Open MPI, Cloud TPU, Kubernetes; `jax.distributed.initialize()`
with the argument unset). JAX itself reads JAX_COORDINATOR_ADDRESS and JAX_LOCAL_DEVICE_IDS;
JAX_NUM_PROCESSES and JAX_PROCESS_ID are read here (JAX has no variables for them).
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

import jax
import numpy as np
from jax.experimental import multihost_utils

from specgan_jax.config import DistributedConfig
from specgan_jax.errors import DistributedError

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


def initialize_kwargs(cfg: DistributedConfig, environ: Optional[Mapping[str, str]] = None
                      ) -> dict:
    """The keyword arguments for jax.distributed.initialize: flags, else environment
    variables; arguments still None are left to JAX's cluster auto-detection."""
    env = os.environ if environ is None else environ

    def env_int(name: str) -> Optional[int]:
        v = env.get(name)
        if v is None or v == "":
            return None
        try:
            return int(v)
        except ValueError:
            raise DistributedError(f"${name} must be an integer; got {v!r}") from None

    kwargs = {
        "coordinator_address": cfg.coordinator_address or env.get(ENV_COORDINATOR) or None,
        "num_processes": cfg.num_processes if cfg.num_processes is not None
        else env_int(ENV_NUM_PROCESSES),
        "process_id": cfg.process_id if cfg.process_id is not None else env_int(ENV_PROCESS_ID),
        "initialization_timeout": cfg.initialization_timeout,
    }
    n, i = kwargs["num_processes"], kwargs["process_id"]
    if n is not None and i is not None and not 0 <= i < n:
        raise DistributedError(f"process id {i} is not in 0..{n - 1} (num_processes {n})")
    return kwargs


def initialize(cfg: DistributedConfig, environ: Optional[Mapping[str, str]] = None) -> bool:
    """Call jax.distributed.initialize when cfg.enabled; must run before any other JAX call
    (device listing, array creation). Returns whether it initialised."""
    if not cfg.enabled:
        return False

    kwargs = initialize_kwargs(cfg, environ)
    try:
        jax.distributed.initialize(**kwargs)
    except ValueError as e:  # JAX: "coordinator_address should be defined." etc.
        raise DistributedError(
            f"jax.distributed.initialize failed: {e} No supported cluster was detected; give "
            f"--distributed.coordinator_address HOST:PORT --distributed.num_processes N "
            f"--distributed.process_id I (or ${ENV_COORDINATOR}, ${ENV_NUM_PROCESSES}, "
            f"${ENV_PROCESS_ID}).") from None
    return True


def is_main_process() -> bool:
    """Process 0: the one that writes logs, previews, metrics and config files."""
    return jax.process_index() == 0


def agree_any(*flags: bool) -> tuple[bool, ...]:
    """Each flag OR-ed over all processes (identity with one process).

    Host-side decisions that lead into collectives (saving a checkpoint: orbax synchronises
    the processes; stopping after a signal) must be the same on every process, or one
    process waits forever in a collective the others never enter. Wall clocks and signals
    differ between hosts, so such decisions are combined here: one tiny all-gather.
    """
    if jax.process_count() == 1:
        return tuple(bool(f) for f in flags)

    local = np.asarray(flags, np.int32)
    everyone = np.asarray(multihost_utils.process_allgather(local))  # [processes, len(flags)]
    return tuple(bool(v) for v in everyone.reshape(-1, len(flags)).any(axis=0))
