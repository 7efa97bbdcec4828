"""Vocabularies: tokens ↔ ids (`Vocab`, with <pad>=0 and <unk>=1) and labels ↔ class ids (`LabelVocab`)."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import TextclfError

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


class _Ids(dict):
    """token → id, <unk>'s id for any other token: `map(stoi.__getitem__, tokens)` stays in C for known ones."""

    def __missing__(self, token: str) -> int:
        return UNK_ID


class Vocab:
    """Token vocabulary built on the training split only (what torchtext's `build_vocab` did)."""

    def __init__(self, itos: Sequence[str]):
        if list(itos[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary must start with {PAD!r}, {UNK!r}")
        self.itos = list(itos)
        self.stoi = _Ids((tok, i) for i, tok in enumerate(self.itos))
        if len(self.stoi) != len(self.itos):
            raise ValueError("a vocabulary must not repeat tokens")

    @classmethod
    def build(cls, counts: Counter, min_freq: int = 1, max_size: int | None = None) -> Vocab:
        """Most frequent first, ties broken alphabetically so the same data gives the same ids."""
        kept = sorted(((t, c) for t, c in counts.items() if c >= min_freq and t not in (PAD, UNK)),
                      key=lambda tc: (-tc[1], tc[0]))
        return cls([PAD, UNK] + [t for t, _ in kept[:max_size]])

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def lookup(self, tokens: Sequence[str]) -> np.ndarray:
        """Token ids as an int64 array (<unk>'s for unknown tokens): a text's tokens (prediction), or a cache's
        token table, whose interned ids then index it. map() over the dict's lookup stays in C."""
        return np.fromiter(map(self.stoi.__getitem__, tokens), dtype=np.int64, count=len(tokens))

    def to_json(self) -> str:
        return json.dumps({"itos": self.itos}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Vocab:
        return cls(json.loads(text)["itos"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


_SENTIMENT = {"neg": "negative", "negative": "negative", "pos": "positive", "positive": "positive"}


_WHOLE = re.compile(r"[+-]?[0-9]{1,18}\.0*")  # "2.0": how pandas writes the numbers of an int column with gaps


def label_key(value: object) -> str:
    """A label's comparable spelling: strip, lowercase, 1.0 → 1, as a float or as text (pandas turns an int column
    with gaps into floats, and writes them so to CSV)."""
    if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        value = int(value)
    text = str(value).strip()
    return str(int(text.split(".")[0])) if _WHOLE.fullmatch(text) else text.lower()


def canonical_label(value: object) -> str:
    """A label's spelling with `neg`/`negative` and `pos`/`positive` made one (not 0/1: see LabelVocab)."""
    key = label_key(value)
    return _SENTIMENT.get(key, key)


def _sort_key(name: str) -> tuple:
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


class LabelVocab:
    """Class names in a fixed order (numbers numerically, then strings): class id = position.

    Lookups forgive spelling: case, whitespace, `pos`/`positive`, and 0/1 against neg/pos, so an
    IMDB model trained with "neg"/"pos" evaluates files labelled 0/1 and vice versa.

    `meaning`: what each class is, where that is known otherwise than by its name: a model fine-tuned on 0/1 labels
    from a negative/positive one records which class each started as (`finetune.Plan.summary`'s "started_as"; 1 =
    a complaint is negative). There, 0/1 against neg/pos follows that record, not the 0 = negative convention; a
    record of other names (a 0/1 start) leaves the convention.
    """

    def __init__(self, names: Sequence[str], meaning: Mapping[str, str] | None = None):
        self.names = [str(n) for n in names]
        self._index: dict[str, int] = {}
        for i, name in enumerate(self.names):
            self._index.setdefault(label_key(name), i)
        canon = [_SENTIMENT.get(label_key(n)) for n in self.names]
        meant = [_SENTIMENT.get(label_key(meaning[n])) for n in self.names] \
            if meaning and set(meaning) == set(self.names) else []
        if sorted(map(str, meant)) == ["negative", "positive"]:  # a start of other names: the convention below
            canon = meant
        elif [label_key(n) for n in self.names] == ["0", "1"]:
            canon = ["negative", "positive"]
        if sorted(map(str, canon)) == ["negative", "positive"]:
            neg, pos = canon.index("negative"), canon.index("positive")
            for alias, i in (("0", neg), ("neg", neg), ("negative", neg),
                             ("1", pos), ("pos", pos), ("positive", pos)):
                self._index.setdefault(alias, i)

    @classmethod
    def from_values(cls, values: Iterable[object]) -> LabelVocab:
        """One class per distinct label (compared by `label_key`), keeping its first spelling."""
        first: dict[str, str] = {}
        for v in values:
            key = label_key(v)
            if key not in first:  # a number written "2.0" is named "2", as the float 2.0 is
                first[key] = v.strip() if isinstance(v, str) and not _WHOLE.fullmatch(v.strip()) else key
        return cls(sorted(first.values(), key=_sort_key))

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelVocab) and self.names == other.names

    def get(self, value: object) -> int | None:
        return self._index.get(label_key(value))

    def encode(self, values: Sequence[object], where: str = "the data") -> np.ndarray:
        ids = [self.get(v) for v in values]
        unknown = sorted({str(v) for v, i in zip(values, ids, strict=True) if i is None})
        if unknown:
            shown = ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else "")
            raise TextclfError(f"{where} has labels the model does not know: {shown} "
                               f"(known labels: {', '.join(self.names)}; map or drop those rows)")
        return np.asarray(ids, dtype=np.int64)
