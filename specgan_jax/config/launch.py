"""Options outside a run's config.json: how this process is launched."""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """Multi-host training: one process per host, joined by jax.distributed.initialize().

    With `enabled`, jax.distributed.initialize() runs before any other JAX call and the
    training mesh spans every process's devices (docs/multi-device.md).
    Start the same command once per process (host). A field left unset here comes from the
    environment: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID; whatever is still
    unset JAX detects on clusters it knows (Slurm, Open MPI, Cloud TPU, Kubernetes).
    These are launch options, not part of a run: they are not saved in config.json, so a run
    may be resumed on another number of hosts.
    """

    enabled: bool = False  # call jax.distributed.initialize (one process per host)
    # "HOST:PORT" of process 0, reachable from every process; None: $JAX_COORDINATOR_ADDRESS,
    # else auto-detected on a known cluster.
    coordinator_address: Optional[str] = None
    num_processes: Optional[int] = None  # processes in all; None: $JAX_NUM_PROCESSES or detected
    # This process, 0..num_processes-1 (0 writes the files); None: $JAX_PROCESS_ID or detected.
    process_id: Optional[int] = None
    initialization_timeout: int = 300  # seconds to wait for all processes to connect

    def __post_init__(self):
        if self.num_processes is not None and self.num_processes < 1:
            raise ValueError(f"distributed.num_processes must be >= 1; got {self.num_processes}")
        if self.process_id is not None and self.process_id < 0:
            raise ValueError(f"distributed.process_id must be >= 0; got {self.process_id}")
        if (self.process_id is not None and self.num_processes is not None
                and self.process_id >= self.num_processes):
            raise ValueError(f"distributed.process_id ({self.process_id}) must be < "
                             f"distributed.num_processes ({self.num_processes})")
        if self.coordinator_address is not None and ":" not in self.coordinator_address:
            raise ValueError("distributed.coordinator_address must be HOST:PORT; got "
                             f"{self.coordinator_address!r}")
        if self.initialization_timeout < 1:
            raise ValueError("distributed.initialization_timeout must be >= 1 second")


@dataclasses.dataclass(frozen=True)
class LaunchConfig:
    """Options of how this process is launched, as CLI flags only (not in config.json or
    --config files: they do not change what a run computes)."""

    distributed: DistributedConfig = dataclasses.field(default_factory=DistributedConfig)


# The no-argument demo run (scripts/train.py without --data): a small model that trains in
# minutes on a 2-core CPU; fields not given by --config/flags take these values. Why these
# departures from the SpecGAN defaults (upsample, learning rates, batch): docs/demo.md.
