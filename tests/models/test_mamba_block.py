"""The pure-PyTorch Mamba block: mamba_ssm's parameters, initialisation and arithmetic; its
pieces, optional filters and SSM norm; its one-slot readout; the backend switch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqbench.errors import ConfigError
from seqbench.models.layers import kernels
from seqbench.models.layers.mamba import Mamba
from seqbench.models.layers.selective_scan import selective_scan
from tests.models.test_selective_scan import naive_scan

#: model-reference §2.1, d = 64, d_state = 32, d_conv = 4, expand = 2 (d_inner 128, dt_rank 4).
REFERENCE_SHAPES = {
    "A_log": (128, 32),
    "D": (128,),
    "in_proj.weight": (256, 64),
    "conv1d.weight": (128, 1, 4),
    "conv1d.bias": (128,),
    "x_proj.weight": (68, 128),
    "dt_proj.weight": (128, 4),
    "dt_proj.bias": (128,),
    "out_proj.weight": (64, 128),
}


def block(seed: int = 0, **kwargs: object) -> Mamba:
    torch.manual_seed(seed)
    return Mamba(64, **{"d_state": 32, "d_conv": 4, "expand": 2, **kwargs})  # type: ignore[arg-type]


def test_parameter_names_shapes_and_the_38784_total() -> None:
    model = block()
    assert {n: tuple(p.shape) for n, p in model.named_parameters()} == REFERENCE_SHAPES
    assert sum(p.numel() for p in model.parameters()) == 38_784


def test_default_initialisation_is_mamba_ssms() -> None:
    model = block()
    expected_a = torch.log(torch.arange(1, 33, dtype=torch.float32)).expand(128, 32)
    torch.testing.assert_close(model.A_log.detach(), expected_a)
    assert torch.equal(model.D.detach(), torch.ones(128))
    dt = F.softplus(model.dt_proj.bias.detach())  # bias = softplus⁻¹(dt), dt ∈ [1e-3, 1e-1]
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    bound = 4**-0.5  # dt_proj.weight ~ U(±dt_rank^−½)
    assert (
        model.dt_proj.weight.abs().max() <= bound and model.dt_proj.weight.abs().max() > 0.9 * bound
    )
    assert model.dt_proj.bias._no_reinit and model.A_log._no_weight_decay  # mamba_ssm's flags


def test_forward_equals_the_reference_arithmetic_written_out() -> None:
    """§2.2 steps 1–6 by hand, the conv as an explicit sum over taps and the scan as a float64
    loop."""
    model = block(seed=1).double()
    h = torch.randn(3, 9, 64, dtype=torch.float64)
    with torch.no_grad():
        xz = h @ model.in_proj.weight.T
        x, z = xz[..., :128], xz[..., 128:]
        w, b = model.conv1d.weight[:, 0, :], model.conv1d.bias  # (128, 4)
        conv = torch.zeros_like(x)
        for t in range(9):
            for k in range(4):  # tap k reads slot t − 3 + k (zero before slot 0)
                if t - 3 + k >= 0:
                    conv[:, t] += w[:, k] * x[:, t - 3 + k]
        x = F.silu(conv + b)
        dbl = x @ model.x_proj.weight.T
        dt, B, C = dbl[..., :4], dbl[..., 4:36], dbl[..., 36:]
        delta = F.softplus(dt @ model.dt_proj.weight.T + model.dt_proj.bias)
        y = naive_scan(x, delta, -torch.exp(model.A_log), B, C, model.D)
        expected = (y * F.silu(z)) @ model.out_proj.weight.T
        ours = model(h)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-9)


def test_causal_conv_equals_an_explicit_convolution_and_is_causal() -> None:
    model = block(seed=2)
    x = torch.randn(2, 11, 128)
    with torch.no_grad():
        ours = model.conv(x)
        padded = F.pad(x.transpose(1, 2), (3, 0))  # 3 zeros on the left
        windows = padded.unfold(2, 4, 1)  # (B, C, L, 4): slots t−3 … t
        expected = F.silu((windows * model.conv1d.weight[:, 0, None, :]).sum(-1)
                          + model.conv1d.bias[:, None]).transpose(1, 2)  # fmt: skip
        torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
        changed = x.clone()
        changed[:, 6:] += 1.0
        torch.testing.assert_close(model.conv(changed)[:, :6], ours[:, :6], rtol=0, atol=0)


def test_pieces_compose_to_forward_and_filters_see_them() -> None:
    h = torch.randn(2, 7, 64)
    seen: dict[str, tuple[int, ...]] = {}

    def look(name: str) -> object:
        def identity(x: torch.Tensor) -> torch.Tensor:
            seen[name] = tuple(x.shape)
            return x

        return identity

    plain_block = block(seed=3)
    watched = block(seed=3, pre_activation=look("pre"), delta_filter=look("delta"))
    larger_delta = block(seed=3, delta_filter=lambda d: d + 3.0)  # faster decay, larger inputs
    shifted_block = block(seed=3, pre_activation=lambda u: u - 1.0)  # not the same after SiLU
    with torch.no_grad():
        x, z = plain_block.in_proj(h).chunk(2, dim=-1)
        x = plain_block.conv(x)
        dt, B, C = plain_block.project(x)
        y = selective_scan(x, plain_block.delta(dt), plain_block.A(), B, C, plain_block.D)
        by_hand = plain_block.out_proj(y * F.silu(z))
        plain = plain_block(h)
        observed = watched(h)
        changed = larger_delta(h)
        shifted = shifted_block(h)
        raw = F.conv1d(
            plain_block.in_proj(h).chunk(2, dim=-1)[0].transpose(1, 2), plain_block.conv1d.weight,
            plain_block.conv1d.bias, padding=3, groups=128,
        )[..., :7].transpose(1, 2)  # fmt: skip
        x_shifted = F.silu(raw - 1.0)
        dt, B, C = plain_block.project(x_shifted)
        y = selective_scan(x_shifted, plain_block.delta(dt), plain_block.A(), B, C, plain_block.D)
        expected = plain_block.out_proj(y * F.silu(z))
    torch.testing.assert_close(by_hand, plain, rtol=0, atol=0)
    torch.testing.assert_close(observed, plain, rtol=0, atol=0)
    assert seen == {"pre": (2, 7, 128), "delta": (2, 7, 128)}
    assert (changed - plain).abs().max() > 1e-3
    torch.testing.assert_close(shifted, expected, rtol=1e-6, atol=1e-6)
    assert (shifted - plain).abs().max() > 1e-3


def test_filters_are_not_submodules_and_keep_the_parameter_names() -> None:
    """A filter module with parameters passed in stays its owner's: the block's state dict is
    mamba_ssm's, whatever the filters."""
    owner = torch.nn.Linear(128, 128)
    filtered = block(seed=3, pre_activation=owner, delta_filter=owner)
    assert list(filtered.state_dict()) == list(block(seed=3).state_dict())
    assert filtered.filters.pre_activation is owner and filtered.filters.delta is owner


def test_ssm_norm_is_a_layernorm_of_y_before_the_gate() -> None:
    """M2Rec's block: out_proj(LayerNorm(y) ⊙ SiLU(z)), y the SSM output with its D term."""
    normed, plain = block(seed=7, ssm_norm=True), block(seed=7)
    assert list(normed.state_dict()) == [*plain.state_dict(), "norm.weight", "norm.bias"]
    for key, value in plain.state_dict().items():  # the same draws for the other weights
        assert torch.equal(normed.state_dict()[key], value), key
    with torch.no_grad():
        normed.norm.weight.uniform_(0.5, 1.5)
        normed.norm.bias.uniform_(-0.1, 0.1)
    h = torch.randn(3, 9, 64)
    with torch.no_grad():
        x, z = plain.in_proj(h).chunk(2, dim=-1)
        x = plain.conv(x)
        dt, B, C = plain.project(x)
        y = naive_scan(x, plain.delta(dt), plain.A(), B, C, plain.D).float()
        y = F.layer_norm(y, (128,), normed.norm.weight, normed.norm.bias, 1e-5)
        expected = plain.out_proj(y * F.silu(z))
        torch.testing.assert_close(normed(h), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "parts",
    [{}, {"ssm_norm": True}, {"pre_activation": torch.tanh, "delta_filter": torch.sin}],
    ids=["plain", "ssm_norm", "filters"],
)
def test_readout_equals_forward_at_the_slot(parts: dict[str, object]) -> None:
    model = block(seed=8, **parts)
    h = torch.randn(6, 11, 64, requires_grad=True)
    at = torch.tensor([10, 0, 4, 10, 7, 1])
    full = model(h)[torch.arange(6), at]
    one = model.readout(h, at)
    torch.testing.assert_close(one, full, rtol=1e-5, atol=1e-6)
    weights = torch.randn(6, 64)
    inputs = [h, *model.parameters()]
    for mine, theirs in zip(
        torch.autograd.grad((one * weights).sum(), inputs),
        torch.autograd.grad((full * weights).sum(), inputs),
        strict=True,
    ):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)


def test_state_dict_round_trips_between_blocks() -> None:
    one, other = block(seed=4), block(seed=5)
    other.load_state_dict(one.state_dict(), strict=True)
    h = torch.randn(2, 5, 64)
    with torch.no_grad():
        torch.testing.assert_close(other(h), one(h), rtol=0, atol=0)


def test_backend_resolution() -> None:
    assert kernels.resolve_backend("auto", "cpu", uses_kernels=True) == "torch"
    assert kernels.resolve_backend("mamba_ssm", "cuda", uses_kernels=False) == "torch"
    assert kernels.resolve_backend("torch", "cuda", uses_kernels=True) == "torch"
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        kernels.resolve_backend("mamba_ssm", "cpu", uses_kernels=True)
    with pytest.raises(ConfigError, match="expected one of auto, torch, mamba_ssm"):
        kernels.resolve_backend("triton", "cpu", uses_kernels=True)


@pytest.mark.skipif(kernels.kernels_available(), reason="the kernels are installed here")
def test_missing_kernels_fail_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"--no-build-isolation \"seqbench\[cuda\]\""):
        kernels.resolve_backend("mamba_ssm", "cuda", uses_kernels=True)
    assert kernels.resolve_backend("auto", "cuda", uses_kernels=True) == "torch"
    model = block()
    model.backend = "mamba_ssm"
    with pytest.raises(ConfigError, match="pip install"):
        model(torch.randn(1, 3, 64))


GPU_CASES = {  # mamba_inner_fn, then causal_conv1d_fn + selective_scan_fn with each optional part
    "fused": {},
    "delta_filter": {"delta_filter": lambda d: d * 0.5},
    "pre_activation": {"pre_activation": lambda u: u * 0.5},
    "ssm_norm": {"ssm_norm": True},
}


@pytest.mark.gpu
@pytest.mark.parametrize("case", sorted(GPU_CASES))
def test_kernels_match_the_torch_path_on_gpu(case: str) -> None:
    if not torch.cuda.is_available() or not kernels.kernels_available():
        pytest.skip("needs a CUDA GPU with mamba-ssm and causal-conv1d installed")
    model = block(seed=6, **GPU_CASES[case]).cuda()
    h = torch.randn(8, 50, 64, device="cuda", requires_grad=True)
    at = torch.randint(0, 50, (8,), device="cuda")
    outs, grads, readouts = [], [], []
    for backend in ("torch", "mamba_ssm"):
        model.backend = backend  # type: ignore[assignment]
        out = model(h)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), [h, *model.parameters()]))
        readouts.append(model.readout(h, at))
    assert math.isclose(0, float((outs[0] - outs[1]).abs().max()), abs_tol=1e-4)
    assert math.isclose(0, float((readouts[0] - readouts[1]).abs().max()), abs_tol=1e-4)
    for a, b in zip(*grads, strict=True):
        assert float((a - b).abs().max()) <= 1e-3 * max(1.0, float(a.abs().max()))
