"""The training losses a suite can choose (``[train] loss`` and ``negatives``), and the
:class:`Criterion` that applies the chosen one to a model's user representations.

"ce" (the default) is RecBole's softmax cross-entropy over the whole item table, padding row
included (model-reference §1.5). The two sampled objectives score each target against ``k``
negatives drawn uniformly from the other real items, with replacement, excluding only the
sample's own target (RecBole's ``neg_sampling: uniform k`` with its repeatable sampler for
sequential models):

- "bce": ``−log σ(pos) − Σ_k log(1 − σ(neg_k))`` per sample, the negatives' terms SUMMED (with
  k = 1 this is SASRec's loss of Kang & McAuley, 2018);
- "bpr": ``mean_k −log σ(pos − neg_k)`` per sample (Rendle et al., 2009; RecBole's BPRLoss with
  k = 1).

Both are written with softplus (``−log σ(x) = softplus(−x)``, ``−log(1 − σ(x)) = softplus(x)``),
finite for any finite logit, and averaged over the samples (weighted where weights are given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

# A torch-native module, imported only by torch-using ones (seqbench.models.base).
import torch
import torch.nn.functional as F

#: The ``[train] loss`` values: "ce" (full softmax) and the sampled ones below.
LossKind = Literal["ce", "bce", "bpr"]
LOSS_KINDS: tuple[str, ...] = ("ce", "bce", "bpr")
SAMPLED_LOSS_KINDS: tuple[str, ...] = ("bce", "bpr")


def sample_negatives(
    targets: torch.Tensor, n_items: int, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(N, k) int64 negatives for ``targets`` (N,): uniform over the real items 1..n_items other
    than each sample's own target, drawn independently (with replacement).

    Draws from the n_items − 1 values 1..n_items − 1 and moves those ≥ the target up by one,
    so each other item has probability exactly 1 / (n_items − 1) (no rejection loop). On
    ``targets``' device, from ``generator`` (which must live on that device) or else torch's
    global generator of that device (the worker seeds it). A target outside 1..n_items (e.g. a
    padding filler that gets weight 0) still gets items of 1..n_items, never equal to it.
    """
    if n_items < 2:
        raise ValueError(f"no negative exists for a catalog of {n_items} item(s); need ≥ 2")
    if k < 1:
        raise ValueError(f"k = {k} negatives per target; need ≥ 1")
    draws = torch.randint(
        1, n_items, (targets.shape[0], k), generator=generator, device=targets.device
    )
    return draws + (draws >= targets[:, None]).to(draws.dtype)


def sampled_loss(
    kind: str,
    pos: torch.Tensor,
    neg: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The scalar "bce" or "bpr" loss of target logits ``pos`` (N,) against negative logits
    ``neg`` (N, k) (see the module docstring).

    Per-sample losses are averaged over the N samples, or with ``weight`` (N,) combined as
    ``Σ w·l / max(Σ w, 1)`` (BERT4Rec's kept cloze slots: weight 0 drops a filler slot).
    """
    if kind == "bce":
        per_sample = F.softplus(-pos) + F.softplus(neg).sum(dim=-1)
    elif kind == "bpr":
        per_sample = F.softplus(neg - pos[:, None]).mean(dim=-1)
    else:
        raise ValueError(f"unknown sampled loss {kind!r}; one of {', '.join(SAMPLED_LOSS_KINDS)}")
    if weight is None:
        return per_sample.mean()
    weight = weight.to(per_sample.dtype)
    return (per_sample * weight).sum() / weight.sum().clamp(min=1.0)


class Scorer(Protocol):
    """What a criterion needs of a model: its item scores (the whole table, or given items) and
    its number of real items (ids 1..n_items)."""

    n_items: int

    def score(self, user: torch.Tensor) -> torch.Tensor: ...

    def score_items(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Criterion:
    """The training loss ``kind`` ("ce", "bce" or "bpr") with ``negatives`` per target for the
    sampled ones; refuses what it cannot do when built (the suite validates earlier)."""

    kind: str = "ce"
    negatives: int = 1

    def __post_init__(self) -> None:
        if self.kind not in LOSS_KINDS:
            raise ValueError(f"unknown loss {self.kind!r}; one of {', '.join(LOSS_KINDS)}")
        if self.negatives < 1:
            raise ValueError(f"negatives = {self.negatives}; need ≥ 1")
        if self.kind == "ce" and self.negatives != 1:
            raise ValueError(
                f"negatives applies to loss 'bce' or 'bpr' only, loss is {self.kind!r}"
            )

    def __call__(
        self,
        model: Scorer,
        user: torch.Tensor,
        targets: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss of user representations (N, d) for ``targets`` (N,), a scalar.

        "ce": softmax cross-entropy over ``model.score`` (the whole table, padding row
        included), averaged over the N samples, or with ``weight`` (N,) as
        ``Σ w·CE / max(Σ w, 1)``. "bce"/"bpr": ``negatives`` negatives per target from
        :func:`sample_negatives` (torch's global generator of ``targets``' device; items
        1..n_items), scored by ``model.score_items`` and combined by :func:`sampled_loss` (same
        weighting).
        """
        if self.kind == "ce":
            logits = model.score(user)
            if weight is None:
                return F.cross_entropy(logits, targets)
            losses = F.cross_entropy(logits, targets, reduction="none")
            weight = weight.to(losses.dtype)
            return (losses * weight).sum() / weight.sum().clamp(min=1.0)
        negatives = sample_negatives(targets, model.n_items, self.negatives)
        scores = model.score_items(user, torch.cat([targets[:, None], negatives], dim=1))
        return sampled_loss(self.kind, scores[:, 0], scores[:, 1:], weight)
