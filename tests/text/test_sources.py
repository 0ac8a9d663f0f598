"""Item text readers on tiny files made here; every error names the file and line or the columns."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from seqbench.errors import ConfigError, DataFormatError
from seqbench.text.sources import TextSpec, align_texts, read_item_text, text_source_sha256


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def read(path: Path, fmt: str, **options: object) -> dict[str, str]:
    return read_item_text(TextSpec(path=path, format=fmt, **options))


# --- movielens -------------------------------------------------------------------------------

MOVIES = (
    "1::Toy Story (1995)::Animation|Children's|Comedy\n"
    "73::Misérables, Les (1995)::Drama|Musical\n"
    "\n"
    "99::Ça commence aujourd'hui (1999)::Drama\n"
    "100::No Genre (2000)::(no genres listed)\n"
)


def test_movielens_joins_title_and_genres_in_latin1(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.dat", MOVIES, "latin-1")
    assert read(path, "movielens") == {
        "1": "Toy Story (1995); genres: Animation, Children's, Comedy",
        "73": "Misérables, Les (1995); genres: Drama, Musical",
        "99": "Ça commence aujourd'hui (1999); genres: Drama",
        "100": "No Genre (2000)",
    }


def test_movielens_encoding_is_settable(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.dat", "5::Åsa (2001)::Drama\n", "utf-8")
    assert read(path, "movielens", encoding="utf-8") == {"5": "Åsa (2001); genres: Drama"}
    assert read(path, "movielens")["5"].startswith("Ã\x85sa")  # latin-1 by default


def test_movielens_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.dat", "1::Toy Story (1995)::Animation\n2::Jumanji (1995)\n")
    with pytest.raises(DataFormatError, match=r"movies\.dat:2: 2 '::'-separated field") as info:
        read(path, "movielens")
    assert info.value.line == 2


def test_movielens_gzip_and_zip_member(tmp_path: Path) -> None:
    gz = tmp_path / "movies.dat.gz"
    gz.write_bytes(gzip.compress(MOVIES.encode("latin-1")))
    assert read(gz, "movielens")["99"].startswith("Ça")
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-1m/movies.dat", MOVIES.encode("latin-1"))
        zf.writestr("ml-1m/README", "x")
    table = read(archive, "movielens", member="ml-1m/movies.dat")
    assert table["99"] == "Ça commence aujourd'hui (1999); genres: Drama"
    with pytest.raises(ConfigError, match=r"no member 'movies\.dat' \(members: ml-1m/movies\.dat"):
        read(archive, "movielens", member="movies.dat")


def test_zip_member_errors_name_the_member_and_line(tmp_path: Path) -> None:
    archive = tmp_path / "ml.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml/movies.dat", b"1::A::Drama\n2::\xff::Drama\n")
        zf.writestr("ml/bad.dat", b"1::A::Drama\nbroken\n")
    with pytest.raises(DataFormatError, match=r"ml\.zip \(member ml/bad\.dat\):2:"):
        read(archive, "movielens", member="ml/bad.dat")
    with pytest.raises(DataFormatError, match=r"member ml/movies\.dat\):2: byte 0xff"):
        read(archive, "movielens", member="ml/movies.dat", encoding="utf-8")
    not_zip = write(tmp_path / "plain.zip", "not a zip")
    with pytest.raises(DataFormatError, match="not a readable zip"):
        read(not_zip, "movielens", member="x")


# --- grouplens-item --------------------------------------------------------------------------

FLAGS_TOY = "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0"  # Animation, Children's, Comedy
FLAGS_NONE = "|".join(["0"] * 19)
FLAGS_WESTERN = "|".join(["0"] * 18 + ["1"])


def test_grouplens_item_decodes_genre_flags(tmp_path: Path) -> None:
    text = (
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy|{FLAGS_TOY}\n"
        f"267|unknown||||{FLAGS_NONE}\n"
        f"300|Åsa|A | B (1996)|01-Jan-1996||http://x|{FLAGS_WESTERN}\n"
    )
    path = write(tmp_path / "u.item", text, "latin-1")
    assert read(path, "grouplens-item") == {
        "1": "Toy Story (1995); genres: Animation, Children's, Comedy",
        "267": "unknown",
        "300": "Åsa|A | B (1996); genres: Western",
    }


def test_grouplens_item_errors_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "u.item", f"1|T|d||u|{FLAGS_TOY}\n2|T|d||u|0|1\n")
    with pytest.raises(DataFormatError, match=r"u\.item:2: 7 '\|'-separated field"):
        read(path, "grouplens-item")
    path = write(tmp_path / "u.item", f"1|T|d||u|{FLAGS_TOY[:-1]}2\n")
    with pytest.raises(DataFormatError, match=r"u\.item:1: genre flag '2'; expected 0 or 1"):
        read(path, "grouplens-item")


# --- recbole ---------------------------------------------------------------------------------

RECBOLE = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "1\tToy Story\t1995\tAnimation Children's Comedy\n"
    "2\tGoldenEye\t\tAction Adventure Thriller\n"
    "3\t\t\t\n"
)


def test_recbole_joins_fields_and_skips_empty_values(tmp_path: Path) -> None:
    path = write(tmp_path / "ml-100k.item", RECBOLE)
    table = read(path, "recbole")
    assert table == {
        "1": "movie_title: Toy Story; release_year: 1995; class: Animation Children's Comedy",
        "2": "movie_title: GoldenEye; class: Action Adventure Thriller",
    }  # item 3 has no text at all: absent
    assert read(path, "recbole", fields=["class", "movie_title"])["1"] == (
        "class: Animation Children's Comedy; movie_title: Toy Story"
    )


def test_recbole_unknown_fields_list_the_header(tmp_path: Path) -> None:
    path = write(tmp_path / "ml-100k.item", RECBOLE)
    with pytest.raises(ConfigError, match=r"no fields 'title' .*movie_title, release_year, class"):
        read(path, "recbole", fields=["title"])
    with pytest.raises(ConfigError, match=r"ml-100k\.item: no fields 'movie_id'"):
        read(path, "recbole", id="movie_id")


def test_recbole_malformed_header_and_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "a.item", "item_id:token\ttitle:text\n")
    with pytest.raises(DataFormatError, match=r"a\.item:1: header field 'title:text'"):
        read(path, "recbole")
    path = write(tmp_path / "b.item", "item_id:token\ttitle:token_seq\n1\tA\n2\tB\textra\n")
    with pytest.raises(DataFormatError, match=r"b\.item:3: 3 tab-separated field"):
        read(path, "recbole")
    with pytest.raises(DataFormatError, match=r"c\.item:1: the file is empty"):
        read(write(tmp_path / "c.item", ""), "recbole")


# --- csv -------------------------------------------------------------------------------------

CSV = (
    "item_id,name,category,description,price\n"
    '10,Lip Balm,Beauty,"Soft, with shea butter",3.5\n'
    "11,Mascara,,Black,\n"
)


def test_csv_joins_the_chosen_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "items.csv", CSV)
    table = read(path, "csv", fields=["name", "category", "description"])
    assert table == {
        "10": "name: Lip Balm; category: Beauty; description: Soft, with shea butter",
        "11": "name: Mascara; description: Black",
    }
    assert read(path, "csv")["10"].endswith("; price: 3.5")  # default: every column but the id


def test_csv_tsv_and_custom_id(tmp_path: Path) -> None:
    path = write(tmp_path / "items.tsv", "asin\ttitle\nB0\tFoo\n")
    assert read(path, "csv", id="asin") == {"B0": "title: Foo"}
    path = write(tmp_path / "items.txt", "asin;title\nB1;Bar\n")
    assert read(path, "csv", id="asin", sep=";") == {"B1": "title: Bar"}


def test_csv_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "items.csv", CSV)
    with pytest.raises(ConfigError, match=r"items\.csv: no columns 'title' .*item_id, name, cat"):
        read(path, "csv", fields=["title"])
    bad = write(tmp_path / "bad.csv", "item_id,name\n1,A\n2,B,C\n")
    with pytest.raises(DataFormatError, match=r"bad\.csv:3: 3 field\(s\); expected 2"):
        read(bad, "csv")
    empty_id = write(tmp_path / "noid.csv", "item_id,name\n1,A\n,B\n")
    with pytest.raises(DataFormatError, match=r"noid\.csv:3: an empty 'item_id'"):
        read(empty_id, "csv")


# --- jsonl -----------------------------------------------------------------------------------


def test_jsonl_joins_fields_and_lists(tmp_path: Path) -> None:
    records = [
        {"asin": "B001", "title": "Lip Balm", "categories": [["Beauty", "Lips"]], "price": 3},
        {"asin": "B002", "title": "  ", "categories": []},
        {"asin": 7, "title": "Mascara"},  # a numeric id is read as text
    ]
    path = write(tmp_path / "meta.jsonl", "\n".join(json.dumps(r) for r in records) + "\n\n")
    table = read(path, "jsonl", id="asin", fields=["title", "categories"])
    assert table == {"B001": "title: Lip Balm; categories: Beauty, Lips", "7": "title: Mascara"}
    assert read(path, "jsonl", id="asin")["B001"].endswith("; price: 3")


def test_jsonl_errors_name_line_or_keys(tmp_path: Path) -> None:
    good = json.dumps({"asin": "B1", "title": "A"})
    path = write(tmp_path / "meta.jsonl", f"{good}\n{{'asin': 'B2'}}\n")
    with pytest.raises(DataFormatError, match=r"meta\.jsonl:2: invalid JSON .*Python literals"):
        read(path, "jsonl", id="asin")
    with pytest.raises(ConfigError, match=r"m2\.jsonl: no key 'item_id' .*keys: asin, title"):
        read(write(tmp_path / "m2.jsonl", good + "\n"), "jsonl")
    path = write(tmp_path / "m3.jsonl", f"{good}\n" + json.dumps({"title": "B"}) + "\n")
    with pytest.raises(DataFormatError, match=r"m3\.jsonl:2: no key 'asin'"):
        read(path, "jsonl", id="asin")
    with pytest.raises(ConfigError, match=r"m4\.jsonl: .*key\(s\) brand .*keys: asin, title"):
        read(write(tmp_path / "m4.jsonl", good + "\n"), "jsonl", id="asin", fields=["brand"])
    with pytest.raises(DataFormatError, match=r"m5\.jsonl:1: a JSON list"):
        read(write(tmp_path / "m5.jsonl", "[1, 2]\n"), "jsonl")


def test_repeated_ids_keep_the_first_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "items.csv", "item_id,name\n1,First\n2,Other\n1,Second\n")
    with caplog.at_level(logging.WARNING, logger="seqbench.text"):
        assert read(path, "csv")["1"] == "name: First"
    assert "1 repeated item id(s) (first: '1' on line 4, first seen on line 2)" in caplog.text


# --- spec, hashing, alignment ----------------------------------------------------------------


def test_text_spec_validation(tmp_path: Path) -> None:
    f = tmp_path / "x"
    bad = [
        ({"path": f, "embeddings": tmp_path / "e.npz", "format": "csv"}, "not both"),
        ({"path": f}, "path needs a format"),
        ({"format": "csv"}, "format is set but path is not"),
        ({"member": "a/b"}, "member needs a format"),
        ({"member": "a/b", "format": "csv", "embeddings": tmp_path / "e.npz"}, "not go with"),
        ({"embeddings": tmp_path / "e.npy"}, "need ids"),
        ({"embeddings": tmp_path / "e.npz", "ids": f}, "a .npz holds its own"),
        ({"ids": f}, "ids applies to embeddings"),
        ({"embeddings": tmp_path / "e.txt"}, "expected a .npy or .npz"),
        ({"path": f, "format": "movielens", "fields": ["a"]}, "fields: not used by format"),
        ({"path": f, "format": "csv", "fields": []}, "fields is empty"),
        ({"path": f, "format": "jsonl", "sep": ";"}, "sep applies to format 'csv'"),
        ({"path": f, "format": "csv", "encoding": "klingon"}, "unknown text encoding"),
        ({"path": f, "format": "csv", "colour": "red"}, "Extra inputs"),
        ({"path": f, "format": "xml"}, "movielens"),
    ]
    for values, message in bad:
        with pytest.raises(ValidationError, match=message):
            TextSpec(**values)
    assert TextSpec().path is None
    own = TextSpec(format="movielens", member="ml-1m/movies.dat")  # in the dataset's download
    assert own.path is None and own.text_encoding == "latin-1"
    assert TextSpec(path=f, format="movielens").text_encoding == "latin-1"
    assert TextSpec(path=f, format="jsonl").text_encoding == "utf-8"


def test_read_item_text_needs_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="names no text file"):
        read_item_text(TextSpec())
    with pytest.raises(ConfigError, match=r"missing\.dat: no such file"):
        read(tmp_path / "missing.dat", "movielens")


def test_text_source_sha256_covers_the_bytes_read(tmp_path: Path) -> None:
    text = write(tmp_path / "movies.dat", MOVIES, "latin-1")
    assert text_source_sha256(TextSpec()) is None
    spec = TextSpec(path=text, format="movielens")
    assert text_source_sha256(spec) == hashlib.sha256(text.read_bytes()).hexdigest()
    vectors, ids = tmp_path / "e.npy", write(tmp_path / "ids.txt", "1\n2\n")
    np.save(vectors, np.zeros((2, 3), dtype=np.float32))
    both = hashlib.sha256(vectors.read_bytes() + ids.read_bytes()).hexdigest()
    assert text_source_sha256(TextSpec(embeddings=vectors, ids=ids)) == both


def test_align_texts_follows_item_tokens() -> None:
    table = {"10": "ten", "30": "thirty", "99": "not an item"}
    tokens = np.array(["[PAD]", "30", "20", "10"])
    aligned = align_texts(table, tokens)
    assert aligned.tolist() == ["", "thirty", "", "ten"]
    assert aligned.dtype.kind == "U"
    assert align_texts({}, np.array(["[PAD]"])).tolist() == [""]


def test_tsv_member_of_a_zip(tmp_path: Path) -> None:
    archive = tmp_path / "meta.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("meta/items.tsv", "item_id\ttitle\n1\tA, B\n")
    assert read(archive, "csv", member="meta/items.tsv") == {"1": "title: A, B"}
