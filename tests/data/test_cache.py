"""The processed-data cache: reused when nothing changed, rebuilt when anything that matters did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

import seqbench.data.protocol as protocol_module
from seqbench.data import cache as cache_module
from seqbench.data.cache import ProcessedCache
from seqbench.data.load import DatasetSpec, load_dataset
from seqbench.data.protocol import Protocol
from seqbench.data.readers import get_reader
from seqbench.errors import ConfigError


def write_sequences(path: Path, n_users: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = [
        " ".join([str(u)] + [str(i) for i in rng.integers(1, 30, size=rng.integers(6, 15))])
        for u in range(1, n_users + 1)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the sequences reader parses, in order."""
    calls: list[Path] = []
    reader_cls = type(get_reader("sequences"))
    original = reader_cls.read

    def counting(self, path, options, progress=None):  # type: ignore[no-untyped-def]
        calls.append(path)
        return original(self, path, options, progress)

    monkeypatch.setattr(reader_cls, "read", counting)
    return calls


def load(path: Path, protocol: Protocol | None = None, **options: object):  # type: ignore[no-untyped-def]
    spec = DatasetSpec(name="t", path=path, format="sequences", options=options)
    return load_dataset(spec, protocol or Protocol(k_core=2))


def test_second_load_reads_nothing_and_gives_the_same_arrays(
    tmp_path: Path, reads: list[Path]
) -> None:
    path = write_sequences(tmp_path / "s.txt")
    first = load(path)
    second = load(path)
    assert len(reads) == 1
    assert not first.provenance["cache"]["hit"] and second.provenance["cache"]["hit"]
    for name in ("items", "offsets", "user_tokens", "item_tokens"):
        assert np.array_equal(getattr(first.data, name), getattr(second.data, name))
    for split in ("train", "valid", "test"):
        assert np.array_equal(first.split(split).end, second.split(split).end)
    assert first.provenance["raw"] == second.provenance["raw"]


def test_same_bytes_elsewhere_share_the_entry(tmp_path: Path, reads: list[Path]) -> None:
    a = write_sequences(tmp_path / "a.txt")
    b = tmp_path / "copy" / "b.txt"
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    assert load(a).provenance["cache"]["key"] == load(b).provenance["cache"]["key"]
    assert len(reads) == 1


def test_a_changed_source_is_read_again(tmp_path: Path, reads: list[Path]) -> None:
    path = write_sequences(tmp_path / "s.txt", seed=0)
    before = load(path)
    write_sequences(path, n_users=41, seed=1)
    after = load(path)
    assert len(reads) == 2
    assert after.provenance["source"]["sha256"] != before.provenance["source"]["sha256"]
    assert after.n_users == 41


# A different valid value for every protocol knob. A new knob must be added here, or this test
# fails: that is how it guarantees every knob reaches the cache key.
ALTERNATIVES = {
    "k_core": 3,
    "max_len": 7,
    "min_rating": 1.0,
    "dedup": "first",
    "time_precision": "float64",
    "time_scaling": "minmax",
}
SINGLE_VALUED = {"split", "padding"}  # Literal fields with one value so far


def test_every_protocol_knob_changes_the_key(tmp_path: Path) -> None:
    assert set(Protocol.model_fields) == set(ALTERNATIVES) | SINGLE_VALUED
    for name in SINGLE_VALUED:
        assert len(typing.get_args(Protocol.model_fields[name].annotation)) == 1
    path = tmp_path / "r.inter"  # a source with ratings, so min_rating applies
    path.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "".join(f"{u}\t{i}\t{(u + i) % 5 + 1}\t{i}\n" for u in range(8) for i in range(8))
    )
    base = Protocol()
    keys = set()
    for name, value in {None: None, **ALTERNATIVES}.items():
        protocol = base if name is None else base.model_copy(update={name: value})
        spec = DatasetSpec(name="t", path=path, format="recbole")
        keys.add(load_dataset(spec, protocol).provenance["cache"]["key"])
    assert len(keys) == 1 + len(ALTERNATIVES)


def test_reader_options_and_protocol_version_change_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_sequences(tmp_path / "s.txt")
    base = load(path).provenance["cache"]["key"]
    assert load(path, encoding="latin-1").provenance["cache"]["key"] != base
    monkeypatch.setattr(protocol_module, "PROTOCOL_VERSION", protocol_module.PROTOCOL_VERSION + 1)
    assert load(path).provenance["cache"]["key"] != base


def test_source_hash_is_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_sequences(tmp_path / "s.txt")
    hashed: list[Path] = []
    original = cache_module.file_sha256
    monkeypatch.setattr(cache_module, "file_sha256", lambda p: hashed.append(p) or original(p))
    load(path)
    load(path, Protocol(k_core=3))
    assert hashed == [path]


def test_a_damaged_entry_is_rebuilt(
    tmp_path: Path, reads: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    path = write_sequences(tmp_path / "s.txt")
    first = load(path)
    entry = Path(first.provenance["cache"]["path"])
    (entry / "arrays.npz").write_bytes(b"not a zip")
    again = load(path)
    assert "damaged" in caplog.text and len(reads) == 2
    assert np.array_equal(first.data.items, again.data.items)


def test_a_crash_while_saving_leaves_nothing_behind(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_sequences(tmp_path / "s.txt")

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(np, "savez", crash)
        with pytest.raises(KeyboardInterrupt):
            load(path)
    processed = cache_dir / "processed"
    assert [p for p in processed.iterdir() if p.is_dir()] == []
    assert not load(path).provenance["cache"]["hit"]


def test_refresh_rebuilds(tmp_path: Path, reads: list[Path]) -> None:
    path = write_sequences(tmp_path / "s.txt")
    load(path)
    spec = DatasetSpec(name="t", path=path, format="sequences")
    ds = load_dataset(spec, Protocol(k_core=2), refresh=True)
    assert len(reads) == 2 and not ds.provenance["cache"]["hit"]
    assert load(path).provenance["cache"]["hit"]


def test_concurrent_processes_build_one_entry(tmp_path: Path, cache_dir: Path) -> None:
    path = write_sequences(tmp_path / "s.txt", n_users=3000)
    script = (
        "import json, sys; from seqbench.data.load import DatasetSpec, load_dataset;"
        "from seqbench.data.protocol import Protocol;"
        f"ds = load_dataset(DatasetSpec(name='t', path={str(path)!r}, format='sequences'),"
        " Protocol(k_core=2));"
        "print(json.dumps([ds.provenance['cache']['hit'], ds.n_interactions]))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(hit for hit, _ in results) == [False, True, True]  # built once, reused twice
    assert len({n for _, n in results}) == 1
    entries = [p.name for p in (cache_dir / "processed").iterdir() if p.is_dir()]
    assert len(entries) == 1 and not entries[0].startswith(".tmp")


def test_cache_dir_comes_from_the_environment(cache_dir: Path, tmp_path: Path) -> None:
    load(write_sequences(tmp_path / "s.txt"))
    assert len(list((cache_dir / "processed").glob("*/meta.json"))) == 1
    assert cache_module.cache_root() == cache_dir
    assert cache_module.cache_root(tmp_path / "x") == tmp_path / "x"


def test_entry_meta_records_fingerprint_and_counts(tmp_path: Path) -> None:
    ds = load(write_sequences(tmp_path / "s.txt"))
    meta = json.loads((Path(ds.provenance["cache"]["path"]) / "meta.json").read_text())
    assert meta["fingerprint"]["protocol"] == Protocol(k_core=2).fingerprint()
    assert meta["fingerprint"]["source"]["format"] == "sequences"
    assert meta["raw"]["users"] == 40
    assert ProcessedCache(Path(ds.provenance["cache"]["path"]).parents[1]).load(meta["key"])


def test_rewritten_content_with_restored_mtime_is_noticed(
    tmp_path: Path, reads: list[Path]
) -> None:
    path = write_sequences(tmp_path / "s.txt", seed=0)
    before = load(path)
    stat = path.stat()
    write_sequences(path, seed=1)  # same size is likely; the mtime is then put back
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = load(path)
    assert after.provenance["source"]["sha256"] != before.provenance["source"]["sha256"]
    assert len(reads) == 2


def test_a_reader_version_bump_changes_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_sequences(tmp_path / "s.txt")
    base = load(path).provenance["cache"]["key"]
    monkeypatch.setattr(type(get_reader("sequences")), "version", 2)
    assert load(path).provenance["cache"]["key"] != base


def test_a_truncated_archive_is_rebuilt(tmp_path: Path, reads: list[Path]) -> None:
    path = write_sequences(tmp_path / "s.txt")
    arrays = Path(load(path).provenance["cache"]["path"]) / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[:-200])  # cut the zip directory off: BadZipFile
    assert not load(path).provenance["cache"]["hit"]
    assert len(reads) == 2


def test_a_cache_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    spec = DatasetSpec(name="t", path=write_sequences(tmp_path / "s.txt"), format="sequences")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        load_dataset(spec, cache_dir=blocker)
    with pytest.raises(ConfigError, match="cannot create it"):
        load_dataset(spec, cache_dir=blocker / "below")
