"""M2Rec low-pass filters: the paper's adaptive mask over time, the code's fixed one over channels.

The two filters the M2Rec paper and its released code disagree on (model-reference §5, §9.3):

* :class:`AdaptiveFourierFilter` — the paper's Adaptive Fourier Filtering Module (Zhang et al.,
  arXiv 2505.04445, §III-D, eq. 12: X̃ = IFFT(FFT(X) ⊙ M), M = 1 for |f| ≤ θ). The FFT runs along
  the TIME axis; θ is a normalised frequency in cycles per position: rfft bin k of a length-L
  sequence has frequency k/L, so 0 < θ ≤ 0.5 (0.5 is the Nyquist frequency, keeping every bin).
  Three readings of "adaptive", as ``mode``:

  - ``fixed``: the paper's equation, a hard 0/1 mask at θ (θ is a hyper-parameter);
  - ``learnable``: θ is trained through a differentiable soft threshold
    M_k = σ((θ − f_k) / τ) with temperature τ (cycles per position) — the paper does not say how
    its binary mask would be trained; at τ → 0 this is the fixed mask;
  - ``soft``: one learnable gain per frequency bin, initialised to the fixed mask at θ (the
    paper's open question "soft, learnable filtering"); tied to the length it was built for.

  Every mode is a zero-phase filter applied per channel over ALL L slots (a circular convolution),
  so the output at slot t depends on later slots: a model using it is not causal (§7.3).

* :func:`channel_low_pass` — what ``mmamba4rec.py``'s vendored ``mamba_simple.py`` runs
  (``low_pass_filter_m_dim(dt, cutoff_ratio=0.1)`` on the pre-bias Δ, shape (B, d_inner, L)):
  a full complex FFT along the CHANNEL axis, keep bins [0, m) and [C − m, C) with
  m = int(ratio · C), inverse FFT, real part. The kept set is not conjugate-symmetric (with
  C = 128: bins 0–11 and 116–127, so bin 116 is kept and its mirror bin 12 dropped), hence the
  ``.real``. With m = 0 the official slicing ``mask[:, -0:] = 1`` keeps every bin (an identity);
  that quirk is kept. It acts per slot, so it leaves a model causal.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

ThetaMode = Literal["fixed", "learnable", "soft"]


def frequencies(
    length: int, *, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Normalised frequencies k/L (cycles per position) of the L//2 + 1 rfft bins."""
    return torch.fft.rfftfreq(length, device=device, dtype=dtype)


def hard_mask(length: int, theta: float, *, device: torch.device | None = None) -> torch.Tensor:
    """1.0 for the rfft bins with k/L ≤ θ, else 0.0: (L//2 + 1,). A tiny tolerance keeps a bin
    that sits exactly on θ (k/L = θ) although k/L is rounded in float32."""
    return (frequencies(length, device=device) <= theta + 1e-6).to(torch.float32)


def time_low_pass(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """irfft(rfft(x) ⊙ mask) along dim 1: x (B, L, C), mask (L//2 + 1,) real gains."""
    length = x.shape[1]
    spectrum = torch.fft.rfft(x, dim=1)
    return torch.fft.irfft(spectrum * mask.to(spectrum.real.dtype)[None, :, None], n=length, dim=1)


class AdaptiveFourierFilter(nn.Module):
    """The paper's AFFM on a (B, L, C) input: FFT over time, mask at θ, inverse FFT."""

    def __init__(
        self, theta: float, mode: ThetaMode, *, temperature: float = 0.01, max_len: int
    ) -> None:
        super().__init__()
        if not 0.0 < theta <= 0.5:
            raise ValueError(
                f"theta is a frequency in cycles per position in (0, 0.5], got {theta}"
            )
        self.mode = mode
        self.temperature = temperature
        self.max_len = max_len
        self.theta_init = theta
        if mode == "learnable":
            self.theta = nn.Parameter(torch.tensor(float(theta)))
        elif mode == "soft":
            self.gains = nn.Parameter(hard_mask(max_len, theta))
        elif mode != "fixed":
            raise ValueError(f"theta mode is one of fixed, learnable, soft; got {mode!r}")

    def mask(self, length: int, device: torch.device | None = None) -> torch.Tensor:
        """The gain of every rfft bin for sequences of ``length`` slots: (length//2 + 1,)."""
        if self.mode == "fixed":
            return hard_mask(length, self.theta_init, device=device)
        if self.mode == "learnable":
            f = frequencies(length, device=device, dtype=self.theta.dtype)
            return torch.sigmoid((self.theta - f) / self.temperature)
        if length != self.max_len:
            raise ValueError(
                f"the soft Fourier mask has {self.max_len // 2 + 1} gains, built for sequences of "
                f"max_len = {self.max_len} slots; got {length}: pad every batch to max_len"
            )
        return self.gains

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, C) → (B, L, C), low-passed along L."""
        return time_low_pass(x, self.mask(x.shape[1], x.device))

    def current_theta(self) -> float:
        """θ now (trained in ``learnable`` mode; the initial θ otherwise)."""
        if self.mode == "learnable":
            return float(self.theta.detach())
        return self.theta_init


def channel_kept_bins(channels: int, ratio: float) -> list[int]:
    """The FFT bins of the channel axis that :func:`channel_low_pass` keeps, as the official
    slicing ``[:m]`` and ``[-m:]`` with m = int(ratio · C) selects them (m = 0: every bin)."""
    m = int(ratio * channels)
    keep = [False] * channels
    for k in list(range(channels))[:m] + list(range(channels))[-m:]:
        keep[k] = True
    return [k for k in range(channels) if keep[k]]


def channel_low_pass(x: torch.Tensor, ratio: float = 0.1) -> torch.Tensor:
    """M2Rec's released filter on the last (channel) axis of x (…, C): real(ifft(fft(x) ⊙ keep))."""
    channels = x.shape[-1]
    keep = torch.zeros(channels, dtype=torch.bool, device=x.device)
    keep[channel_kept_bins(channels, ratio)] = True
    spectrum = torch.fft.fft(x, dim=-1) * keep
    return torch.fft.ifft(spectrum, dim=-1).real.to(x.dtype)
