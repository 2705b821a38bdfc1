"""Split text too long for the text encoder's context into consecutive chunks that fit.

Chunks end at word boundaries, at a sentence end where one falls in the second half of a chunk, and a single
word longer than the whole context is cut by characters. ``count_tokens`` is the encoder's own count of a text,
special tokens included, so ``count_tokens(chunk) <= max_tokens`` is exactly what the encoder needs.

Cost: ``count_tokens`` is called once per distinct word, plus about once per chunk to verify the packing (a few
more when a tokenizer does not count words additively), never once per word per chunk.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mmsearch.errors import ConfigError

TokenCounter = Callable[[str], int]

# A word that ends a sentence: . ! ? (or an ellipsis), optionally followed by closing quotes or brackets.
_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]}]*$")
# A chunk is cut at its last sentence end only if that keeps at least this share of the chunk's words.
_MIN_SENTENCE_FILL = 0.5


def split_text(text: str, count_tokens: TokenCounter, max_tokens: int) -> list[str]:
    """Split ``text`` into consecutive chunks with ``count_tokens(chunk) <= max_tokens`` each.

    Whitespace is normalised (runs become one space). Text that fits is returned whole as ``[text]``;
    empty text gives ``[]``. Joining the chunks with spaces gives the normalised text back, except that a
    word longer than ``max_tokens`` on its own is cut into pieces with no space between them.
    Raises ConfigError when ``max_tokens`` leaves no room for any text.
    """
    words = text.split()
    if not words:
        return []
    whole = " ".join(words)
    if count_tokens(whole) <= max_tokens:
        return [whole]
    overhead = count_tokens("")
    if max_tokens <= overhead:
        raise ConfigError(f"a context of {max_tokens} tokens leaves no room for text ({overhead} special tokens)")
    costs = _word_costs(words, count_tokens, overhead)
    chunks: list[str] = []
    start = 0
    while start < len(words):
        if costs[start] + overhead > max_tokens:
            chunks.extend(_cut_word(words[start], count_tokens, max_tokens))
            start += 1
            continue
        end = _pack(costs, start, max_tokens - overhead)
        end = _prefer_sentence_end(words, start, end)
        end = _shrink_to_fit(words, costs, start, end, count_tokens, max_tokens)
        chunks.append(" ".join(words[start:end]))
        start = end
    return chunks


def _word_costs(words: list[str], count_tokens: TokenCounter, overhead: int) -> list[int]:
    """Each word's tokens without the special tokens, counted once per distinct word."""
    cache: dict[str, int] = {}
    costs = []
    for word in words:
        cost = cache.get(word)
        if cost is None:
            cost = cache[word] = max(count_tokens(word) - overhead, 0)
        costs.append(cost)
    return costs


def _pack(costs: list[int], start: int, budget: int) -> int:
    """The end (exclusive) of the longest run of words from ``start`` whose estimated cost fits ``budget``."""
    total = 0
    end = start
    while end < len(costs) and (end == start or total + costs[end] <= budget):
        total += costs[end]
        end += 1
    return end


def _prefer_sentence_end(words: list[str], start: int, end: int) -> int:
    """Move ``end`` back to just after the last sentence end in the chunk, if that keeps it at least half full."""
    if end >= len(words) or _SENTENCE_END.search(words[end - 1]):
        return end
    floor = start + max(1, int((end - start) * _MIN_SENTENCE_FILL))
    for cut in range(end - 1, floor - 1, -1):
        if _SENTENCE_END.search(words[cut - 1]):
            return cut
    return end


def _shrink_to_fit(
    words: list[str], costs: list[int], start: int, end: int, count_tokens: TokenCounter, max_tokens: int
) -> int:
    """Drop words from the end until the real count fits (estimates can be low for non-additive tokenizers)."""
    while end - start > 1:
        excess = count_tokens(" ".join(words[start:end])) - max_tokens
        if excess <= 0:
            return end
        dropped = 0
        while end - start > 1 and dropped < excess:
            end -= 1
            dropped += max(costs[end], 1)
    return end


def _cut_word(word: str, count_tokens: TokenCounter, max_tokens: int) -> list[str]:
    """Cut a word too long for the context into the longest character prefixes that fit, in order."""
    pieces = []
    rest = word
    while rest:
        if count_tokens(rest) <= max_tokens:
            pieces.append(rest)
            break
        low, high = 1, len(rest) - 1  # the longest fitting prefix length lies in [low, high]; 1 char always goes
        while low < high:
            mid = (low + high + 1) // 2
            if count_tokens(rest[:mid]) <= max_tokens:
                low = mid
            else:
                high = mid - 1
        pieces.append(rest[:low])
        rest = rest[low:]
    return pieces
