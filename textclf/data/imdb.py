"""IMDB: the Hub's stanfordnlp/imdb, a local copy, and the Stanford aclImdb layout (folder or tarball); its classes
named negative/positive however a copy spells them."""

from __future__ import annotations

import os
import re
import tarfile
from pathlib import Path

from ..errors import TextclfError
from ..hub.download import IMDB_HUB_NAME
from ..text.vocab import label_key
from .split import Split
from .tables import split_file

_IMDB_NAMES = {"0": "negative", "neg": "negative", "negative": "negative",
               "1": "positive", "pos": "positive", "positive": "positive"}
_ACLIMDB_FILE = re.compile(r"(?:^|/)(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")
TARBALLS = (".tar.gz", ".tgz", ".tar")  # aclImdb as downloaded


def acl_root(path: Path) -> Path | None:
    for root in (path, path / "aclImdb"):
        if (root / "train" / "pos").is_dir():
            return root
    return None


def read_aclimdb(path: Path, splits: tuple[str, ...]) -> dict[str, Split]:
    """Read the Stanford layout (`aclImdb/{train,test}/{pos,neg}/ID_RATING.txt`) from a folder or tarball."""
    rows: dict[str, list] = {s: [] for s in splits}

    def add(name: str, read) -> None:
        match = _ACLIMDB_FILE.search(name)
        split = "unsup" if match and match.group(2) == "unsup" else match and match.group(1)
        if split in rows:
            text = read().decode("utf-8", errors="replace")
            rows[split].append((match.group(2), int(match.group(3)), text))

    if path.is_dir():
        root = acl_root(path)
        for p in root.glob("*/*/*.txt"):
            add(p.relative_to(root).as_posix(), p.read_bytes)
    else:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                if m.isfile():
                    add(m.name, lambda m=m: tar.extractfile(m).read())
    out = {}
    for split, items in rows.items():
        if items:
            items.sort()  # the same order whatever the folder's or archive's order
            labels = [None if lab == "unsup" else _IMDB_NAMES[lab] for lab, _, _ in items]
            out[split] = Split([t for _, _, t in items], labels, f"{path}:{split}")
    return out


def local_imdb_dir() -> Path | None:
    """Where a local copy of IMDB may sit: $TEXTCLF_DATA/imdb, then ./data/imdb."""
    candidates = [Path(os.environ["TEXTCLF_DATA"]) / "imdb"] if os.environ.get("TEXTCLF_DATA") else []
    candidates.append(Path("data") / "imdb")
    return next((c for c in candidates if split_file(c, "train") or acl_root(c)), None)


def read_imdb_hub(splits: tuple[str, ...]) -> dict[str, Split]:
    """Download IMDB from the Hugging Face Hub (cached by `datasets`)."""
    try:
        import datasets

        ds = datasets.load_dataset(IMDB_HUB_NAME)
    except Exception as e:  # offline, proxy, hub outage: all mean "no data here"
        raise TextclfError(
            f"could not download {IMDB_HUB_NAME} ({type(e).__name__}); put train/test files "
            "(parquet/csv/jsonl) or aclImdb/ in ./data/imdb or $TEXTCLF_DATA/imdb, or pass data.path=FOLDER") from None
    names = ds["train"].features["label"].names
    out = {}
    for split in splits:
        hub_split = "unsupervised" if split == "unsup" else split
        if hub_split in ds:
            part = ds[hub_split]
            labels = [None] * len(part) if split == "unsup" else [_IMDB_NAMES[names[i]] for i in part["label"]]
            out[split] = Split(list(part["text"]), labels, f"{IMDB_HUB_NAME}:{hub_split}")
    return out


def name_imdb_labels(splits: dict[str, Split]) -> dict[str, Split]:
    """IMDB's classes as negative/positive, however a copy spells them (0/1, neg/pos)."""
    for split in splits.values():
        split.labels = [v if v is None else _IMDB_NAMES.get(label_key(v), v) for v in split.labels]
    return splits
