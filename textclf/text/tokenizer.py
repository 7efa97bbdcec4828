"""Tokenizers: raw review text → lists of string tokens (spaCy blank English or a fast regex)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import cached_property

from tqdm import tqdm

_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# spaCy's English splits, minus its exceptions: clitics apart ("does n't", "film 's"), runs of "." "!" "?"
# kept whole ("...", "!!!"), any other symbol alone. Tested against spaCy in tests/test_tokenizer.py.
# The first alternative only saves time: a word not followed by an apostrophe (nearly all of them) is taken
# in one possessive scan instead of the clitic alternatives' backtracking; the tokens are the same without it
# (checked on all 100k IMDB reviews; tests/test_tokenizer.py keeps the shorter pattern as the reference).
_REGEX_TOKEN = re.compile(r"\w++(?!['’])|\w+(?=n['’]t\b)|n['’]t\b|['’](?:s|re|ve|ll|m|d)\b|\w+|\.{2,}|!{2,}|\?{2,}"
                          r"|[^\w\s]", re.IGNORECASE)


def clean(text: str) -> str:
    """Strip the HTML line breaks IMDB reviews are full of (`<br /><br />`)."""
    return _HTML_BREAK.sub(" ", text)


@dataclass(frozen=True)
class Tokenizer:
    """Settings + behaviour in one small value; `settings()` is what an artifact records."""

    kind: str  # regex | spacy (the config's tokenizer.kind holds the default)
    lowercase: bool = True

    def settings(self) -> dict:
        return asdict(self)

    @cached_property
    def _spacy(self):
        import spacy  # imported lazily: slow to import, and the regex tokenizer does not need it

        return spacy.blank("en").tokenizer

    def __call__(self, text: str) -> list[str]:
        return next(self.pipe([text]))

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[list[str]]:
        """Tokenise many texts lazily. Single process on purpose: spaCy's n_process is slower here."""
        cleaned = (clean(t) for t in texts)
        if self.kind == "regex":
            for text in cleaned:
                yield _REGEX_TOKEN.findall(text.lower() if self.lowercase else text)
        elif self.kind == "spacy":
            for doc in self._spacy.pipe(cleaned, batch_size=batch_size):
                yield [t.lower_ if self.lowercase else t.text for t in doc if not t.is_space]
        else:
            raise ValueError(f"unknown tokenizer kind {self.kind!r}")

    def tokenize_all(self, texts: list[str], desc: str = "tokenising") -> list[list[str]]:
        """Tokenise a list with a progress bar on stderr (silent when stderr is not a TTY)."""
        return list(tqdm(self.pipe(texts), total=len(texts), desc=desc, unit=" texts", disable=None))
