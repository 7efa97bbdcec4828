"""Tokenizers: raw review text → lists of string tokens, in the way the text's script is written.

    regex   words split at spaces and punctuation (spaCy's English splits in one compiled pattern): English and
            every other script written with spaces; a word keeps its combining marks (Hindi, Arabic diacritics)
    spacy   spacy.blank("en")'s tokenizer (slower; what the regex stands in for)
    zh      Chinese word segmentation (jieba, its dictionary inside the package: nothing is downloaded)
    char    one token per character for scripts written without spaces (Japanese, Thai, Khmer ...), with its
            combining marks; words in other scripts as the regex splits them
    auto    the config's default, never saved: `detect` picks one of the above from the training texts

Models record their tokenizer's settings (`Tokenizer.settings`: with its `VERSION`, and for zh jieba's version
and dictionary), so whatever reads a model tokenises as training did (`from_settings`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property

from tqdm import tqdm

from ..errors import TextclfError

log = logging.getLogger(__name__)

# How `Tokenizer.pipe` splits, recorded in each model: a change to the tokens of a saved kind is a new version,
# and the old one stays here for the models trained with it. 1: before issue 24, the regex cut a word at each
# combining mark (Hindi's vowel signs; "café" with a combining accent, U+0301, was "cafe" and the accent);
# 2: words keep their marks, and the kinds zh and char.
VERSION = 2

KINDS = ("regex", "spacy", "zh", "char")  # what a model may record; the config also takes "auto"
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)

# Scripts written without spaces between words: a run of their characters is no word. Han (with its
# punctuation-free extensions and compatibility forms), Hiragana, Katakana, Thai, Lao, Khmer, Myanmar, Tibetan.
_HAN_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_KANA_CHARS = "\u3040-\u30ff\u31f0-\u31ff"
_NO_SPACES = _KANA_CHARS + _HAN_CHARS + "\u0e00-\u0e7f\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f\u0f00-\u0fff"
_HAN = re.compile(f"[{_HAN_CHARS}]")
_KANA = re.compile(f"[{_KANA_CHARS}]")
_NO_SPACE_CHAR = re.compile(f"[{_NO_SPACES}]")


def unspaced(text: str) -> bool:
    """Whether `text` holds a letter of a script written without spaces (Chinese, Japanese, Thai, ...)."""
    return bool(_NO_SPACE_CHAR.search(text))
_OTHER_LETTER = re.compile(rf"[^\W\d_{_NO_SPACES}]")  # a letter of a script written with spaces


def _ranges(codes: list[int]) -> str:
    """A regex character class body for these code points, as ranges."""
    out, start = [], None
    for prev, code in zip([None, *codes], codes, strict=False):
        if start is None:
            start = code
        elif code != prev + 1:
            out.append((start, prev))
            start = code
    if start is not None:
        out.append((start, codes[-1]))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in out)


@functools.cache
def _marks() -> str:
    """Every combining mark of the Basic Multilingual Plane (every living script's; Unicode categories Mn, Mc, Me)
    as a character class body: `\\w` matches none of them, so a pattern of `\\w` alone cuts Hindi or Thai words
    at each vowel sign."""
    return _ranges([c for c in range(0x10000) if unicodedata.category(chr(c))[0] == "M"])


# spaCy's English splits, minus its exceptions: clitics apart ("does n't", "film 's"), runs of "." "!" "?"
# kept whole ("...", "!!!"), any other symbol alone. Tested against spaCy in tests/test_tokenizer.py.
# The first alternative only saves time: a word not followed by an apostrophe (nearly all of them) is taken
# in one possessive scan instead of the clitic alternatives' backtracking; the tokens are the same without it
# (checked on all 100k IMDB reviews; tests/test_tokenizer.py keeps the shorter pattern as the reference).
_REGEX_TOKEN = re.compile(r"\w++(?!['’])|\w+(?=n['’]t\b)|n['’]t\b|['’](?:s|re|ve|ll|m|d)\b|\w+|\.{2,}|!{2,}|\?{2,}"
                          r"|[^\w\s]", re.IGNORECASE)


@functools.cache
def _marked(kind: str) -> re.Pattern:
    """The same splits where a word may go on past combining marks (a word still starts with \\w, so an emoji's
    variation selector stays apart); with kind "char", a character of a script without spaces, with its marks,
    is a token of its own and never part of a word. Only texts holding a mark need it (`_has_marks`): where
    there is none, it gives the same tokens as `_REGEX_TOKEN`, more slowly."""
    marks = _marks()
    letter = r"\w" if kind == "regex" else rf"[^\W{_NO_SPACES}]"
    w = rf"{letter}+(?:[{marks}]+{letter}*)*"
    words = (rf"(?:{w})++(?!['’])|{letter}+(?=(?i:n['’]t)\b)|(?i:n['’]t)\b|['’](?i:s|re|ve|ll|m|d)\b|{w}"
             rf"|\.{{2,}}|!{{2,}}|\?{{2,}}|[^\w\s]")
    return re.compile(rf"[{_NO_SPACES}][{marks}]*|" + words if kind == "char" else words)


@functools.cache
def _mark() -> re.Pattern:
    return re.compile(f"[{_marks()}]")


def _has_marks(text: str) -> bool:
    return not text.isascii() and _mark().search(text) is not None


def clean(text: str) -> str:
    """Strip the HTML line breaks IMDB reviews are full of (`<br /><br />`)."""
    return _HTML_BREAK.sub(" ", text)


def detect(texts: Sequence[str], sample: int = 2000) -> tuple[str, str]:
    """The tokenizer kind that fits `texts` (tokenizer.kind=auto), and why, in words.

    Over the first `sample` texts: where letters of scripts written without spaces are at least 30% of all
    letters, Chinese ("zh": Han characters, and kana under a tenth of them) or characters ("char": Japanese,
    Thai and the rest); else the regex, whatever the script (English tokens stay exactly as they were).
    Texts of emoji, digits or punctuation only have no letters and count for nothing.
    """
    no_space = han = kana = letters = 0
    for text in texts[:sample]:
        no_space += len(_NO_SPACE_CHAR.findall(text))
        han += len(_HAN.findall(text))
        kana += len(_KANA.findall(text))
        letters += len(_OTHER_LETTER.findall(text))
    letters += no_space
    share = no_space / max(letters, 1)
    if share < 0.3:
        why = f"{share:.0%} of the letters are in scripts written without spaces" if letters else "no letters"
        return "regex", why
    if kana < 0.1 * max(han, 1) and han >= 0.5 * no_space:
        return "zh", f"{han / max(letters, 1):.0%} of the letters are Chinese characters"
    return "char", f"{share:.0%} of the letters are in scripts written without spaces (kana {kana:,}, Han {han:,})"


@functools.cache
def _jieba() -> tuple:
    """A jieba tokenizer of textclf's own, with the dictionary shipped in the jieba package (its words loaded at
    the first cut), and what its splits depend on: jieba's version and that dictionary's hash. Its own, not
    jieba's global one, which `jieba.add_word`, `load_userdict` or `set_dictionary` in the user's process change."""
    try:
        import jieba
    except ImportError:
        raise ImportError("tokenizer.kind=zh needs jieba: pip install jieba") from None
    jieba.setLogLevel(logging.WARNING)
    with jieba.get_module_res(jieba.DEFAULT_DICT_NAME) as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    tokenizer = jieba.Tokenizer()  # the default dictionary
    # jieba caches the words it read in the temp folder, under one name for any default dictionary: one of
    # another jieba version would be read as this one
    tokenizer.cache_file = f"jieba.textclf-{digest[:16]}.cache"
    return tokenizer, {"version": jieba.__version__, "dictionary": f"sha256:{digest}"}


def jieba_identity() -> dict:
    """jieba's version and its dictionary's hash: what kind zh records in a model and keys its token cache by."""
    return _jieba()[1]


@dataclass(frozen=True)
class Tokenizer:
    """Settings + behaviour in one small value; `settings()` is what an artifact records."""

    kind: str  # regex | spacy | zh | char (the config's tokenizer.kind, auto resolved by `detect`)
    lowercase: bool = True
    version: int = VERSION  # how it splits: a model's own, older ones included (`VERSION`)

    def settings(self) -> dict:
        """What a model records and the token cache keys on: everything its tokens depend on (for zh, the jieba
        and dictionary of this process, `jieba_identity`)."""
        return {**asdict(self), "jieba": jieba_identity()} if self.kind == "zh" else asdict(self)

    def describe(self) -> str:
        return {"regex": "words at spaces and punctuation", "spacy": "spaCy's English tokenizer",
                "zh": "Chinese words (jieba)", "char": "characters of scripts without spaces"}[self.kind]

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
            plain, marked = _REGEX_TOKEN.findall, _marked("regex").findall
            keep_marks = self.version >= 2
            for text in cleaned:
                text = text.lower() if self.lowercase else text
                yield marked(text) if keep_marks and _has_marks(text) else plain(text)
        elif self.kind == "char":
            findall = _marked("char").findall
            for text in cleaned:
                yield findall(text.lower() if self.lowercase else text)
        elif self.kind == "zh":
            cut = _jieba()[0].lcut
            for text in cleaned:
                yield [t for t in cut(text.lower() if self.lowercase else text) if not t.isspace()]
        elif self.kind == "spacy":
            for doc in self._spacy.pipe(cleaned, batch_size=batch_size):
                yield [t.lower_ if self.lowercase else t.text for t in doc if not t.is_space]
        else:
            raise ValueError(f"unknown tokenizer kind {self.kind!r}")

    def tokenize_all(self, texts: list[str], desc: str = "tokenising") -> list[list[str]]:
        """Tokenise a list with a progress bar on stderr (silent when stderr is not a TTY)."""
        return list(tqdm(self.pipe(texts), total=len(texts), desc=desc, unit=" texts", disable=None))


def without_spaces(kind: str) -> bool:
    """Whether tokenizer `kind` splits scripts written without spaces (zh, char): their tokens join with nothing
    between them, and n-grams of characters suit them (the linear view's, the baseline's)."""
    return kind in ("zh", "char")


def for_run(kind: str, lowercase: bool, texts: Sequence[str], start: Tokenizer | None = None) -> Tokenizer:
    """The tokenizer a run (training, fine-tuning, the baseline) splits with, chosen here only: the model it starts
    from's (`start`, fine-tuning: its weights know those tokens), with a warning where `texts` (the training texts)
    look like another kind; else `kind`, or for "auto" the one `detect` picks from `texts`, said in one line."""
    if start is not None:
        if (fits := detect(texts))[0] != start.kind:
            log.warning("these texts look like tokenizer.kind=%s (%s), but init_from's model splits them as %s, the "
                        "way it was trained: its vocabulary will cover little of them (the OOV rate below)",
                        fits[0], fits[1], start.kind)
        return start
    if kind != "auto":
        return Tokenizer(kind, lowercase)
    chosen, why = detect(texts)
    tokenizer = Tokenizer(chosen, lowercase)
    log.info("tokenizer: %s, %s (%s; tokenizer.kind=regex|zh|char to choose)", chosen, tokenizer.describe(), why)
    return tokenizer


def from_settings(settings: dict, train_config: dict | None = None) -> Tokenizer:
    """The tokenizer a model recorded (`Tokenizer.settings`), splitting as it did in training.

    Models saved before tokenizers had a version say so only by what they hold: a kind version 1 lacked, or
    a training config (`train_config`) with tokenizer.kind=auto or train.threads (both came with or after
    version 2); else they are version 1. A zh model trained with another jieba or dictionary is tokenised by
    this process's, with a warning naming the version to install.
    """
    settings = dict(settings)
    trained_with = settings.pop("jieba", None)
    if "version" not in settings:
        config = train_config or {}
        newer = (settings.get("kind") in ("zh", "char") or (config.get("tokenizer") or {}).get("kind") == "auto"
                 or "threads" in (config.get("train") or {}))
        settings["version"] = 2 if newer else 1
    version = settings["version"]
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise TextclfError(f"the model's tokenizer is version {version!r}; this textclf splits text as versions 1 "
                           f"to {VERSION}: upgrade textclf (pip install -U textclf)")
    if settings.get("kind") not in KINDS:  # a hand-edited config.json: said as config.json's fault, not on first use
        raise ValueError(f"tokenizer kind {settings.get('kind')!r} is none of {', '.join(KINDS)}")
    tokenizer = Tokenizer(**settings)
    if tokenizer.kind == "zh" and trained_with and trained_with != jieba_identity():
        log.warning("the model's Chinese words came from jieba %s (dictionary %s), this process has jieba %s "
                    "(dictionary %s): tokens may differ from training; pip install jieba==%s",
                    trained_with.get("version"), str(trained_with.get("dictionary"))[:19],
                    jieba_identity()["version"], jieba_identity()["dictionary"][:19], trained_with.get("version"))
    return tokenizer
