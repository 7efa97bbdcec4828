"""The run's linear view: the kind chosen on validation (`choose`), fitted again on train and validation with
validation's out-of-fold probabilities (`refit`), here or in a second process beside word2vec (`start`).

The linear view needs the tokens and labels only, never the LSTM, so it can be fitted as soon as the data is
ready. word2vec reads on one thread (workers=1 keeps its vectors a function of the seed) and leaves the other
core idle; a large run fits its linear view there meanwhile (`Beside`): IMDB's ~100 s of n-gram counting and
logistic regressions then cost no time of their own. Either way the run takes the view when it reports, with
its log lines in the same place, and the numbers are the same (tests/training/test_linear_view.py).
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..models.ensemble import fit_linear_view
from ..models.linear import LinearModel, kinds_for
from ..text.tokens import Tokenized, group_ids

log = logging.getLogger(__name__)

LINEAR_FOLDS = 5  # validation's folds, for the linear view's out-of-fold probabilities (`refit`)
BESIDE_READS = 1_000_000  # word2vec reading this many tokens (passes x corpus; ~2 s) pays for a second process


@dataclass
class ViewData:
    """What the linear view is fitted from: train's and validation's tokens and labels, the number of classes,
    and the kinds to choose from (`linear.kinds_for`). Small to send to another process: the tokens are interned."""

    train: Tokenized
    y_train: np.ndarray
    validation: Tokenized
    y_validation: np.ndarray
    num_classes: int
    kinds: list[str]

    @classmethod
    def of(cls, data) -> ViewData:
        """From a run's `prepare.Prepared`."""
        train = data.tokens["train"]
        return cls(train, data.datasets["train"].labels, data.tokens["validation"], data.datasets["validation"].labels,
                   len(data.labels), kinds_for(data.tokenizer.kind, len(data.labels), len(train.ids)))


def choose(d: ViewData) -> LinearModel:
    """The linear view (`ensemble.fit_linear_view`): of the kinds that suit the tokenizer and the labels, the one
    with the lowest validation loss, fitted on train."""
    return fit_linear_view(list(d.train.token_lists()), d.y_train, list(d.validation.token_lists()),
                           d.y_validation, d.num_classes, d.kinds)


def refit(linear: LinearModel, d: ViewData, seed: int) -> tuple[LinearModel, np.ndarray]:
    """The linear view of the kind and strength chosen on validation, fitted again on train and validation, and
    validation's out-of-fold probabilities (`LinearModel.cross_fit`): each validation row scored by a view fitted
    the same way on train and the other folds of validation (LINEAR_FOLDS, stratified, seeded), so what is
    calibrated on them is a view like the one saved, on rows it did not see. Validation's rows are data: on small
    sets they are 30% of the rows (`prepare.carve_fraction`), and the linear view, which carries the model there,
    learns from them all; the LSTM keeps the epoch validation chose."""
    train, validation = list(d.train.token_lists()), list(d.validation.token_lists())
    folds = np.concatenate([np.full(len(train), -1),
                            stratified_folds(d.y_validation, LINEAR_FOLDS, seed, group_ids(map(tuple, validation)))])
    view, out = LinearModel.cross_fit([*train, *validation], np.concatenate([d.y_train, d.y_validation]), folds,
                                      d.num_classes, linear.kind, linear.c)
    return view, out[len(train):]


def fit(d: ViewData, seed: int) -> tuple[LinearModel, np.ndarray]:
    """`choose`, then `refit`: the view to save and validation's out-of-fold probabilities."""
    return refit(choose(d), d, seed)


def stratified_folds(labels: np.ndarray, k: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """[N] each row's fold, 0..k-1 (k at most N): each class's rows shuffled (seeded) and dealt round the folds,
    each class going on where the one before stopped, so every fold holds its share of each class, give or take one.

    `groups` ([N] ids, `tokens.group_ids`): rows of one group (copies of one text) share a fold, dealt as one by the
    label of its first row, so no row is scored by a view or calibration fitted on its own copy. Without repeats
    the folds are those of the rows."""
    if groups is not None:
        first, inverse = np.unique(groups, return_index=True, return_inverse=True)[1:]
        if len(first) < len(groups):
            return stratified_folds(labels[first], k, seed)[inverse]
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)])
    folds = np.empty(len(labels), dtype=np.int64)
    folds[order] = np.arange(len(labels)) % max(1, min(k, len(labels)))
    return folds


class Here:
    """The linear view fitted in this process, when the run asks for it (`result`)."""

    def __init__(self, d: ViewData, seed: int):
        self.d, self.seed = d, seed

    def result(self) -> tuple[LinearModel, np.ndarray]:
        return fit(self.d, self.seed)

    def close(self) -> None:
        pass


class Beside:
    """The linear view fitted in a second process, started now; `result` waits for it and says its log lines here,
    where a run fitted in this process says them. The process is a fresh interpreter running this module
    (`python -m textclf.training.linear_view FOLDER`): it inherits none of this one's threads, and, unlike
    multiprocessing's spawn, never runs the caller's script again (a script without an `if __name__ ==
    "__main__"` guard would train a second time there). The job and the answer go through files in a private
    temporary folder, so the process ends and gives its memory back as soon as it is done; `close` ends it early
    (an error or a stop before the report) and removes the folder."""

    def __init__(self, d: ViewData, seed: int):
        self.folder = Path(tempfile.mkdtemp(prefix="textclf-linear-"))
        with open(self.folder / JOB, "wb") as f:
            pickle.dump((d, seed), f, protocol=pickle.HIGHEST_PROTOCOL)
        package_root = str(Path(__file__).resolve().parents[2])  # textclf importable from a checkout too
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        try:
            self.process = subprocess.Popen([sys.executable, "-m", __name__, str(self.folder)],
                                            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": path})
        except OSError:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def result(self) -> tuple[LinearModel, np.ndarray]:
        try:
            code = self.process.wait()
            try:
                with open(self.folder / ANSWER, "rb") as f:
                    ok, payload, records = pickle.load(f)  # written by `_answer`, our own child, just now
            except (OSError, EOFError, pickle.UnpicklingError) as e:
                raise RuntimeError(f"the linear view's process ended with code {code} and no answer ({e})") from None
        finally:
            self.close()
        for name, level, message in records:
            logging.getLogger(name).log(level, "%s", message)
        if not ok:
            raise RuntimeError(f"fitting the linear view failed in its process:\n{payload}")
        return payload

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


JOB, ANSWER = "job.pkl", "answer.pkl"  # Beside's files: (ViewData, seed) in; (ok, answer, log lines) out


def start(d: ViewData, seed: int, word2vec_reads: int) -> Here | Beside:
    """The linear view's fitting: `Beside` a word2vec that reads BESIDE_READS tokens or more (word2vec on one
    thread leaves a core idle for that long; on a GPU machine it leaves several), else `Here`, when the run asks
    for it."""
    if word2vec_reads < BESIDE_READS:
        return Here(d, seed)
    log.info("linear view: fitted in a second process while word2vec reads")
    return Beside(d, seed)


class _Records(logging.Handler):
    """The log lines of the linear view's process, kept to be said by the run (`Beside.result`)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def _answer(folder: Path) -> None:
    """The second process's whole work: the job read from `folder`, `fit`, then (ok, the view and its
    probabilities or the error's traceback, the log lines) written there."""
    import traceback

    records = _Records()
    root = logging.getLogger("textclf")
    root.setLevel(logging.INFO)
    root.addHandler(records)
    try:
        with open(folder / JOB, "rb") as f:
            d, seed = pickle.load(f)  # written by `Beside`, our parent, just now
        answer = (True, fit(d, seed), records.records)
    except Exception:  # noqa: BLE001 - any failure goes back to the run, which raises it
        answer = (False, traceback.format_exc(), records.records)
    with open(folder / ANSWER, "wb") as f:
        pickle.dump(answer, f, protocol=pickle.HIGHEST_PROTOCOL)


if __name__ == "__main__":
    _answer(Path(sys.argv[1]))
