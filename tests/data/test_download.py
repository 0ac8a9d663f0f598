"""Downloads against a local HTTP server on 127.0.0.1 serving archives built here."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from seqbench.data import registry
from seqbench.data.load import DatasetSpec, load_dataset
from seqbench.data.protocol import Protocol
from seqbench.data.registry import DatasetEntry, RemoteFile
from seqbench.errors import DownloadError

U_DATA = "".join(
    f"{u}\t{i}\t{1 + (u * i) % 5}\t{1000 + 10 * i + u}\n" for u in range(1, 9) for i in range(1, 9)
)


def zip_bytes(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buffer.getvalue()


def reviews_gz(n_users: int = 6, n_items: int = 6, shift: int = 0) -> bytes:
    lines = [
        json.dumps(
            {
                "reviewerID": f"A{u}",
                "asin": f"B{(i + shift) % n_items}",
                "overall": 5.0,
                "unixReviewTime": 100 * i + u,
            }
        )
        for u in range(n_users)
        for i in range(n_items)
    ]
    return gzip.compress(("\n".join(lines) + "\n").encode())


@pytest.fixture
def tiny_zip_entry(monkeypatch: pytest.MonkeyPatch, http_server) -> DatasetEntry:  # type: ignore[no-untyped-def]
    """A registry entry whose published checksum matches the archive the server holds."""
    base, folder, _ = http_server
    data = zip_bytes({"tiny/u.data": U_DATA, "tiny/README": "hello"})
    (folder / "tiny.zip").write_bytes(data)
    entry = DatasetEntry(
        name="tiny",
        summary="test",
        format="grouplens",
        homepage="",
        terms="",
        citation="",
        remote=RemoteFile(
            url=f"{base}/tiny.zip",
            known_hash=f"md5:{hashlib.md5(data).hexdigest()}",
            hash_source=f"{base}/tiny.zip.md5",
            member="tiny/u.data",
        ),
    )
    monkeypatch.setitem(registry.DATASETS, "tiny", entry)
    return entry


def test_download_verify_extract_and_cache(
    tiny_zip_entry: DatasetEntry, http_server, cache_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    _, _, requests = http_server
    ds = load_dataset(DatasetSpec(name="tiny"), Protocol(k_core=0))
    assert ds.n_users == 8 and ds.n_interactions == 64
    assert ds.provenance["source"]["url"] == tiny_zip_entry.remote.url
    assert (
        Path(ds.provenance["source"]["file"]) == cache_dir / "downloads/tiny/extracted/tiny/u.data"
    )
    again = load_dataset(DatasetSpec(name="tiny"), Protocol(k_core=0))
    assert requests == ["/tiny.zip"]  # verified locally the second time, not downloaded
    assert again.provenance["cache"]["hit"]


def test_published_checksum_mismatch_fails_clearly(http_server, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """ml-100k through a mirror serving a different archive: the GroupLens md5 does not match."""
    base, folder, _ = http_server
    (folder / "ml-100k.zip").write_bytes(zip_bytes({"ml-100k/u.data": U_DATA}))
    with pytest.raises(DownloadError) as info:
        load_dataset(DatasetSpec(name="ml-100k"), mirror=base)
    message = str(info.value)
    assert "dataset 'ml-100k'" in message and f"{base}/ml-100k.zip" in message
    assert "files.grouplens.org/datasets/movielens/ml-100k.zip.md5" in message
    assert "0e33842e24a9c977be4e0107933c0723" in message  # the expected checksum is shown
    assert not list((cache_dir / "downloads" / "ml-100k").glob("ml-100k.zip"))  # not kept


def test_mirror_from_the_environment(http_server, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    base, folder, requests = http_server
    (folder / "ml-1m.zip").write_bytes(zip_bytes({"ml-1m/ratings.dat": "1::2::5::9\n"}))
    monkeypatch.setenv("SEQBENCH_MIRROR", base + "/")
    with pytest.raises(DownloadError, match="does not match the checksum published"):
        load_dataset(DatasetSpec(name="ml-1m"))
    assert requests == ["/ml-1m.zip"]


def test_trust_on_first_download_records_and_then_enforces(
    http_server,
    cache_dir: Path,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    base, folder, requests = http_server
    first = reviews_gz()
    (folder / "reviews_Beauty_5.json.gz").write_bytes(first)
    ds = load_dataset(DatasetSpec(name="amazon-beauty"), Protocol(k_core=0), mirror=base)
    assert ds.n_users == 6 and ds.n_interactions == 36
    assert "no checksum is published" in caplog.text
    trusted = json.loads((cache_dir / "downloads/trusted-sha256.json").read_text())
    assert trusted["amazon-beauty"]["sha256"] == hashlib.sha256(first).hexdigest()

    # The local copy is lost and the mirror now serves other bytes: refused, recorded hash named.
    (cache_dir / "downloads/amazon-beauty/reviews_Beauty_5.json.gz").unlink()
    (folder / "reviews_Beauty_5.json.gz").write_bytes(reviews_gz(shift=1))
    with pytest.raises(DownloadError, match="recorded at its first download") as info:
        load_dataset(DatasetSpec(name="amazon-beauty"), Protocol(k_core=0), mirror=base)
    assert hashlib.sha256(first).hexdigest() in str(info.value)

    # The same bytes as the first time are accepted again.
    (folder / "reviews_Beauty_5.json.gz").write_bytes(first)
    again = load_dataset(DatasetSpec(name="amazon-beauty"), Protocol(k_core=0), mirror=base)
    assert again.provenance["source"]["sha256"] == hashlib.sha256(first).hexdigest()
    assert len(requests) == 3


def test_unreachable_server_names_the_url_and_the_way_out(http_server) -> None:  # type: ignore[no-untyped-def]
    base, _, _ = http_server  # the folder is empty: 404
    with pytest.raises(
        DownloadError,
        match=r"could not download .*reviews_Video_Games_5.json.gz.*--path FILE --format amazon",
    ):
        load_dataset(DatasetSpec(name="amazon-video-games"), mirror=base)


def test_archive_without_the_member(
    tiny_zip_entry: DatasetEntry, http_server, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    remote = dataclasses.replace(tiny_zip_entry.remote, member="tiny/ratings.dat")
    broken = dataclasses.replace(tiny_zip_entry, remote=remote)
    monkeypatch.setitem(registry.DATASETS, "tiny", broken)
    with pytest.raises(DownloadError, match=r"no member 'tiny/ratings.dat' \(it has: tiny/u.data"):
        load_dataset(DatasetSpec(name="tiny"))


def test_registry_checksums_are_published_ones_or_none() -> None:
    for entry in registry.DATASETS.values():
        if entry.remote is None:
            assert entry.format == "synthetic"
        elif entry.remote.known_hash is not None:
            assert entry.remote.hash_source, entry.name  # every checksum says where it is published
        else:
            assert entry.name.startswith("amazon-")  # the Amazon files publish none
