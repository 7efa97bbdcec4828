"""Where `predict --input` writes its labelled rows: CSV, TSV, JSON lines or Parquet, chosen before any row is read."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from ..errors import TextclfError, first_line
from ..files import atomic_open, check_writable, new_folders

SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
STREAM_FORMATS = ("csv", "json")  # what goes to stdout (or any text stream); `--format` offers these
NOT_WRITTEN = (".xlsx", ".xlsm", ".xls")  # formats textclf reads but does not write


def output_format(output: str | Path | TextIO, fmt: str | None) -> str:
    """The format rows are written to `output` in: `fmt` (csv or json) where given, else a file's suffix's
    (`SUFFIXES`), else csv for a stream. One line, before any row is read, for a suffix textclf does not write
    (the next tool would read CSV text under another name), a `fmt` its suffix contradicts, or a path it cannot
    write (`files.check_writable`: the Python API's `predict_file` as the command)."""
    if fmt is not None and fmt not in STREAM_FORMATS:
        files = f"; Parquet is written where the output's name ends with .parquet (fmt={fmt!r} dropped)" \
            if fmt == "parquet" else ""
        raise TextclfError(f"output format must be one of {', '.join(STREAM_FORMATS)}, got {fmt!r}{files}")
    if not isinstance(output, str | Path):
        return fmt or "csv"
    check_writable(output, "--output", example="out.csv")  # a folder, a path through a file, a folder not writable
    by_suffix = SUFFIXES.get(Path(output).suffix.lower())
    if Path(output).suffix.lower() in NOT_WRITTEN:  # text under a workbook's name would not open as one
        raise TextclfError(f"--output {output}: textclf does not write Excel workbooks; end the name with one of "
                           f"{', '.join(SUFFIXES)} (Excel opens .csv)")
    if fmt is None and by_suffix is None:
        raise TextclfError(f"--output {output}: textclf writes {', '.join(SUFFIXES)} files; end the name with one "
                           "(or pass --format csv or json; fmt= in Python)")
    if fmt is not None and by_suffix is not None and fmt != by_suffix:
        raise TextclfError(f"--format {fmt} does not match --output {output} ({by_suffix}); drop --format or "
                           "rename the file")
    return fmt or by_suffix


def _jsonable(value: object) -> object:
    """JSON for the cell types parquet brings (numpy scalars, timestamps); anything else as its text."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value.item() if isinstance(value, np.generic) else str(value)


def write_text(frames: Iterable[pd.DataFrame], out: TextIO, fmt: str) -> None:
    """CSV (one header), TSV or JSON lines, a frame at a time."""
    for i, frame in enumerate(frames):
        if fmt in ("csv", "tsv"):
            frame.to_csv(out, sep="\t" if fmt == "tsv" else ",", header=i == 0, index=False)
        else:  # not DataFrame.to_json: it escapes every "/" in the texts
            cells = frame.astype(object).where(frame.notna(), None)
            out.writelines(json.dumps(row, ensure_ascii=False, default=_jsonable) + "\n"
                           for row in cells.to_dict("records"))


def write_parquet(frames: Iterable[pd.DataFrame], path: Path) -> None:
    """One Parquet file, written atomically. A Parquet file has one type per column, while chunks read apart
    need not agree (an integer column with a missing value in one chunk comes as float, a column empty
    throughout one as null): each chunk is spilled beside the output, then all are written under the schema
    they share (pyarrow's permissive promotion)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with new_folders(path.parent), tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.chunks-") as tmp:
        parts = []
        try:
            for frame in frames:
                parts.append(Path(tmp) / f"{len(parts):06d}.parquet")
                pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parts[-1])
            schema = pa.unify_schemas([pq.read_schema(p).remove_metadata() for p in parts],
                                      promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise TextclfError(f"--output {path}: a column does not hold one type for Parquet ({first_line(e)}); "
                               "write .csv or .jsonl instead") from None
        with atomic_open(path) as f, pq.ParquetWriter(f, schema) as writer:
            for part in parts:
                writer.write_table(pq.read_table(part).replace_schema_metadata(None).cast(schema))
