"""Spectral normalisation of the critic (engine/spectral_norm.py): the power-iteration sigma
against the SVD, the critic's effective kernels, the option from the command line, and the
option off leaving the critic as it was."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from specgan_jax.cli import train as train_cli
from specgan_jax.config import ModelConfig
from specgan_jax.engine.models import Discriminator
from specgan_jax.engine.spectral_norm import normalize_kernel, spectral_sigma
from specgan_jax.errors import ConfigError

N_DEFAULT = ModelConfig().sn_iterations
# Shapes of M [out, rest]: a 5x5 conv's [out, 25 in], a wide one, and the dense `output` [1, F].
SHAPES = [(8, 25), (16, 100), (64, 200), (4, 1600), (1, 256)]
# Gaussian matrices, 20 per shape (seed 0), at the default 10 iterations: sigma underestimated
# by 1.3e-5 .. 8.1e-2 relative (the largest on (8, 25), whose top two singular values are
# close); never over. Bounded at 0.15, about 2x the worst seen.
DEFAULT_N_REL_ERR = 0.15


def svd_sigma(m) -> float:
    return float(np.linalg.svd(np.asarray(m, np.float64), compute_uv=False)[0])


def x64_sigma(m, n):
    with jax.enable_x64(True):
        return float(spectral_sigma(jnp.asarray(m, jnp.float64), n))


@pytest.mark.parametrize("shape", SHAPES)
def test_sigma_against_the_svd_at_the_default_iterations(shape):
    rs = np.random.default_rng(0)
    for _ in range(20):
        m = rs.normal(size=shape)
        want, got = svd_sigma(m), x64_sigma(m, N_DEFAULT)
        # u^T M v of unit vectors is at most sigma_1: power iteration only underestimates
        assert got <= want * (1 + 1e-12)
        assert (want - got) / want <= DEFAULT_N_REL_ERR
        if shape[0] == 1:  # one row: u = 1, v = m / ||m||, sigma = ||m|| exactly
            assert got == pytest.approx(want, rel=1e-12)


def test_sigma_converges_to_the_svd():
    """A known spectrum with sigma_2 / sigma_1 = 0.5: the error shrinks as 0.25^n, so 10
    iterations already give ~1e-6 and 40 give float64 precision; 1 iteration does not."""
    rs = np.random.default_rng(1)
    q1, _ = np.linalg.qr(rs.normal(size=(16, 16)))
    q2, _ = np.linalg.qr(rs.normal(size=(40, 16)))
    s = np.array([3.0, 1.5] + list(np.linspace(1.0, 0.1, 14)))
    m = q1 @ np.diag(s) @ q2.T
    assert svd_sigma(m) == pytest.approx(3.0, rel=1e-12)
    assert abs(x64_sigma(m, 1) - 3.0) / 3.0 > 1e-3
    assert abs(x64_sigma(m, 10) - 3.0) / 3.0 < 1e-4
    assert x64_sigma(m, 40) == pytest.approx(3.0, rel=1e-12)


def test_sigma_gradient_is_u_v_transpose():
    """u, v held constant: d sigma / dM = u v^T, whose inner product with M is sigma itself."""
    m = jnp.asarray(np.random.default_rng(2).normal(size=(6, 20)), jnp.float32)
    g = jax.grad(lambda a: spectral_sigma(a, N_DEFAULT))(m)
    assert np.linalg.matrix_rank(np.asarray(g, np.float64), tol=1e-5) == 1
    assert float(jnp.sum(g * m)) == pytest.approx(float(spectral_sigma(m, N_DEFAULT)), rel=1e-5)


def critic(cfg, *args):
    d = Discriminator(cfg)
    return d, d.init(jax.random.PRNGKey(0), *args)


def kernels(params) -> dict:
    return {jax.tree_util.keystr(p): k for p, k in jax.tree_util.tree_flatten_with_path(params)[0]
            if jax.tree_util.keystr(p).endswith("['kernel']")}


def with_kernels(params, new: dict):
    return jax.tree_util.tree_map_with_path(
        lambda p, v: new.get(jax.tree_util.keystr(p), v), params)


@pytest.mark.parametrize("conditional", [False, True])
def test_the_critic_uses_kernels_of_spectral_norm_one(conditional):
    x = np.random.default_rng(3).uniform(-1, 1, (2, 128, 128, 1)).astype(np.float32)
    y = np.array([0, 1], np.int32)
    kw = dict(dim=4, conditional=conditional, n_classes=2 if conditional else 0)
    plain_cfg, sn_cfg = ModelConfig(**kw), ModelConfig(**kw, spectral_norm=True)
    args = (x, y) if conditional else (x,)
    d_plain, variables = critic(plain_cfg, *args)
    d_sn = Discriminator(sn_cfg)
    # the same parameters, names and shapes with the option on
    assert jax.tree_util.tree_structure(d_sn.init(jax.random.PRNGKey(0), *args)) == \
        jax.tree_util.tree_structure(variables)
    ks = kernels(variables["params"])
    assert len(ks) == 6  # five downconvs and `output`; class_proj is an embedding, untouched
    normed = {name: normalize_kernel(k, N_DEFAULT) for name, k in ks.items()}
    for name, k in normed.items():
        k = np.asarray(k, np.float64)
        # measured at dim 4 and 16 (PRNGKey(0)): 1.0 .. 1.036, sigma underestimated as above
        norm = svd_sigma(k.reshape(-1, k.shape[-1]))
        assert 1 - 1e-6 <= norm <= 1 / (1 - DEFAULT_N_REL_ERR), name
    sn_params = with_kernels(variables["params"], normed)
    want = d_plain.apply({"params": sn_params}, *args)
    got = d_sn.apply(variables, *args)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # and normalisation really changed the critic (Glorot kernels are not of norm 1)
    assert float(jnp.max(jnp.abs(got - d_plain.apply(variables, *args)))) > 1e-3


def test_option_off_is_the_plain_critic():
    """spectral_norm False: the critic is the same program as before the option existed,
    whatever sn_iterations says (its plain nn.Dense output and convs, the same logits)."""
    x = np.random.default_rng(4).uniform(-1, 1, (2, 128, 128, 1)).astype(np.float32)
    d, variables = critic(ModelConfig(dim=4), x)
    other = Discriminator(ModelConfig(dim=4, sn_iterations=3))
    np.testing.assert_array_equal(other.apply(variables, x), d.apply(variables, x))
    jaxpr = str(jax.make_jaxpr(lambda v: other.apply(v, x))(variables))
    assert "sqrt" not in jaxpr  # no power iteration (its normalize is the only sqrt)
    sn_jaxpr = str(jax.make_jaxpr(
        lambda v: Discriminator(ModelConfig(dim=4, spectral_norm=True)).apply(v, x))(variables))
    assert "sqrt" in sn_jaxpr


def test_the_option_reaches_the_model_from_the_command_line():
    parser = train_cli.build_parser()
    cfg, _ = train_cli.resolve_config(parser.parse_args(
        ["--model.spectral_norm", "--model.sn_iterations", "3", "--loss.loss", "hinge"]))
    assert cfg.model.spectral_norm is True and cfg.model.sn_iterations == 3
    default, _ = train_cli.resolve_config(parser.parse_args([]))
    assert default.model.spectral_norm is False and default.model.sn_iterations == N_DEFAULT
    with pytest.raises(ConfigError, match="model.sn_iterations must be >= 1"):
        train_cli.resolve_config(parser.parse_args(["--model.sn_iterations", "0"]))
