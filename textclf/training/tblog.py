"""TensorBoard scalars for a run (`train.tensorboard=true`), via torch.utils.tensorboard."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import TextclfError

# log.jsonl row key → TensorBoard tag
EPOCH_TAGS = {"train_loss": "loss/train", "val_loss": "loss/validation", "val_accuracy": "validation/accuracy",
              "val_f1": "validation/f1", "val_roc_auc": "validation/roc_auc", "lr": "train/lr",
              "tokens_per_s": "train/tokens_per_s"}


def writer_class():
    """SummaryWriter, or a one-line error naming the install: checked before a run writes anything."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise TextclfError("train.tensorboard=true needs the tensorboard package: "
                           "pip install 'textclf[tensorboard]' (or set train.tensorboard=false)") from None
    return SummaryWriter


def epoch_logger(writer) -> Callable[[dict], None]:
    """An `on_epoch` callback for `trainer.Loop.fit` that logs one epoch's row and flushes it."""

    def log_epoch(row: dict) -> None:
        for key, tag in EPOCH_TAGS.items():
            if row.get(key) is not None:
                writer.add_scalar(tag, row[key], row["epoch"])
        writer.flush()  # so a TensorBoard watching the run sees each epoch as it ends

    return log_epoch


def log_final(writer, metrics: dict, step: int) -> None:
    """The best model's validation/test figures, at the best epoch's step."""
    for split in ("validation", "test"):
        for key in ("accuracy", "f1", "roc_auc", "loss"):
            value = metrics.get(split, {}).get(key)
            if value is not None:
                writer.add_scalar(f"final/{split}_{key}", value, step)
    writer.flush()
