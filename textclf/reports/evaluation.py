"""Scoring probabilities against labels (`split_metrics`; a trained model's report, `score_splits`) and a saved
model on labelled data (`evaluate`, the `textclf evaluate` command). It imports no training module."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import DETECT, FileFormat, apply_label_map, load_splits
from ..data.split import split_dataset
from ..errors import TextclfError
from ..files import check_writable, write_json
from ..hub.download import HF_PREFIX
from ..inference import PREDICT_BATCH_SIZE, LoadOptions
from ..inference.classifier import Classifier, lstm_runner
from ..models.decision import decide
from ..models.ensemble import Outputs, expected_calibration_error, log_loss
from ..options import gather
from ..text.batching import predict_seqs
from ..text.tokens import tokenize_cached
from .metrics import compute, format_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalOptions:
    """How `evaluate` reads the data, loads the model and reports, beyond which model, which data and which split:
    the columns (None: the model's), where the metrics (JSON) and the plots (PNGs) go, texts per forward pass, the
    token cache, bytes that are not UTF-8, a data file's format, and the model's loading options (as prediction's,
    so the figures are those of the predictions a user gets)."""

    text_column: str | None = None
    label_column: str | None = None
    output: str | None = None
    plots: str | None = None
    batch_size: int = PREDICT_BATCH_SIZE
    cache_dir: str | None = None
    encoding_errors: str = "strict"
    file_format: FileFormat = DETECT
    loading: LoadOptions = LoadOptions()


def split_metrics(labels: np.ndarray, probs: np.ndarray, label_names: list[str], desc: str,
                  plots_dir: Path | None = None, ranking: np.ndarray | None = None) -> dict:
    """Metrics of one split's probabilities (log-loss and calibration error included), and its plots. `ranking`:
    the full model's probabilities (`Outputs.exact`) where a shortcut gave `probs`: ROC-AUC and the ROC and PR
    curves rank by them, since any threshold but the default decides by them; the rest scores `probs`."""
    metrics = {**compute(labels, probs, label_names, ranking=ranking), "loss": log_loss(probs, labels),
               "ece": round(expected_calibration_error(probs, labels), 4)}
    if plots_dir is not None:
        from .plots import plot_evaluation

        plot_evaluation(labels, probs, label_names, plots_dir, prefix=f"{desc}_", ranking=ranking)
    return metrics


def score_splits(parts: dict[str, Outputs], labels: dict[str, np.ndarray], label_names: list[str],
                 plots_dir: Path | None) -> dict:
    """A trained model's report: each split's metrics of its final probabilities (`Outputs.final`; see
    pipeline.calibrate; ROC-AUC and curves of the full model's, `Outputs.exact`), with the accuracy of the LSTM
    and of the linear view alone, and the calibration error before temperature scaling; with a shortcut, the
    share of texts the linear view answered alone and the accuracy, log-loss and calibration error of the full
    average on every text (`Outputs.exact`); fine-tuned, the accuracy and log-loss of the model it started from
    (in full, as it answers) and of the fine-tuned model alone, the two the model averages."""
    scores = {}
    for name, p in parts.items():
        y = labels[name]
        m = split_metrics(y, p.final, label_names, name, plots_dir, ranking=p.exact)
        m["lstm_accuracy"] = float((decide(p.lstm) == y).mean())
        if p.linear is not None:
            m["linear_accuracy"] = float((decide(p.linear) == y).mean())
        m["ece_before_calibration"] = round(expected_calibration_error(p.raw, y), 4)
        if p.sure.any():
            m["shortcut_share"] = round(float(p.sure.mean()), 4)
            m["exact_accuracy"] = float((decide(p.exact) == y).mean())
            m["exact_loss"] = log_loss(p.exact, y)  # what the shortcut costs in calibration, if anything
            m["exact_ece"] = round(expected_calibration_error(p.exact, y), 4)
        if p.start is not None:  # fine-tuned: the model it started from, in full, and the fine-tuned one alone
            for key, probs in (("start", p.start), ("fine_tuned", p.own)):
                m[f"{key}_accuracy"] = float((decide(probs) == y).mean())
                m[f"{key}_loss"] = log_loss(probs, y)
        log.info("%s", format_report(m, title=f"{name}:"))
        scores[name] = m
    return scores


def warn_if_seen(art, split: str) -> None:
    """One line when a validation split is scored by a model whose linear view learnt from its training run's
    validation rows (`linear_view.refit`): on those rows its figures overstate it."""
    if split != "validation" or art.linear is None or not art.calibration.uses_linear():
        return
    rows = (art.meta.get("linear_view") or {}).get("rows")
    if rows is None or "validation" in rows:
        log.warning("this model's linear view was fitted on its training run's validation rows%s: if these are "
                    "those, its figures here are optimistic (metrics.json's validation figures are out of fold; "
                    "score a test split, or --views lstm)", "" if rows else " (perhaps: it was saved before "
                    "textclf recorded it)")


def evaluate(model_dir: str, data: str, split: str = "test", **options) -> dict:
    """Evaluate a saved model on a split of a dataset folder, a file, "imdb" or "hf:NAME".

    `options`: the fields of `EvalOptions` (text_column, label_column, output, plots: a folder for PNGs,
    batch_size, cache_dir, encoding_errors, file_format, loading), those of its file format (`encoding`,
    `delimiter`, `sheet`: how to read a file, see `data.iter_table`; None: detect) and of its loading options
    (`device`, `bf16`, `shortcut`, `views`) also loose. Labels go through the `data.label_map` the model was
    trained with, so star ratings evaluate as-is. The model loads as for prediction (`Classifier.load`), so the
    figures are those of the predictions a user gets: accuracy, precision, recall, F1, loss and ECE at the default
    decision, shortcut included; ROC-AUC and the ROC and PR curves from the full model's probabilities (the LSTM
    runs on every text for them), which decide at any other threshold, so an operating point read off a curve is
    what `--threshold` then gives.
    """
    file_format, loading = gather(FileFormat, options, "file_format"), gather(LoadOptions, options, "loading")
    how = EvalOptions(**options, file_format=file_format, loading=loading)
    if how.output:  # said before the model loads, not after it scored every row
        check_writable(how.output, "--output", example="metrics.json")
    if how.plots:
        check_writable(how.plots, "--plots", folder=True)
    clf = Classifier.load_with(model_dir, how.loading)  # an hf: model is downloaded here, once
    art, dev = clf.artifact, clf.device
    warn_if_seen(art, split)
    columns = art.meta.get("data", {})
    text_column = how.text_column or columns.get("text_column", "text")
    label_column = how.label_column or columns.get("label_column", "label")
    splits = load_splits(data, None, text_column, label_column, splits=(split,), encoding_errors=how.encoding_errors,
                         required=(split,), file_format=how.file_format)
    if split not in splits:
        raise TextclfError(f"{data} has no {split} split (pass --split, or a file)")
    part = apply_label_map(splits[split], columns.get("label_map"), known=lambda v: art.labels.get(v) is not None)
    tok = tokenize_cached(part.texts, art.tokenizer, how.cache_dir, desc=f"tokenising {split}")
    ds = split_dataset(tok, part, art.vocab, art.labels, art.max_length, art.truncate)

    def lstm(rows: np.ndarray) -> np.ndarray:
        return predict_seqs(art.model, [ds.seqs[i] for i in rows], dev, how.batch_size, desc=split)[0]

    token_lists = list(tok.token_lists())
    out = art.outputs(token_lists, lstm,
                      lambda a: lstm_runner(a, token_lists, dev, how.batch_size, desc=f"{split}, start"))
    metrics = split_metrics(ds.labels, out.final, art.labels.names, split, Path(how.plots) if how.plots else None,
                            ranking=out.exact)
    metrics = {"model": str(art.folder) if not str(model_dir).startswith(HF_PREFIX) else model_dir, "data": str(data),
               "split": split, **metrics}
    if how.output:
        write_json(how.output, metrics)
    return metrics
