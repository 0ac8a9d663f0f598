"""Text encoders that turn item texts into fixed vectors, named by a spec string.

``hashing:<dim>`` needs nothing and runs anywhere (tests, CI); ``wordllama`` is the offline
default, its weights shipped inside the PyPI wheel; ``st:<model>`` runs a sentence-transformers
model such as the M2Rec paper's ``BAAI/bge-large-en-v1.5``. Every encoder can name its exact
weights by a sha256 without encoding anything, so a cache can tell a hit before loading a model.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import itertools
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from seqbench.errors import ConfigError
from seqbench.text.sources import files_sha256

#: Called after each batch with (texts done, texts in all).
EncodeProgress = Callable[[int, int], None]

OFFLINE_DEFAULT = "wordllama"
SPEC_FORMS = (
    "hashing:<dim> (feature hashing, no dependency)",
    "wordllama[:<dim>] (dim 64, 128 or 256; offline, pip install wordllama)",
    "st:<model name or local folder> (pip install sentence-transformers)",
)


class TextEncoder(Protocol):
    name: str  # canonical spec string: equal names mean the same encoder
    dim: int

    def weights_sha256(self) -> str:
        """sha256 identifying the exact weights (and tokenizer) the vectors come from."""
        ...

    def encode(self, texts: list[str], progress: EncodeProgress | None = None) -> np.ndarray:
        """float32 (len(texts), dim); callers pass only non-empty texts."""
        ...


def load_encoder(spec: str, *, device: str = "cpu", batch_size: int = 256) -> TextEncoder:
    """The encoder ``spec`` names; models load lazily, on the first :meth:`encode`."""
    if batch_size < 1:
        raise ConfigError(f"text encoder batch size {batch_size}: expected a positive integer")
    kind, sep, arg = spec.strip().partition(":")
    if kind == "hashing":
        return HashingEncoder(_dim(spec, arg if sep else "256", None))
    if kind == "wordllama":
        return WordLlamaEncoder(_dim(spec, arg if sep else "256", (64, 128, 256)), batch_size)
    if kind == "st" and arg.strip():
        return SentenceTransformerEncoder(arg.strip(), device=device, batch_size=batch_size)
    raise ConfigError(f"text encoder {spec!r}: expected one of {'; '.join(SPEC_FORMS)}")


def _dim(spec: str, value: str, allowed: tuple[int, ...] | None) -> int:
    try:
        dim = int(value)
    except ValueError:
        dim = 0
    if dim < 1 or (allowed is not None and dim not in allowed):
        choices = ", ".join(map(str, allowed)) if allowed else "a positive integer"
        raise ConfigError(f"text encoder {spec!r}: dimension {value!r}; expected {choices}")
    return dim


class HashingEncoder:
    """Signed feature hashing of words and word bigrams, L2-normalised.

    blake2b, not Python's salted ``hash()``, so the vectors are the same in every process.
    """

    VERSION = "seqbench-hashing-v1"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.name = f"hashing:{dim}"

    def weights_sha256(self) -> str:
        return hashlib.sha256(f"{self.VERSION}:{self.dim}".encode()).hexdigest()

    def encode(self, texts: list[str], progress: EncodeProgress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"[^\W_]+", text.lower())
            for feature in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
                index, sign = _bucket(feature, self.dim)
                out[row, index] += sign
            if progress is not None and (row + 1) % 4096 == 0:
                progress(row + 1, len(texts))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)  # an all-zero row stays zero
        if progress is not None:
            progress(len(texts), len(texts))
        return out


@functools.lru_cache(maxsize=1 << 16)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8, person=b"seqbench").digest()
    value = int.from_bytes(digest, "little")
    return (value >> 1) % dim, 1.0 if value & 1 else -1.0


class WordLlamaEncoder:
    """WordLlama ``l2_supercat`` token embeddings, mean-pooled; Matryoshka-truncated to ``dim``.

    The files are read from inside the installed package: ``WordLlama.load()`` is not used
    because (v0.4) it looks for the tokenizer under ``tokenizer/`` while the wheel ships it
    under ``tokenizers/``, and then downloads it from Hugging Face.
    """

    WEIGHTS = ("weights", "l2_supercat_256.safetensors")
    TOKENIZER = ("tokenizers", "l2_supercat_tokenizer_config.json")
    TENSOR = "embedding.weight"

    def __init__(self, dim: int = 256, batch_size: int = 256) -> None:
        self.dim = dim
        self.name = f"wordllama:{dim}"
        self.batch_size = batch_size
        package = _package_dir("wordllama")
        if package is None:
            raise ConfigError(
                f"text encoder {self.name!r} needs the wordllama package: "
                'pip install "seqbench[text]" (or pip install wordllama); '
                f"hashing:{dim} needs no extra package"
            )
        self.weights_file = package.joinpath(*self.WEIGHTS)
        self.tokenizer_file = package.joinpath(*self.TOKENIZER)
        for path in (self.weights_file, self.tokenizer_file):
            if not path.is_file():
                raise ConfigError(
                    f"text encoder {self.name!r}: {path} is missing from the installed "
                    "wordllama package; reinstall it (pip install --force-reinstall wordllama)"
                )
        self._sha256: str | None = None
        self._model: Any = None

    def weights_sha256(self) -> str:
        if self._sha256 is None:
            files = [self.weights_file, self.tokenizer_file]
            self._sha256 = files_sha256(files, extra=f"dim={self.dim}".encode())
        return self._sha256

    def encode(self, texts: list[str], progress: EncodeProgress | None = None) -> np.ndarray:
        model = self._load()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            out[start : start + len(chunk)] = model.embed(chunk, batch_size=self.batch_size)
            if progress is not None:
                progress(start + len(chunk), len(texts))
        return out

    def _load(self) -> Any:
        if self._model is None:
            from safetensors import safe_open
            from tokenizers import Tokenizer

            inference = _import_quietly("wordllama.inference")
            tokenizer = Tokenizer.from_file(str(self.tokenizer_file))
            with safe_open(str(self.weights_file), framework="np") as f:
                embedding = f.get_tensor(self.TENSOR)[:, : self.dim]
            self._model = inference.WordLlamaInference(embedding, tokenizer)
        return self._model


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded from a local folder (never downloaded here)."""

    WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")

    def __init__(self, model: str, *, device: str = "cpu", batch_size: int = 256) -> None:
        self.name = f"st:{model}"
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        if not _installed("sentence_transformers"):
            raise ConfigError(
                f"text encoder {self.name!r} needs sentence-transformers: "
                "pip install sentence-transformers"
            )
        self.folder = _model_folder(model)
        self._sha256: str | None = None
        self._model: Any = None
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            model = self._load()
            getter = getattr(model, "get_sentence_embedding_dimension", None)
            dim = getter() if getter is not None else None
            self._dim = int(dim) if dim else int(self._encode(model, ["dimension probe"]).shape[1])
        return self._dim

    def weights_sha256(self) -> str:
        """sha256 over the folder's weight, tokenizer and config files (names and bytes)."""
        if self._sha256 is None:
            files = sorted(
                p
                for p in self.folder.rglob("*")
                if p.is_file()
                and p.suffix in self.WEIGHT_SUFFIXES
                and ".cache" not in p.relative_to(self.folder).parts
            )
            if not any(p.suffix in (".safetensors", ".bin") for p in files):
                raise ConfigError(
                    f"text encoder {self.name!r}: no *.safetensors or *.bin weights "
                    f"in {self.folder}"
                )
            digest = hashlib.sha256()
            for path in files:
                digest.update(path.relative_to(self.folder).as_posix().encode() + b"\0")
                digest.update(bytes.fromhex(files_sha256([path])))
            self._sha256 = digest.hexdigest()
        return self._sha256

    def encode(self, texts: list[str], progress: EncodeProgress | None = None) -> np.ndarray:
        model = self._load()
        parts = []
        step = max(self.batch_size * 8, 1)  # a few batches between progress reports
        for start in range(0, len(texts), step):
            parts.append(self._encode(model, texts[start : start + step]))
            if progress is not None:
                progress(min(start + step, len(texts)), len(texts))
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _encode(self, model: Any, texts: list[str]) -> np.ndarray:
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.folder), device=self.device)
        return self._model


def _model_folder(model: str) -> Path:
    """The local folder of ``model``: the path itself, or its Hugging Face cache snapshot."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception as exc:  # not cached, a bad name, or no huggingface_hub: all mean "get it"
        raise ConfigError(
            f"text encoder 'st:{model}': the model is neither a local folder nor in the "
            f"Hugging Face cache ({type(exc).__name__}); download it once on a machine with "
            'network: python -c "from sentence_transformers import SentenceTransformer as S; '
            f"S('{model}')\", or give its folder as st:<path>"
        ) from None


def _installed(name: str) -> bool:
    """Whether ``name`` can be imported, found without importing it (a heavy import)."""
    if sys.modules.get(name) is not None:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _import_quietly(module: str) -> Any:
    """Import ``module``, undoing a ``logging.basicConfig`` it runs (wordllama's __init__ does)."""
    import importlib

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return importlib.import_module(module)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
