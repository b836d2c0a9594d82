"""Sentence sets: the shipped evaluation set, the file format, and refused files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from fp8ref.models import sentences
from fp8ref.outputs import UsageError


def test_the_shipped_set_has_20_topics_of_10_distinct_sentences() -> None:
    s = sentences.default_set()
    assert len(s) == 200 and len(set(s.sentences)) == 200
    assert s.topics is not None and set(Counter(s.topics).values()) == {10} and len(set(s.topics)) == 20
    assert s.lines[0] > 1  # after the header comment
    small = s.per_topic(2)
    assert len(small) == 40 and set(Counter(small.topics).values()) == {2}
    assert s.head(3).sentences == s.sentences[:3]


def test_the_shipped_set_fits_the_model(minilm_model) -> None:
    tok = minilm_model.tokenize(list(sentences.default_set().sentences))
    assert tok.truncated == () and int(tok.batch.lengths.max()) <= 32


def test_format_topics_comments_and_blank_lines() -> None:
    s = sentences.parse("# a comment\n\nweather\tIt rains.\n  \nfood\t  Bread.  \n", "x")
    assert s.sentences == ("It rains.", "Bread.") and s.topics == ("weather", "food") and s.lines == (3, 5)
    s = sentences.parse("one\ntwo\n", "x")
    assert s.topics is None and s.sentences == ("one", "two")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no sentences"),
        ("# only\n\n   \n", "holds no sentences"),
        ("a\tone\ntwo\n", "line 2 has no topic but line 1 has one"),
        ("weather\t   \n", "line 1: topic 'weather' but an empty sentence"),
        ("\tsentence\n", "line 1: empty topic"),
    ],
)
def test_bad_sets_are_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        sentences.parse(text, "x")


def test_files_must_be_utf8(tmp_path: Path) -> None:
    p = tmp_path / "s.txt"
    p.write_bytes("caf\u00e9 ok\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"s.txt: not UTF-8 text: byte 0xe9 at offset 3 \(line 1\)"):
        sentences.read(p)
    p.write_bytes(b"line one\n\xff\xfe two\n")
    with pytest.raises(UsageError, match="line 2"):
        sentences.read(p)
    p.write_bytes("\ufeffcaf\u00e9\n".encode())  # a byte-order mark is dropped
    assert sentences.read(p).sentences == ("caf\u00e9",)
    with pytest.raises(UsageError, match="is a folder"):
        sentences.read(tmp_path)
    with pytest.raises(UsageError, match="no such file"):
        sentences.read(tmp_path / "nope.txt")
