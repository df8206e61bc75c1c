"""Sentence splitting of news text keeps exact offsets."""

from __future__ import annotations

import pytest

from service.segment import split_sentences

NEWS = (
    "Minister quits after row\n"
    "LONDON, Feb. 3 — Dr. Ana Ruiz of the U.S. Treasury said growth of 3.5 percent "
    "was “within reach.” Mr. Obi disagreed. Shares of Orbis (NASDAQ: ORB) fell 2.4% — "
    "the worst day since Jan. 2019... Was it panic? ‘No,’ he said."
)


def test_news_sentences():
    assert [s.text for s in split_sentences(NEWS)] == [
        "Minister quits after row",
        "LONDON, Feb. 3 — Dr. Ana Ruiz of the U.S. Treasury said growth of 3.5 percent was "
        "“within reach.”",
        "Mr. Obi disagreed.",
        "Shares of Orbis (NASDAQ: ORB) fell 2.4% — the worst day since Jan. 2019...",
        "Was it panic?",
        "‘No,’ he said.",
    ]


@pytest.mark.parametrize("text", [NEWS, "  lead space. Two  ", "a\r\n\r\nb. c", "🚀 go. ok"])
def test_offsets_slice_original(text):
    for span in split_sentences(text):
        assert text[span.start : span.end] == span.text
        assert span.text == span.text.strip() and span.text


def test_quoted():
    spans = split_sentences("“We deny it,” she said. Rain fell. He called it 'absurd'.")
    assert [s.quoted for s in spans] == [True, False, True]
