"""Hugging Face datasets: `hf:NAME[:CONFIG]` on the Hub, `save_to_disk` folders, and folders laid out like a Hub
dataset repository; split names and slices (`train[:5000]`), ClassLabel names, streaming."""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import yaml

from ..errors import TextclfError, did_you_mean, first_line
from ..hub.download import HF_PREFIX
from .split import SPLIT_ALIASES, Split
from .tables import column_option, frame_to_split, missing_column

log = logging.getLogger(__name__)

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



def hub_name(path: str) -> tuple[str, str | None]:
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
            raise TextclfError(f"could not read the datasets folder {path} ({type(e).__name__}: {first_line(e)}); "
                               "re-save it with save_to_disk") from None
        return {"train": found} if isinstance(found, datasets.Dataset) else found
    name, config = hub_name(path)
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
        raise TextclfError(f"could not load {path} ({type(e).__name__}: {first_line(e)}); check the name at "
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
                raise missing_column(col, columns, column_option(label=col == label_column), where)

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
