"""Step throughput of the JAX engine against the PyTorch reference, measured side by side.

One run, one device, one config: the same model size, batch, n_critic, precision (fp32, or
bf16 on both sides) and real data already on the device for both frameworks. Each variant is
warmed up (compilation excluded and reported separately), then timed as the median over
`repeats` repeats of `iters` full iterations (n_critic critic updates + 1 generator update,
WGAN-GP), with a device sync at the end of each repeat. The repeats alternate between the
variants (round r times every variant once), so that a drift in the machine's load or clock
over the run falls on every variant alike and the ratios compare like with like.

Variants:
  jax_step       the jitted `TrainFns.step` called once per iteration (what training uses on CPU)
  jax_chunk      `TrainFns.chunk`: `iters` iterations inside one jitted lax.scan (one host call)
  torch_eager    specgan_torch_ref.train_iteration (cudnn.benchmark on for CUDA)
  torch_compile_g   the same, with G and D compiled by torch.compile for the generator update
                 only: the critic update needs a double backward (the gradient penalty), which
                 torch.compile/AOTAutograd cannot compile, so it stays eager
  torch_cuda_graph  not attempted: the critic's double backward and the optimizers' state
                 updates would need a hand-written static-graph capture; reported as skipped

FLOPs are analytic model FLOPs (2 x multiply-adds of the original layers, not of the phase
rewrite, which executes 36/25 of G's taps), counted with the usual convention backward = 2 x
forward; see `iteration_flops`. MFU is given only where the device's peak is known.
"""

from __future__ import annotations

import dataclasses
import platform
import statistics
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from specgan_jax.config import LossConfig, ModelConfig, OptimConfig
from specgan_jax.config.model import STRIDE_LAYERS, shape_message
from specgan_jax.engine.step import create_train_state, make_train_fns

# Dense peak FLOP/s by device kind and precision (vendor datasheets, SXM parts, no sparsity).
# fp32 matmuls/convs on Hopper run on TF32 tensor cores when the framework allows TF32.
PEAKS = {
    "H100": {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12},
    "H200": {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12},
}


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    dim: int = 16  # model width d (64 = the original; --full)
    batch: int = 16  # batch size (64 = the original; --full)
    n_critic: int = 5
    iters: int = 2  # iterations per timed repeat (and the chunk length)
    repeats: int = 5  # timed repeats (rounds over the variants); the median is reported
    torch_compile: bool = True  # also time the torch.compile variant (slow to compile on CPU)
    seed: int = 0
    # "fp32" on both sides, or "bf16": JAX model.precision="bf16" against PyTorch under
    # torch.autocast(bfloat16) (both: bf16 convolutions, fp32 parameters and optimizer)
    precision: str = "fp32"
    # the example shape, frequency bins x time frames (--shape F T; multiples of 32, as the
    # model's n_freq x n_time)
    n_freq: int = 128
    n_time: int = 128

    def __post_init__(self):
        bad = shape_message(self.n_freq, self.n_time, "--shape")
        if bad:
            raise ValueError(bad)


def model_flops(dim: int, latent: int = 100, k: int = 5, n_freq: int = 128,
                n_time: int = 128) -> tuple[float, float]:
    """Forward FLOPs per sample of (G, D) at width dim and example shape n_freq x n_time:
    2 x multiply-adds of every layer. G starts from an (n_freq / 32) x (n_time / 32) seed and
    doubles both axes 5 times; D halves them 5 times back to it."""
    h, w = n_freq >> STRIDE_LAYERS, n_time >> STRIDE_LAYERS
    g = latent * h * w * 16 * dim  # z_project dense
    chans = [16 * dim, 8 * dim, 4 * dim, 2 * dim, dim, 1]
    for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
        # transposed conv: K^2 taps per input pixel
        g += (h << i) * (w << i) * cin * cout * k * k
    d = 0
    dch = [1, dim, 2 * dim, 4 * dim, 8 * dim, 16 * dim]
    for i, (cin, cout) in enumerate(zip(dch[:-1], dch[1:])):
        # strided conv: K^2 taps per output pixel
        d += (n_freq >> (i + 1)) * (n_time >> (i + 1)) * cin * cout * k * k
    d += h * w * 16 * dim  # output dense
    return 2.0 * g, 2.0 * d


def iteration_flops(dim: int, batch: int, n_critic: int, n_freq: int = 128,
                    n_time: int = 128) -> float:
    """Model FLOPs of one WGAN-GP iteration (backward = 2 x forward):

    critic update: G forward (F_G); D forward on real and fake (2 F_D) and their parameter
      backward (4 F_D); gradient penalty: D forward on the interpolates (F_D), the input gradient
      (F_D), and the backward through both for the parameter gradient (2 x 2 F_D) -> 12 F_D.
    generator update: G forward + D forward (F_G + F_D), backward through D to its input (F_D)
      and through G (2 F_G) -> 3 F_G + 2 F_D.
    """
    fg, fd = model_flops(dim, n_freq=n_freq, n_time=n_time)
    return batch * (n_critic * (fg + 12 * fd) + 3 * fg + 2 * fd)


def _timed(run: Callable[[], None]) -> float:
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


def alternate(timers: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """The median seconds of each warmed-up timer over `repeats` rounds, each round running
    every timer once in turn."""
    times = {name: [] for name in timers}
    for _ in range(repeats):
        for name, run in timers.items():
            times[name].append(_timed(run))
    return {name: statistics.median(t) for name, t in times.items()}


def device_string() -> str:
    d = jax.devices()[0]
    kind = getattr(d, "device_kind", "") or ""
    if d.platform == "cpu":
        import os
        return f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    return f"{d.platform} ({kind})"


def _peak(precision: str) -> Optional[float]:
    d = jax.devices()[0]
    if d.platform != "gpu":
        return None
    kind = getattr(d, "device_kind", "")
    for name, peaks in PEAKS.items():
        if name in kind:
            return peaks.get(precision)
    return None


def bench_jax(cfg: BenchConfig, data: np.ndarray) -> tuple[dict, dict]:
    """(timers of `iters` iterations, each warmed up; their report entries, compile times)."""
    mc = ModelConfig(dim=cfg.dim, precision=cfg.precision, n_freq=cfg.n_freq,
                     n_time=cfg.n_time)
    lc, oc = LossConfig(n_critic=cfg.n_critic), OptimConfig()

    def sampler(x, key, n_critic, batch):
        return x[jax.random.randint(key, (n_critic, batch), 0, x.shape[0])]

    fns = make_train_fns(mc, lc, oc, cfg.batch, sampler)
    x = jax.device_put(jnp.asarray(data))  # the dataset lives on the device
    key = jax.random.key(cfg.seed)
    state = [create_train_state(mc, lc, oc, jax.random.key(cfg.seed))]

    def one_step():
        state[0], m = fns.step(state[0], x, key)
        return m

    compile_step = _timed(lambda: jax.block_until_ready(one_step()))

    def steps():
        for _ in range(cfg.iters):
            m = one_step()
        jax.block_until_ready(m)

    steps()  # warm-up

    def chunk():
        state[0], m = fns.chunk(state[0], x, key, cfg.iters)
        jax.block_until_ready(m)
        # no recompiles: each repeat times the same two programs (a microsecond's check)
        assert fns.step._cache_size() == 1 and fns.chunk._cache_size() == 1

    compile_chunk = _timed(chunk)
    chunk()  # warm-up
    timers = {"jax_step": steps, "jax_chunk": chunk}
    return timers, {
        "jax_step": {"compile_s": compile_step},
        "jax_chunk": {"compile_s": compile_chunk,
                      "note": f"{cfg.iters} iterations per host call (lax.scan)"},
    }


def bench_torch(cfg: BenchConfig, data: np.ndarray) -> tuple[dict, dict]:
    """(timers of `iters` iterations, each warmed up; their report entries and the skipped
    variants)."""
    import torch

    from specgan_torch_ref.models import SpecGANDiscriminator, SpecGANGenerator
    from specgan_torch_ref.train_step import make_optimizer, train_iteration

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg.seed)
    x = torch.from_numpy(data.transpose(0, 3, 1, 2).copy()).to(dev)  # [N,1,F,T] on the device
    b, nc = cfg.batch, cfg.n_critic

    def make():
        shape = {"n_freq": cfg.n_freq, "n_time": cfg.n_time}
        g = SpecGANGenerator(dim=cfg.dim, **shape).to(dev)
        d = SpecGANDiscriminator(dim=cfg.dim, **shape).to(dev)
        return g, d, make_optimizer(g.parameters()), make_optimizer(d.parameters())

    def iteration(g, d, og, od):
        idx = torch.randint(0, x.shape[0], (nc, b), device=dev)
        u = lambda *s: torch.rand(*s, device=dev)  # noqa: E731
        with _autocast(cfg, dev):
            train_iteration(g, d, og, od, x[idx], u(nc, b, 100) * 2 - 1, u(nc, b),
                            u(nc, 2, b), u(b, 100) * 2 - 1)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    models = make()

    def eager():
        for _ in range(cfg.iters):
            iteration(*models)
        sync()

    timers = {"torch_eager": eager}
    out = {"torch_eager": {"warmup_s": _timed(eager)}}  # warm-up (cudnn autotuning on GPU)
    if cfg.torch_compile:
        compiled, out["torch_compile_g"] = _bench_torch_compile(cfg, x, dev, make, sync)
        if compiled is not None:
            timers["torch_compile_g"] = compiled
    else:
        out["torch_compile_g"] = {"skipped": "--no-torch-compile"}
    out["torch_cuda_graph"] = {"skipped": "not attempted: the critic update's double backward "
                               "and optimizer state would need a hand-made static capture"}
    return timers, out


def _autocast(cfg: BenchConfig, dev):
    """torch's mixed precision for --precision bf16 (a no-op context for fp32)."""
    import contextlib

    import torch

    if cfg.precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)


def _bench_torch_compile(cfg, x, dev, make, sync) -> tuple[Optional[Callable], dict]:
    """Critic updates eager (double backward cannot be compiled), G update through
    torch.compile'd modules: (the warmed-up timer or None when compiling failed, its entry)."""
    import torch

    from specgan_torch_ref.losses import GANLoss

    g, d, og, od = make()
    gc, dc = torch.compile(g), torch.compile(d)
    b, nc = cfg.batch, cfg.n_critic

    def iteration():
        for _ in range(nc):
            od.zero_grad()
            real = x[torch.randint(0, x.shape[0], (b,), device=dev)]
            with torch.no_grad():
                fake = g(torch.rand(b, 100, device=dev) * 2 - 1)
            _, loss, _ = GANLoss.wgan_gp_loss(d(real), d(fake), d, real, fake)
            loss.backward()
            od.step()
        og.zero_grad()
        loss = -dc(gc(torch.rand(b, 100, device=dev) * 2 - 1)).mean()
        loss.backward()
        og.step()

    def run():
        with _autocast(cfg, dev):
            for _ in range(cfg.iters):
                iteration()
        sync()

    try:
        compile_s = _timed(run)
        run()  # warm-up
    except Exception as e:  # report, do not hide: the JSON says why there is no number
        return None, {"failed": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    return run, {"compile_s": compile_s,
                 "note": "critic updates eager (double backward cannot be compiled)"}


def run(cfg: BenchConfig) -> dict:
    import torch

    rng = np.random.default_rng(cfg.seed)
    shape = (max(4 * cfg.batch, 64), cfg.n_freq, cfg.n_time, 1)
    data = rng.uniform(-1, 1, shape).astype(np.float32)
    jax_timers, jax_out = bench_jax(cfg, data)
    torch_timers, torch_out = bench_torch(cfg, data)
    results = {**jax_out, **torch_out}
    for name, t in alternate({**jax_timers, **torch_timers}, cfg.repeats).items():
        results[name]["s_per_iter"] = t / cfg.iters
    flops = iteration_flops(cfg.dim, cfg.batch, cfg.n_critic, cfg.n_freq, cfg.n_time)
    peak = _peak("bf16" if cfg.precision == "bf16" else "tf32")
    for r in results.values():
        if "s_per_iter" in r:
            r["iters_per_s"] = 1.0 / r["s_per_iter"]
            r["samples_per_s"] = cfg.batch / r["s_per_iter"]
            r["flops_per_s"] = flops / r["s_per_iter"]
            r["mfu"] = r["flops_per_s"] / peak if peak else None
    ratios = {}
    for name in ("torch_eager", "torch_compile_g"):
        for mine in ("jax_step", "jax_chunk"):
            if "iters_per_s" in results[name]:
                key = f"{mine.replace('jax_step', 'jax')}_over_{name}"
                ratios[key] = results[mine]["iters_per_s"] / results[name]["iters_per_s"]
    return {
        "device": device_string(),
        "config": dataclasses.asdict(cfg),
        "precision": cfg.precision,
        "shape": [cfg.n_freq, cfg.n_time],  # frequency bins x time frames of each example
        "versions": {"jax": jax.__version__, "jaxlib": jax.lib.__version__ if hasattr(
            jax.lib, "__version__") else None, "torch": torch.__version__,
            "python": platform.python_version()},
        "flops_per_iter": flops,
        "peak_flops": peak,
        "results": results,
        "ratios": ratios,
    }


def markdown(report: dict) -> str:
    c = report["config"]
    f, t = report["shape"]
    lines = [f"device: {report['device']} | {f} x {t} (frequency x time), dim {c['dim']}, "
             f"batch {c['batch']}, "
             f"n_critic {c['n_critic']}, {report['precision']} | model GFLOP/iteration "
             f"{report['flops_per_iter'] / 1e9:.2f}",
             "", "| variant | s/iteration | iterations/s | samples/s | GFLOP/s | MFU | compile s |",
             "|---|---|---|---|---|---|---|"]
    for name, r in report["results"].items():
        if "s_per_iter" not in r:
            lines.append(f"| {name} | {r.get('skipped') or r.get('failed')} |||||")
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        comp = r.get("compile_s")
        lines.append(f"| {name} | {r['s_per_iter']:.3f} | {r['iters_per_s']:.2f} | "
                     f"{r['samples_per_s']:.1f} | {r['flops_per_s'] / 1e9:.1f} | {mfu} | "
                     f"{'' if comp is None else f'{comp:.1f}'} |")
    lines += ["", "ratios (iterations/s, > 1: JAX faster): " + ", ".join(
        f"{k} {v:.2f}x" for k, v in report["ratios"].items())]
    return "\n".join(lines)
