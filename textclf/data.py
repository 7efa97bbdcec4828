"""Read labelled text from wherever it lives: the Hub, a dataset folder, aclImdb/ (or its tarball), files."""

from __future__ import annotations

import csv
import logging
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import TextclfError, did_you_mean

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SUFFIXES = (".parquet", ".csv", ".tsv", ".jsonl", ".json")
IMDB_HUB_NAME = "stanfordnlp/imdb"
IMDB_LABELS = ("neg", "pos")  # the Hub's ClassLabel names for 0 and 1
_ACLIMDB_FILE = re.compile(r"(?:^|/)(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")
UNLABELLED = ("unsup", "unsupervised", "unlabelled", "unlabeled")  # file names of an unlabelled split


@dataclass
class Split:
    """One split as plain lists: texts and their raw labels (ints or strings, as in the source)."""

    texts: list[str]
    labels: list
    source: str

    def __len__(self) -> int:
        return len(self.texts)


# --- files --------------------------------------------------------------------------------------


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a parquet/csv/tsv/jsonl file into a DataFrame, turning every failure into one clear line."""
    path = Path(path)
    if not path.is_file():
        hint = "it is a folder; pass a file" if path.is_dir() else "check the path"
        raise TextclfError(f"data file not found: {path} ({hint})")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str,
                               keep_default_na=False, na_values=[""], encoding="utf-8")
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
    except UnicodeDecodeError as e:
        raise TextclfError(f"{path} is not UTF-8 (byte {e.start}): re-save it as UTF-8") from None
    except (pd.errors.ParserError, csv.Error, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TextclfError(f"could not read {path}: {first} (fix or re-export the file)") from None
    raise TextclfError(f"unsupported data file type {path.suffix!r} for {path} (use one of {', '.join(SUFFIXES)})")


def _column(df: pd.DataFrame, name: str, option: str, where: str) -> pd.Series:
    if name not in df.columns:
        cols = [str(c) for c in df.columns]
        raise TextclfError(f'{where} has no column "{name}"{did_you_mean(name, cols)}; '
                           f"columns: {', '.join(cols)} (set {option})")
    return df[name]


def frame_to_split(df: pd.DataFrame, text_column: str, label_column: str | None, where: str) -> Split:
    """Pick the text column(s) and label column; drop rows with empty text or no label, saying so."""
    parts = [_column(df, c.strip(), "data.text_column", where).fillna("").astype(str)
             for c in text_column.split(",")]
    text = parts[0] if len(parts) == 1 else pd.Series([" ".join(row) for row in zip(*parts, strict=True)])
    has_text = text.str.strip().str.len().to_numpy() > 0
    if label_column is None:
        labels, has_label = pd.Series([None] * len(df)), np.ones(len(df), dtype=bool)
    else:
        labels = _column(df, label_column, "data.label_column", where)
        has_label = labels.notna().to_numpy() & (labels.astype(str).str.strip().str.len().to_numpy() > 0)
    for n, why in ((~has_label).sum(), "no label"), ((~has_text & has_label).sum(), "empty text"):
        if n:
            log.warning("%s: dropped %d row(s) with %s", where, n, why)
    keep = has_text & has_label
    if not keep.any():
        raise TextclfError(f"{where} has no rows with both text and a label "
                           "(check data.text_column / data.label_column)")
    return Split(text[keep].tolist(), labels[keep].tolist(), where)


def read_split(path: str | Path, text_column: str, label_column: str | None) -> Split:
    return frame_to_split(read_table(path), text_column, label_column, str(path))


# --- folders and IMDB ---------------------------------------------------------------------------


def _split_file(folder: Path, split: str) -> Path | None:
    aliases = {"validation": ("validation", "valid", "val", "dev")}.get(split, (split,))
    for name in aliases:
        for suffix in SUFFIXES:
            if (folder / f"{name}{suffix}").is_file():
                return folder / f"{name}{suffix}"
    return None


def _acl_root(path: Path) -> Path | None:
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
        root = _acl_root(path)
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
            labels = [None if lab == "unsup" else lab for lab, _, _ in items]
            out[split] = Split([t for _, _, t in items], labels, f"{path}:{split}")
    return out


def local_imdb_dir() -> Path | None:
    """Where a local copy of IMDB may sit: $TEXTCLF_DATA/imdb, then ./data/imdb."""
    candidates = [Path(os.environ["TEXTCLF_DATA"]) / "imdb"] if os.environ.get("TEXTCLF_DATA") else []
    candidates.append(Path("data") / "imdb")
    return next((c for c in candidates if _split_file(c, "train") or _acl_root(c)), None)


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
            labels = [None] * len(part) if split == "unsup" else [names[i] for i in part["label"]]
            out[split] = Split(list(part["text"]), labels, f"{IMDB_HUB_NAME}:{hub_split}")
    return out


def _name_imdb_labels(splits: dict[str, Split]) -> dict[str, Split]:
    for split in splits.values():
        if split.labels and not isinstance(split.labels[0], str):
            split.labels = [IMDB_LABELS[int(v)] for v in split.labels]
    return splits


def load_splits(path: str | None = None, files: dict[str, str | None] | None = None,
                text_column: str = "text", label_column: str = "label",
                splits: tuple[str, ...] = SPLITS) -> dict[str, Split]:
    """Load the named splits that exist. `files` (split → file) wins over `path`.

    `path` may be "imdb", a folder of `train.*`/`validation.*`/`test.*` files, an aclImdb folder or
    tarball, or one file (used as every requested split: handy for evaluation).
    """
    files = {k: v for k, v in (files or {}).items() if v and k in splits}
    if files:
        return {s: read_split(f, text_column, label_column) for s, f in files.items()}
    if not path:
        raise TextclfError("no data given: set data.path=FOLDER_OR_FILE or data.train=FILE")
    if path == "imdb":
        local = local_imdb_dir()
        if local is None:
            return read_imdb_hub(splits)
        log.info("using the local IMDB copy in %s", local)
        return _name_imdb_labels(load_splits(str(local), None, "text", "label", splits))
    p = Path(path)
    if p.is_file() and (p.name.endswith((".tar.gz", ".tgz", ".tar"))):
        return read_aclimdb(p, splits)
    if p.is_file():
        return {s: read_split(p, text_column, label_column) for s in splits}
    if not p.is_dir():
        raise TextclfError(f"data path not found: {p} (give a folder with train/test files, a data file, or imdb)")
    if _acl_root(p):
        return read_aclimdb(p, splits)
    found = {s: f for s in splits if (f := _split_file(p, s))}
    if not found:
        raise TextclfError(f"{p} has no {' or '.join(splits)} split (name its files e.g. train.csv, test.parquet)")
    return {s: read_split(f, text_column, label_column) for s, f in found.items()}


def load_unlabelled(path: str | None, text_column: str = "text") -> Split | None:
    """The data's unlabelled texts for pretraining (IMDB's 50k `unsup` reviews), or None when it has none.

    Found as `unsup.*` / `unlabelled.*` beside train in a dataset folder, `train/unsup/` in aclImdb, or
    the Hub's "unsupervised" split.
    """
    if not path:
        return None
    if path == "imdb":
        local = local_imdb_dir()
        if local is None:
            return read_imdb_hub(("unsup",)).get("unsup")
        path = str(local)
    p = Path(path)
    if (p.is_file() and p.name.endswith((".tar.gz", ".tgz", ".tar"))) or (p.is_dir() and _acl_root(p)):
        return read_aclimdb(p, ("unsup",)).get("unsup")
    if p.is_dir():
        found = next((f for name in UNLABELLED if (f := _split_file(p, name))), None)
        return read_split(found, text_column, None) if found else None
    return None


def stratified_split(labels: list, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): a seeded, stratified carve-out (plain random if a class is too rare)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    keys = [str(v) for v in labels]
    counts = pd.Series(keys).value_counts()
    n_val = max(1, round(len(labels) * fraction))
    stratify = keys if counts.min() >= 2 and n_val >= len(counts) else None
    tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(tr), np.sort(va)
