"""BERT4Rec as RecBole 1.2.0 builds and trains it (model-reference §6.2, §1.9).

Follows ``recbole/model/sequential_recommender/bert4rec.py``, ``recbole/model/layers.py`` and the
``mask_itemseq`` transform (``MaskItemSequence`` in ``recbole/data/transform.py``) of RecBole
v1.2.0 (tag v1.2.0 = 362d31f0); defaults from ``recbole/properties/model/BERT4Rec.yaml``.
Sun et al., "BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from
Transformer", CIKM 2019.
"""

from __future__ import annotations

from functools import partial

import torch
from pydantic import Field
from torch import nn

from seqbench.errors import ConfigError
from seqbench.models.base import SequentialRecommender
from seqbench.models.layers.dropout import Dropout
from seqbench.models.layers.init import recbole_normal_init
from seqbench.models.layers.transformer import TransformerEncoder, attention_mask
from seqbench.models.registry import FULL, register_model
from seqbench.models.sasrec import SASRecParams

REFERENCE = (
    "RecBole v1.2.0 recbole/model/sequential_recommender/bert4rec.py + "
    "recbole/data/transform.py (MaskItemSequence); Sun et al., CIKM 2019"
)


class BERT4RecParams(SASRecParams):
    """RecBole's names and defaults (properties/model/BERT4Rec.yaml), so configs transfer: the
    transformer keys of SASRec (same meaning), dropouts 0.2, and the cloze keys."""

    hidden_dropout_prob: float = Field(
        0.2, ge=0.0, lt=1.0, description="Dropout on embeddings and after each sub-layer."
    )
    attn_dropout_prob: float = Field(
        0.2, ge=0.0, lt=1.0, description="Dropout on the attention probabilities."
    )
    mask_ratio: float = Field(
        0.2,
        gt=0.0,
        le=1.0,
        description="Probability that a real item of a training sequence is masked; at most "
        "int(mask_ratio · max_len) masked slots per sequence get a loss.",
    )
    ft_ratio: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Probability that a training batch masks only each sequence's last item "
        "(RecBole's fine-tuning samples) instead of random items.",
    )


@register_model(
    "bert4rec",
    params=BERT4RecParams,
    summary="Bidirectional transformer trained by cloze (masked items), RecBole's BERT4Rec.",
    causal=False,
    all_positions=False,
    reference=REFERENCE,
)
class BERT4Rec(SequentialRecommender):
    """E[items] + P[0..L−1] → LayerNorm → Dropout → n_layers post-LN bidirectional transformer
    layers → output head Linear → GELU → LayerNorm → dot product with the item table + a
    per-item bias.

    Item ids: 0 pads, 1..n_items are items, ``n_items + 1`` is the mask token, so the input table
    has n_items + 2 rows (RecBole: ``n_items + 1`` rows with its n_items counting the padding id).
    Scores cover rows 0..n_items (padding included, the mask row excluded) plus
    ``output_bias`` (n_items + 1,), as in RecBole's ``full_sort_predict``.

    Training (:meth:`loss`), RecBole's cloze objective on each augmented prefix (the sample's own
    target item is NOT used, as in RecBole, where the transform ignores it):

    - one draw per batch: with probability ``ft_ratio`` the batch masks exactly the last real item
      of every sequence (slot length − 1); otherwise every real item is masked independently
      with probability ``mask_ratio``; masked slots hold the mask id in the input;
    - a loss is computed only at masked slots, and only at the last ``int(mask_ratio ·
      max_len)`` masked slots of a sequence (RecBole pads the masked-index list on the left and
      keeps its tail); a masked slot 0 gets none (RecBole's index 0 doubles as the padding of
      that list, so a masked first item is masked in the input but never trained — this also
      drops the fine-tuning target of a length-1 sequence);
    - the loss is the model's :meth:`criterion` at those slots, summed over the batch and
      divided by their number: by default the CE over rows 0..n_items (+ bias); with ``[train]
      loss`` "bce"/"bpr", the masked item against uniform negatives (+ bias, as in scoring).

    Inference (:meth:`forward`), RecBole's ``reconstruct_test_data``: append a padding column,
    put the mask id at slot ``length``, drop the first column — the oldest item is always dropped
    and the mask lands at slot length − 1, where the output is read. The attention mask is
    RecBole's ``item ≠ 0`` over every slot (bidirectional): the padding row never reaches the
    readout, while item ids placed after the history would (seqbench's inputs hold none there).

    Parameter names are RecBole's, so ``load_state_dict`` takes a RecBole BERT4Rec state dict
    unchanged; built after the same ``torch.manual_seed`` the initial weights equal RecBole's
    (benchmarks/recbole_baseline_parity.py checks both, and the loss given the same masks).

    Deliberate deviations from RecBole's code:

    - The masks are drawn from torch's global generators (the batch's branch on the CPU, so no
      device sync; the per-item draws vectorised on the batch's device), not from Python's
      ``random`` item by item: same distribution, other random numbers (the parity benchmark
      compares the frequencies). RecBole also draws a random negative per masked item, used
      only by its BPR loss; seqbench draws negatives only for a sampled loss ("bce"/"bpr"), in
      the criterion, after the masks (so CE training draws none).
    - A batch without any trained slot has loss 0 (RecBole divides 0 by 0: NaN).
    - ``int(mask_ratio · max_len) = 0`` is refused when the model is built (RecBole's masked-index
      lists then come out ragged and its batch fails to build).
    - ``forward`` computes the last transformer layer at the readout slot only, and the loss
      applies the output head only at the (at most ``int(mask_ratio · max_len)``) gathered slots
      (RecBole: at every slot, then selects them by a one-hot matrix product): the same numbers.
    - Attention, GELU and dropout as in :mod:`seqbench.models.layers.transformer` (same
      functions, other dropout random numbers).

    As in RecBole, the padding row 0 (and the mask row) of ``item_embedding`` are initialised
    like every other row; ``padding_idx=0`` only stops the input lookup from updating row 0.
    """

    def __init__(
        self, params: BERT4RecParams, *, n_items: int, max_len: int, ablation: str = FULL
    ) -> None:
        super().__init__()
        self._setup(params, n_items, max_len, ablation)
        self.mask_token = n_items + 1
        self.mask_item_length = int(params.mask_ratio * max_len)
        if self.mask_item_length < 1:
            raise ConfigError(
                f"bert4rec: int(mask_ratio · max_len) = int({params.mask_ratio} · {max_len}) = 0 "
                "masked slots per sequence could be trained; raise mask_ratio or max_len"
            )
        d = params.hidden_size
        # Module creation order = RecBole's (same random draws for the same seed).
        self.item_embedding = nn.Embedding(n_items + 2, d, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, d)
        self.trm_encoder = TransformerEncoder.from_params(params)
        self.LayerNorm = nn.LayerNorm(d, eps=params.layer_norm_eps)
        self.dropout = Dropout(params.hidden_dropout_prob)
        self.output_ffn = nn.Linear(d, d)
        self.output_gelu = nn.GELU()
        self.output_ln = nn.LayerNorm(d, eps=params.layer_norm_eps)
        self.output_bias = nn.Parameter(torch.zeros(n_items + 1))
        self.apply(partial(recbole_normal_init, std=params.initializer_range))

    # -- shared pieces ------------------------------------------------------------------------

    def _encoder_input(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder input (B, L, d) and the bidirectional padding mask (B, 1, 1, L)."""
        if items.shape[1] > self.max_len:
            raise ValueError(f"inputs of {items.shape[1]} slots, the model has {self.max_len}")
        positions = self.position_embedding.weight[: items.shape[1]]  # counted from the left
        hidden = self.dropout(self.LayerNorm(self.item_embedding(items) + positions))
        return hidden, attention_mask(items, causal=False, dtype=hidden.dtype)

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        """RecBole's output head, slot by slot: Linear → GELU → LayerNorm."""
        return self.output_ln(self.output_gelu(self.output_ffn(hidden)))

    def output_embeddings(self) -> torch.Tensor:
        """Rows 0..n_items of the input table (the mask row is never scored)."""
        return self.item_embedding.weight[: self.n_items + 1]

    def score(self, user: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
        """user · E[start:end]ᵀ + output_bias[start:end] (RecBole's ``full_sort_predict``)."""
        stop = self.n_items + 1 if end is None else min(end, self.n_items + 1)
        return user @ self.item_embedding.weight[start:stop].T + self.output_bias[start:stop]

    def score_items(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """user · E[items] + output_bias[items], (N, d), (N, k) → (N, k), as :meth:`score`."""
        return super().score_items(user, items) + self.output_bias[items]

    # -- inference ----------------------------------------------------------------------------

    def inference_input(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """RecBole's ``reconstruct_test_data``: [items, 0] with the mask id at slot ``length``,
        first column dropped. (B, L) → (B, L); the mask ends at slot length − 1."""
        extended = torch.cat([items, items.new_zeros(items.shape[0], 1)], dim=1)
        extended = extended.scatter(1, lengths.view(-1, 1), self.mask_token)
        return extended[:, 1:]

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → (B, d): the head's output at the mask appended after the history."""
        hidden, mask = self._encoder_input(self.inference_input(items, lengths))
        return self._head(self.trm_encoder.readout(hidden, mask, lengths - 1))

    # -- training -----------------------------------------------------------------------------

    def draw_masks(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Which slots ``MaskItemSequence`` masks, (B, L) bool, from torch's global generators.

        One draw per batch (CPU generator) picks the fine-tuning mode with probability
        ``ft_ratio``: slot length − 1 of every row; otherwise each real item (the slots before a
        row's first 0) is masked with probability ``mask_ratio`` (the batch device's generator).
        """
        device = items.device
        if float(torch.rand(())) < self.params.ft_ratio:  # CPU generator: no device sync
            slots = torch.arange(items.shape[1], device=device)
            return slots[None, :] == (lengths - 1)[:, None]
        real = (items != 0).cumprod(dim=1).bool()  # RecBole stops at the first padding id
        return real & (torch.rand(items.shape, device=device) < self.params.mask_ratio)

    def trained_slots(self, masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RecBole's ``MASK_INDEX``: (B, m) slots (m = int(mask_ratio · max_len)) and (B, m) bool
        weights, True where a loss is computed.

        The kept slots are each row's last m masked slots in increasing order; the other
        entries (weight False) are filler, like RecBole's left padding with index 0. A kept
        slot 0 has weight False (RecBole: index 0 counts as padding).
        """
        m = min(self.mask_item_length, masked.shape[1])
        from_right = masked.flip(1).cumsum(1).flip(1)  # masked slots at ≥ j, per row
        kept = masked & (from_right <= self.mask_item_length)
        # A stable sort puts the kept slots first, in increasing slot order.
        order = torch.sort(kept.to(torch.uint8), dim=1, descending=True, stable=True).indices
        slots = order[:, :m]
        weight = kept.gather(1, slots) & (slots > 0)
        return slots, weight

    def cloze_loss(self, items: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """RecBole's ``calculate_loss`` for the original ``items`` (B, L) with the slots
        ``masked`` (B, L) replaced by the mask id in the input: the :meth:`criterion` of the
        kept slots, weighted (CE by default: ``Σ w·CE / max(Σ w, 1)``)."""
        hidden, mask = self._encoder_input(torch.where(masked, self.mask_token, items))
        hidden = self.trm_encoder(hidden, mask)
        slots, weight = self.trained_slots(masked)
        at = hidden.gather(1, slots[:, :, None].expand(-1, -1, hidden.shape[-1]))
        user = self._head(at).flatten(0, 1)  # (B·m, d)
        return self.criterion(user, items.gather(1, slots).flatten(), weight.flatten())

    def loss(
        self, items: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The cloze loss of freshly drawn masks; ``targets`` is unused (as in RecBole)."""
        return self.cloze_loss(items, self.draw_masks(items, lengths))
