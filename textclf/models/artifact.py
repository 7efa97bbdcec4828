"""The saved model: one folder of safetensors weights, config.json, vocab.json, a README.md card; no pickle."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .._version import __version__
from ..device import inference_bf16
from ..errors import TextclfError, first_line
from ..files import displaced, plain_mode, swap_in
from ..hub.card import CARD
from ..hub.card import render as render_card
from ..hub.download import HF_PREFIX
from ..text.tokenizer import Tokenizer, from_settings
from ..text.vocab import LabelVocab, Vocab
from .ensemble import VIEWS, Calibration, Outputs, outputs, probabilities
from .linear import FILES as LINEAR_FILES
from .linear import LinearModel
from .lstm import build_model

FORMAT = "textclf-model"
FORMAT_VERSION = 1
WEIGHTS, CONFIG, VOCAB = "model.safetensors", "config.json", "vocab.json"


@dataclass
class Artifact:
    """Everything prediction needs, rebuilt from a model folder."""

    model: nn.Module
    vocab: Vocab
    labels: LabelVocab
    tokenizer: Tokenizer
    max_length: int | None
    truncate: str
    meta: dict
    linear: LinearModel | None = None  # the linear view, when the model averages the LSTM with it
    folder: Path | None = None  # where it was loaded from (an hf: model: the download), for whoever names it
    shortcut: bool = True  # False: the LSTM on every text, even where the calibration's shortcut would skip it
    views: str = "both"  # what answers: the model as trained, or its "lstm" or "linear" view alone
    start: Artifact | None = None  # a fine-tuned model's start (START/), where its calibration gives it a share
    start_rows: list[int] | None = None  # which of the start's classes each of this model's labels is

    def calibration_at(self, threshold: float | None = None) -> Calibration:
        """How the views' probabilities become the model's for a request at `threshold` (None: the default
        decision), as `views` and `shortcut` say (see `Calibration.for_use`)."""
        cal = Calibration.from_dict(self.meta.get("calibration"))
        if self.linear is None:
            cal.weight = 1.0
        return cal.for_use(self.views, self.shortcut, threshold, len(self.labels))

    @property
    def calibration(self) -> Calibration:
        """The calibration at the default decision (1s: the LSTM's probabilities as they are)."""
        return self.calibration_at()

    @property
    def weight(self) -> float:
        """The LSTM's share of the average with the linear view (1: the LSTM alone, 0: the linear view alone)."""
        return self.calibration.weight

    def probabilities(self, token_lists: Sequence[Sequence[str]], run_lstm: Callable[[np.ndarray], np.ndarray],
                      threshold: float | None = None, lstm_for: LstmFor | None = None) -> np.ndarray:
        """The model's [N, C] probabilities of texts given as token lists (untruncated); `run_lstm(rows)` runs the
        LSTM on those rows, for the texts that need it (see `ensemble.probabilities`). `lstm_for(artifact)`: that
        function for another model, the one a fine-tuned model averages in (`start`)."""
        def start() -> np.ndarray:
            return self.start.probabilities(token_lists, self._start_lstm(lstm_for), threshold,
                                            lstm_for)[:, self.start_rows]

        return probabilities(self.calibration_at(threshold), self.linear, token_lists, run_lstm, len(self.labels),
                             start)

    def outputs(self, token_lists: Sequence[Sequence[str]], run_lstm: Callable[[np.ndarray], np.ndarray],
                lstm_for: LstmFor | None = None) -> Outputs:
        """The model's probabilities at the default decision and the full model's (no shortcut), the LSTM run on
        every text (see `ensemble.outputs`): what evaluation scores and ranks."""
        def start() -> Outputs:
            return self.start.outputs(token_lists, self._start_lstm(lstm_for), lstm_for).columns(self.start_rows)

        return outputs(self.calibration_at(), self.linear, token_lists, run_lstm, len(self.labels), start)

    def _start_lstm(self, lstm_for: LstmFor | None) -> Callable[[np.ndarray], np.ndarray]:
        if self.start is None or lstm_for is None:
            raise ValueError(f"{self.folder} averages in the model it was fine-tuned from: pass lstm_for")
        return lstm_for(self.start)


LstmFor = Callable[[Artifact], Callable[[np.ndarray], np.ndarray]]  # a model → its LSTM's `run_lstm` for the texts


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a model folder, a run folder that holds `model/`, or `hf:USER/NAME[@REVISION]` (downloaded)."""
    if str(path).startswith(HF_PREFIX):
        from ..hub.download import download_model  # lazy: huggingface_hub only for Hub models

        return download_model(str(path))
    path = Path(path)
    if (path / "model" / CONFIG).is_file() and not (path / CONFIG).is_file():
        return path / "model"
    for folder in (path / "model", path):  # killed between swap_in's two fallback renames: only .NAME.old is whole
        if not folder.exists() and (displaced(folder) / CONFIG).is_file():
            return displaced(folder)
    return path


START = "start"  # the folder, inside a fine-tuned model's, of the model it started from (where it has a share)


def save_model(model_dir: str | Path, art: Artifact, start: Path | None = None) -> Path:
    """Write `art` (its model, vocab, labels, tokenizer, truncation and linear view; its `meta`: what the run adds
    to the format's own keys, e.g. data and calibration) as a model folder: written next to its destination, then
    swapped in, so a crash never leaves half a model. `start`: the model folder a fine-tuned model averages in,
    copied whole into START/."""
    model, labels, tokenizer = art.model, art.labels, art.tokenizer
    model_dir = Path(model_dir)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    if not model_dir.exists() and displaced(model_dir).is_dir():  # a kill inside swap_in's fallback: put it back
        os.replace(displaced(model_dir), model_dir)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "textclf_version": __version__, "torch_version": torch.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "type": model.kind, "model": model.arch, "labels": labels.names, "tokenizer": tokenizer.settings(),
        "max_length": art.max_length, "truncate": art.truncate, **art.meta,
    }
    tmp = Path(tempfile.mkdtemp(dir=model_dir.parent, prefix=f".{model_dir.name}.tmp-"))
    try:
        os.chmod(tmp, plain_mode(model_dir, folder=True))
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, tmp / WEIGHTS, metadata={"format": FORMAT})
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        art.vocab.save(tmp / VOCAB)
        (tmp / CARD).write_text(render_card(meta), encoding="utf-8")  # the run rewrites it with its figures
        if art.linear is not None:
            art.linear.save(tmp)
        for f in tmp.iterdir():
            os.chmod(f, plain_mode(model_dir / f.name))  # safetensors, like mkstemp, writes 0600
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if start is not None:
            shutil.copytree(start, tmp / START, ignore=shutil.ignore_patterns(".*"))
        swap_in(tmp, model_dir)
        for stale in model_dir.parent.glob(f".{model_dir.name}.tmp-*"):  # left by saves that a kill cut short
            shutil.rmtree(stale, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after an exchange, the old model
    return model_dir


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise TextclfError(f"{path} is missing: {path.parent} is not a textclf model folder "
                           "(pass the model/ folder, or the run folder, written by train.py)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TextclfError(f"{path} is corrupt ({e}); re-copy or re-train the model") from None
    if not isinstance(data, dict):
        raise TextclfError(f"{path} is corrupt (expected a JSON object); re-copy or re-train the model")
    return data


def load_model(path: str | Path, device: str | torch.device = "cpu", bf16: bool | str = False,
               shortcut: bool = True, views: str = "both") -> Artifact:
    """Rebuild the model on `device` from a model (or run) folder. Executes no pickled code.

    `bf16`: cast the weights to bfloat16 for inference: True, False, or "auto" (where bf16 is faster on `device`;
    see `inference.inference_bf16`). `shortcut`: False runs the LSTM on every text, even those the calibration's
    shortcut leaves to the linear view (see `Calibration.shortcut`). `views`: "both" (the model as trained), or
    "lstm" / "linear" for one of its views alone, at its own temperature.
    """
    if views not in VIEWS:
        raise TextclfError(f'views must be one of {", ".join(VIEWS)}, got "{views}"')
    model_dir = resolve_model_dir(path)
    if not model_dir.is_dir():
        raise TextclfError(f"model folder not found: {model_dir} (pass the run or model/ folder train.py wrote)")
    meta = _read_json(model_dir / CONFIG)
    if meta.get("format") != FORMAT:
        raise TextclfError(f"{model_dir / CONFIG} is not a textclf model config (no \"format\": \"{FORMAT}\")")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise TextclfError(f"{model_dir} has model format {version!r}; this textclf reads up to "
                           f"{FORMAT_VERSION}: upgrade textclf (pip install -U textclf)")
    try:
        vocab = Vocab.from_json(json.dumps(_read_json(model_dir / VOCAB)))
        model = build_model(meta.get("type", "lstm"), meta["model"])  # no "type": saved when lstm was the only one
        labels = LabelVocab(meta["labels"], (meta.get("init_from") or {}).get("started_as"))  # what 0/1 mean
        tokenizer = from_settings(meta["tokenizer"], meta.get("train_config"))  # as it split in training
        calibration = Calibration.from_dict(meta.get("calibration"))  # read here: a malformed one is said as such
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise TextclfError(f"{model_dir / CONFIG} is incomplete or inconsistent ({e}); re-train the model") from None
    if not (model_dir / WEIGHTS).is_file():
        raise TextclfError(f"{model_dir / WEIGHTS} is missing; re-copy the model folder")
    try:
        state = load_file(model_dir / WEIGHTS)  # on the CPU, where the model is built; one move to `device` below
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError) as e:
        raise TextclfError(f"{model_dir / WEIGHTS} is corrupt or does not match config.json ({first_line(e)})") \
            from None
    if len(vocab) != model.arch["vocab_size"] or len(labels) != model.arch["num_classes"]:
        raise TextclfError(f"{model_dir}: vocab.json / labels do not match the weights; re-copy the model folder")
    model.to(device).eval()
    if inference_bf16(torch.device(device), bf16):
        model.to(torch.bfloat16)
    try:
        linear = LinearModel.load(model_dir)
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise TextclfError(f"{model_dir}: the linear view (linear.json / linear.safetensors) is corrupt ({e}); "
                           "re-copy the model folder") from None
    _check_views(model_dir, calibration, views, linear is not None)
    start, rows = None, None
    if views == "both" and calibration.uses_start():
        start, rows = _load_start(model_dir, meta, device, bf16, shortcut, len(labels))
    return Artifact(model, vocab, labels, tokenizer, meta.get("max_length"), meta.get("truncate", "head"), meta,
                    linear, model_dir, shortcut, views, start, rows)


def _check_views(model_dir: Path, cal: Calibration, views: str, has_linear: bool) -> None:
    """That the model folder holds the views its calibration averages, and the view `views` asks for."""
    if not has_linear and cal.weight < 1:  # a partial copy: answering with the LSTM alone would be another model
        raise TextclfError(f"{model_dir / LINEAR_FILES[0]} is missing: this model averages its LSTM with a linear "
                           f"view (LSTM share {cal.weight:g}); re-copy the whole model folder")
    if views != "both" and cal.start_weight >= 1:
        raise TextclfError(f"{model_dir} answers with the model it was fine-tuned from alone ({START}/, share 1), so "
                           f"its own {views} view has no say: pass {model_dir / START} with views={views} to see that "
                           "model's, or views=both")
    if views == "linear" and not has_linear:
        raise TextclfError(f"{model_dir} has no linear view (trained with model.linear=false, or its LSTM took all "
                           "the weight): use views=both or lstm")


def _load_start(model_dir: Path, meta: dict, device: str | torch.device, bf16: bool | str, shortcut: bool,
                num_classes: int) -> tuple[Artifact, list[int]]:
    """The model a fine-tuned one averages in (START/), and which of its classes each of this model's labels is."""
    if not (model_dir / START / CONFIG).is_file():
        raise TextclfError(f"{model_dir / START} is missing: this model averages in the model it was fine-tuned "
                           "from; re-copy the whole model folder")
    start = load_model(model_dir / START, device, bf16, shortcut)
    rows = (meta.get("start_view") or {}).get("rows")
    if not isinstance(rows, list) or sorted(rows) != list(range(len(start.labels))) or len(rows) != num_classes:
        raise TextclfError(f"{model_dir / CONFIG}: start_view.rows does not match {model_dir / START}'s labels; "
                           "re-copy the model folder")
    return start, rows
