"""M2Rec (paper reading) and m2rec_code (released code): filters against hand-built transforms,
the learnable θ's gradient against finite differences, the gate, the text branch and ablations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqbench.errors import ConfigError
from seqbench.models.base import gather_last
from seqbench.models.item_text import ItemText
from seqbench.models.layers.frequency_masks import (
    AdaptiveFourierFilter,
    channel_kept_bins,
    channel_low_pass,
)
from seqbench.models.layers.mamba import Filters
from seqbench.models.m2rec import M2Rec, M2RecLayer
from seqbench.models.registry import get_model
from tests.models.util import build, random_batch, random_item_text

N_ITEMS, MAX_LEN = 30, 20


def m2rec(ablation: str = "full", seed: int = 0, **params: object) -> M2Rec:
    spec = get_model("m2rec")
    values = spec.validate_params({"hidden_size": 16, "d_state": 4, **params}, "m2rec")
    torch.manual_seed(seed)
    model = spec.cls(
        values, n_items=N_ITEMS, max_len=MAX_LEN, ablation=ablation,
        item_text=random_item_text(N_ITEMS),
    )  # fmt: skip
    assert isinstance(model, M2Rec)
    return model


def naive_dft_low_pass(x: np.ndarray, keep: set[int]) -> np.ndarray:
    """Keep the listed non-negative frequency bins k (and their mirrors L − k) of every channel,
    by an explicit float64 DFT sum over time (x: (L, C))."""
    length = x.shape[0]
    t = np.arange(length)
    out = np.zeros_like(x, dtype=np.float64)
    for k in range(length):
        if min(k, length - k) not in keep:
            continue
        basis = np.exp(-2j * np.pi * k * t / length)
        coefficient = basis @ x  # (C,)
        out += np.real(np.outer(np.conj(basis), coefficient)) / length
    return out


# -- the paper's filter ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "theta", "kept"),
    [(20, 0.1, {0, 1, 2}), (21, 0.3, {0, 1, 2, 3, 4, 5, 6}), (8, 0.5, {0, 1, 2, 3, 4})],
)
def test_fixed_mask_keeps_exactly_the_bins_at_or_below_theta(
    length: int, theta: float, kept: set[int]
) -> None:
    afm = AdaptiveFourierFilter(theta, "fixed", max_len=length)
    assert {k for k, g in enumerate(afm.mask(length).tolist()) if g == 1.0} == kept
    assert set(afm.mask(length).tolist()) <= {0.0, 1.0}
    x = np.random.default_rng(0).normal(size=(length, 3))
    ours = afm(torch.tensor(x[None], dtype=torch.float64))[0].numpy()
    np.testing.assert_allclose(ours, naive_dft_low_pass(x, kept), atol=1e-12)


def test_fixed_mask_passes_a_kept_sinusoid_and_removes_the_next_bin() -> None:
    length, theta = 40, 0.1  # bins 0..4 kept (4/40 = 0.1 exactly)
    t = torch.arange(length, dtype=torch.float64)
    afm = AdaptiveFourierFilter(theta, "fixed", max_len=length)
    kept = torch.cos(2 * math.pi * 4 * t / length)[None, :, None]
    dropped = torch.sin(2 * math.pi * 5 * t / length)[None, :, None]
    torch.testing.assert_close(afm(kept), kept, rtol=0, atol=1e-12)
    assert float(afm(dropped).abs().max()) < 1e-12


def test_soft_mask_starts_as_the_fixed_one_and_is_tied_to_max_len() -> None:
    x = torch.randn(2, MAX_LEN, 5)
    soft = AdaptiveFourierFilter(0.2, "soft", max_len=MAX_LEN)
    fixed = AdaptiveFourierFilter(0.2, "fixed", max_len=MAX_LEN)
    torch.testing.assert_close(soft(x), fixed(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="max_len = 20"):
        soft(torch.randn(2, 12, 5))
    assert fixed(torch.randn(2, 12, 5)).shape == (2, 12, 5)  # the hard mask takes any length


def test_learnable_mask_approaches_the_hard_mask_as_the_temperature_falls() -> None:
    afm = AdaptiveFourierFilter(0.125, "learnable", temperature=1e-4, max_len=MAX_LEN)
    hard = AdaptiveFourierFilter(0.125, "fixed", max_len=MAX_LEN)
    torch.testing.assert_close(afm.mask(MAX_LEN), hard.mask(MAX_LEN), rtol=0, atol=1e-6)


def test_loss_gradient_wrt_a_learnable_theta_matches_finite_differences() -> None:
    """The whole model's training loss (float64, dropout off), d loss / d θ both ways."""
    model = m2rec(theta_mode="learnable", theta=0.13, theta_temperature=0.03, dropout_prob=0.0)
    model = model.double().train()
    items, lengths, targets = random_batch(N_ITEMS, 16, MAX_LEN, seed=3, min_length=5)
    theta = model.mamba_layers[0].affm.theta
    loss = model.loss(items, lengths, targets)
    (analytic,) = torch.autograd.grad(loss, [theta])
    h = 1e-5
    with torch.no_grad():
        values = []
        for step in (h, -h):
            theta += step
            values.append(float(model.loss(items, lengths, targets)))
            theta -= step
    numeric = (values[0] - values[1]) / (2 * h)
    assert abs(float(analytic)) > 1e-4  # the loss does depend on θ here
    assert float(analytic) == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_invalid_theta_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\(0, 0.5\]"):
        AdaptiveFourierFilter(0.6, "fixed", max_len=10)
    spec = get_model("m2rec")
    with pytest.raises(ConfigError, match="theta"):
        spec.validate_params({"theta": 0.0}, "m2rec")


# -- where the filter sits -----------------------------------------------------------------------


def test_in_block_filter_runs_between_the_convolution_and_the_silu() -> None:
    model = m2rec(theta=0.1)
    layer = model.mamba_layers[0]
    assert isinstance(layer, M2RecLayer)
    assert layer.mamba.filters.pre_activation is layer.affm
    keys = set(model.state_dict())
    assert not any(".mamba.filters" in k or ".mamba.pre_activation" in k for k in keys)
    x = torch.randn(3, MAX_LEN, 16)
    seen: list[torch.Tensor] = []
    original = layer.affm.forward
    layer.affm.forward = lambda u: seen.append(u) or original(u)  # type: ignore[method-assign]
    with torch.no_grad():
        layer.mamba(x)
        raw = layer.mamba.in_proj(x).chunk(2, dim=-1)[0]
        conv = torch.nn.functional.conv1d(
            raw.transpose(1, 2), layer.mamba.conv1d.weight, layer.mamba.conv1d.bias,
            padding=3, groups=32,
        )[..., :MAX_LEN].transpose(1, 2)  # fmt: skip
    torch.testing.assert_close(seen[0], conv, rtol=1e-6, atol=1e-6)  # before the SiLU


def test_input_position_filters_the_mamba_blocks_input() -> None:
    model = m2rec(affm_position="input", dropout_prob=0.0).eval()
    layer = model.mamba_layers[0]
    assert layer.mamba.filters.pre_activation is None
    x = torch.randn(2, MAX_LEN, 16)
    with torch.no_grad():
        by_hand = layer.ffn(layer.LayerNorm(layer.mamba(layer.affm(x))))
        torch.testing.assert_close(layer(x, torch.full((2,), MAX_LEN)), by_hand)


# -- the text branch and the gate ---------------------------------------------------------------


def test_fusion_is_linear_of_alpha_text_plus_beta_mamba_at_the_last_slot() -> None:
    model = m2rec(dropout_prob=0.0).eval()
    with torch.no_grad():
        model.alpha.fill_(0.3)
        model.beta.fill_(1.7)
    items, lengths, _ = random_batch(N_ITEMS, 8, MAX_LEN, seed=4)
    with torch.no_grad():
        mamba = super(M2Rec, model).forward_all(items, lengths)
        text = model.text_projection(model.text_vectors[items]) * model.has_text[items][..., None]
        by_hand = gather_last(model.fusion(0.3 * text + 1.7 * mamba), lengths)
        torch.testing.assert_close(model(items, lengths), by_hand)


def test_items_without_text_contribute_nothing_to_the_text_branch() -> None:
    model = m2rec(dropout_prob=0.0).eval()
    items = torch.tensor([[5, 7, 10, 0], [3, 15, 4, 2]])  # 5, 10, 15 have no text (i % 5 == 0)
    with torch.no_grad():
        before = model.semantic(items)
        model.text_vectors[10] += 100.0  # an item without text: masked
        assert torch.equal(model.semantic(items), before)
        model.text_vectors[7] += 1.0  # an item with text: seen
        assert (model.semantic(items) - before).abs().max() > 1e-3
    assert torch.equal(before[0, 0], torch.zeros(16))  # not the projection's bias


def test_gate_scalars_start_at_one_half_learn_and_are_logged() -> None:
    model = m2rec()
    assert model.diagnostics() == {"alpha": 0.5, "beta": 0.5}
    assert {"alpha", "beta"} <= {n for n, _ in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    items, lengths, targets = random_batch(N_ITEMS, 32, MAX_LEN, seed=5)
    for _ in range(3):
        optimizer.zero_grad()
        model.loss(items, lengths, targets).backward()
        optimizer.step()
    after = model.diagnostics()
    assert after["alpha"] != 0.5 and after["beta"] != 0.5


def test_no_gate_fixes_alpha_and_beta_and_no_llm_drops_the_text() -> None:
    fixed = m2rec("no_gate")
    names = {n for n, _ in fixed.named_parameters()}
    assert "alpha" not in names and "beta" not in names
    assert float(fixed.alpha) == float(fixed.beta) == 0.5
    plain = m2rec("no_llm")
    assert plain.text_projection is None and not hasattr(plain, "alpha")
    assert plain.diagnostics() == {"beta": 0.5}
    spec = get_model("m2rec")
    assert spec.needs_text(ablation="full") and not spec.needs_text(ablation="no_llm")
    built = spec.cls(spec.params(), n_items=N_ITEMS, max_len=MAX_LEN, ablation="no_llm")
    assert isinstance(built, M2Rec)  # no item text needed


def test_learnable_theta_is_logged_and_moves_in_training() -> None:
    model = m2rec(theta_mode="learnable", theta=0.2, theta_temperature=0.05)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    items, lengths, targets = random_batch(N_ITEMS, 32, MAX_LEN, seed=6)
    for _ in range(3):
        optimizer.zero_grad()
        model.loss(items, lengths, targets).backward()
        optimizer.step()
    assert model.diagnostics()["theta"] != pytest.approx(0.2, abs=1e-6)


def test_no_affm_removes_the_filter_and_text_is_required() -> None:
    off = m2rec("no_affm")
    assert all(layer.affm is None for layer in off.mamba_layers)
    assert all(layer.mamba.filters.pre_activation is None for layer in off.mamba_layers)
    spec = get_model("m2rec")
    with pytest.raises(ConfigError, match="needs item-text embeddings"):
        spec.cls(spec.params(), n_items=N_ITEMS, max_len=MAX_LEN)
    with pytest.raises(ValueError, match="expected n_items \\+ 1 = 31"):
        spec.cls(spec.params(), n_items=N_ITEMS, max_len=MAX_LEN, item_text=random_item_text(10))
    with pytest.raises(ValueError, match="vectors"):
        ItemText(torch.zeros(3, 2), torch.zeros(4, dtype=torch.bool))


def test_fusion_starts_as_the_identity_unless_recbole_init_is_asked() -> None:
    assert torch.equal(m2rec().fusion.weight, torch.eye(16))
    assert torch.equal(m2rec().fusion.bias, torch.zeros(16))
    normal = m2rec(fusion_init="recbole").fusion.weight.detach()
    assert float(normal.std()) == pytest.approx(0.02, rel=0.2)


def test_text_vectors_stay_out_of_the_checkpoint() -> None:
    keys = set(m2rec().state_dict())
    assert not {"text_vectors", "has_text"} & keys
    assert {"alpha", "beta", "fusion.weight", "text_projection.weight"} <= keys


# -- the released code ---------------------------------------------------------------------------


def test_m2rec_code_keeps_exactly_the_reference_bins() -> None:
    """model-reference §5: d_inner 128, m = int(0.1·128) = 12 → bins 0–11 and 116–127 (bin 116
    kept, its mirror 12 dropped)."""
    assert channel_kept_bins(128, 0.1) == [*range(12), *range(116, 128)]
    assert 12 not in channel_kept_bins(128, 0.1) and 116 in channel_kept_bins(128, 0.1)
    assert channel_kept_bins(64, 0.1) == [*range(6), *range(58, 64)]
    assert channel_kept_bins(8, 0.1) == list(range(8))  # m = 0: the official [-0:] keeps all
    x = np.random.default_rng(1).normal(size=(2, 5, 128))
    spectrum = np.fft.fft(x, axis=-1)
    mask = np.zeros(128)
    mask[:12] = mask[116:] = 1
    expected = np.real(np.fft.ifft(spectrum * mask, axis=-1))
    ours = channel_low_pass(torch.tensor(x), 0.1).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-12)


@pytest.mark.parametrize(("recbole_init", "effect"), [(True, 1e-6), (False, 1e-4)])
def test_m2rec_code_is_mamba4rec_with_the_delta_filter(recbole_init: bool, effect: float) -> None:
    """Under RecBole's init (the official one) W_dt ~ N(0, 0.02²) makes the pre-bias Δ ≈ 0, so
    the filter barely moves the output at initialisation (≈ 3e-6); with Mamba's own init the
    same filter moves it ≈ 6e-4. Training decides what it does after that."""
    setting = {"hidden_size": 64, "recbole_init": recbole_init}
    code = build("m2rec_code", N_ITEMS, MAX_LEN, seed=3, **setting).eval()
    mamba = build("mamba4rec", N_ITEMS, MAX_LEN, seed=3, **setting).eval()
    assert code.state_dict().keys() == mamba.state_dict().keys()
    for key, value in code.state_dict().items():  # the same initial weights for a seed
        assert torch.equal(value, mamba.state_dict()[key]), key
    items, lengths, _ = random_batch(N_ITEMS, 8, MAX_LEN, seed=7)
    seen: list[torch.Tensor] = []
    block = code.mamba_layers[0].mamba
    low_pass = block.filters.delta
    assert low_pass is not None
    block.filters = Filters(delta=lambda d: seen.append(d) or low_pass(d))
    with torch.no_grad():
        filtered, plain = code(items, lengths), mamba(items, lengths)
    assert seen[0].shape == (8, MAX_LEN, 128)  # Δ before its bias, channels last
    assert (filtered - plain).abs().max() > effect
    identity = build("m2rec_code", N_ITEMS, MAX_LEN, seed=3, **setting, cutoff_ratio=0.0)
    with torch.no_grad():
        # an FFT round trip in float32 (≈ 1e-7 here, with the thread count), well below the
        # smallest effect asserted above
        torch.testing.assert_close(identity.eval()(items, lengths), plain, rtol=0, atol=5e-7)
