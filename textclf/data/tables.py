"""Data files as users bring them: csv, tsv, txt, jsonl, parquet and xlsx; their encodings (byte-order marks,
Windows-1252 named) and delimiters (sniffed from the header); their text and label columns; and every way they
can be wrong, as one line naming the fix."""

from __future__ import annotations

import codecs
import contextlib
import csv
import logging
import re
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
from tqdm import tqdm
from tqdm.utils import CallbackIOWrapper

from ..errors import TextclfError, did_you_mean, first_line
from .split import SPLIT_ALIASES, Split

log = logging.getLogger(__name__)

SUFFIXES = (".parquet", ".csv", ".tsv", ".txt", ".jsonl", ".json", ".xlsx")
DELIMITED = (".csv", ".tsv", ".txt")  # delimited text: its delimiter is sniffed from the header unless given
ENCODING_ERRORS = ("strict", "replace")
_BAD_BYTE = re.compile("[\udc80-\udcff]")  # how surrogateescape spells a byte that is not UTF-8
_REPLACE_HINT = ("re-save it as UTF-8, pass its encoding (data.encoding=NAME; --encoding NAME for evaluate/predict), "
                 "or decode with replacement (data.encoding_errors=replace; --encoding-errors replace)")
# Byte-order marks, UTF-32-LE's before UTF-16-LE's (it starts with it)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}  # the ones sniffed, by name
_HEAD_BYTES = 1 << 16  # what encoding and delimiter detection look at: the header and the first rows


@dataclass(frozen=True)
class FileFormat:
    """How to read a data file, as the user gave it (data.encoding, data.delimiter, data.sheet; --encoding,
    --delimiter, --sheet): a Python codec, a delimiter (one character or its name), an .xlsx sheet; None: detect
    (see `iter_table`). Inside `iter_table`, the same three as found: the codec, the delimiter's character."""

    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None


DETECT = FileFormat()  # every part of the format detected from the file


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


def _frames(f: BinaryIO, suffix: str, chunk_size: int | None, errors: str, found: FileFormat,
            where: str) -> Iterator[pd.DataFrame]:
    """The file's rows, `chunk_size` at a time (None: all at once), read as `found` says: its codec, its
    delimiter's character, its sheet."""
    codec, sep = found.encoding, found.delimiter
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
        yield _read_xlsx(f, found.sheet, where)
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


def _read_error(e: Exception, where: str, path: Path | None, head: bytes, codec: str, sep: str | None,
                sniffed: bool) -> TextclfError:
    """Why a file did not read, as one line naming the fix: bytes that are not UTF-8 (their row, the likely
    encoding), an empty file, malformed delimited text (its line, the likely delimiter), anything else."""
    if isinstance(e, UnicodeDecodeError):
        if not _is_utf8(codec):
            return TextclfError(f"{where} does not decode as {codec} ({e.reason}); check data.encoding (--encoding), "
                                "or pass data.encoding_errors=replace (--encoding-errors replace)")
        bad = _first_bad_line(path) if path is not None else None
        at = f"line {bad[0]}" if bad else f"byte {e.start} of a block"
        raw = bad[1] if bad else e.object[max(0, e.start - 20):e.end + 20]
        return TextclfError(f"{where} is not UTF-8 at {at}; {_encoding_hint(path, raw)}")
    if isinstance(e, pd.errors.EmptyDataError):
        return TextclfError(f"{where} is empty (no header line): write the column names on its first line")
    if isinstance(e, pd.errors.ParserError | csv.Error):
        first = first_line(e).replace("Error tokenizing data. C error: ", "")
        return TextclfError(f"{where} is malformed: {first} ({_parse_hint(head, codec, sep, sniffed)})")
    return TextclfError(f"could not read {where}: {first_line(e)} (fix or re-export the file)")


def iter_table(source: str | Path | BinaryIO, chunk_size: int | None = None, encoding_errors: str = "strict",
               suffix: str | None = None, desc: str | None = None,
               file_format: FileFormat = DETECT) -> Iterator[pd.DataFrame]:
    """Read a parquet/csv/tsv/txt/jsonl/xlsx file (or a binary stream, e.g. stdin) in chunks of `chunk_size` rows.

    As `file_format` says: text is decoded as its `encoding` (any Python codec) when given, else as its
    byte-order mark says (UTF-8, UTF-16, UTF-32), else as UTF-8. Delimited text (csv, tsv, txt) splits on its
    `delimiter` when given, else on the one of , ; tab | that its header line holds. Its `sheet` picks an .xlsx
    sheet (default: the first).

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
            if path is None and suffix in DELIMITED:
                _check_stream(head, where)
            codec = _codec(head, file_format.encoding)
            # NUL: never in UTF-8 text; between UTF-16's characters
            if file_format.encoding is None and _is_utf8(codec) and b"\x00" in head:
                raise TextclfError(f"{where} looks like UTF-16 without a byte-order mark (NUL bytes between "
                                   "characters): pass data.encoding=utf-16-le (--encoding utf-16-le for "
                                   "evaluate/predict)")
        if suffix in DELIMITED:
            sep, sniffed = _delimiter(head, codec, file_format.delimiter, suffix)
        f = handle if bar.disable else CallbackIOWrapper(bar.update, handle, "read")
        found = FileFormat(codec, sep, file_format.sheet)
        for df in _frames(f, suffix, chunk_size, encoding_errors, found, where):
            if suffix in DELIMITED:
                df = _check_shape(df, where)
                df = _check_utf8(df, where, encoding_errors, path) if _is_utf8(codec) else df
            yield df
    except (ValueError, OSError, csv.Error) as e:  # decoding, parsing, reading: each as one line naming the fix
        raise _read_error(e, where, path, head, codec, sep, sniffed) from None
    except TypeError as e:  # pandas on a JSON line that is a list or a number, not an object of columns
        if suffix not in (".jsonl", ".json"):
            raise
        raise TextclfError(f"{where} holds a JSON record that is not an object of columns ({first_line(e)}): write "
                           'one object a row, e.g. {"text": "...", "label": "..."}') from None
    finally:
        bar.close()
        if path is not None:
            handle.close()


# The first bytes of the formats a stream is not read as: a stream is CSV (a file's format is its suffix's)
_NOT_CSV = ((b"PAR1", "a Parquet file"), (b"PK\x03\x04", "an Excel workbook (or another zip)"),
            (b'{"', "JSON lines"), (b"[{", "JSON"), (b'["', "JSON"))  # not `[id],text`: a CSV header


def _check_stream(head: bytes, where: str) -> None:
    """One line for a stream whose first bytes are another format's: read as CSV, Parquet failed as text in
    UTF-16 and JSON lines as a malformed CSV."""
    for magic, name in _NOT_CSV:
        if head.lstrip(b" \t\r\n\xef\xbb\xbf").startswith(magic):
            raise TextclfError(f"{where} is read as CSV, and this looks like {name}: pass the file's path instead "
                               "(its suffix says its format)")


def read_table(path: str | Path, encoding_errors: str = "strict", *, encoding: str | None = None,
               delimiter: str | None = None, sheet: str | None = None) -> pd.DataFrame:
    """Read a whole data file into a DataFrame (see `iter_table` for the formats and the error messages);
    `encoding`, `delimiter`, `sheet`: its `FileFormat`, given loose as pandas' readers take them."""
    return _whole(path, encoding_errors, FileFormat(encoding, delimiter, sheet))


def _whole(path: str | Path, encoding_errors: str, file_format: FileFormat) -> pd.DataFrame:
    frames = list(iter_table(path, None, encoding_errors, file_format=file_format))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


# How an error names the setting that picks the text and label columns: inside `column_options`, a command's
# flags (evaluate's and predict's --text-column / --label-column); else the caller's (`column_option`'s default:
# train.py's config keys, the Python API's keywords)
_COLUMN_OPTIONS: ContextVar[tuple[str, str] | None] = ContextVar("column_options", default=None)
CONFIG_KEYS = ("data.text_column", "data.label_column")
KEYWORDS = ("text_column=", "label_column=")


@contextlib.contextmanager
def column_options(text: str, label: str) -> Iterator[None]:
    """Inside: errors about the text and label columns name `text` and `label` as the fix."""
    token = _COLUMN_OPTIONS.set((text, label))
    try:
        yield
    finally:
        _COLUMN_OPTIONS.reset(token)


def column_option(label: bool = False, default: tuple[str, str] = CONFIG_KEYS) -> str:
    """The setting that picks the text column (or, `label`, the label column), as the running command calls it,
    else as `default` does."""
    return (_COLUMN_OPTIONS.get() or default)[label]


def missing_column(name: str, columns: list, option: str, where: str) -> TextclfError:
    cols = [str(c) for c in columns]
    return TextclfError(f'{where} has no column "{name}"{did_you_mean(name, cols)}; '
                        f"columns: {', '.join(cols)} (set {option})")


def _column(df: pd.DataFrame, name: str, option: str, where: str) -> pd.Series:
    if name not in df.columns:
        raise missing_column(name, list(df.columns), option, where)
    return df[name]


def text_of(df: pd.DataFrame, text_column: str | Sequence[str], where: str, option: str | None = None) -> pd.Series:
    """The text column, or several (`title,body`, or a list of names) joined with a space; missing cells are empty
    strings. `option`: what an error names as the fix (None: `column_option()`)."""
    option = option or column_option()
    names = text_column.split(",") if isinstance(text_column, str) else list(text_column)
    parts = [_column(df, c.strip() if isinstance(c, str) else c, option, where).fillna("").astype(str) for c in names]
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
        labels = _column(df, label_column, column_option(label=True), where)
        has_label = labels.notna().to_numpy() & (labels.astype(str).str.strip().str.len().to_numpy() > 0)
    for n, why in ((~has_label).sum(), "no label"), ((~has_text & has_label).sum(), "empty text"):
        if n:
            log.warning("%s: dropped %d row(s) with %s", where, n, why)
    keep = has_text & has_label
    if not keep.any():
        raise TextclfError(f"{where} has no rows with both text and a label "
                           f"(check {column_option()} / {column_option(label=True)})")
    return Split(text[keep].tolist(), labels[keep].tolist(), where)


def read_split(path: str | Path, text_column: str, label_column: str | None, encoding_errors: str = "strict",
               file_format: FileFormat = DETECT) -> Split:
    df = _whole(path, encoding_errors, file_format)
    return frame_to_split(df, text_column, label_column, str(path))


def check_text_file(path: str | Path, text_column: str, encoding_errors: str = "strict",
                    file_format: FileFormat = DETECT) -> None:
    """Fail now, with one line, if `path` is missing, unreadable, or lacks the text column(s): reads its first rows."""
    chunks = iter_table(path, 100, encoding_errors, file_format=file_format)
    try:
        first = next(chunks, None)
        if first is not None:
            text_of(first, text_column, str(path))
    finally:
        chunks.close()


def split_file(folder: Path, split: str) -> Path | None:
    for name in SPLIT_ALIASES.get(split, (split,)):
        for suffix in SUFFIXES:
            if (folder / f"{name}{suffix}").is_file():
                return folder / f"{name}{suffix}"
    return None
