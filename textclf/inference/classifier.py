"""`Classifier`: a saved model as a Python object that labels raw text."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np
import pandas as pd
import torch

from ..data import DETECT, FileFormat, iter_table, text_of
from ..data.tables import KEYWORDS, column_option
from ..device import resolve_device
from ..errors import TextclfError
from ..files import atomic_text
from ..models.artifact import Artifact, load_model
from ..models.decision import DEFAULT_THRESHOLD, decide
from ..options import gather
from ..text.batching import predict_seqs
from ..text.tokens import truncate_ids
from . import PREDICT_BATCH_SIZE as BATCH_SIZE
from . import PREDICT_CHUNK_ROWS, LoadOptions, check_texts, check_threshold
from .output import output_format, write_parquet, write_text

log = logging.getLogger(__name__)

PREDICTED = "predicted_label"  # the column predict_file adds, then one "prob_<class>" column per class


@dataclass
class Prediction:
    label: str
    probability: float  # of `label`
    probabilities: dict[str, float]


@dataclass(frozen=True)
class FileOptions:
    """How `Classifier.predict_file` reads and runs a file, beyond what it labels and where it writes: rows read at
    a time (what bounds memory), texts per forward pass, bytes that are not UTF-8 (an error naming the row, or
    "replace"), and the file's format (None: detect)."""

    chunk_size: int = PREDICT_CHUNK_ROWS
    batch_size: int = BATCH_SIZE
    encoding_errors: str = "strict"
    file_format: FileFormat = DETECT


@dataclass
class FileSummary:
    rows: int  # rows written (all input rows, in input order)
    empty: int  # of those, rows with empty text: no label and no probabilities


def prob_column(label: str) -> str:
    return f"prob_{label}"


@contextlib.contextmanager
def one_thread_kernels() -> Iterator[None]:
    """PyTorch's intra-op thread count is process-wide: 1 inside, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def lstm_runner(art: Artifact, token_lists: Sequence[Sequence[str]], device: torch.device,
                batch_size: int = BATCH_SIZE, desc: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """`run_lstm(rows)` for `art` (see `Artifact.probabilities`): its LSTM's probabilities of those of the texts
    given as (untruncated) `token_lists`, in one loader on `device`, as training's validation runs it."""
    def run(rows: np.ndarray) -> np.ndarray:
        seqs = [truncate_ids(art.vocab.lookup(token_lists[i]), art.max_length, art.truncate) for i in rows]
        return predict_seqs(art.model, seqs, device, batch_size, desc=desc)[0]

    return run


class Classifier:
    """Load once, predict many times::

        clf = Classifier.load("runs/imdb")  # or a model/ folder, or "hf:USER/NAME" on the Hugging Face Hub
        clf.predict(["A quiet, beautiful film."])  # [Prediction(label='positive', probability=0.97, ...)]
    """

    def __init__(self, artifact: Artifact, device: torch.device):
        self.artifact = artifact
        self.device = device

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", bf16: bool | str = "auto", shortcut: bool = True,
             views: str = "both") -> Classifier:
        """`path`: a run or model folder, or `hf:USER/NAME[@REVISION]` (downloaded with huggingface_hub's
        snapshot_download, kept in its cache).

        `bf16`: "auto" (the default) runs the LSTM in bfloat16 where that is faster: a CPU where bf16 is
        measured faster than float32 (timed once per process, ~0.1 s) or a GPU of compute capability 8.0+;
        nearly the same accuracy, its probabilities a little off float32's (figures: benchmarks/README.md).
        `False`: exact float32 everywhere; `True`: bfloat16 everywhere (slower than float32 where the CPU has no
        fast bf16).

        `shortcut`: True (the default) lets the linear view answer alone where it is sure, as the model was
        calibrated to (`Calibration.shortcut`; models that average the LSTM with a linear view, trained on enough
        validation texts): the LSTM runs on the rest only, a bounded share of validation decisions changed
        (`ensemble.SHORTCUT_CHANGES`). It is checked at the default decision, so a binary model asked for another
        threshold runs the LSTM on every text. `False`: the LSTM on every text, the full average everywhere.

        `views`: "both" (the model as trained), or "lstm" / "linear": one of its views alone, at its own
        temperature. On text unlike its training data, one view may hold up better than the average (a model
        trained on film reviews labelling tweets: benchmarks/README.md)."""
        return cls.load_with(path, LoadOptions(device, bf16, shortcut, views))

    @classmethod
    def load_with(cls, path: str | Path, options: LoadOptions) -> Classifier:
        """`load`, the options as one value (what the commands, the server and Ray hand on)."""
        dev = resolve_device(options.device)
        return cls(load_model(path, dev, options.bf16, options.shortcut, options.views), dev)

    @property
    def text_column(self) -> str:
        """The column(s) the model was trained on, comma-separated ("text" where the model does not say)."""
        return self.artifact.meta.get("data", {}).get("text_column", "text")

    @property
    def labels(self) -> list[str]:
        return self.artifact.labels.names

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids per text, truncated as in training: straight dictionary lookups, faster here than the
        interning that the training cache uses."""
        return self._ids(self.artifact.tokenizer.pipe(texts))

    def _ids(self, token_lists: Iterable[Sequence[str]]) -> list[np.ndarray]:
        a = self.artifact
        return [truncate_ids(a.vocab.lookup(tokens), a.max_length, a.truncate) for tokens in token_lists]

    def predict_encoded(self, seqs: Sequence[np.ndarray], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """[N, C] probabilities for token-id arrays. On a multi-core CPU, the texts are split by length over
        one Python thread per core (or per text, when fewer), each running one-thread kernels: an LSTM's small
        per-step matrix products barely speed up with intra-op threads, while batches side by side scale. Under
        OMP_WAIT_POLICY=PASSIVE (`textclf serve` and train.py set it) intra-op threads sleep between the steps,
        and a forward of a few reviews with two of them ran many times slower than with one (figures:
        benchmarks/README.md)."""
        workers = min(torch.get_num_threads(), len(seqs)) if self.device.type == "cpu" else 1
        if workers < 2:
            with one_thread_kernels() if self.device.type == "cpu" else contextlib.nullcontext():
                return self._predict(seqs, batch_size)
        order = np.argsort([-len(s) for s in seqs], kind="stable")
        shares = [order[r::workers] for r in range(workers)]  # near-equal work: every worker gets long and short
        out = np.empty((len(seqs), len(self.labels)), dtype=np.float32)
        with one_thread_kernels(), ThreadPoolExecutor(workers) as pool:
            for idx, probs in zip(shares, pool.map(lambda i: self._predict([seqs[j] for j in i], batch_size), shares),
                                  strict=True):
                out[idx] = probs
        return out

    def _predict(self, seqs: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
        return predict_seqs(self.artifact.model, seqs, self.device, batch_size)[0]

    def predict_proba(self, texts: Sequence[str], batch_size: int = BATCH_SIZE,
                      threshold: float | None = None) -> np.ndarray:
        """[N, C] probabilities in input order (batched internally by length; a long list is read
        `PREDICT_CHUNK_ROWS` texts at a time, so its tokens are never all in memory), those a decision at `threshold`
        is made from. None (the default) or 0.5: the model's at its default decision, where the linear view's
        shortcut answers the texts it is sure of (`Classifier.load`), which are meant for the argmax or 0.5 only;
        another threshold (binary models): the full model's on every text, as `predict(texts, threshold)` and
        `textclf predict --threshold` decide. To threshold them yourself, pass that threshold here, or load with
        `shortcut=False` for the full model's at every threshold (ROC and PR curves: `evaluate`)."""
        texts = check_texts(texts)
        check_threshold(threshold, len(self.labels))
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size <= 0:
            raise TextclfError(f"batch_size must be a whole number > 0, got {batch_size!r}")
        return self.probabilities(texts, batch_size, threshold)

    def probabilities(self, texts: Sequence[str], batch_size: int = BATCH_SIZE,
                      threshold: float | None = None) -> np.ndarray:
        """`predict_proba` without its checks of the texts: an empty one gets the probabilities of no words, as an
        exported graph gives them (`export.check_model_parity` compares the two)."""
        if not len(texts):
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        if len(texts) > PREDICT_CHUNK_ROWS:  # as `predict_file` reads a file
            rest, chunks = iter(texts), []
            while chunk := list(islice(rest, PREDICT_CHUNK_ROWS)):
                chunks.append(self.probabilities(chunk, batch_size, threshold))
            return np.concatenate(chunks)
        tokens = list(self.artifact.tokenizer.pipe(texts))  # untruncated: the linear view reads them all
        return self.artifact.probabilities(tokens, self._lstm(tokens, batch_size), threshold,
                                           lambda art: Classifier(art, self.device)._lstm(tokens, batch_size))

    def _lstm(self, tokens: list[list[str]], batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
        """`run_lstm(rows)` of the texts given as `tokens`: this model's LSTM on those rows."""
        return lambda rows: self.predict_encoded(self._ids([tokens[i] for i in rows]), batch_size)

    def decide(self, probs: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
        """Class ids: binary models compare P(second class) to `threshold`; others take the argmax."""
        return decide(probs, threshold)

    def predict(self, texts: Sequence[str], threshold: float = DEFAULT_THRESHOLD,
                batch_size: int = BATCH_SIZE) -> list[Prediction]:
        probs = self.predict_proba(texts, batch_size, threshold)
        out = []
        for row, k in zip(probs, self.decide(probs, threshold), strict=True):
            out.append(Prediction(self.labels[k], float(row[k]), dict(zip(self.labels, map(float, row), strict=True))))
        return out

    def predict_frame(self, df: pd.DataFrame, text_column: str | Sequence[str], threshold: float = DEFAULT_THRESHOLD,
                      batch_size: int = BATCH_SIZE, where: str = "the input") -> pd.DataFrame:
        """`df` with the predicted label and one probability column per class (left empty for empty texts)."""
        text = text_of(df, text_column, where, option=column_option(default=KEYWORDS))
        added = [PREDICTED] + [prob_column(n) for n in self.labels]
        clash = [c for c in added if c in df.columns]
        if clash:
            raise TextclfError(f'{where} already has a column "{clash[0]}" (an earlier prediction?); '
                               "rename or drop it")
        has_text = text.str.strip().str.len().to_numpy() > 0
        probs = np.full((len(df), len(self.labels)), np.nan)
        labels = np.full(len(df), None, dtype=object)
        if has_text.any():
            p = self.predict_proba(text[has_text].tolist(), batch_size, threshold)
            probs[has_text] = p.astype(np.float64).round(6)
            labels[has_text] = np.asarray(self.labels, dtype=object)[self.decide(p, threshold)]
        out = df.copy()
        out[PREDICTED] = labels
        for j, name in enumerate(self.labels):
            out[prob_column(name)] = probs[:, j]
        return out

    def predict_file(self, source: str | Path | BinaryIO, output: str | Path | TextIO,
                     text_column: str | Sequence[str] | None = None,
                     fmt: str | None = None, threshold: float = DEFAULT_THRESHOLD, **options) -> FileSummary:
        """Label every row of a csv/tsv/txt/jsonl/parquet/xlsx file (or a CSV stream), `chunk_size` rows at a time.

        The output keeps the input columns and adds `predicted_label` and `prob_<class>` columns: a path as its
        suffix says (.csv, .tsv, .jsonl/.json, .parquet; another suffix needs `fmt`), a stream as CSV or JSON
        lines (`fmt`; see `output.output_format`). A path is written atomically: after a failure no half file is
        left. `text_column` defaults to the column(s) the model was trained on. `options`: the fields of
        `FileOptions` (chunk_size, batch_size, encoding_errors, file_format), the format's also loose (`encoding`,
        `delimiter`, `sheet`: how to read the input, see `data.iter_table`; None: detect).
        """
        check_threshold(threshold, len(self.labels))  # before a line is read or written
        file_format = gather(FileFormat, options, "file_format")
        how = FileOptions(**options, file_format=file_format)
        fmt = output_format(output, fmt)
        if how.chunk_size <= 0 or how.batch_size <= 0:
            raise TextclfError("chunk and batch sizes must be > 0")
        summary = FileSummary(0, 0)
        where = str(source) if isinstance(source, str | Path) else getattr(source, "name", "the input stream")
        chunks = iter_table(source, how.chunk_size, how.encoding_errors, desc="predicting", file_format=file_format)
        frames = self._labelled(chunks, text_column or self.text_column, threshold, how.batch_size, where, summary)
        if not isinstance(output, str | Path):
            write_text(frames, output, fmt)
        elif fmt == "parquet":
            write_parquet(frames, Path(output))
        else:
            with atomic_text(output) as out:
                write_text(frames, out, fmt)
        return summary

    def _labelled(self, chunks: Iterable[pd.DataFrame], text_column: str | Sequence[str], threshold: float,
                  batch_size: int, where: str, summary: FileSummary) -> Iterator[pd.DataFrame]:
        """`chunks` of `where`, labelled, counted into `summary`; one line at the end if no row had text."""
        for df in chunks:
            labelled = self.predict_frame(df, text_column, threshold, batch_size, where)
            summary.rows += len(df)
            summary.empty += int(labelled[PREDICTED].isna().sum())
            yield labelled
        if summary.rows == summary.empty:
            raise TextclfError(f"{where} has no rows with text in column {text_column!r} "
                               f"(check {column_option(default=KEYWORDS)})")
        if summary.empty:
            log.warning("%s: %d row(s) with empty text got no prediction (left empty in the output)", where,
                        summary.empty)
