"""What a data path names (`source_kind`: asked once) and the two loaders that answer from it: labelled splits
(`load_splits`) and the unlabelled texts pretraining reads (`load_unlabelled`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import TextclfError
from ..hub.download import HF_PREFIX, IMDB_HUB_NAME
from .hf import datasets_form, hub_name, read_datasets
from .imdb import TARBALLS, acl_root, local_imdb_dir, name_imdb_labels, read_aclimdb, read_imdb_hub
from .split import SPLITS, UNLABELLED, Split
from .tables import DETECT, FileFormat, read_split, split_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceOptions:
    """How `load_splits` reads a source, beyond where it is and which columns: bytes that are not UTF-8
    (`encoding_errors`), a data file's format, and for folders and Hub datasets the split names, the splits that
    must be there, and streaming (see `read_datasets`; split names also pick a folder's files)."""

    encoding_errors: str = "strict"
    file_format: FileFormat = DETECT
    split_names: Mapping[str, str | None] | None = None
    required: tuple[str, ...] = ("train",)
    streaming: bool = False


def source_kind(path: str) -> str:
    """What `path` names: "imdb" (IMDB, local or the Hub), "datasets" (a Hub dataset, or a folder `datasets`
    reads), "aclimdb" (the Stanford layout, folder or tarball), "file" (one data file) or "folder" (of
    train.* / test.* ... files); a path that is none of them is one line naming what it may be."""
    if path == "imdb":
        return "imdb"
    if datasets_form(path):
        return "datasets"
    p = Path(path)
    if p.is_file():
        return "aclimdb" if p.name.endswith(TARBALLS) else "file"
    if not p.is_dir():
        raise TextclfError(f"data path not found: {p} (give a folder with train/test files, a data file, imdb, "
                           "or hf:NAME for a Hub dataset)")
    return "aclimdb" if acl_root(p) else "folder"


def is_data_file(path: str) -> bool:
    """Whether `path` names one data file (csv, parquet ...), not a folder, a tarball or a Hub dataset."""
    return not path.startswith(HF_PREFIX) and Path(path).is_file() and not path.endswith(TARBALLS)


def load_splits(path: str | None = None, files: dict[str, str | None] | None = None,
                text_column: str = "text", label_column: str = "label",
                splits: tuple[str, ...] = SPLITS, **options) -> dict[str, Split]:
    """Load the named splits that exist. `files` (split → file) wins over `path`.

    `path` may be "imdb", "hf:NAME" / "hf:NAME:CONFIG" (any Hub dataset), a `save_to_disk` folder or one laid
    out like a Hub dataset repo, a folder of `train.*`/`validation.*`/`test.*` files, an aclImdb folder or
    tarball, or one file (the split to score, for evaluation; training reads a lone file as its train split).
    `options`: the fields of `SourceOptions` (encoding_errors, file_format, split_names, required, streaming).
    """
    how = SourceOptions(**options)

    def read(file: str | Path) -> Split:
        return read_split(file, text_column, label_column, how.encoding_errors, how.file_format)

    files = {k: v for k, v in (files or {}).items() if v and k in splits}
    if files:
        return {s: read(f) for s, f in files.items()}
    if not path:
        raise TextclfError("no data given: set data.path=FOLDER_OR_FILE or data.train=FILE")
    kind = source_kind(path)
    if kind == "imdb":
        local = local_imdb_dir()
        if local is None:
            return read_imdb_hub(splits)
        log.info("using the local IMDB copy in %s", local)
        return name_imdb_labels(load_splits(str(local), None, "text", "label", splits))
    if kind == "datasets":
        out = read_datasets(path, splits, how.split_names, text_column, label_column, how.required,
                            how.streaming)
        return name_imdb_labels(out) if hub_name(path)[0] in (IMDB_HUB_NAME, "imdb") else out
    if kind == "aclimdb":
        return read_aclimdb(Path(path), splits)
    if kind == "file":  # one file: the split to score (evaluate); training reads it as train (prepare.load_data)
        return {s: read(path) for s in splits}
    p = Path(path)
    names = {s: (how.split_names or {}).get(s, s) for s in splits}
    found = {s: f for s, name in names.items() if name is not None and (f := split_file(p, name))}
    for s, name in names.items():
        if name is not None and name != s and s not in found:
            raise TextclfError(f'{p} has no file for split "{name}" (e.g. {name}.csv; set data.{s}_split)')
    if not found:
        raise TextclfError(f"{p} has no {' or '.join(splits)} split (name its files e.g. train.csv, test.parquet)")
    out = {s: read(f) for s, f in found.items()}
    # a folder named imdb is IMDB (the name the local copy goes by): its classes read as they do from the Hub
    return name_imdb_labels(out) if p.resolve().name.lower() == "imdb" else out


def load_unlabelled(path: str | None, text_column: str = "text", encoding_errors: str = "strict",
                    file_format: FileFormat = DETECT) -> Split | None:
    """The data's unlabelled texts for pretraining (IMDB's 50k `unsup` reviews), or None when it has none.

    Found as `unsup.*` / `unlabelled.*` beside train in a dataset folder (read with `file_format`, as the
    folder's other files: data.encoding, data.delimiter, data.sheet), `train/unsup/` in aclImdb, or an
    "unsupervised" / "unsup" split of the Hub's IMDB, another Hub dataset or a `datasets` folder.
    """
    if not path or not (path == "imdb" or datasets_form(path) or Path(path).exists()):
        return None
    kind = source_kind(path)
    if kind == "imdb":
        local = local_imdb_dir()
        if local is None:
            return read_imdb_hub(("unsup",)).get("unsup")
        return load_unlabelled(str(local), text_column, encoding_errors, file_format)
    if kind == "datasets":
        return read_datasets(path, ("unsup",), None, text_column, None, required=()).get("unsup")
    if kind == "aclimdb":
        return read_aclimdb(Path(path), ("unsup",)).get("unsup")
    if kind == "folder":
        found = next((f for name in UNLABELLED if (f := split_file(Path(path), name))), None)
        return read_split(found, text_column, None, encoding_errors, file_format) if found else None
    return None
