"""What a run records about itself, each a dataclass whose fields are its keys, in order: config.json's `meta`
beside the model (`ModelMeta`), metrics.json's account of the run (`RunSummary`), and what a dry run checked
(`DryRun`, which the CLI prints)."""

from __future__ import annotations

from dataclasses import dataclass, fields


def _present(record) -> dict:
    """The record's fields as a dict, in order, without those that are None (not known, or not this run's)."""
    return {f.name: getattr(record, f.name) for f in fields(record) if getattr(record, f.name) is not None}


@dataclass
class ModelMeta:
    """What config.json records beside the model (`save_model`'s extra). While training (the best epoch so far)
    the first three; at the end the calibration and the views it uses join them."""

    data: dict  # the data's columns and label map
    train_config: dict  # the run's config
    init_from: dict | None = None  # fine-tuning: what it kept (`finetune.Plan.summary`), built here only
    calibration: dict | None = None
    linear_view: dict | None = None  # which rows the saved linear view learnt from, when the model uses it
    start_view: dict | None = None  # the model it started from, when the model averages it in

    def to_dict(self) -> dict:
        return _present(self)


@dataclass
class RunSummary:
    """metrics.json's account of the run itself (its first keys): the epochs, times, device and precision, what
    pretraining took, what it started from, and the duplicates across splits."""

    best_epoch: int
    epochs_run: int
    train_seconds: float
    tokenize_seconds: float
    device: str
    precision: str
    adversarial: float = 0.0  # the adversarial pass as trained: train.adversarial, or 0 on small data
    processes: int | None = None  # under torchrun
    pretrain_seconds: float | None = None  # word2vec / LM time: part of the recipe's cost, not of fit
    language_model: dict | None = None  # the language model's loss, perplexity, time and tokens
    init_from: dict | None = None  # config.json's, with what the model is of its start and its fine-tuned views
    duplicates: dict[str, int] | None = None

    def to_dict(self) -> dict:
        return _present(self)


@dataclass
class DryRun:
    """What `pipeline.dry_run` checked: the data, the model, one training step and one validation batch."""

    rows: dict[str, int]  # of each split
    vocab: int
    labels: list[str]
    model: str  # model.type
    device: str
    parameters: int
    train_texts: int  # in the training step's batch
    train_loss: float
    validation_texts: int
    validation_loss: float
    validation_accuracy: float
    skipped: list[str]  # the steps of `train` a dry run leaves out
    config: str  # the config.yaml written; "" where run_dir holds a run, whose own is kept
