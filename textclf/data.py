"""Read labelled text from wherever it lives: the Hub, `datasets` folders, a dataset folder, aclImdb/, files."""

from __future__ import annotations

import codecs
import csv
import itertools
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
import yaml
from tqdm import tqdm
from tqdm.utils import CallbackIOWrapper

from .errors import TextclfError, did_you_mean
from .hub import HF_PREFIX
from .text.vocab import label_key

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SUFFIXES = (".parquet", ".csv", ".tsv", ".txt", ".jsonl", ".json", ".xlsx")
DELIMITED = (".csv", ".tsv", ".txt")  # delimited text: its delimiter is sniffed from the header unless given
IMDB_HUB_NAME = "stanfordnlp/imdb"
IMDB_LABELS = ("negative", "positive")  # IMDB's classes 0 and 1, however a copy spells them
_IMDB_NAMES = {"0": "negative", "neg": "negative", "negative": "negative",
               "1": "positive", "pos": "positive", "positive": "positive"}
_ACLIMDB_FILE = re.compile(r"(?:^|/)(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")
UNLABELLED = ("unsup", "unsupervised", "unlabelled", "unlabeled")  # file names of an unlabelled split
SPLIT_ALIASES = {"validation": ("validation", "valid", "val", "dev"), "unsup": UNLABELLED}
TARBALLS = (".tar.gz", ".tgz", ".tar")  # aclImdb as downloaded


def is_data_file(path: str) -> bool:
    """Whether `path` names one data file (csv, parquet ...), not a folder, a tarball or a Hub dataset."""
    return not path.startswith(HF_PREFIX) and Path(path).is_file() and not path.endswith(TARBALLS)


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
_REPLACE_HINT = ("re-save it as UTF-8, pass its encoding (data.encoding=NAME; --encoding NAME for evaluate/predict), "
                 "or decode with replacement (data.encoding_errors=replace; --encoding-errors replace)")
# Byte-order marks, UTF-32-LE's before UTF-16-LE's (it starts with it)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}  # the ones sniffed, by name
_HEAD_BYTES = 1 << 16  # what encoding and delimiter detection look at: the header and the first rows


def _first_bad_line(path: Path) -> tuple[int, bytes] | None:
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number, line
    return None


def _encoding_hint(path: Path | None, raw: bytes) -> str:
    """What to do about bytes that are not UTF-8 (`raw`: the cell or line holding them).

    Excel's "CSV" on Windows writes Windows-1252, which decodes nearly any bytes; when the whole file
    decodes as it, say so, with the text as it would read: decoding with replacement would lose the é's.
    """
    try:
        if path is not None:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    block.decode("cp1252")  # one byte per character: blocks decode on their own
        first = next((i for i, b in enumerate(raw) if b >= 0x80), 0)
        sample = raw[max(0, first - 20):first + 20].decode("cp1252").strip()
    except UnicodeDecodeError:
        return _REPLACE_HINT
    shown = f' ("{sample}")' if sample else ""
    return f"looks like Windows-1252{shown}; pass data.encoding=cp1252 (--encoding cp1252 for evaluate/predict)"


def _check_utf8(df: pd.DataFrame, where: str, errors: str, path: Path | None = None) -> pd.DataFrame:
    """Find cells holding bytes that were not UTF-8: name the first row, or swap them for U+FFFD."""
    bad_names = [str(c) for c in df.columns if _BAD_BYTE.search(str(c))]
    if bad_names:
        raw = bad_names[0].encode("utf-8", "surrogateescape")
        raise TextclfError(f"{where}: the header line is not UTF-8; {_encoding_hint(path, raw)}")
    bad = np.zeros(len(df), dtype=bool)
    for name in df.columns:
        if df[name].dtype == object:
            hits = df[name].str.contains(_BAD_BYTE.pattern, regex=True, na=False).to_numpy()
            if hits.any() and errors == "strict":
                row = int(df.index[hits.argmax()]) + 1
                raw = str(df[name].iloc[hits.argmax()]).encode("utf-8", "surrogateescape")
                raise TextclfError(f'{where}: row {row} (not counting the header) is not UTF-8 in column "{name}"; '
                                   f"{_encoding_hint(path, raw)}")
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


def _peek(f: BinaryIO, n: int = _HEAD_BYTES) -> bytes:
    """The first `n` bytes, left unread: by seeking back, or from a pipe's buffer (stdin; maybe fewer)."""
    if f.seekable():
        pos = f.tell()
        head = f.read(n)
        f.seek(pos)
        return head
    peek = getattr(f, "peek", None)
    return peek(n)[:n] if peek else b""


def _is_utf8(codec: str) -> bool:
    return codec in ("utf-8", "utf-8-sig")


def _codec(head: bytes, encoding: str | None) -> str:
    """The codec to decode a text file with: `encoding` when given, else its byte-order mark's, else UTF-8."""
    if encoding:
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise TextclfError(f'unknown encoding "{encoding}" (data.encoding / --encoding take a Python codec '
                               "name: utf-8, cp1252, latin-1, utf-16 ...)") from None
        return "utf-8-sig" if name == "utf-8" and head.startswith(codecs.BOM_UTF8) else name
    return next((codec for bom, codec in _BOMS if head.startswith(bom)), "utf-8")


def _decoded(head: bytes, codec: str) -> str:
    """`head` as text; a character cut at the end, or a bad byte, does not stop it."""
    return codecs.getincrementaldecoder(codec)(errors="replace").decode(head).lstrip("\ufeff")


def _outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count


def resolve_delimiter(delimiter: str | None) -> str | None:
    """A delimiter as written (one character; comma, semicolon, tab, pipe; or \\t) → its character."""
    if delimiter is None:
        return None
    names = {name: char for char, name in DELIMITER_NAMES.items()} | {"\\t": "\t"}
    char = names.get(delimiter.strip().lower() or delimiter, delimiter)
    if len(char) != 1:
        raise TextclfError(f'delimiter "{delimiter}" is not one character (data.delimiter / --delimiter take '
                           "comma, semicolon, tab, pipe, or the character itself)")
    return char


def _delimiter(head: bytes, codec: str, delimiter: str | None, suffix: str) -> tuple[str, bool]:
    """(the delimiter, whether it was sniffed): as given, else the one of , ; tab | that the header line holds
    most often outside quotes (a header holds no free text to mislead it), else the suffix's."""
    given = resolve_delimiter(delimiter)
    if given is not None:
        return given, False
    default = "," if suffix == ".csv" else "\t"  # .tsv, and Excel's "Unicode text" .txt, are tab-separated
    lines = _decoded(head, codec).splitlines()
    counts = {c: _outside_quotes(lines[0] if lines else "", c) for c in DELIMITER_NAMES}
    best = max(counts, key=lambda c: (counts[c], c == default))
    return (best if counts[best] else default), True


def _parse_hint(head: bytes, codec: str, sep: str | None, sniffed: bool) -> str:
    """Why delimited text did not parse: another delimiter than the one used, or fields left unquoted."""
    how = f"read as {DELIMITER_NAMES.get(sep, repr(sep))}-separated {codec}" + (" (from its header)" if sniffed else "")
    try:  # the delimiter the first rows agree on; the last line of `head` may be cut, so leave it out
        sample = "\n".join(_decoded(head, codec).splitlines()[:50][:-1] or [""])
        likely = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITER_NAMES)).delimiter
    except csv.Error:
        likely = sep
    if likely != sep:
        name = DELIMITER_NAMES[likely]
        return (f"{how}, but its rows look {name}-separated: pass data.delimiter={name} "
                f"(--delimiter {name} for evaluate/predict)")
    return f"quote fields that hold the delimiter, quotes or newlines; {how}"


def _read_xlsx(f: BinaryIO, sheet: str | None, where: str) -> pd.DataFrame:
    """One sheet of an Excel workbook (the first unless `sheet` names one), through pandas' openpyxl engine."""
    try:
        import openpyxl
    except ImportError:
        raise TextclfError("reading .xlsx needs openpyxl: pip install openpyxl (or save the sheet as CSV)") from None
    try:
        book = openpyxl.load_workbook(f, read_only=True)
        names = book.sheetnames
        book.close()
    except Exception as e:  # not a zip, or a zip that is no workbook: openpyxl has no one error type for it
        raise TextclfError(f"{where} is not a readable .xlsx workbook ({type(e).__name__}); re-save it from "
                           "Excel as .xlsx or CSV") from None
    if sheet is not None and sheet not in names:
        raise TextclfError(f'{where} has no sheet "{sheet}"{did_you_mean(sheet, names)}; sheets: '
                           f"{', '.join(names)} (set data.sheet / --sheet)")
    f.seek(0)
    # keep_default_na=False: a cell reading NA, N/A, null or None is text, as in a CSV; empty cells stay missing
    return pd.read_excel(f, sheet_name=sheet if sheet is not None else names[0], dtype=object, engine="openpyxl",
                         keep_default_na=False, na_values=[""])


def _frames(f: BinaryIO, suffix: str, chunk_size: int | None, errors: str, codec: str, sep: str | None,
            sheet: str | None, where: str) -> Iterator[pd.DataFrame]:
    if suffix in DELIMITED:
        # object dtype keeps undecodable UTF-8 bytes as surrogates, so _check_utf8 can name the row
        reader = pd.read_csv(f, sep=sep, dtype=object, keep_default_na=False, na_values=[""], encoding=codec,
                             encoding_errors="surrogateescape" if _is_utf8(codec) else errors, chunksize=chunk_size)
        yield from [reader] if chunk_size is None else reader
    elif suffix in (".jsonl", ".json"):
        lines = suffix == ".jsonl"
        reader = pd.read_json(f, lines=lines, dtype=False, encoding=codec, encoding_errors=errors,
                              chunksize=chunk_size if lines else None)
        yield from [reader] if chunk_size is None or not lines else reader
    elif suffix == ".xlsx":  # no chunks: a sheet holds at most ~1M rows
        yield _read_xlsx(f, sheet, where)
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
               suffix: str | None = None, desc: str | None = None, *, encoding: str | None = None,
               delimiter: str | None = None, sheet: str | None = None) -> Iterator[pd.DataFrame]:
    """Read a parquet/csv/tsv/txt/jsonl/xlsx file (or a binary stream, e.g. stdin) in chunks of `chunk_size` rows.

    Text is decoded as `encoding` (any Python codec) when given, else as its byte-order mark says (UTF-8,
    UTF-16, UTF-32), else as UTF-8. Delimited text (csv, tsv, txt) splits on `delimiter` when given, else
    on the one of , ; tab | that its header line holds. `sheet` picks an .xlsx sheet (default: the first).

    Every failure becomes one TextclfError line: a missing file, malformed CSV (with its line and the likely
    delimiter), bytes that are not UTF-8 (with their row and the likely encoding; or read as U+FFFD when
    `encoding_errors="replace"`). With `desc`, a progress bar over the bytes read goes to stderr (quiet off a TTY).
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
    quiet = not desc or suffix == ".xlsx"  # a workbook is a zip read by seeking: no byte count to show
    bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=True if quiet else None)
    head, codec, sep, sniffed = b"", "utf-8", None, False
    try:
        if suffix in (*DELIMITED, ".jsonl", ".json"):
            head = _peek(handle)
            codec = _codec(head, encoding)
            if encoding is None and _is_utf8(codec) and b"\x00" in head:  # never in UTF-8 text; between UTF-16's
                raise TextclfError(f"{where} looks like UTF-16 without a byte-order mark (NUL bytes between "
                                   "characters): pass data.encoding=utf-16-le (--encoding utf-16-le to evaluate)")
        if suffix in DELIMITED:
            sep, sniffed = _delimiter(head, codec, delimiter, suffix)
        f = handle if bar.disable else CallbackIOWrapper(bar.update, handle, "read")
        for df in _frames(f, suffix, chunk_size, encoding_errors, codec, sep, sheet, where):
            if suffix in DELIMITED:
                df = _check_shape(df, where)
                df = _check_utf8(df, where, encoding_errors, path) if _is_utf8(codec) else df
            yield df
    except UnicodeDecodeError as e:
        if not _is_utf8(codec):
            raise TextclfError(f"{where} does not decode as {codec} ({e.reason}); check data.encoding (--encoding), "
                               "or pass data.encoding_errors=replace (--encoding-errors replace)") from None
        bad = _first_bad_line(path) if path is not None else None
        at = f"line {bad[0]}" if bad else f"byte {e.start} of a block"
        raw = bad[1] if bad else e.object[max(0, e.start - 20):e.end + 20]
        raise TextclfError(f"{where} is not UTF-8 at {at}; {_encoding_hint(path, raw)}") from None
    except pd.errors.EmptyDataError:
        raise TextclfError(f"{where} is empty (no header line): write the column names on its first line") from None
    except (pd.errors.ParserError, csv.Error) as e:
        first = str(e).strip().splitlines()[0].replace("Error tokenizing data. C error: ", "")
        raise TextclfError(f"{where} is malformed: {first} ({_parse_hint(head, codec, sep, sniffed)})") from None
    except (ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TextclfError(f"could not read {where}: {first} (fix or re-export the file)") from None
    finally:
        bar.close()
        if path is not None:
            handle.close()


def read_table(path: str | Path, encoding_errors: str = "strict", *, encoding: str | None = None,
               delimiter: str | None = None, sheet: str | None = None) -> pd.DataFrame:
    """Read a whole data file into a DataFrame (see `iter_table` for the formats and the error messages)."""
    frames = list(iter_table(path, None, encoding_errors, encoding=encoding, delimiter=delimiter, sheet=sheet))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _missing_column(name: str, columns: list, option: str, where: str) -> TextclfError:
    cols = [str(c) for c in columns]
    return TextclfError(f'{where} has no column "{name}"{did_you_mean(name, cols)}; '
                        f"columns: {', '.join(cols)} (set {option})")


def _column(df: pd.DataFrame, name: str, option: str, where: str) -> pd.Series:
    if name not in df.columns:
        raise _missing_column(name, list(df.columns), option, where)
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


def read_split(path: str | Path, text_column: str, label_column: str | None, encoding_errors: str = "strict", *,
               encoding: str | None = None, delimiter: str | None = None, sheet: str | None = None) -> Split:
    df = read_table(path, encoding_errors, encoding=encoding, delimiter=delimiter, sheet=sheet)
    return frame_to_split(df, text_column, label_column, str(path))


def check_text_file(path: str | Path, text_column: str, encoding_errors: str = "strict", *,
                    encoding: str | None = None, delimiter: str | None = None, sheet: str | None = None) -> None:
    """Fail now, with one line, if `path` is missing, unreadable, or lacks the text column(s): reads its first rows."""
    chunks = iter_table(path, 100, encoding_errors, encoding=encoding, delimiter=delimiter, sheet=sheet)
    try:
        first = next(chunks, None)
        if first is not None:
            text_of(first, text_column, str(path))
    finally:
        chunks.close()


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
    for name in SPLIT_ALIASES.get(split, (split,)):
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
            labels = [None if lab == "unsup" else _IMDB_NAMES[lab] for lab, _, _ in items]
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
            labels = [None] * len(part) if split == "unsup" else [_IMDB_NAMES[names[i]] for i in part["label"]]
            out[split] = Split(list(part["text"]), labels, f"{IMDB_HUB_NAME}:{hub_split}")
    return out


def _name_imdb_labels(splits: dict[str, Split]) -> dict[str, Split]:
    """IMDB's classes as negative/positive, however a copy spells them (0/1, neg/pos)."""
    for split in splits.values():
        split.labels = [v if v is None else _IMDB_NAMES.get(label_key(v), v) for v in split.labels]
    return splits


# --- Hugging Face datasets: the Hub, save_to_disk folders, folders laid out like a Hub dataset repo ----

_SPLIT_SPEC = re.compile(r"^(?P<name>[^\[\]]+?)\s*(?:\[(?P<start>\d*):(?P<stop>\d*)\])?$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def datasets_form(path: str | None) -> str | None:
    """How `datasets` reads `path`: "hub" (hf:NAME, or a folder laid out like a Hub dataset repo: data files and
    a README.md whose YAML header lists `configs:`), "disk" (a `save_to_disk` folder), or None (neither)."""
    if not path:
        return None
    if path.startswith(HF_PREFIX):
        return "hub"
    p = Path(path)
    if not p.is_dir():
        return None
    if (p / "dataset_dict.json").is_file() or (p / "state.json").is_file():
        return "disk"
    if (p / "README.md").is_file():
        header = _FRONT_MATTER.match((p / "README.md").read_text(encoding="utf-8", errors="replace"))
        try:
            meta = yaml.safe_load(header.group(1)) if header else None
        except yaml.YAMLError:
            meta = None
        if isinstance(meta, dict) and "configs" in meta:
            return "hub"
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _hub_name(path: str) -> tuple[str, str | None]:
    """hf:NAME[:CONFIG], or a folder → (what `load_dataset` takes, the config)."""
    if not path.startswith(HF_PREFIX):
        return path, None
    name, _, config = path[len(HF_PREFIX):].partition(":")
    if not name.strip():
        raise TextclfError(f'"{path}" names no dataset: write hf:NAME or hf:NAME:CONFIG (e.g. hf:rotten_tomatoes)')
    return name.strip(), config.strip() or None


def _config_names(name: str) -> list[str]:
    import datasets

    try:
        return list(datasets.get_dataset_config_names(name))
    except Exception:  # the dataset itself cannot be reached: the caller reports the first error
        return []


def _local_cache(name: str) -> str | None:
    """For a local Hub-style folder, a datasets cache of its own, keyed by its files' paths, sizes and times.

    datasets keys its cache of such a folder by the folder's name and its configs' file patterns, not by the
    files: a re-exported folder, or another folder of the same name, would read the Arrow copy of the old
    files (seen with datasets 5.2). None for a Hub name: the Hub's commit hash keys those.
    """
    folder = Path(name)
    if not folder.is_dir():
        return None
    import hashlib

    import datasets

    h = hashlib.sha256(str(folder.resolve()).encode("utf-8"))
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = f.stat()
        h.update(f"{f.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return str(Path(datasets.config.HF_DATASETS_CACHE) / "textclf-local" / h.hexdigest()[:16])


def open_datasets(path: str, streaming: bool = False) -> Mapping:
    """A Hub dataset's or `datasets` folder's splits by name: a DatasetDict (memory-mapped Arrow), or an
    IterableDatasetDict when `streaming` from the Hub. A dataset or config that is not there is one line."""
    import datasets  # lazy: a second of imports that only these sources need

    if datasets_form(path) == "disk":
        try:
            found = datasets.load_from_disk(path)
        except Exception as e:  # a half-copied folder: datasets raises what its readers raise
            raise TextclfError(f"could not read the datasets folder {path} ({type(e).__name__}: {_first_line(e)}); "
                               "re-save it with save_to_disk") from None
        return {"train": found} if isinstance(found, datasets.Dataset) else found
    name, config = _hub_name(path)
    try:
        return datasets.load_dataset(name, config, streaming=streaming, cache_dir=_local_cache(name))
    except Exception as e:  # offline, no such dataset, private, a config missing: datasets has many types for them
        configs = _config_names(name) if isinstance(e, ValueError) else []
        if configs and config not in configs:
            if config is None:
                raise TextclfError(f"{path} has several configs; name one, e.g. hf:{name}:{configs[0]} "
                                   f"(configs: {', '.join(configs)})") from None
            raise TextclfError(f'{path} has no config "{config}"{did_you_mean(config, configs)}; configs: '
                               f"{', '.join(configs)} (write hf:{name}:CONFIG)") from None
        raise TextclfError(f"could not load {path} ({type(e).__name__}: {_first_line(e)}); check the name at "
                           "https://huggingface.co/datasets, the network, and HF_TOKEN for a private dataset") from None


def _split_spec(spec: str) -> tuple[str, int | None, int | None]:
    """`train` or `train[:5000]` / `train[1000:2000]` → (name, start, stop)."""
    match = _SPLIT_SPEC.match(str(spec))
    if not match:
        raise TextclfError(f'split "{spec}" is not NAME or NAME[START:STOP] (e.g. train[:5000])')
    start, stop = (int(x) if x else None for x in (match["start"], match["stop"]))
    return match["name"].strip(), start, stop


def _datasets_frame(part, text_column: str, label_column: str | None, start: int | None, stop: int | None,
                    where: str) -> pd.DataFrame:
    """The text and label columns of one split; a ClassLabel's ids become its names (-1, no label: None)."""
    wanted = list(dict.fromkeys([c.strip() for c in text_column.split(",")] + ([label_column] if label_column else [])))

    def check(columns: list) -> None:
        for col in wanted:
            if col not in columns:
                raise _missing_column(col, columns, "data.label_column" if col == label_column else "data.text_column",
                                      where)

    import datasets

    columns = list(part.column_names or [])  # a streamed split may learn them only from its first row
    if columns:
        check(columns)
        part = part.select_columns(wanted)
    if not isinstance(part, datasets.IterableDataset):  # memory-mapped Arrow, sliced without reading the rest
        if start is not None or stop is not None:
            part = part.select(range(*slice(start, stop).indices(len(part))))
        df = part.to_pandas()
    else:  # an IterableDataset: rows are read as they download, and only up to `stop`
        df = pd.DataFrame.from_records(list(itertools.islice(part, start, stop)))
        if len(df) and not columns:
            check(list(df.columns))
        df = df.reindex(columns=wanted)
    names = getattr((part.features or {}).get(label_column), "names", None) if label_column else None
    if names:
        df[label_column] = [names[int(v)] if v is not None and not pd.isna(v) and 0 <= int(v) < len(names) else None
                            for v in df[label_column]]
    return df


def read_datasets(path: str, splits: tuple[str, ...], split_names: Mapping[str, str | None] | None,
                  text_column: str, label_column: str | None, required: tuple[str, ...] = ("train",),
                  streaming: bool = False) -> dict[str, Split]:
    """The requested splits of a Hub dataset (`hf:NAME[:CONFIG]`) or `datasets` folder, labels named as it names them.

    `split_names` maps a role (train, validation, test, unsup) to the dataset's split, maybe sliced
    (`train[:5000]`); None leaves the role out. A role under its own name (or an alias: dev, valid ...) may
    be missing unless `required`; a split named otherwise must exist. A split with no labels at all
    (GLUE's test sets hold -1) is left out with a warning unless it was asked for.
    """
    parts = open_datasets(path, streaming)
    available = list(parts)
    out = {}
    for role in splits:
        spec = (split_names or {}).get(role, role)
        if spec is None:
            continue
        name, start, stop = _split_spec(spec)
        own_name = name == role
        found = next((a for a in (SPLIT_ALIASES.get(role, (role,)) if own_name else (name,)) if a in parts), None)
        if found is None:
            if own_name and role not in required:
                continue
            raise TextclfError(f'{path} has no split "{name}"{did_you_mean(name, available)}; its splits: '
                               f"{', '.join(available)} (name one with data.{role}_split, or --split to evaluate)")
        where = f"{path}:{found}" + ("" if spec == name else spec[len(name):].strip())  # the slice, as written
        df = _datasets_frame(parts[found], text_column, label_column, start, stop, where)
        if label_column and own_name and role not in required and df[label_column].isna().all():
            log.warning("%s has no labels: not used as %s (name another split with data.%s_split)", where, role, role)
            continue
        out[role] = frame_to_split(df, text_column, label_column, where)
    return out


def load_splits(path: str | None = None, files: dict[str, str | None] | None = None,
                text_column: str = "text", label_column: str = "label",
                splits: tuple[str, ...] = SPLITS, encoding_errors: str = "strict", *,
                split_names: Mapping[str, str | None] | None = None, required: tuple[str, ...] = ("train",),
                streaming: bool = False, encoding: str | None = None, delimiter: str | None = None,
                sheet: str | None = None) -> dict[str, Split]:
    """Load the named splits that exist. `files` (split → file) wins over `path`.

    `path` may be "imdb", "hf:NAME" / "hf:NAME:CONFIG" (any Hub dataset), a `save_to_disk` folder or one laid
    out like a Hub dataset repo, a folder of `train.*`/`validation.*`/`test.*` files, an aclImdb folder or
    tarball, or one file (the split to score, for evaluation; training reads a lone file as its train split).
    `split_names`, `required` and `streaming`: see `read_datasets` (split names also pick a folder's files);
    `encoding`, `delimiter`, `sheet`: see `iter_table`.
    """
    fmt = {"encoding": encoding, "delimiter": delimiter, "sheet": sheet}
    files = {k: v for k, v in (files or {}).items() if v and k in splits}
    if files:
        return {s: read_split(f, text_column, label_column, encoding_errors, **fmt) for s, f in files.items()}
    if not path:
        raise TextclfError("no data given: set data.path=FOLDER_OR_FILE or data.train=FILE")
    if path == "imdb":
        local = local_imdb_dir()
        if local is None:
            return read_imdb_hub(splits)
        log.info("using the local IMDB copy in %s", local)
        return _name_imdb_labels(load_splits(str(local), None, "text", "label", splits))
    if datasets_form(path):
        out = read_datasets(path, splits, split_names, text_column, label_column, required, streaming)
        return _name_imdb_labels(out) if _hub_name(path)[0] in (IMDB_HUB_NAME, "imdb") else out
    p = Path(path)
    if p.is_file() and p.name.endswith(TARBALLS):
        return read_aclimdb(p, splits)
    if p.is_file():  # one file: the split to score (evaluate); training reads it as train (prepare.load_data)
        return {s: read_split(p, text_column, label_column, encoding_errors, **fmt) for s in splits}
    if not p.is_dir():
        raise TextclfError(f"data path not found: {p} (give a folder with train/test files, a data file, imdb, "
                           "or hf:NAME for a Hub dataset)")
    if _acl_root(p):
        return read_aclimdb(p, splits)
    names = {s: (split_names or {}).get(s, s) for s in splits}
    found = {s: f for s, name in names.items() if name is not None and (f := _split_file(p, name))}
    for s, name in names.items():
        if name is not None and name != s and s not in found:
            raise TextclfError(f'{p} has no file for split "{name}" (e.g. {name}.csv; set data.{s}_split)')
    if not found:
        raise TextclfError(f"{p} has no {' or '.join(splits)} split (name its files e.g. train.csv, test.parquet)")
    out = {s: read_split(f, text_column, label_column, encoding_errors, **fmt) for s, f in found.items()}
    # a folder named imdb is IMDB (the name the local copy goes by): its classes read as they do from the Hub
    return _name_imdb_labels(out) if p.resolve().name.lower() == "imdb" else out


def load_unlabelled(path: str | None, text_column: str = "text", encoding_errors: str = "strict", *,
                    encoding: str | None = None, delimiter: str | None = None) -> Split | None:
    """The data's unlabelled texts for pretraining (IMDB's 50k `unsup` reviews), or None when it has none.

    Found as `unsup.*` / `unlabelled.*` beside train in a dataset folder, `train/unsup/` in aclImdb, or
    an "unsupervised" / "unsup" split of the Hub's IMDB, another Hub dataset or a `datasets` folder.
    """
    if not path:
        return None
    if path == "imdb":
        local = local_imdb_dir()
        if local is None:
            return read_imdb_hub(("unsup",)).get("unsup")
        path = str(local)
    if datasets_form(path):
        return read_datasets(path, ("unsup",), None, text_column, None, required=()).get("unsup")
    p = Path(path)
    if (p.is_file() and p.name.endswith(TARBALLS)) or (p.is_dir() and _acl_root(p)):
        return read_aclimdb(p, ("unsup",)).get("unsup")
    if p.is_dir():
        found = next((f for name in UNLABELLED if (f := _split_file(p, name))), None)
        return read_split(found, text_column, None, encoding_errors, encoding=encoding, delimiter=delimiter) \
            if found else None
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
