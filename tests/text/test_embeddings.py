"""Aligned item embeddings: masking of items without text, the cache and its keys, precomputed."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from seqbench.errors import ConfigError, DataFormatError
from seqbench.text.embeddings import embed_item_texts, load_precomputed
from seqbench.text.encoders import HashingEncoder
from seqbench.text.sources import TextSpec

TEXTS = np.array(["", "toy story animation", "", "heat crime thriller", "aladdin animation"])


class CountingEncoder:
    """Hashing vectors under a chosen name and weights hash; records every encode call."""

    def __init__(self, name: str = "counting:8", sha: str = "w1", delay: float = 0.0) -> None:
        self.name, self.dim, self.sha, self.delay = name, 8, sha, delay
        self.calls: list[list[str]] = []
        self._inner = HashingEncoder(8)

    def weights_sha256(self) -> str:
        return self.sha

    def encode(self, texts: list[str], progress=None) -> np.ndarray:
        self.calls.append(list(texts))
        time.sleep(self.delay)
        return self._inner.encode(texts, progress)


def test_items_without_text_are_zero_and_masked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    encoder = CountingEncoder()
    with caplog.at_level(logging.WARNING, logger="seqbench.text"):
        out = embed_item_texts(TEXTS, "ignored", cache_dir=tmp_path, encoder=encoder)
    assert encoder.calls == [["toy story animation", "heat crime thriller", "aladdin animation"]]
    assert out.has_text.tolist() == [False, True, False, True, True]
    assert out.vectors.dtype == np.float32 and out.vectors.shape == (5, 8)
    assert not out.vectors[0].any() and not out.vectors[2].any()
    np.testing.assert_array_equal(
        out.vectors[[1, 3, 4]], HashingEncoder(8).encode(encoder.calls[0])
    )
    assert "1 of 4 items have no text; their text embedding is zero (masked)" in caplog.text
    info = out.info
    assert info["encoder"] == "counting:8" and info["weights_sha256"] == "w1"
    assert (info["dim"], info["items"], info["items_without_text"]) == (8, 4, 1)
    assert len(info["text_sha256"]) == 64
    assert info["cache"]["hit"] is False
    assert Path(info["cache"]["path"]).parent == tmp_path / "text-embeddings"


def test_second_call_is_a_cache_hit_without_encoding(tmp_path: Path) -> None:
    first = embed_item_texts(TEXTS, "x", cache_dir=tmp_path, encoder=CountingEncoder())
    encoder = CountingEncoder()
    second = embed_item_texts(TEXTS, "x", cache_dir=tmp_path, encoder=encoder)
    assert encoder.calls == []
    np.testing.assert_array_equal(second.vectors, first.vectors)
    np.testing.assert_array_equal(second.has_text, first.has_text)
    assert second.info["cache"] == {"hit": True, "path": first.info["cache"]["path"]}
    assert {k: v for k, v in second.info.items() if k != "cache"} == {
        k: v for k, v in first.info.items() if k != "cache"
    }


@pytest.mark.parametrize(
    ("texts", "name", "sha"),
    [
        (np.array(["", "toy story animation", "", "heat crime", "aladdin animation"]), None, None),
        (TEXTS[[0, 3, 2, 1, 4]], None, None),  # same texts, other item order
        (TEXTS, "counting-other:8", None),
        (TEXTS, None, "w2"),
    ],
    ids=["changed-text", "item-order", "encoder-name", "weights"],
)
def test_cache_key_covers_texts_order_encoder_and_weights(
    tmp_path: Path, texts: np.ndarray, name: str | None, sha: str | None
) -> None:
    embed_item_texts(TEXTS, "x", cache_dir=tmp_path, encoder=CountingEncoder())
    encoder = CountingEncoder(name or "counting:8", sha or "w1")
    out = embed_item_texts(texts, "x", cache_dir=tmp_path, encoder=encoder)
    assert len(encoder.calls) == 1 and out.info["cache"]["hit"] is False


def test_encoder_spec_is_loaded_and_cache_dir_defaults_to_the_cache_root(cache_dir: Path) -> None:
    out = embed_item_texts(TEXTS, "hashing:16")
    assert out.info["encoder"] == "hashing:16" and out.vectors.shape == (5, 16)
    assert Path(out.info["cache"]["path"]).parent == cache_dir / "text-embeddings"
    assert embed_item_texts(TEXTS, "hashing:16").info["cache"]["hit"] is True


def test_concurrent_calls_encode_once(tmp_path: Path) -> None:
    encoders = [CountingEncoder(delay=0.3) for _ in range(2)]
    results = {}

    def run(i: int) -> None:
        results[i] = embed_item_texts(TEXTS, "x", cache_dir=tmp_path, encoder=encoders[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(e.calls) for e in encoders) == 1
    np.testing.assert_array_equal(results[0].vectors, results[1].vectors)
    assert sorted(r.info["cache"]["hit"] for r in results.values()) == [False, True]


def test_damaged_cache_entry_is_encoded_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = embed_item_texts(TEXTS, "x", cache_dir=tmp_path, encoder=CountingEncoder())
    Path(first.info["cache"]["path"]).write_bytes(b"not a zip")
    encoder = CountingEncoder()
    with caplog.at_level(logging.WARNING, logger="seqbench.text"):
        again = embed_item_texts(TEXTS, "x", cache_dir=tmp_path, encoder=encoder)
    assert len(encoder.calls) == 1 and "is damaged" in caplog.text
    np.testing.assert_array_equal(again.vectors, first.vectors)


def test_no_text_at_all_is_a_config_error(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    with pytest.raises(ConfigError, match="none of the 3 items has text"):
        embed_item_texts(np.array(["", "", " ", ""]), "x", cache_dir=tmp_path, encoder=encoder)
    assert encoder.calls == []


def test_bad_encoder_output_is_a_data_format_error(tmp_path: Path) -> None:
    class NaNEncoder(CountingEncoder):
        def encode(self, texts: list[str], progress=None) -> np.ndarray:
            out = super().encode(texts)
            out[1, 0] = np.nan
            return out

    class ShortEncoder(CountingEncoder):
        def encode(self, texts: list[str], progress=None) -> np.ndarray:
            return super().encode(texts)[:1]

    with pytest.raises(DataFormatError, match=r"non-finite .*'heat crime thriller'"):
        embed_item_texts(TEXTS, "x", cache_dir=tmp_path, encoder=NaNEncoder("nan:8"))
    with pytest.raises(DataFormatError, match=r"shape \(1, 8\); expected \(3, dim\)"):
        embed_item_texts(TEXTS, "x", cache_dir=tmp_path, encoder=ShortEncoder("short:8"))
    assert not list((tmp_path / "text-embeddings").glob("*.npz"))  # nothing bad was cached


# --- precomputed -----------------------------------------------------------------------------

TOKENS = np.array(["[PAD]", "b", "a", "z"])  # item "z" has no vector
MATRIX = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float64)  # rows a, b, c


def test_precomputed_npy_with_ids_is_aligned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    np.save(tmp_path / "emb.npy", MATRIX)
    (tmp_path / "ids.txt").write_text("a\nb\nc\n")
    spec = TextSpec(embeddings=tmp_path / "emb.npy", ids=tmp_path / "ids.txt")
    with caplog.at_level(logging.WARNING, logger="seqbench.text"):
        out = load_precomputed(spec, TOKENS)
    assert out.vectors.dtype == np.float32
    np.testing.assert_array_equal(out.vectors, [[0, 0], [3, 4], [1, 2], [0, 0]])
    assert out.has_text.tolist() == [False, True, True, False]
    assert "1 of 3 items have no text" in caplog.text
    assert out.info["encoder"] == "precomputed:emb.npy"
    assert (out.info["dim"], out.info["items"], out.info["items_without_text"]) == (2, 3, 1)
    assert out.info["cache"] == {"hit": False, "path": None}
    (tmp_path / "ids.txt").write_text("c\nb\na\n")  # other ids, other record
    assert load_precomputed(spec, TOKENS).info["weights_sha256"] != out.info["weights_sha256"]


def test_precomputed_npz_is_aligned(tmp_path: Path) -> None:
    path = tmp_path / "emb.npz"
    np.savez(path, ids=np.array(["a", "b", "c"]), embeddings=MATRIX)
    out = load_precomputed(TextSpec(embeddings=path), TOKENS)
    np.testing.assert_array_equal(out.vectors, [[0, 0], [3, 4], [1, 2], [0, 0]])
    np.savez(path, ids=np.array([10, 20, 30]), embeddings=MATRIX)  # integer ids match as text
    out = load_precomputed(TextSpec(embeddings=path), np.array(["[PAD]", "30", "10"]))
    np.testing.assert_array_equal(out.vectors, [[0, 0], [5, 6], [1, 2]])


def test_precomputed_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "emb.npy", MATRIX)
    (tmp_path / "ids.txt").write_text("a\nb\n")
    spec = TextSpec(embeddings=tmp_path / "emb.npy", ids=tmp_path / "ids.txt")
    with pytest.raises(
        DataFormatError, match=r"ids\.txt: 2 id\(s\) for the 3 row\(s\) of .*emb\.npy"
    ):
        load_precomputed(spec, TOKENS)
    (tmp_path / "ids.txt").write_text("a\nb\na\n")
    with pytest.raises(DataFormatError, match=r"ids\.txt:3: item id 'a' repeats row 1"):
        load_precomputed(spec, TOKENS)
    (tmp_path / "ids.txt").write_text("x\ny\nw\n")
    with pytest.raises(ConfigError, match=r"none of its 3 ids is an item .*'x'.*'b'"):
        load_precomputed(spec, TOKENS)
    npz = tmp_path / "bad.npz"
    np.savez(npz, ids=np.array(["a"]), vectors=MATRIX[:1])
    with pytest.raises(
        DataFormatError, match=r"bad\.npz: arrays ids, vectors; expected arrays 'ids'"
    ):
        load_precomputed(TextSpec(embeddings=npz), TOKENS)
    np.savez(npz, ids=np.array(["a", "b"]), embeddings=MATRIX)
    with pytest.raises(DataFormatError, match=r"bad\.npz: 3 embedding row\(s\) for 2 ids"):
        load_precomputed(TextSpec(embeddings=npz), TOKENS)
    np.savez(npz, ids=np.array(["a", "b", "c"]), embeddings=MATRIX * np.inf)
    with pytest.raises(DataFormatError, match="non-finite values in 3 row"):
        load_precomputed(TextSpec(embeddings=npz), TOKENS)
