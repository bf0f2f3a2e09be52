from pydoc_data.topics import topics

import pytest

from formers.data import load_corpus, pydoc_topics, split_text
from formers.errors import DataError


def test_pydoc_topics_are_sorted_and_complete():
    got = pydoc_topics()
    assert list(got) == sorted(topics)
    assert got == topics


def test_pydocs_corpus_joins_topics_in_key_order():
    text = load_corpus("pydocs")
    assert text == "\n\n".join(topics[k] for k in sorted(topics))
    assert len(text) > 100_000


def test_file_is_read_exactly(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("line one\r\nnaïve 日本\n".encode())
    assert load_corpus(str(path)) == "line one\r\nnaïve 日本\n"


def test_folder_reads_txt_files_in_sorted_order(tmp_path):
    (tmp_path / "b.txt").write_text("second", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first", encoding="utf-8")
    (tmp_path / "skip.md").write_text("not text", encoding="utf-8")
    assert load_corpus(str(tmp_path)) == "first\n\nsecond"


def test_missing_path_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="not found.*pydocs"):
        load_corpus(str(tmp_path / "nope.txt"))


def test_folder_without_txt_raises_data_error(tmp_path):
    (tmp_path / "x.md").write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match=r"no \*\.txt files"):
        load_corpus(str(tmp_path))


def test_empty_file_raises_data_error(tmp_path):
    (tmp_path / "e.txt").write_text(" \n\t", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        load_corpus(str(tmp_path / "e.txt"))


def test_undecodable_file_raises_data_error(tmp_path):
    (tmp_path / "latin.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(DataError, match="latin.txt is not UTF-8.*re-encode"):
        load_corpus(str(tmp_path / "latin.txt"))


def test_split_text_takes_last_fraction_for_validation():
    text = "".join(str(i % 10) for i in range(1000))
    train, val = split_text(text, 0.1)
    assert (len(train), len(val)) == (900, 100)
    assert train + val == text
    assert val == text[-100:]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 1.5])
def test_split_text_rejects_fraction_outside_open_interval(fraction):
    with pytest.raises(DataError, match=f"val_fraction={fraction}"):
        split_text("abcdef", fraction)


def test_split_text_rejects_empty_part():
    with pytest.raises(DataError, match="empty validation"):
        split_text("abc", 0.1)
    with pytest.raises(DataError, match="empty training"):
        split_text("ab", 0.9)
