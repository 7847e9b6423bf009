"""How the engine's functions are compiled: `jax.jit` with XLA options chosen per backend.

On the CPU, XLA (jaxlib 0.10) hands every convolution to YNNPACK by default ("__ynn_fusion"
custom fusions, `xla_cpu_experimental_ynn_fusion_type`). At this model's shapes YNNPACK runs the
kernel-gradient convolutions of the high-resolution layers at 6-28 GFLOP/s, where XLA's own
(Eigen) convolutions reach 55-120 and PyTorch's oneDNN 50-90; at 32x32 and 64x64 its forward
convolutions are slower than Eigen's too. With the YNNPACK fusions off, the whole training step
takes about 0.6x the time (docs/performance.md has the measurements and the commands).

`jit` is `jax.jit` with those options. They are set per compiled function, not through the
process-wide XLA_FLAGS, so importing this package changes nothing else in the process. A user
who sets `xla_cpu_experimental_ynn_fusion_type` in XLA_FLAGS keeps their choice; a jaxlib that
does not know the option compiles with its defaults (with a warning), since the option only
changes speed, never results beyond floating-point rounding.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Optional

import jax
import jax.numpy as jnp

YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
# The empty list: no operation is handed to YNNPACK; XLA:CPU emits its own kernels (Eigen for
# convolutions and dots).
CPU_OPTIONS = {YNN_OPTION: ""}


@functools.lru_cache(maxsize=None)
def _options_for(backend: str, xla_flags: str) -> Optional[dict]:
    if backend != "cpu" or YNN_OPTION in xla_flags:
        return None
    try:  # a jaxlib without the option rejects it at compile time (INVALID_ARGUMENT)
        jax.jit(lambda x: x + 1, compiler_options=CPU_OPTIONS).lower(jnp.zeros(())).compile()
    except Exception as e:  # noqa: BLE001 - any rejection means: compile with the defaults
        warnings.warn(f"this jaxlib does not accept the XLA option {YNN_OPTION} "
                      f"({type(e).__name__}); CPU convolutions keep XLA's default library, "
                      "which was measured slower for this model", stacklevel=3)
        return None
    return dict(CPU_OPTIONS)


def compiler_options() -> Optional[dict]:
    """The XLA options the engine compiles with on the default backend (None: XLA's defaults)."""
    return _options_for(jax.default_backend(), os.environ.get("XLA_FLAGS", ""))


def jit(fun=None, **kwargs):
    """`jax.jit(fun, **kwargs)` compiled with `compiler_options()`; usable as a decorator."""
    if fun is None:
        return functools.partial(jit, **kwargs)
    return jax.jit(fun, compiler_options=compiler_options(), **kwargs)
