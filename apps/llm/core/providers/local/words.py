"""Small text helpers the offline model builds its answers from: keywords, sentences, seeds."""

from __future__ import annotations

import hashlib
import re

_WORD = re.compile(r"[^\W_][\w'’-]*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

_STOPWORDS = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each either else
    ever every few for from further get got had has have having he her here hers herself him
    himself his how however i if in into is it its itself just let like make may me might more
    most much must my myself need no nor not now of off on once only or other our ours out over
    own please same shall she should so some such tell than that the their theirs them then there
    these they this those through to too under until up upon us use using very via want was we
    well were what when where which while who whom why will with would yes yet you your yours
    hello hi hey thanks thank give show write explain describe help know think create list find
    generate summarize summarise draft provide return extract compose suggest recommend plan right
"""
STOPWORDS = frozenset(_STOPWORDS.split())


def seed(*parts: str) -> int:
    """A stable 64-bit number from text: same input, same answer, in every process."""
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def keywords(text: str, limit: int = 5) -> list[str]:
    """The first distinct content words of `text`, in order, as written."""
    found: list[str] = []
    seen: set[str] = set()
    for match in _WORD.finditer(text):
        word = match.group().strip("'’-")
        folded = word.casefold()
        if len(word) < 3 or folded in STOPWORDS or folded in seen or word.isdigit():
            continue
        seen.add(folded)
        found.append(word)
        if len(found) == limit:
            break
    return found


def proper_nouns(text: str) -> list[str]:
    """Capitalised words that do not start a sentence: likely names of people and places."""
    nouns = []
    for sentence in _SENTENCE_END.split(text):
        for word in _WORD.findall(sentence)[1:]:
            if word[:1].isupper() and word.casefold() not in STOPWORDS and word not in nouns:
                nouns.append(word)
    return nouns


def salient(text: str, limit: int = 5) -> list[str]:
    """Keywords with names first: "Amsterdam" says more about a question than "pack"."""
    found = keywords(text, limit * 2)
    nouns = set(proper_nouns(text))
    return sorted(found, key=lambda word: word not in nouns)[:limit]


def first_sentence(text: str, max_words: int = 24) -> str:
    """The opening sentence of `text`, on one line, cut to `max_words` words."""
    sentence = _SENTENCE_END.split(text.strip(), maxsplit=1)[0]
    words = sentence.split()
    if len(words) > max_words:
        return " ".join(words[:max_words]) + "…"
    return " ".join(words)


def join_words(items: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
