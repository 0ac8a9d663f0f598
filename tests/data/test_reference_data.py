"""ml-100k-recbole: RecBole 1.2.1's atomic files, downloaded (the wheel, checked against PyPI's
sha256, each read member against its pinned sha256) or read from a local copy in the data folder
(checked against the same pins) — both give the same bytes, so the same cell hashes."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import pytest

from seqbench.cells import source_fingerprint
from seqbench.data import registry
from seqbench.data.cache import cache_root
from seqbench.data.load import DatasetSpec, own_text_member
from seqbench.errors import DownloadError
from seqbench.suite import load_suite
from tests.conftest import REPO

NAME = "ml-100k-recbole"
MEMBERS = ("ml-100k.inter", "ml-100k.item")
PREFIX = "recbole/dataset_example/ml-100k/"


def _local_folder(shared_data: Path) -> Path:
    folder = shared_data / NAME
    if not all((folder / m).is_file() for m in MEMBERS):
        pytest.fail(f"the shared data lacks {folder}/{MEMBERS}")
    return folder


@pytest.fixture
def served_wheel(
    shared_data: Path, http_server: tuple[str, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """The wheel's two members, served as the wheel from a local mirror; the registry's archive
    checksum is swapped for this archive's (the member pins stay the real ones, and are checked)."""
    url, served, requests = http_server
    entry = registry.DATASETS[NAME]
    assert entry.remote is not None
    wheel = served / entry.remote.filename
    with zipfile.ZipFile(wheel, "w") as archive:
        for member in MEMBERS:
            archive.write(_local_folder(shared_data) / member, PREFIX + member)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    remote = dataclasses.replace(entry.remote, known_hash=f"sha256:{digest}")
    monkeypatch.setitem(registry.DATASETS, NAME, dataclasses.replace(entry, remote=remote))
    monkeypatch.setenv("SEQBENCH_MIRROR", url)
    return requests


@pytest.mark.shared_data
def test_the_registry_pins_what_the_shared_copy_holds(shared_data: Path) -> None:
    remote = registry.DATASETS[NAME].remote
    assert remote is not None and remote.known_hash is not None
    assert remote.url.endswith("recbole-1.2.1-py3-none-any.whl")
    for member in MEMBERS:
        digest = hashlib.sha256((_local_folder(shared_data) / member).read_bytes()).hexdigest()
        assert remote.members_sha256[PREFIX + member] == digest


@pytest.mark.shared_data
def test_download_and_local_copy_give_the_same_cell_hashes(
    served_wheel: list[str], shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEQBENCH_DATA_DIR", raising=False)  # CI sets it: "no data folder" here
    suite_file = REPO / "suites" / "reference-ml100k.toml"
    downloaded = load_suite(suite_file, data_dir=None)
    local = load_suite(suite_file, data_dir=shared_data)
    spec_download, spec_local = downloaded.cells()[0].dataset, local.cells()[0].dataset
    assert all(c.dataset == spec_local for c in local.cells())
    assert spec_download.path is None and spec_local.path == _local_folder(shared_data) / MEMBERS[0]

    from_download = source_fingerprint(spec_download, download=True)
    assert served_wheel, "the wheel was not downloaded"
    from_local = source_fingerprint(spec_local, download=False)
    assert from_download is not None and from_local is not None
    pinned = registry.DATASETS[NAME].remote.members_sha256  # type: ignore[union-attr]
    assert from_download["sha256"] == pinned[PREFIX + MEMBERS[0]]
    hashes = [[c.hash(fp) for c in s.cells()] for s, fp in ((downloaded, from_download),
                                                           (local, from_local))]  # fmt: skip
    assert hashes[0] == hashes[1] and len(set(hashes[0])) == 36

    # the item text: extracted from the download, or read beside the local copy — same bytes
    root = cache_root()
    text_download = own_text_member(spec_download, PREFIX + MEMBERS[1], Path("unused"), root)
    assert spec_local.path is not None
    text_local = own_text_member(spec_local, PREFIX + MEMBERS[1], spec_local.path, root)
    assert text_download.read_bytes() == text_local.read_bytes()
    assert text_local == _local_folder(shared_data) / MEMBERS[1]


@pytest.mark.shared_data
def test_a_local_copy_with_other_bytes_is_refused(shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    original = (_local_folder(shared_data) / MEMBERS[0]).read_bytes()
    (folder / MEMBERS[0]).write_bytes(original.replace(b"\n1\t", b"\n2\t", 1))  # one edit
    suite = load_suite(REPO / "suites" / "reference-ml100k.toml", data_dir=folder)
    spec = suite.cells()[0].dataset
    assert isinstance(spec, DatasetSpec) and spec.path == folder / MEMBERS[0]
    with pytest.raises(DownloadError, match=r"not the file the registry names .*sha256"):
        source_fingerprint(spec, download=False)
