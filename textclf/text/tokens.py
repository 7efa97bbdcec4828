"""Texts → token ids: tokenise once (cached on disk, interned), then numericalise with a vocab."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_open, default_cache_dir
from .tokenizer import Tokenizer
from .vocab import Vocab

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # 2: the regex tokenizer splits clitics like spaCy; 3: words keep their combining marks


@dataclass
class Tokenized:
    """A split's tokens, interned: token i of text j is `table[ids[offsets[j] + i]]`.

    Interning makes the cache small and vocab lookups one numpy gather per split.
    """

    table: list[str]
    ids: np.ndarray  # int32, all texts' tokens end to end
    offsets: np.ndarray  # int64, len(texts) + 1
    key: str | None = None  # content hash of the texts + tokenizer settings, when known (the cache's key)

    @classmethod
    def from_token_lists(cls, token_lists: list[list[str]]) -> Tokenized:
        intern: dict[str, int] = {}
        ids = np.fromiter((intern.setdefault(t, len(intern)) for toks in token_lists for t in toks), dtype=np.int32)
        offsets = np.zeros(len(token_lists) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in token_lists], out=offsets[1:])
        return cls(list(intern), ids, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def token_lists(self) -> Iterator[list[str]]:
        """Each text's tokens as strings again (for consumers that want words, not ids)."""
        words = np.asarray(self.table, dtype=object)[self.ids]
        for start, end in zip(self.offsets[:-1], self.offsets[1:], strict=True):
            yield words[start:end].tolist()

    def take(self, rows: np.ndarray) -> Tokenized:
        """These texts (positions), in this order, sharing this table."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        ids = np.concatenate([self.ids[a:b] for a, b in zip(starts, ends, strict=True)]) if len(rows) else self.ids[:0]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(ends - starts, out=offsets[1:])
        return Tokenized(self.table, ids, offsets)

    def compacted(self) -> Tokenized:
        """The same texts with a table of only the tokens they use, its strings new objects (one JSON text decoded):
        a few strings kept from a large table hold on to the memory the whole tokenising was done in."""
        used, ids = np.unique(self.ids, return_inverse=True)
        table = json.loads(json.dumps([self.table[i] for i in used.tolist()], ensure_ascii=False))
        return Tokenized(table, ids.astype(np.int32).reshape(-1), self.offsets.copy())

    def counts(self) -> Counter:
        return Counter(dict(zip(self.table, np.bincount(self.ids, minlength=len(self.table)).tolist(), strict=True)))

    def numericalize(self, vocab: Vocab, max_length: int | None = None, truncate: str = "head") -> list[np.ndarray]:
        """Vocab ids per text, each cut to `max_length` tokens (keeping the head, tail or both ends)."""
        if not len(self):  # np.split would give one empty text
            return []
        flat = vocab.lookup(self.table)[self.ids]
        seqs = np.split(flat, self.offsets[1:-1])
        return [truncate_ids(s, max_length, truncate) for s in seqs] if max_length else seqs

    def save(self, path: Path) -> None:
        table = np.frombuffer(json.dumps(self.table, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
        with atomic_open(path) as f:
            np.savez(f, table=table, ids=self.ids, offsets=self.offsets)

    @classmethod
    def load(cls, path: Path) -> Tokenized:
        with np.load(path, allow_pickle=False) as z:
            return cls(json.loads(z["table"].tobytes().decode("utf-8")), z["ids"], z["offsets"])


TRUNCATIONS = ("head", "tail", "both")  # which tokens a long text keeps (data.truncate): see `truncate_ids`


def truncate_ids(ids: np.ndarray, max_length: int | None, how: str = "head") -> np.ndarray:
    if max_length is None or len(ids) <= max_length:
        return ids
    if how == "head":
        return ids[:max_length]
    if how == "tail":
        return ids[-max_length:]
    head = (max_length + 1) // 2  # "both": the opening and the verdict at the end
    return np.concatenate([ids[:head], ids[len(ids) - (max_length - head):]])


def cache_key(texts: list[str], tokenizer: Tokenizer) -> str:
    """The texts and all their tokens depend on (`Tokenizer.settings`: the kind, its version, for zh jieba's)."""
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, **tokenizer.settings()}, sort_keys=True).encode())
    for t in texts:
        b = t.encode("utf-8", errors="surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:32]


def tokenize_cached(texts: list[str], tokenizer: Tokenizer, cache_dir: str | Path | None = None,
                    desc: str = "tokenising") -> Tokenized:
    """Tokenise `texts`, or read the result of an earlier run keyed by their content + tokenizer settings."""
    key = cache_key(texts, tokenizer)
    path = Path(cache_dir or default_cache_dir()) / f"tokens-{key}.npz"
    if path.is_file():
        try:
            tok = Tokenized.load(path)
            tok.key = key
            return tok
        except (OSError, ValueError, KeyError) as e:  # a damaged cache file is rebuilt, never fatal
            log.warning("ignoring unreadable token cache %s (%s)", path, e)
    tok = Tokenized.from_token_lists(tokenizer.tokenize_all(texts, desc=desc))
    tok.key = key
    try:
        tok.save(path)
    except OSError as e:
        log.warning("could not write token cache %s (%s); continuing without it", path, e)
    return tok


def group_ids(keys: Iterable[Hashable]) -> np.ndarray:
    """[N] each key's group: equal keys (the copies of one text, stripped, or one token list as a tuple) share one,
    numbered in order of first appearance."""
    ids: dict[Hashable, int] = {}
    return np.fromiter((ids.setdefault(k, len(ids)) for k in keys), dtype=np.int64)
