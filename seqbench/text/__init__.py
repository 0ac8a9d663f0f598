"""Item text → fixed item embeddings, for models that fuse text with interactions (M2Rec).

:mod:`~seqbench.text.sources` reads item text files into ``{raw item id: text}``;
:mod:`~seqbench.text.encoders` names text encoders by a spec string (``hashing:<dim>``,
``wordllama[:<dim>]``, ``st:<model>``); :mod:`~seqbench.text.embeddings` aligns the vectors to a
dataset's item ids and caches them. Heavy libraries load only when a model first encodes.
"""

from seqbench.text.embeddings import ItemTextEmbeddings, embed_item_texts, load_precomputed
from seqbench.text.encoders import OFFLINE_DEFAULT, TextEncoder, load_encoder
from seqbench.text.sources import (
    TEXT_FORMATS,
    TextSpec,
    align_texts,
    read_item_text,
    text_source_sha256,
)

__all__ = [
    "OFFLINE_DEFAULT",
    "TEXT_FORMATS",
    "ItemTextEmbeddings",
    "TextEncoder",
    "TextSpec",
    "align_texts",
    "embed_item_texts",
    "load_encoder",
    "load_precomputed",
    "read_item_text",
    "text_source_sha256",
]
