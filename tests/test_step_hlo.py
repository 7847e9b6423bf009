"""The compiled training step's HLO: no convolution on the slow paths the engine rewrites away.

These check the program XLA actually runs (after optimisation), not the Python that builds it,
so a change in a layer, a loss or the step that brings a slow convolution back fails here.

- Grouped convolutions (feature_group_count or batch_group_count > 1): none of SpecGAN's layers
  is grouped. One appears when a kernel gradient is taken per example, e.g. by differentiating
  the gradient penalty computed under vmap(grad): XLA then computes B kernels with a
  feature_group_count=B convolution and sums them, instead of one batch-wide kernel gradient.
- lhs-dilated convolutions (transposed convs, input gradients of strided convs): XLA:CPU runs
  them on slow generic code; "phase" and "hybrid" exist to avoid them in the forward pass and in
  every derivative, the gradient penalty's double backward included.
- Convolutions handed to YNNPACK (jaxlib 0.10's XLA:CPU default, "__ynn_fusion" custom
  fusions): on this model's shapes they ran the whole step at 1.6x the time of XLA's own
  convolutions, so the engine compiles with the YNNPACK fusions off (engine.compile).
"""

import re

import jax
import jax.numpy as jnp
import pytest

from specgan_jax.config import LossConfig, ModelConfig, OptimConfig
from specgan_jax.engine import compile as engine_compile
from specgan_jax.engine import losses
from specgan_jax.engine import step as step_module
from specgan_jax.engine.models import Discriminator, init_models
from specgan_jax.engine.step import Draws, create_train_state, make_train_fns


def compiled_step_hlo(impl: str, use_batchnorm: bool, batch: int = 2, n_critic: int = 2,
                      dim: int = 2) -> str:
    mc = ModelConfig(dim=dim, conv_impl=impl, use_batchnorm=use_batchnorm)
    lc, oc = LossConfig(loss="wgan-gp", n_critic=n_critic), OptimConfig()
    fns = make_train_fns(mc, lc, oc, batch)
    state = jax.eval_shape(lambda: create_train_state(mc, lc, oc, jax.random.key(0)))
    f = jax.ShapeDtypeStruct
    draws = Draws(real=f((n_critic, batch, 128, 128, 1), jnp.float32),
                  z_d=f((n_critic, batch, mc.latent_dim), jnp.float32),
                  alpha=f((n_critic, batch), jnp.float32),
                  label_u=f((n_critic, 2, batch), jnp.float32),
                  z_g=f((batch, mc.latent_dim), jnp.float32))
    return fns.iteration.lower(state, draws).compile().as_text()


def convolutions(hlo: str) -> list[str]:
    return [line.strip() for line in hlo.splitlines() if re.search(r"\bconvolution\(", line)]


@pytest.mark.parametrize("impl,bn", [("hybrid", False), ("phase", False), ("phase", True)])
def test_step_has_no_slow_path_convolutions(impl, bn):
    convs = convolutions(compiled_step_hlo(impl, bn))
    # D forward, its input gradient, the GP's double backward, G forward and backward: a step
    # without convolutions would mean this parser no longer sees them
    assert len(convs) >= 20, len(convs)
    grouped = [c for c in convs if re.search(r"(feature|batch)_group_count=(?!1\b)\d+", c)]
    assert not grouped, "grouped convolution (a per-example kernel gradient?):\n" + grouped[0]
    dilated = [c for c in convs if "lhs_dilate" in c]
    assert not dilated, "lhs-dilated convolution:\n" + dilated[0]


def test_detector_sees_slow_path_convolutions():
    """The checks above can fail: the textbook formulation has lhs-dilated convolutions."""
    convs = convolutions(compiled_step_hlo("xla", False))
    assert any("lhs_dilate" in c for c in convs)


def test_detector_sees_per_example_kernel_gradients():
    """...and differentiating a vmap(grad) gradient penalty gives grouped convolutions."""
    mc = ModelConfig(dim=2, conv_impl="hybrid")
    d_params = init_models(mc, jax.random.key(0))[1]["params"]
    d_apply = lambda p, x: Discriminator(mc).apply({"params": p}, x)  # noqa: E731
    x = jnp.zeros((2, 128, 128, 1))
    gp = lambda p: losses.gradient_penalty(d_apply, p, x, x, jnp.zeros(2), per_example=True)  # noqa: E731
    convs = convolutions(jax.jit(jax.grad(gp)).lower(d_params).compile().as_text())
    assert any(re.search(r"feature_group_count=(?!1\b)\d+", c) for c in convs)


def ynn_convolutions(hlo: str) -> list[str]:
    """The YNNPACK fusions ("__ynn_fusion" custom fusions) whose fused computation holds a
    convolution."""
    bodies, name = {}, None
    for line in hlo.splitlines():  # computations: "%name (...) -> ... {" ... "}"
        m = re.match(r"(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if m:
            name, bodies[m.group(1)] = m.group(1), []
        elif name is not None:
            bodies[name].append(line)
    found = []
    for line in hlo.splitlines():
        called = re.search(r"calls=%?([\w.\-]+)", line)
        if "__ynn_fusion" in line and called and any(
                re.search(r"\bconvolution\(", b) for b in bodies.get(called.group(1), [])):
            found.append(line.strip())
    return found


# YNNPACK takes a convolution only past some size and channel count (XLA's cost model): at dim 2
# it takes none, so these two tests compile (never run) the step at dim 8.
@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an XLA:CPU option")
def test_step_convolutions_are_xla_own_on_cpu(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    # the option must be known to this jaxlib: without it the CPU step runs 1.6x slower
    assert engine_compile.compiler_options() == engine_compile.CPU_OPTIONS
    hlo = compiled_step_hlo("hybrid", False, dim=8, batch=4)
    assert len(convolutions(hlo)) >= 20
    ynn = ynn_convolutions(hlo)
    assert not ynn, "a convolution handed to YNNPACK in the step:\n" + ynn[0]


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an XLA:CPU option")
def test_detector_sees_ynn_convolutions(monkeypatch):
    """The check above can fail: the same step compiled with XLA's default options hands
    convolutions to YNNPACK, as "__ynn_fusion" custom fusions."""
    monkeypatch.setattr(step_module, "jit", jax.jit)
    hlo = compiled_step_hlo("hybrid", False, dim=8, batch=4)
    assert len(ynn_convolutions(hlo)) >= 5


def test_user_xla_flags_and_other_backends_keep_xla_defaults():
    """A user's own XLA_FLAGS setting of the option wins; accelerators get no CPU options."""
    flags = f"--{engine_compile.YNN_OPTION}=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"
    assert engine_compile._options_for("cpu", flags) is None
    assert engine_compile._options_for("gpu", "") is None
    assert engine_compile._options_for("tpu", "") is None
