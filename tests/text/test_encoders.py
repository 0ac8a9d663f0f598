"""Text encoders: the hashing one exactly, wordllama offline, sentence-transformers faked."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seqbench.errors import ConfigError
from seqbench.text import encoders
from seqbench.text.encoders import (
    HashingEncoder,
    SentenceTransformerEncoder,
    WordLlamaEncoder,
    load_encoder,
)

TOY = "Toy Story (1995); genres: Animation, Children's, Comedy"
ALADDIN = "Aladdin (1992); genres: Animation, Children's, Comedy, Musical"
HEAT = "Heat (1995); genres: Action, Crime, Thriller"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access is forbidden in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


# --- spec strings ----------------------------------------------------------------------------


def test_load_encoder_parses_specs() -> None:
    assert load_encoder("hashing:64").name == "hashing:64"
    assert load_encoder("hashing").dim == 256
    for spec, message in [
        ("hashing:0", "dimension '0'; expected a positive integer"),
        ("hashing:big", "dimension 'big'"),
        ("wordllama:100", "dimension '100'; expected 64, 128, 256"),
        ("st:", "expected one of hashing:<dim>"),
        ("bert", r"hashing:<dim> .*wordllama\[:<dim>\] .*st:<model name or local folder>"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_encoder(spec)
    with pytest.raises(ConfigError, match="batch size 0"):
        load_encoder("hashing:8", batch_size=0)


# --- hashing ---------------------------------------------------------------------------------


def test_hashing_encoder_is_normalised_and_deterministic() -> None:
    texts = [TOY, HEAT, "!!!"]
    first, second = HashingEncoder(64).encode(texts), HashingEncoder(64).encode(texts)
    assert first.dtype == np.float32 and first.shape == (3, 64)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first[:2], axis=1), 1.0, rtol=1e-6)
    assert not first[2].any()  # no word at all: zero, not NaN
    assert HashingEncoder(64).weights_sha256() == HashingEncoder(64).weights_sha256()
    assert HashingEncoder(64).weights_sha256() != HashingEncoder(32).weights_sha256()


def test_hashing_encoder_is_stable_across_processes() -> None:
    code = (
        "from seqbench.text.encoders import HashingEncoder;"
        f"print(HashingEncoder(32).encode([{TOY!r}]).tobytes().hex())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert bytes.fromhex(out.stdout.strip()) == HashingEncoder(32).encode([TOY]).tobytes()


def test_hashing_encoder_pinned_vector() -> None:
    """Changing the hashing must bump HashingEncoder.VERSION: cached vectors are keyed by it."""
    # toy, story, toy, "toy story", "story toy": signed counts in 16 buckets
    counts = np.array([1, 0, -1, 0, 0, -2, 0, 1] + [0] * 8, dtype=np.float32)
    out = HashingEncoder(16).encode(["Toy Story toy"])[0]
    np.testing.assert_allclose(out, counts / np.linalg.norm(counts), rtol=1e-6)


def test_hashing_encoder_related_texts_are_closer() -> None:
    toy, aladdin, heat, ledger = HashingEncoder(256).encode(
        [TOY, ALADDIN, HEAT, "quarterly ledger of invoices"]
    )
    assert cosine(toy, aladdin) > 0.4
    assert cosine(toy, aladdin) > cosine(toy, heat) + 0.2
    assert abs(cosine(toy, ledger)) < 0.2


def test_hashing_encoder_reports_progress() -> None:
    calls: list[tuple[int, int]] = []
    HashingEncoder(8).encode(["a"] * 5000, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(4096, 5000), (5000, 5000)]


# --- wordllama -------------------------------------------------------------------------------


def test_wordllama_loads_offline_from_the_package(no_network: None) -> None:
    pytest.importorskip("wordllama")
    encoder = load_encoder("wordllama")
    assert encoder.name == "wordllama:256" and encoder.dim == 256
    toy, aladdin, heat = encoder.encode([TOY, ALADDIN, HEAT])
    assert np.isfinite(np.stack([toy, aladdin, heat])).all() and toy.shape == (256,)
    assert cosine(toy, aladdin) > cosine(toy, heat)
    assert encoder.weights_sha256() == load_encoder("wordllama:256").weights_sha256()
    small = load_encoder("wordllama:64")
    assert small.weights_sha256() != encoder.weights_sha256()
    np.testing.assert_allclose(small.encode([TOY])[0], toy[:64], rtol=1e-5, atol=1e-6)


def test_wordllama_missing_names_the_install_and_the_alternative(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(encoders, "_package_dir", lambda name: None)
    with pytest.raises(ConfigError, match=r'pip install "seqbench\[text\]".*hashing:128'):
        WordLlamaEncoder(128)


def test_import_quietly_undoes_basic_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "noisy_module_for_test.py").write_text(
        "import logging\nlogging.basicConfig(level=logging.INFO)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    encoders._import_quietly("noisy_module_for_test")
    assert root.handlers == [] and root.level == logging.WARNING
    sys.modules.pop("noisy_module_for_test", None)


# --- sentence-transformers (faked) -----------------------------------------------------------


class FakeSentenceTransformer:
    instances: list[FakeSentenceTransformer] = []  # noqa: RUF012 - a test's record

    def __init__(self, name: str, device: str = "cpu") -> None:
        self.name, self.device = name, device
        self.calls: list[dict[str, Any]] = []
        FakeSentenceTransformer.instances.append(self)

    def get_sentence_embedding_dimension(self) -> int:
        return 3

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        self.calls.append({"texts": list(texts), **kwargs})
        return np.array([[len(t), 1.0, 2.0] for t in texts], dtype=np.float64)


@pytest.fixture
def fake_st(monkeypatch: pytest.MonkeyPatch) -> type[FakeSentenceTransformer]:
    module = types.ModuleType("sentence_transformers")
    module.SentenceTransformer = FakeSentenceTransformer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sentence_transformers", module)
    FakeSentenceTransformer.instances = []
    return FakeSentenceTransformer


def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "bge-fake"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights v1")
    (folder / "config.json").write_text(json.dumps({"hidden_size": 3}))
    (folder / "1_Pooling" / "config.json").write_text("{}")
    (folder / "README.md").write_text("a model card")
    return folder


def test_st_encoder_with_a_local_folder(tmp_path: Path, fake_st: type, no_network: None) -> None:
    folder = model_folder(tmp_path)
    encoder = load_encoder(f"st:{folder}", device="cuda:1", batch_size=2)
    assert isinstance(encoder, SentenceTransformerEncoder)
    assert encoder.name == f"st:{folder}"
    digest = encoder.weights_sha256()
    assert not fake_st.instances  # the hash needs no model
    progress: list[tuple[int, int]] = []
    out = encoder.encode(["ab", "abcd", "x"], progress=lambda d, t: progress.append((d, t)))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[2, 1, 2], [4, 1, 2], [1, 1, 2]])
    assert encoder.dim == 3 and progress[-1] == (3, 3)
    (model,) = fake_st.instances
    assert model.name == str(folder.resolve()) and model.device == "cuda:1"
    assert {k: v for k, v in model.calls[0].items() if k != "texts"} == {
        "batch_size": 2,
        "convert_to_numpy": True,
        "normalize_embeddings": False,
        "show_progress_bar": False,
    }
    # the model card does not count; weights, configs and their names do
    (folder / "README.md").write_text("edited")
    assert load_encoder(f"st:{folder}").weights_sha256() == digest
    (folder / "model.safetensors").write_bytes(b"weights v2")
    assert load_encoder(f"st:{folder}").weights_sha256() != digest


def test_st_folder_without_weights(tmp_path: Path, fake_st: type) -> None:
    folder = tmp_path / "empty-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"no \*\.safetensors or \*\.bin weights"):
        load_encoder(f"st:{folder}").weights_sha256()


def test_st_model_not_downloaded_explains_how(
    tmp_path: Path, fake_st: type, no_network: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ConfigError, match=r"download it once .*S\('nobody/no-such-model'\)"):
        load_encoder("st:nobody/no-such-model")


def test_st_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ConfigError, match="pip install sentence-transformers"):
        load_encoder("st:BAAI/bge-large-en-v1.5")
