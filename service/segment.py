"""Sentence segmentation with character offsets into the original text.

pysbd was chosen over blingfire after both were run on written news text
(docs/serving.md): pysbd keeps "Mr. Smith" together and ends a headline at its
line break; blingfire split "Mr." off and glued the headline to the dateline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import pysbd

_HAS_WORD = re.compile(r"\w")
_QUOTES = re.compile(r"[\"“”«»„]|(?:^|\s)[‘'](?=\w)")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str

    @property
    def quoted(self) -> bool:
        """True when the sentence is, or contains, a direct quotation."""
        return bool(_QUOTES.search(self.text))


@cache
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def split_sentences(text: str) -> list[Span]:
    """Sentences of text, trimmed, with offsets such that text[start:end] == span.text.

    Fragments without a letter or digit (a stray "." of an ellipsis) join the
    sentence before them, so no character of the document is silently dropped.
    """
    spans: list[Span] = []
    offset = 0
    for paragraph in text.splitlines(keepends=True):
        if paragraph.strip():
            for piece in _segmenter().segment(paragraph):
                start, end = offset + piece.start, offset + piece.end
                spans.append(_trim(text, start, end, spans))
        offset += len(paragraph)
    return [s for s in spans if s.text]


def _trim(text: str, start: int, end: int, spans: list[Span]) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if spans and start < end and not _HAS_WORD.search(text[start:end]):
        previous = spans.pop()
        start = previous.start
    return Span(start, end, text[start:end])
