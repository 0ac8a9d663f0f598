"""Each reader on tiny files made here, including malformed lines (the error names the line)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from seqbench.data.raw import RawInteractions
from seqbench.data.readers import READERS, get_reader, parse_options
from seqbench.errors import ConfigError, DataFormatError, UnknownNameError


def read(fmt: str, path: Path, **options: object) -> RawInteractions:
    reader = get_reader(fmt)
    opts = parse_options(reader, dict(options), "test")
    return reader.read(reader.resolve(path, opts), opts)


def rows(raw: RawInteractions) -> list[tuple[str, str]]:
    return list(
        zip(raw.user_tokens[raw.user].tolist(), raw.item_tokens[raw.item].tolist(), strict=False)
    )


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_registry_lists_every_format() -> None:
    assert set(READERS) == {"recbole", "sequences", "pairs", "grouplens", "amazon", "csv"}
    with pytest.raises(UnknownNameError, match="did you mean 'sequences'"):
        get_reader("sequence")


# --- sequences -------------------------------------------------------------------------------


def test_sequences_reads_users_in_line_order(tmp_path: Path) -> None:
    # trailing spaces and a blank line, as in the S3-Rec files
    raw = read("sequences", write(tmp_path / "s.txt", "7 3 1 3 \n\n9 1 8\n"))
    assert rows(raw) == [("7", "3"), ("7", "1"), ("7", "3"), ("9", "1"), ("9", "8")]
    assert raw.timestamp is None and raw.rating is None
    assert raw.item_tokens.tolist() == ["3", "1", "8"]  # codes in order of first appearance
    assert raw.item.tolist() == [0, 1, 0, 1, 2]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("1 2 3\n2\n", 2, "user '2' has no items"),
        ("1 2 3\n2 4\n1 5\n", 3, r"user '1' already has a line \(line 1\)"),
    ],
)
def test_sequences_malformed_lines(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path / "bad.txt", text)
    with pytest.raises(DataFormatError, match=message) as info:
        read("sequences", path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_sequences_with_explicit_separator(tmp_path: Path) -> None:
    raw = read("sequences", write(tmp_path / "s.csv", "u1,a,b\nu2,b\n"), sep=",")
    assert rows(raw) == [("u1", "a"), ("u1", "b"), ("u2", "b")]


# --- pairs -----------------------------------------------------------------------------------


def test_pairs(tmp_path: Path) -> None:
    raw = read("pairs", write(tmp_path / "p.txt", "1 5\n1 6\n2 5\n\n"))
    assert rows(raw) == [("1", "5"), ("1", "6"), ("2", "5")]


def test_pairs_malformed(tmp_path: Path) -> None:
    path = write(tmp_path / "p.txt", "1 5\n1 6 7\n")
    with pytest.raises(
        DataFormatError, match=r"p.txt:2: 3 field\(s\).*expected exactly 'user item'"
    ):
        read("pairs", path)


# --- grouplens -------------------------------------------------------------------------------


def test_grouplens_ml100k_tab_separated(tmp_path: Path) -> None:
    raw = read(
        "grouplens", write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    )
    assert rows(raw) == [("196", "242"), ("186", "302")]
    assert raw.timestamp.tolist() == [881250949.0, 891717742.0]
    assert raw.rating.tolist() == [3.0, 3.0]


def test_grouplens_ml1m_double_colon_and_folder(tmp_path: Path) -> None:
    write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    raw = read("grouplens", tmp_path)  # a folder is searched for ratings.dat / u.data
    assert rows(raw) == [("1", "1193"), ("1", "661")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1::2::5::978300760\n1::3::5\n", r":2: 3 field\(s\)"),
        ("1::2::5::978300760\n1::3::x::978300761\n", r":2: rating 'x'; expected a finite number"),
        ("1::2::5::978300760\n1::3::4::soon\n", r":2: timestamp 'soon'; expected a finite number"),
    ],
)
def test_grouplens_malformed(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataFormatError, match=message):
        read("grouplens", write(tmp_path / "ratings.dat", text))


def test_grouplens_unknown_file_name_needs_sep(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.txt", "1,2,5,9\n")
    with pytest.raises(ConfigError, match="set the reader option sep"):
        read("grouplens", path)
    assert rows(read("grouplens", path, sep=",")) == [("1", "2")]


# --- recbole ---------------------------------------------------------------------------------

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "196\t242\t3\t881250949\n"
    "186\t302\t3\t891717742\n"
)


def test_recbole_file_and_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    path = write(folder / "ml.inter", INTER)
    for target in (path, folder):
        raw = read("recbole", target)
        assert rows(raw) == [("196", "242"), ("186", "302")]
        assert raw.timestamp.tolist() == [881250949.0, 891717742.0]


def test_recbole_field_names_are_options(tmp_path: Path) -> None:
    path = write(tmp_path / "x.inter", "uid:token\tiid:token\tts:float\nA\tB\t5\n")
    expected = r"x.inter:1: no column 'user_id' .*columns: uid, iid, ts.*reader option user_field"
    with pytest.raises(DataFormatError, match=expected):
        read("recbole", path)
    raw = read("recbole", path, user_field="uid", item_field="iid", time_field="ts")
    assert rows(raw) == [("A", "B")] and raw.rating is None


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("user_id\titem_id:token\n", 1, "header field 'user_id'"),
        (INTER + "1\t2\t3\n", 4, r"3 tab-separated field\(s\); expected 4"),
        (INTER + "1\t2\t3\tnoon\n", 4, "timestamp 'noon'; expected a finite number"),
    ],
)
def test_recbole_malformed(tmp_path: Path, text: str, line: int, message: str) -> None:
    with pytest.raises(DataFormatError, match=message) as info:
        read("recbole", write(tmp_path / "bad.inter", text))
    assert info.value.line == line


def test_recbole_drops_missing_ids_as_pandas_reads_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = INTER + "\t9\t3\t5\nNA\t9\t3\t6\n7\tnull\t3\t7\n7\t9\t\t8\n"
    raw = read("recbole", write(tmp_path / "x.inter", text))
    assert rows(raw) == [("196", "242"), ("186", "302"), ("7", "9")]
    assert np.isnan(raw.rating[-1])  # a blank rating is missing, not an error
    assert "dropped 3 row(s) whose user or item id is missing" in caplog.text


def test_recbole_folder_with_two_inter_files(tmp_path: Path) -> None:
    write(tmp_path / "a.inter", INTER)
    write(tmp_path / "b.inter", INTER)
    with pytest.raises(ConfigError, match=r"exactly one \*.inter file .* found a.inter, b.inter"):
        read("recbole", tmp_path)


# --- amazon ----------------------------------------------------------------------------------


def review(user: str, item: str, time: int, rating: float = 5.0) -> str:
    return json.dumps(
        {
            "reviewerID": user,
            "asin": item,
            "reviewText": "ok",
            "overall": rating,
            "unixReviewTime": time,
        }
    )


def test_amazon_plain_and_gzip(tmp_path: Path) -> None:
    text = "\n".join([review("A1", "B9", 20), review("A2", "B9", 10, 4.0)]) + "\n"
    plain = write(tmp_path / "r.json", text)
    packed = tmp_path / "r.json.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    for path in (plain, packed):
        raw = read("amazon", path)
        assert rows(raw) == [("A1", "B9"), ("A2", "B9")]
        assert raw.timestamp.tolist() == [20.0, 10.0]
        assert raw.rating.tolist() == [5.0, 4.0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"reviewerID": "A", "asin": ', "invalid JSON"),
        ("[1, 2]", "a JSON list"),
        ('{"reviewerID": "A", "asin": "B", "overall": 5}', "no field unixReviewTime"),
        ('{"reviewerID": "A", "asin": "B", "overall": 5, "unixReviewTime": "x"}', "numbers"),
    ],
)
def test_amazon_malformed(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "r.json", review("A", "B", 1) + "\n" + line + "\n")
    with pytest.raises(DataFormatError, match=f"r.json:2: .*{message}"):
        read("amazon", path)


def test_truncated_gzip_is_reported(tmp_path: Path) -> None:
    data = gzip.compress(("\n".join(review("A", f"B{i}", i) for i in range(2000)) + "\n").encode())
    path = tmp_path / "r.json.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="gzip stream is truncated or corrupt"):
        read("amazon", path)


# --- csv -------------------------------------------------------------------------------------


def test_csv_named_columns_numeric_and_iso_times(tmp_path: Path) -> None:
    text = 'when,who,what,stars\n2020-01-02T00:00:00,u1,i1,4\n2020-01-01,u2,"i,2",5\n'
    path = write(tmp_path / "log.csv", text)
    raw = read("csv", path, user_col="who", item_col="what", time_col="when", rating_col="stars")
    assert rows(raw) == [("u1", "i1"), ("u2", "i,2")]
    assert raw.timestamp.tolist() == [1577923200.0, 1577836800.0]  # ISO read as UTC
    assert raw.rating.tolist() == [4.0, 5.0]
    numeric = read("csv", write(tmp_path / "n.csv", "user_id,item_id,timestamp\nu,i,17.5\n"))
    assert numeric.timestamp.tolist() == [17.5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user_id,item_id\n1,2\n", r":1: no column 'timestamp' .*set the reader option time_col"),
        ("user_id,item_id,timestamp\n1,2,3\n1,2\n", r":3: 2 field\(s\); expected 3"),
        ("user_id,item_id,timestamp\n1,2,3\n1,2,yesterday\n", r":3: timestamp 'yesterday'"),
        (
            "user_id,item_id,timestamp\n1,2,2019-06-01\n1,3,2021\n",
            r":3: number timestamp '2021' among date-time ones",
        ),
        ("user_id,item_id,timestamp\n1,2,3\n1,3,nan\n", r":3: timestamp 'nan'; expected a finite"),
    ],
)
def test_csv_malformed(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataFormatError, match=message):
        read("csv", write(tmp_path / "log.csv", text))


# --- shared behaviour ------------------------------------------------------------------------


def test_undecodable_bytes_name_the_line_and_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path / "s.txt", "1 a b\n2 caf\xe9\n", encoding="latin-1")
    with pytest.raises(DataFormatError, match=r"s.txt:2: byte 0xe9 is not valid utf-8.*encoding"):
        read("sequences", path)
    assert rows(read("sequences", path, encoding="latin-1"))[-1] == ("2", "café")


def test_byte_order_mark_is_not_data(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_bytes(b"\xef\xbb\xbf1 a\n1 b\n2 a\n")
    assert rows(read("pairs", path)) == [("1", "a"), ("1", "b"), ("2", "a")]
    csv_path = tmp_path / "x.csv"
    csv_path.write_bytes(b"\xef\xbb\xbfuser_id,item_id,timestamp\n1,2,3\n")
    assert rows(read("csv", csv_path)) == [("1", "2")]


def test_old_mac_line_endings_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "s.txt", "1 a b c\r2 a b c\r")
    with pytest.raises(DataFormatError, match=r"s.txt:1: a carriage return inside the line"):
        read("sequences", path)
    windows = write(tmp_path / "w.txt", "1 a b\r\n2 a\r\n")
    assert rows(read("sequences", windows)) == [("1", "a"), ("1", "b"), ("2", "a")]


@pytest.mark.parametrize(
    ("fmt", "options", "message"),
    [
        ("pairs", {"sep": ""}, "a separator cannot be empty"),
        ("csv", {"sep": "::"}, "must be one character"),
        ("sequences", {"encoding": "klingon"}, "unknown text encoding 'klingon'"),
        ("grouplens", {"encoding": "klingon"}, "unknown text encoding 'klingon'"),
    ],
)
def test_bad_option_values_are_config_errors(fmt: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_options(get_reader(fmt), options, "test")


def test_tab_can_be_spelled_out(tmp_path: Path) -> None:
    path = write(tmp_path / "p.txt", "1\ta b\n")  # a space inside the item id
    for spelling in ("\\t", "tab", "\t"):
        assert rows(read("pairs", path, sep=spelling)) == [("1", "a b")]


def test_unknown_reader_option_suggests_the_closest(tmp_path: Path) -> None:
    reader = get_reader("csv")
    with pytest.raises(ConfigError, match=r"unknown option 'user_column'; did you mean 'user_col'"):
        parse_options(reader, {"user_column": "u"}, "test")


def test_missing_file_and_folder_for_single_file_formats(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        read("pairs", tmp_path / "absent.txt")
    with pytest.raises(ConfigError, match="is a folder"):
        read("pairs", tmp_path)


def test_many_rows_take_compact_codes(tmp_path: Path) -> None:
    n = 100_000
    lines = "".join(f"{u % 997} {u % 13}\n" for u in range(n))
    raw = read("pairs", write(tmp_path / "p.txt", lines))
    assert raw.user.dtype == np.int64 and len(raw) == n
    assert raw.user_tokens[raw.user].tolist() == [str(u % 997) for u in range(n)]
