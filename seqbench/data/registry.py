"""Named datasets: where each comes from, how it is read, and how its download is checked.

Checksums are the ones the provider publishes (GroupLens ships an ``.md5`` beside each MovieLens
archive). Where none is published (the Amazon 2014 files), the first download is trusted: its
sha256 is recorded in the cache and every later download must match it (see
:mod:`seqbench.data.download`). No checksum here is made up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from seqbench.errors import UnknownNameError


@dataclass(frozen=True)
class RemoteFile:
    """One file to download, and the member of it that the reader reads (for archives)."""

    url: str
    known_hash: str | None  # "md5:…"/"sha256:…" as published; None = trust on first download
    hash_source: str | None = None  # where the provider publishes known_hash
    member: str | None = None  # path inside a zip archive
    #: sha256 of members, checked when extracted and when a local copy of one is used instead
    #: of the download (a data-folder file named like the member), so both give the same bytes.
    members_sha256: dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def local_name(self, member: str | None = None) -> str | None:
        """The file name a local copy of ``member`` (default: the read member) has in the data
        folder; None where no member hash is pinned (an unverifiable copy is not accepted)."""
        member = member or self.member
        if member is None or member not in self.members_sha256:
            return None
        return member.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    summary: str
    format: str  # reader name; "synthetic" for the generator
    homepage: str
    terms: str  # license / terms of use (`seqbench data list` shows them)
    citation: str
    remote: RemoteFile | None = None
    options: dict[str, Any] = field(default_factory=dict)  # reader options


_MOVIELENS_TERMS = (
    "GroupLens terms: research use only, no redistribution, cite Harper & Konstan (TiiS 2015)"
)
_AMAZON_TERMS = (
    "Amazon review data (McAuley et al.): research use; cite McAuley et al. (SIGIR 2015) "
    "and He & McAuley (WWW 2016)"
)
_AMAZON_2014 = "https://jmcauley.ucsd.edu/data/amazon/index_2014.html"
_SNAP = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
_RECBOLE_WHEEL = (
    "https://files.pythonhosted.org/packages/ab/fe/"
    "7d606cb7cd2b166a36b100cb9435d21014ceee16c192d972deb0976967a8/recbole-1.2.1-py3-none-any.whl"
)
_RECBOLE_ML100K = "recbole/dataset_example/ml-100k/"

DATASETS: dict[str, DatasetEntry] = {
    e.name: e
    for e in [
        DatasetEntry(
            name="ml-100k",
            summary="MovieLens 100K: 100,000 ratings, 943 users, 1,682 movies (u.data)",
            format="grouplens",
            homepage="https://grouplens.org/datasets/movielens/100k/",
            terms=_MOVIELENS_TERMS,
            citation="Harper & Konstan, The MovieLens Datasets, ACM TiiS 5(4):19, 2015",
            remote=RemoteFile(
                url=f"{_GROUPLENS}/ml-100k.zip",
                known_hash="md5:0e33842e24a9c977be4e0107933c0723",
                hash_source=f"{_GROUPLENS}/ml-100k.zip.md5",
                member="ml-100k/u.data",
            ),
        ),
        DatasetEntry(
            name="ml-100k-recbole",
            summary="MovieLens 100K as RecBole 1.2.1 ships it (atomic ml-100k.inter: 100,000 "
            "ratings, 943 users, 1,682 movies; ml-100k.item: titles, years, genres)",
            format="recbole",
            homepage="https://recbole.io/dataset_list.html",
            terms=_MOVIELENS_TERMS + "; the files as packaged in the recbole 1.2.1 wheel (MIT)",
            citation="Harper & Konstan, The MovieLens Datasets, ACM TiiS 5(4):19, 2015; "
            "Zhao et al., RecBole 2.0, CIKM 2022",
            remote=RemoteFile(
                url=_RECBOLE_WHEEL,
                known_hash="sha256:9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
                hash_source="https://pypi.org/simple/recbole/ (the sha256 PyPI publishes with "
                "recbole-1.2.1-py3-none-any.whl)",
                member=_RECBOLE_ML100K + "ml-100k.inter",
                members_sha256={
                    _RECBOLE_ML100K + "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f"
                    "996c4aea351b1272ca36b43da0935eff",
                    _RECBOLE_ML100K + "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81f"
                    "e07d75e78abbe761e0cd4d0756064532",
                },
            ),
        ),
        DatasetEntry(
            name="ml-1m",
            summary="MovieLens 1M: 1,000,209 ratings, 6,040 users, 3,706 movies (ratings.dat)",
            format="grouplens",
            homepage="https://grouplens.org/datasets/movielens/1m/",
            terms=_MOVIELENS_TERMS,
            citation="Harper & Konstan, The MovieLens Datasets, ACM TiiS 5(4):19, 2015",
            remote=RemoteFile(
                url=f"{_GROUPLENS}/ml-1m.zip",
                known_hash="md5:c4d9eecfca2ab87c1945afe126590906",
                hash_source=f"{_GROUPLENS}/ml-1m.zip.md5",
                member="ml-1m/ratings.dat",
            ),
        ),
        DatasetEntry(
            name="amazon-beauty",
            summary="Amazon 2014 Beauty 5-core reviews (198,502 reviews, 22,363 users, "
            "12,101 items)",
            format="amazon",
            homepage=_AMAZON_2014,
            terms=_AMAZON_TERMS,
            citation="McAuley et al., Image-based Recommendations on Styles and Substitutes, "
            "SIGIR 2015",
            remote=RemoteFile(url=f"{_SNAP}/reviews_Beauty_5.json.gz", known_hash=None),
        ),
        DatasetEntry(
            name="amazon-video-games",
            summary="Amazon 2014 Video Games 5-core reviews (231,780 reviews, 24,303 users, "
            "10,672 items)",
            format="amazon",
            homepage=_AMAZON_2014,
            terms=_AMAZON_TERMS,
            citation="McAuley et al., Image-based Recommendations on Styles and Substitutes, "
            "SIGIR 2015",
            remote=RemoteFile(url=f"{_SNAP}/reviews_Video_Games_5.json.gz", known_hash=None),
        ),
        DatasetEntry(
            name="synthetic",
            summary="generated sequences with planted Markov-chain and periodic structure "
            "(no download)",
            format="synthetic",
            homepage="",
            terms="generated by seqbench; no restrictions",
            citation="",
        ),
    ]
}


def get_dataset(name: str) -> DatasetEntry:
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownNameError("dataset", name, DATASETS) from None
