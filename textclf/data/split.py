"""One split of labelled text (`Split`), the split names a source may use, and label maps."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import TextclfError
from ..text.vocab import label_key

if TYPE_CHECKING:
    from ..text.batching import TextDataset
    from ..text.tokens import Tokenized
    from ..text.vocab import LabelVocab, Vocab

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
UNLABELLED = ("unsup", "unsupervised", "unlabelled", "unlabeled")  # file names of an unlabelled split
SPLIT_ALIASES = {"validation": ("validation", "valid", "val", "dev"), "unsup": UNLABELLED}


@dataclass
class Split:
    """One split as plain lists: texts and their raw labels (ints or strings, as in the source)."""

    texts: list[str]
    labels: list
    source: str

    def __len__(self) -> int:
        return len(self.texts)


def apply_label_map(split: Split, label_map: Mapping | None,
                    known: Callable[[object], bool] | None = None) -> Split:
    """Rename labels by `label_map` (keys matched like labels: `1` = `1.0` = ` 1 `, case-insensitive).

    A value the map sends to null, or does not list, is dropped (counted in the log). A value the map
    does not list but that is already a class name stays (one of the map's targets, or `known(value)`),
    so a file labelled with the class names reads as-is.
    """
    if not label_map:
        return split
    table = {label_key(k): None if v is None else str(v).strip() for k, v in label_map.items()}
    targets = {label_key(v) for v in table.values() if v is not None}
    texts, labels, dropped = [], [], Counter()
    for text, value in zip(split.texts, split.labels, strict=True):
        key = label_key(value)
        passes = key in targets or (known is not None and known(value))
        new = table.get(key, value if passes else None)
        if new is None:
            dropped[str(value).strip()] += 1
        else:
            texts.append(text)
            labels.append(new)
    if dropped:
        why = lambda v: "mapped to null" if label_key(v) in table else "not in the map"  # noqa: E731
        shown = ", ".join(f"{v} ({n}, {why(v)})" for v, n in sorted(dropped.items())[:8])
        log.warning("%s: data.label_map dropped %d row(s): %s", split.source, sum(dropped.values()), shown)
    if not texts:
        raise TextclfError(f"data.label_map leaves no rows in {split.source} (its keys: "
                           f"{', '.join(map(str, label_map))}; labels there: {', '.join(sorted(dropped)[:8])})")
    return Split(texts, labels, split.source)


def split_dataset(tokens: Tokenized, split: Split, vocab: Vocab, labels: LabelVocab, max_length: int | None,
                  truncate: str) -> TextDataset:
    """A labelled split as token ids (each text cut to `max_length` as `truncate` says) and class ids."""
    from ..text.batching import TextDataset  # torch, for whoever builds a dataset only

    return TextDataset(tokens.numericalize(vocab, max_length, truncate), labels.encode(split.labels, split.source))
