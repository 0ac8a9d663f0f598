"""seqbench's samples equal RecBole 1.2.0's, sample for sample, on RecBole's own ml-100k.

The digests below were produced by RecBole 1.2.0 itself (benchmarks/recbole_parity.py, output in
benchmarks/results/recbole_parity.json): a sha256 of the item-id order and, per split, of the
sorted (user, input items, target) samples. Counts alone cannot catch a different tie order;
these digests do. Skipped where ../shared/data is absent, required when CI is set.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from seqbench.data.protocol import Protocol

pytestmark = pytest.mark.shared_data

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "recbole_parity.py"
_spec = importlib.util.spec_from_file_location("recbole_parity", _SCRIPT)
parity = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(parity)  # type: ignore[union-attr]

ML100K_ITEMS = "8abd5cddbbe0fd0f589c27534101c6d6ebea4e1b8c303a7105880071df083bbb"
RECBOLE = {
    # RecBole's ml-100k.yaml sets normalize_all: min-max scaled float32 times
    "recbole-ml-100k": ({"time_scaling": "minmax"}, "file", {
        "items": ML100K_ITEMS,
        "train": [96458, "4708c499837d77490364d09f39db4e7d448d5f85e6344f499107a211cbbc1a8f"],
        "valid": [943, "45c61e3c9463ad3850a36a47027d206ed99b28a32fc0e364fc469079d07c74bf"],
        "test": [943, "6d38454425f4cb10cbd00c22ef4f4a4c0c30f1e56094c8598b54a4062f7e4943"],
    }),
    # any other dataset name: raw float32 times (seqbench's default)
    "default": ({}, "file", {
        "items": ML100K_ITEMS,
        "train": [96458, "096923c4386fa83c3a228420c6ab50575188d69747e95239971d96b5354e23e0"],
        "valid": [943, "db9cdc3eddb77ff610dcee4ed479c1b8e6e56c1b2c7f3b188caa9c188dc1d6b4"],
        "test": [943, "7715ddcbe8846f0c928e8bc0b066b45d093266e7d6671add550df67213e320a4"],
    }),
    "max-len-10": ({"max_len": 10}, "file", {
        "items": ML100K_ITEMS,
        "train": [96458, "5faa09e1caed27909173f3b802d4b8a82ed386bf29425a2aabb861cec5c6f4b9"],
        "valid": [943, "a7983b9c2388a1e16c998daeef7a89c54e25a671e84c47c189c06d8ec98edc36"],
        "test": [943, "89341b3aa9598aa55326f0aa6cd939f0efc5d1e7682babc693b01dd68d39f615"],
    }),
    "k-core-10": ({"k_core": 10}, "file", {
        "items": "3ed0645f2fc9f813f566ff55ab7925fc9daec38479cca1ff053cc58bfa1410ef",
        "train": [95124, "6b43bcfa0a058c6c67d00c25e8bce4029110fdcf79081da8753d3aa9044254e6"],
        "valid": [943, "e75efdc212a3c8ecd995b737d11cf572336de2dd974e7148cd66bd44cbaac056"],
        "test": [943, "619ebec3fa1c2c0da1f43c550f815b4a498ee0fcb83a28b2e35e060f3de754f0"],
    }),
    "dups-dedup-first": ({"dedup": "first"}, "dups", {
        "items": "97cec2fb9fa0613cc0a786f96ac7108c6034e42bae6bba497abc27bebae65eab",
        "train": [96458, "7e705b2ceb26a1effe9b177215168458f5dda7a95da6afaef740d136f3b3cfb1"],
        "valid": [943, "c223f3288a0daddef6f7d704ba2ef94b5263ba7bcf2242376d16a5231ebaaabc"],
        "test": [943, "d707745f740d730bbdc1b8f3c7b1d19361a5b1c4acb62ac2106030c664238453"],
    }),
    "dups-dedup-last": ({"dedup": "last"}, "dups", {
        "items": "e5c2266c0d069a34cb1a9ac60f4c2fb9c4d99b4fbfbaf0dffdf10e3abb4da479",
        "train": [96458, "4238322503c9008ffa1bf3726f7212263cb72179bd390947bc98320dd303c1e0"],
        "valid": [943, "4106961e449c6f233fd9ee36b6b2f546012a226fe41d16744303a93080b7052a"],
        "test": [943, "57df2c716dce00dfb2a220de13adf48e07e193c8823586904539296d14eb4f92"],
    }),
}  # fmt: skip


@pytest.fixture(scope="module")
def files(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    inter = shared_data / "ml-100k-recbole" / "ml-100k.inter"
    out = tmp_path_factory.mktemp("parity") / "dups.inter"
    return {"file": inter, "dups": parity.with_repeats_and_distinct_times(inter, out)}


@pytest.mark.parametrize("case", list(RECBOLE))
def test_samples_equal_recboles(case: str, files: dict, cache_dir: Path) -> None:
    knobs, file, expected = RECBOLE[case]
    assert parity.seqbench_digests(files[file], Protocol(**knobs), cache_dir) == expected


def test_exact_time_comparison_is_not_recboles(
    shared_data: Path, files: dict, cache_dir: Path
) -> None:
    """float64 times break ties RecBole keeps: the digests must differ (the knob matters)."""
    ours = parity.seqbench_digests(files["file"], Protocol(time_precision="float64"), cache_dir)
    assert ours["items"] == ML100K_ITEMS  # same ids, same counts …
    assert ours["test"][0] == 943
    assert ours["test"][1] != RECBOLE["default"][2]["test"][1]  # … other samples
