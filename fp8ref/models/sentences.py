"""Sentence sets: fp8ref's evaluation set (package data) and user files.

File format (UTF-8): one sentence per line, optionally preceded by a topic and a tab (``TOPIC<TAB>SENTENCE``);
blank lines and lines whose first character is ``#`` are not sentences. Either every sentence has a topic
(then same-topic retrieval is measured) or none has. The shipped set, ``data/sentences.tsv``, holds 200
sentences written for fp8ref (public domain), 10 in each of 20 topics.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fp8ref.outputs import UsageError

DEFAULT = "data/sentences.tsv"
#: a sentences file larger than this is refused before it is read
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class SentenceSet:
    """``sentences`` in file order, their ``topics`` (or ``None``), the ``lines`` they came from (1-based)
    and the ``source`` it was read from."""

    sentences: tuple[str, ...]
    topics: tuple[str, ...] | None
    lines: tuple[int, ...]
    source: str

    def __len__(self) -> int:
        return len(self.sentences)

    def head(self, n: int) -> SentenceSet:
        """The first ``n`` sentences."""
        return SentenceSet(
            self.sentences[:n], None if self.topics is None else self.topics[:n], self.lines[:n], self.source
        )

    def per_topic(self, n: int) -> SentenceSet:
        """The first ``n`` sentences of every topic, in file order (the whole set without topics)."""
        if self.topics is None:
            return self
        seen: dict[str, int] = {}
        keep = []
        for i, t in enumerate(self.topics):
            seen[t] = seen.get(t, 0) + 1
            if seen[t] <= n:
                keep.append(i)
        return SentenceSet(
            tuple(self.sentences[i] for i in keep),
            tuple(self.topics[i] for i in keep),
            tuple(self.lines[i] for i in keep),
            self.source,
        )


def parse(text: str, source: str) -> SentenceSet:
    """Parse the file format above; refuses a set without sentences and mixed topic / no-topic lines."""
    sentences, topics, lines = [], [], []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.startswith("#"):
            continue
        if "\t" in raw:
            topic, sentence = raw.split("\t", 1)
            topic, sentence = topic.strip(), sentence.strip()
            if not topic:
                raise UsageError(f"{source}: line {n}: empty topic before the tab")
            if not sentence:
                raise UsageError(f"{source}: line {n}: topic {topic!r} but an empty sentence")
        else:
            topic, sentence = None, raw.strip()
        sentences.append(sentence)
        topics.append(topic)
        lines.append(n)
    if not sentences:
        raise UsageError(f"{source}: holds no sentences (blank lines and '#' lines are skipped)")
    with_topic = [ln for ln, t in zip(lines, topics, strict=True) if t is not None]
    if with_topic and len(with_topic) != len(lines):
        without = next(ln for ln, t in zip(lines, topics, strict=True) if t is None)
        raise UsageError(
            f"{source}: line {without} has no topic but line {with_topic[0]} has one "
            "(give every sentence a topic, TOPIC<TAB>SENTENCE, or none)"
        )
    return SentenceSet(
        tuple(sentences),
        tuple(topics) if with_topic else None,  # type: ignore[arg-type]
        tuple(lines),
        source,
    )


def decode(data: bytes, source: str) -> str:
    """UTF-8 text of a file (a leading byte-order mark is dropped); refuses other encodings, naming the
    line and byte of the first bad sequence."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(
            f"{source}: not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"(line {line}) is {exc.reason}"
        ) from None


def read(path: str | Path) -> SentenceSet:
    """A sentences file (format above)."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{p}: is a folder, expected a sentences file")
    if not p.exists():
        raise UsageError(f"{p}: no such file")
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise UsageError(f"{p}: {size} bytes, larger than the {MAX_BYTES} bytes a sentences file may have")
    return parse(decode(p.read_bytes(), str(p)), str(p))


def default_set() -> SentenceSet:
    """fp8ref's evaluation set: 200 sentences, 20 topics of 10."""
    data = resources.files("fp8ref.models").joinpath(DEFAULT).read_bytes()
    return parse(decode(data, f"fp8ref/models/{DEFAULT}"), f"fp8ref/models/{DEFAULT}")


__all__ = ["SentenceSet", "parse", "decode", "read", "default_set", "DEFAULT"]
