"""Labelling more reviews than one machine holds: a saved model on Ray Data.

`Predictor` is a callable class for `Dataset.map_batches`: Ray starts one actor per `concurrency`, each loads the
model once, and every batch (pandas, or a dict of numpy arrays) comes back with `predicted_label` and one
`prob_<class>` column per class, exactly as `textclf predict --input` writes them::

    import ray
    from textclf.ray import Predictor

    ds = ray.data.read_parquet("s3://bucket/reviews/", override_num_blocks=64)  # blocks for every actor
    ds.map_batches(Predictor, fn_constructor_kwargs={"model": "hf:USER/NAME"}, concurrency=8, num_cpus=0.5,
                   batch_size=1024, batch_format="pandas").write_parquet("s3://bucket/labelled/")

An actor computes on one thread (Ray sets OMP_NUM_THREADS from its CPUs). `num_cpus=0.5` (`ACTOR_CPUS`) leaves
Ray room to schedule the reading and writing tasks beside as many actors as there are cores: with a whole
CPU each, actors as many as the cores hold them all and the reads wait for ever.

`label_files` is what `textclf predict MODEL --input DIR_OR_GLOB --output DIR --engine ray` runs: read
Parquet, CSV or JSON lines with Ray Data, label, write Parquet; on this machine (a local Ray) or on a cluster
(`address`). Ray is an optional extra (`pip install 'textclf[ray]'`), imported by this module's functions only.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import TextclfError, first_line
from .hub.download import HF_PREFIX
from .inference import PREDICT_BATCH_SIZE, LoadOptions, binary_threshold
from .options import gather, no_more

log = logging.getLogger(__name__)
BLOCKS_PER_ACTOR = 4  # read blocks an actor, about, so that every actor has work and the pipeline streams
MIN_BLOCK_BYTES = 64 * 1024

FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}  # what Ray Data reads here
ACTOR_CPUS = 0.5  # the logical CPUs an actor asks for (see the module docstring)
RAY_BATCH_ROWS = 1024  # rows Ray hands an actor at a time (each then runs forwards of `Labelling.batch_size`)


def require_ray():
    try:
        import ray
    except ImportError:
        raise TextclfError("--engine ray needs Ray: pip install 'textclf[ray]' (or drop --engine ray)") from None
    return ray


class Predictor:
    """Labels Ray Data batches with a saved model, loaded once per actor (see the module docstring).

    `model`: a run or model folder that every worker can read (a shared file system, the image) or
    `hf:USER/NAME`; `text_column`: default the model's; `threshold` (binary models only; default 0.5): as for
    `predict`; `batch_size`: texts per forward pass; `loading`: how the model loads (`LoadOptions`: as for
    `Classifier.load`), its fields also taken loose (`device`, `bf16`, `shortcut`, `views`).
    """

    def __init__(self, model: str, text_column: str | None = None, threshold: float | None = None, *,
                 batch_size: int = PREDICT_BATCH_SIZE, **loading):
        from .inference.classifier import Classifier

        options = gather(LoadOptions, loading, "loading")
        no_more(loading, "Predictor")
        self.clf = Classifier.load_with(model, options)
        self.text_column = text_column or self.clf.text_column
        self.threshold, self.batch_size = binary_threshold(threshold, len(self.clf.labels)), batch_size

    def __call__(self, batch: pd.DataFrame | dict[str, np.ndarray]) -> pd.DataFrame | dict[str, np.ndarray]:
        frame = batch if isinstance(batch, pd.DataFrame) else pd.DataFrame(batch)
        out = self.clf.predict_frame(frame.reset_index(drop=True), self.text_column, self.threshold,
                                     self.batch_size, where="a batch")
        if isinstance(batch, pd.DataFrame):
            return out
        return {name: out[name].to_numpy() for name in out.columns}


def input_files(pattern: str) -> tuple[list[str], str]:
    """The files `--input` names (a folder of them, or a glob) and their one format; one line when there are none
    or they mix formats."""
    path = Path(pattern)
    files = sorted(str(p) for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_"))) \
        if path.is_dir() else sorted(glob.glob(pattern))
    if not files:
        raise TextclfError(f"--input {pattern} names no files (give a folder of .parquet/.csv/.jsonl files, or a glob)")
    formats = {FORMATS.get(Path(f).suffix.lower()) for f in files}
    if None in formats or len(formats) > 1:
        raise TextclfError(f"--input {pattern}: --engine ray reads files of one format: .parquet, .csv or .jsonl "
                           f"(found {', '.join(sorted({Path(f).suffix or 'no suffix' for f in files}))})")
    return files, formats.pop()


def _columns(path: str, fmt: str) -> list[str]:
    """The first file's columns, read cheaply (a Parquet schema, a CSV header, a JSON line)."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if fmt == "csv":
            return list(pd.read_csv(path, nrows=0).columns)
        return list(pd.read_json(path, lines=True, nrows=1).columns)
    except Exception as e:  # unreadable in whatever way the reader says
        raise TextclfError(f"could not read {path} ({type(e).__name__}: {first_line(e)}); fix or re-export it") \
            from None


def _cause(e: BaseException) -> BaseException:
    """The error a Ray task raised, out of Ray's wrappers (RayTaskError keeps it as `cause`)."""
    seen = set()
    while id(e) not in seen:
        seen.add(id(e))
        inner = getattr(e, "cause", None) or e.__cause__
        if inner is None:
            break
        e = inner
    return e


@dataclass
class Labelling:
    """How every actor labels: `Predictor`'s arguments but the model. `text_column` None: the model's own (each
    actor reads it from the model it loads); `threshold` None: 0.5 (binary models only)."""

    text_column: str | None = None
    threshold: float | None = None
    loading: LoadOptions = LoadOptions()
    batch_size: int = PREDICT_BATCH_SIZE

    def arguments(self) -> dict:
        """`Predictor`'s keyword arguments but the model (the loading options as one value)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def label_files(model: str, pattern: str, output: str, labelling: Labelling | None = None,
                address: str | None = None, concurrency: int | None = None, num_gpus: float = 0.0) -> int:
    """Label every row of `pattern`'s files with Ray Data and write them, with every input column, as Parquet
    files in the folder `output` (created; it must not hold anything). Starts a local Ray on this machine's
    cores unless `address` names a cluster (or Ray is already started). Returns the number of rows written.
    Everything that can be checked here is, before Ray starts; the files are written beside `output`, then
    renamed into place, so nothing is left in `output` when anything fails.
    """
    ray = require_ray()
    how = labelling or Labelling()
    files, fmt = input_files(pattern)
    out = Path(output)
    staging = _staging(out)
    try:
        _check_model(model, how, address, files[0], fmt)
        if not ray.is_initialized():
            from .threads import cores

            ray.init(address=address, num_cpus=None if address else cores(), include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        workers = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
        read = {"parquet": ray.data.read_parquet, "csv": ray.data.read_csv, "json": ray.data.read_json}[fmt]
        with blocks_for_every_actor(files, workers):
            ds = read(files).map_batches(Predictor, fn_constructor_kwargs={"model": model, **how.arguments()},
                                         concurrency=workers, batch_size=RAY_BATCH_ROWS, batch_format="pandas",
                                         num_cpus=ACTOR_CPUS, num_gpus=num_gpus or None)
            ds.write_parquet(str(staging))
        rows = sum(pq_rows(p) for p in staging.glob("*.parquet"))
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
        return rows
    except TextclfError:
        raise
    except Exception as e:  # a worker's error comes wrapped by Ray: say the worker's own line
        cause = _cause(e)
        if isinstance(cause, TextclfError):
            raise TextclfError(str(cause)) from None
        raise TextclfError(f"labelling failed on Ray ({type(cause).__name__}: {first_line(cause)})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_model(model: str, how: Labelling, address: str | None, first: str, fmt: str) -> None:
    """What can be checked of the model before Ray starts: where this machine reads it (a local folder, with or
    without `address`), it loads, takes the threshold, and finds its text column(s) in the first file. An
    `hf:` model, or a folder only the cluster holds, is checked by each actor as it loads it (its own line)."""
    if model.startswith(HF_PREFIX) or (address is not None and not Path(model).exists()):
        names = how.text_column
    elif not Path(model).exists():
        raise TextclfError(f"model folder not found: {model} (the workers load it from there; pass a run folder)")
    else:
        from .inference.classifier import Classifier

        clf = Classifier.load(model, "cpu", False)  # a bad model: one line here
        binary_threshold(how.threshold, len(clf.labels))
        names = how.text_column or clf.text_column
    if names is None:
        return
    columns = _columns(first, fmt)
    for name in (c.strip() for c in names.split(",")):
        if name not in columns:
            raise TextclfError(f'{first} has no column "{name}"; columns: {", ".join(columns)} (set --text-column)')


def _staging(out: Path) -> Path:
    """A new folder beside `out` for the files as they are written, made now, before any row is labelled: the
    final rename needs them on `out`'s file system, and a folder that cannot be made here fails here."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TextclfError(f"--output {out} exists and is not an empty folder; name a new folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as e:
        raise TextclfError(f"--output {out}: cannot write in {out.parent} ({e.strerror or first_line(e)}); "
                           "name a folder you can write") from None


@contextlib.contextmanager
def blocks_for_every_actor(files: list[str], workers: int) -> Iterator[None]:
    """While it lasts, Ray Data reads `files` into blocks of about 1/`BLOCKS_PER_ACTOR` of an actor's share.
    Left to itself it reads up to 128 MiB into one block (`target_max_block_size`): 10 Parquet files of 100k
    reviews came as one block, and one actor labelled them all while the others waited."""
    from ray.data import DataContext

    context = DataContext.get_current()
    before = context.target_max_block_size
    share = sum(os.path.getsize(f) for f in files) // (BLOCKS_PER_ACTOR * workers)
    context.target_max_block_size = int(min(before or share, max(MIN_BLOCK_BYTES, share)))
    try:
        yield
    finally:
        context.target_max_block_size = before


def pq_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def read_output(output: str) -> pd.DataFrame:
    """The labelled rows `label_files` wrote (order as Ray wrote them)."""
    return pd.concat([pd.read_parquet(p) for p in sorted(Path(output).glob("*.parquet"))], ignore_index=True)
