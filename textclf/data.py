"""Read labelled text from wherever it lives: the Hub, a dataset folder, aclImdb/ (or its tarball), files."""

from __future__ import annotations

import csv
import logging
import os
import re
import tarfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
from tqdm import tqdm
from tqdm.utils import CallbackIOWrapper

from .errors import TextclfError, did_you_mean
from .vocab import label_key

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

ENCODING_ERRORS = ("strict", "replace")
_BAD_BYTE = re.compile("[\udc80-\udcff]")  # how surrogateescape spells a byte that is not UTF-8
_REPLACE_HINT = ("re-save it as UTF-8, or decode with replacement "
                 "(data.encoding_errors=replace; --encoding-errors replace for evaluate/predict)")


def _first_bad_line(path: Path) -> int | None:
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _check_utf8(df: pd.DataFrame, where: str, errors: str) -> pd.DataFrame:
    """Find cells holding bytes that were not UTF-8: name the first row, or swap them for U+FFFD."""
    if any(_BAD_BYTE.search(str(c)) for c in df.columns):
        raise TextclfError(f"{where}: the header line is not UTF-8; {_REPLACE_HINT}")
    bad = np.zeros(len(df), dtype=bool)
    for name in df.columns:
        if df[name].dtype == object:
            hits = df[name].str.contains(_BAD_BYTE.pattern, regex=True, na=False).to_numpy()
            if hits.any() and errors == "strict":
                row = int(df.index[hits.argmax()]) + 1
                raise TextclfError(f'{where}: row {row} (not counting the header) is not UTF-8 in column "{name}"; '
                                   f"{_REPLACE_HINT}")
            if hits.any():
                df[name] = df[name].str.replace(_BAD_BYTE.pattern, "\ufffd", regex=True)
                bad |= hits
    if bad.any():
        log.warning("%s: %d row(s) were not UTF-8; their bad bytes read as U+FFFD", where, int(bad.sum()))
    return df


def _check_shape(df: pd.DataFrame, where: str) -> pd.DataFrame:
    # pandas silently turns the first column into the index when every row has one field more than the header
    if not isinstance(df.index, pd.RangeIndex):
        raise TextclfError(f"{where} is malformed: its rows have more fields than the header "
                           f"({len(df.columns)} names); name every column or remove trailing delimiters")
    return df


def _frames(f: BinaryIO, suffix: str, chunk_size: int | None, errors: str) -> Iterator[pd.DataFrame]:
    if suffix in (".csv", ".tsv"):
        # object dtype keeps undecodable bytes as surrogates, so _check_utf8 can name the row
        reader = pd.read_csv(f, sep="\t" if suffix == ".tsv" else ",", dtype=object, keep_default_na=False,
                             na_values=[""], encoding="utf-8", encoding_errors="surrogateescape", chunksize=chunk_size)
        yield from [reader] if chunk_size is None else reader
    elif suffix in (".jsonl", ".json"):
        lines = suffix == ".jsonl"
        reader = pd.read_json(f, lines=lines, dtype=False, encoding="utf-8", encoding_errors=errors,
                              chunksize=chunk_size if lines else None)
        yield from [reader] if chunk_size is None or not lines else reader
    else:  # parquet: strings are valid UTF-8 by the format's rules
        import pyarrow as pa
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(f)
        if chunk_size is None:
            yield pf.read().to_pandas()
        else:
            for batch in pf.iter_batches(batch_size=chunk_size):
                yield pa.Table.from_batches([batch]).to_pandas()


def _suffix(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise TextclfError(f"unsupported data file type {suffix!r} for {path} (use one of {', '.join(SUFFIXES)})")
    return suffix


def iter_table(source: str | Path | BinaryIO, chunk_size: int | None = None, encoding_errors: str = "strict",
               suffix: str | None = None, desc: str | None = None) -> Iterator[pd.DataFrame]:
    """Read a parquet/csv/tsv/jsonl file (or a binary stream, e.g. stdin) in chunks of `chunk_size` rows.

    Every failure becomes one TextclfError line: a missing file, malformed CSV (with its line), bytes
    that are not UTF-8 (with their row; or read as U+FFFD when `encoding_errors="replace"`). With `desc`,
    a progress bar over the bytes read goes to stderr (quiet off a TTY).
    """
    if encoding_errors not in ENCODING_ERRORS:
        raise TextclfError(f"encoding errors must be one of {', '.join(ENCODING_ERRORS)}, got {encoding_errors!r}")
    if isinstance(source, str | Path):
        path, where = Path(source), str(source)
        if not path.is_file():
            hint = "it is a folder; pass a file" if path.is_dir() else "check the path"
            raise TextclfError(f"data file not found: {path} ({hint})")
        suffix = suffix or _suffix(path)
        handle, total = open(path, "rb"), path.stat().st_size  # noqa: SIM115 (closed below)
    else:
        path, where, handle, total = None, getattr(source, "name", "the input stream"), source, None
        suffix = suffix or ".csv"
    bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=None if desc else True)
    try:
        f = handle if bar.disable else CallbackIOWrapper(bar.update, handle, "read")
        for df in _frames(f, suffix, chunk_size, encoding_errors):
            yield _check_utf8(_check_shape(df, where), where, encoding_errors) if suffix in (".csv", ".tsv") else df
    except UnicodeDecodeError as e:
        line = _first_bad_line(path) if path is not None else None
        at = f"line {line}" if line else f"byte {e.start} of a block"
        raise TextclfError(f"{where} is not UTF-8 at {at}; {_REPLACE_HINT}") from None
    except pd.errors.EmptyDataError:
        raise TextclfError(f"{where} is empty (no header line): write the column names on its first line") from None
    except (pd.errors.ParserError, csv.Error) as e:
        first = str(e).strip().splitlines()[0].replace("Error tokenizing data. C error: ", "")
        raise TextclfError(f"{where} is malformed: {first} (quote fields that hold the delimiter, "
                           "quotes or newlines)") from None
    except (ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TextclfError(f"could not read {where}: {first} (fix or re-export the file)") from None
    finally:
        bar.close()
        if path is not None:
            handle.close()


def read_table(path: str | Path, encoding_errors: str = "strict") -> pd.DataFrame:
    """Read a whole parquet/csv/tsv/jsonl file into a DataFrame (see `iter_table` for the error messages)."""
    frames = list(iter_table(path, None, encoding_errors))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _column(df: pd.DataFrame, name: str, option: str, where: str) -> pd.Series:
    if name not in df.columns:
        cols = [str(c) for c in df.columns]
        raise TextclfError(f'{where} has no column "{name}"{did_you_mean(name, cols)}; '
                           f"columns: {', '.join(cols)} (set {option})")
    return df[name]


def text_of(df: pd.DataFrame, text_column: str, where: str, option: str = "data.text_column") -> pd.Series:
    """The text column, or several (`title,body`) joined with a space; missing cells are empty strings."""
    parts = [_column(df, c.strip(), option, where).fillna("").astype(str) for c in text_column.split(",")]
    if len(parts) == 1:
        return parts[0]
    return pd.Series([" ".join(row) for row in zip(*parts, strict=True)], index=df.index, dtype=object)


def frame_to_split(df: pd.DataFrame, text_column: str, label_column: str | None, where: str) -> Split:
    """Pick the text column(s) and label column; drop rows with empty text or no label, saying so."""
    text = text_of(df, text_column, where)
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


def read_split(path: str | Path, text_column: str, label_column: str | None,
               encoding_errors: str = "strict") -> Split:
    return frame_to_split(read_table(path, encoding_errors), text_column, label_column, str(path))


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
                splits: tuple[str, ...] = SPLITS, encoding_errors: str = "strict") -> dict[str, Split]:
    """Load the named splits that exist. `files` (split → file) wins over `path`.

    `path` may be "imdb", a folder of `train.*`/`validation.*`/`test.*` files, an aclImdb folder or
    tarball, or one file (used as every requested split: handy for evaluation).
    """
    files = {k: v for k, v in (files or {}).items() if v and k in splits}
    if files:
        return {s: read_split(f, text_column, label_column, encoding_errors) for s, f in files.items()}
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
        return {s: read_split(p, text_column, label_column, encoding_errors) for s in splits}
    if not p.is_dir():
        raise TextclfError(f"data path not found: {p} (give a folder with train/test files, a data file, or imdb)")
    if _acl_root(p):
        return read_aclimdb(p, splits)
    found = {s: f for s in splits if (f := _split_file(p, s))}
    if not found:
        raise TextclfError(f"{p} has no {' or '.join(splits)} split (name its files e.g. train.csv, test.parquet)")
    return {s: read_split(f, text_column, label_column, encoding_errors) for s, f in found.items()}


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
