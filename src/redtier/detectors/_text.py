"""Text helpers shared by the rule-based detectors: normalising, sentences, words."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CHARACTER_MAP = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u02bc": "'",
        "\u2032": "'",
        "\uff07": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
        "\u2013": "-",
        "\u2014": "-",
    }
)

# A sentence ends at . ! ? (optionally followed by a closing quote or bracket)
# when whitespace and a capital letter, digit or opening quote come next.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[*])")
_NOT_AN_END = re.compile(
    r"(?:^|\s)(?:\d{1,3}|[A-Za-z]|e\.g|i\.e|etc|vs|Dr|Mr|Mrs|Ms|St|approx)\.$", re.IGNORECASE
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_WHITESPACE = re.compile(r"\s+")

STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each even ever every few for from further get gets got had
    hadn't has hasn't have haven't having he her here here's hers herself him himself his how
    how's however i i'd i'll i'm i've if in into is isn't it it's its itself just let's like
    made many may me might more most much must mustn't my myself no nor not now of off on once
    only or other ought our ours ourselves out over own per please really same shall she should
    shouldn't so some such than that that's the their theirs them themselves then there there's
    these they they'd they'll they're they've this those though through thus to too under until
    up upon us very via was wasn't we we'd we'll we're we've were weren't what what's when
    when's where where's whether which while who who's whom why why's will with within without
    won't would wouldn't yet you you'd you'll you're you've your yours yourself yourselves
    """.split()
)


@dataclass(frozen=True)
class Sentence:
    """One sentence of an output, with where it sits."""

    text: str
    index: int
    """0-based position among the output's sentences."""
    line: int
    """1-based line of the output on which the sentence starts."""


def normalize(text: str) -> str:
    """Replace curly quotes, typographic dashes and odd spaces with their ASCII forms."""
    return text.translate(_CHARACTER_MAP)


def split_sentences(text: str) -> list[Sentence]:
    """Split ``text`` into sentences; every non-blank line starts at least one sentence.

    Lines are split first because list items and headings rarely end with a full
    stop. A full stop after a list number ("1.") or a short abbreviation ("e.g.",
    "Dr.") does not end a sentence.
    """
    sentences: list[Sentence] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        for piece in _split_line(line):
            sentences.append(Sentence(piece, len(sentences), line_number))
    return sentences


def _split_line(line: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(line):
        before = line[start : match.start()]
        if _NOT_AN_END.search(before):
            continue
        pieces.append(before)
        start = match.end()
    pieces.append(line[start:])
    return [piece.strip() for piece in pieces if piece.strip()]


def words(text: str) -> list[str]:
    """Return the lowercase words of ``text``, apostrophes kept inside contractions."""
    # NOTE: only ASCII letters and digits form words, so text in other scripts has
    # none, and the refusal and compliance scores of non-English outputs are near 0.
    return _WORD.findall(normalize(text).lower())


def stem(word: str) -> str:
    """Strip common English inflections so that "hacking", "hacked" and "hacks" meet.

    A few suffix rules, not a full Porter stemmer: good enough for overlap counts,
    wrong for some irregular words ("stolen" stays apart from "steal").
    """
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if not word.endswith(suffix) or len(word) - len(suffix) < 3:
            continue
        if suffix == "s" and word.endswith(("ss", "us", "is")):
            break
        word = word[: len(word) - len(suffix)] + replacement
        if suffix in ("ing", "ed") and word[-1] == word[-2] and word[-1] not in "aeiouls":
            word = word[:-1]  # "running" -> "runn" -> "run"
        break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def content_stems(text: str, *, ignore: frozenset[str] = frozenset()) -> set[str]:
    """Return the stems of the words of ``text`` that are not stop words or in ``ignore``."""
    stems: set[str] = set()
    for word in words(text):
        if len(word) < 3 or word in STOP_WORDS or word in ignore or word.isdigit():
            continue
        stems.add(stem(word))
    return stems


def quote(text: str, limit: int = 90) -> str:
    """Return ``text`` on one line, shortened to ``limit`` characters, in double quotes."""
    flat = _WHITESPACE.sub(" ", text).strip()
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return f'"{flat}"'


ECHO_SHARE = 0.8
"""Share of a reply's words found in the prompt above which the reply counts as an echo."""
_MIN_ECHO_CHARACTERS = 16


def echoes(source: str, reply: str) -> bool:
    """Return whether ``reply`` only repeats ``source``: a copied stretch, or mostly its words.

    Comparison ignores case, spaces and punctuation, so a base64 payload copied with
    different line breaks still counts.
    """
    reply_characters = "".join(character for character in reply.lower() if character.isalnum())
    source_characters = "".join(character for character in source.lower() if character.isalnum())
    if len(reply_characters) >= _MIN_ECHO_CHARACTERS and reply_characters in source_characters:
        return True
    reply_words = [word for word in words(reply) if len(word) >= 3]
    if len(reply_words) < 3:
        return False
    source_words = set(words(source))
    found = sum(1 for word in reply_words if word in source_words)
    return found / len(reply_words) >= ECHO_SHARE
