"""Fine-tuning (`init_from`): start from a saved model's vocab and weights, match labels, freeze for a while."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import TextclfError
from ..models.artifact import Artifact, load_model
from ..models.lstm import build_model
from ..text.tokens import Tokenized
from ..text.vocab import PAD, UNK, UNK_ID, LabelVocab, Vocab

log = logging.getLogger(__name__)


def load_pretrained(path: str) -> Artifact:
    """The model to start from, on the CPU; anything that is not a textclf model is one clear error."""
    try:
        return load_model(path, "cpu")
    except TextclfError as e:
        raise TextclfError(f"init_from={path} is not a usable textclf model: {e}") from None


def match_labels(pretrained: LabelVocab, new: LabelVocab) -> LabelVocab | None:
    """`new`'s names in the pretrained class order when both are the same set, else None.

    Spellings are forgiven as `LabelVocab` forgives them (case, `pos`/`positive`, `0`/`1` for
    neg/pos), so data labelled "positive"/"negative" keeps an IMDB model's head, named as in the data.
    """
    if len(new) != len(pretrained):
        return None
    ids = [pretrained.get(name) for name in new.names]
    if None in ids or len(set(ids)) != len(ids):
        return None
    names = [""] * len(pretrained)
    for name, i in zip(new.names, ids, strict=True):
        names[i] = name
    return LabelVocab(names)


def extend_vocab(vocab: Vocab, counts: Counter, max_new: int, min_freq: int) -> Vocab:
    """Append up to `max_new` tokens the vocab lacks (most frequent first): old ids do not move."""
    if max_new <= 0:
        return vocab
    fresh = sorted(((t, c) for t, c in counts.items() if c >= min_freq and t not in vocab.stoi and t not in (PAD, UNK)),
                   key=lambda tc: (-tc[1], tc[0]))
    return Vocab(vocab.itos + [t for t, _ in fresh[:max_new]])


def oov_rate(tokens: Tokenized, vocab: Vocab) -> float:
    """Share of the tokens (not types) that the vocab maps to <unk>."""
    if not len(tokens.ids):
        return 0.0
    return float((vocab.lookup(tokens.table)[tokens.ids] == UNK_ID).mean())


def init_model(pretrained: Artifact, vocab: Vocab, num_classes: int, keep_head: bool) -> nn.Module:
    """The pretrained architecture and weights, sized for `vocab` and `num_classes`.

    Rows of the pretrained vocab keep their vectors exactly; added rows start as copies of its <unk> row, so
    the model reads every text exactly as the pretrained one did until training moves them (the new words
    were <unk> to it). A new head keeps its fresh (seeded) initialisation.
    """
    old = pretrained.model.state_dict()
    model = build_model(pretrained.model.kind, {**pretrained.model.arch, "vocab_size": len(vocab),
                                                "num_classes": num_classes})
    state = model.state_dict()
    for name, value in old.items():
        if name.startswith("head.") and not keep_head:
            continue
        if name == "embedding.weight":
            n_old = len(value)
            with torch.no_grad():
                state[name][n_old:] = value[UNK_ID]
                state[name][:n_old] = value
            continue
        state[name] = value
    model.load_state_dict(state)
    return model


def linear_probe(model: nn.Module, dataset, c: float = 1.0, batch_size: int = 64) -> None:
    """Start a new head from logistic regression on the frozen encoder's features of the train rows (the LP of
    LP-FT, Kumar et al. 2022): fine-tuning then begins from a head that fits, not one that distorts the
    encoder while it learns. `dataset`: the train TextDataset."""
    from sklearn.linear_model import LogisticRegression

    from ..text.batching import make_loader

    model.eval()
    feats = []
    with torch.no_grad():
        for batch in make_loader(dataset, batch_size, shuffle=False):
            feats.append((batch.index, model.features(batch.tokens, batch.lengths).float()))
    x = torch.zeros(len(dataset), model.head.in_features)
    for index, f in feats:
        x[index] = f
    y = np.asarray(dataset.labels)
    clf = LogisticRegression(C=c, max_iter=2000).fit(x.numpy(), y)
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(clf.coef_).float())
        model.head.bias.copy_(torch.from_numpy(clf.intercept_).float())
    log.info("new head started from a linear probe of the pretrained features (train accuracy %.3f)",
             clf.score(x.numpy(), y))


def freezer(model: nn.Module, pretrained_rows: int, embedding_epochs: int,
            encoder_epochs: int) -> Callable[[int], None]:
    """`on_epoch_start(epoch)` that keeps pretrained embedding rows / the LSTM fixed for the first epochs.

    With added vocab rows, only the pretrained rows are held (their gradient is zeroed) so the new
    rows can learn meanwhile; otherwise the whole table stops needing gradients, which is cheaper.
    """
    partial = pretrained_rows < model.embedding.num_embeddings
    hook = None

    def on_epoch_start(epoch: int) -> None:
        nonlocal hook
        emb = model.embedding.weight
        hold_emb, hold_enc = epoch <= embedding_epochs, epoch <= encoder_epochs
        if partial and hold_emb and hook is None:
            keep = torch.ones(emb.size(0), 1, device=emb.device)
            keep[:pretrained_rows] = 0
            hook = emb.register_hook(lambda grad: grad * keep)
        elif partial and not hold_emb and hook is not None:
            hook.remove()
            hook = None
        if not partial:
            emb.requires_grad_(not hold_emb)
        model.lstm.requires_grad_(not hold_enc)
        if epoch in (1, embedding_epochs + 1, encoder_epochs + 1):
            held = [n for n, h in (("pretrained embeddings", hold_emb), ("LSTM", hold_enc)) if h]
            log.info("epoch %d: %s", epoch, f"holding {' and '.join(held)} fixed" if held else "training every layer")

    return on_epoch_start


ALIGN_AUC = 0.6  # how well the pretrained scores must separate two labels to say which is which
ALIGN_ROWS = 2000  # train rows scored to decide it (a sample, on large data)


def align_labels(pretrained: Artifact, tokens: Tokenized, train_labels: Sequence[object],
                 new: LabelVocab) -> tuple[LabelVocab | None, float]:
    """Two labels named unlike the model's two: the pretrained model's scores on the train rows say which is
    which. Returns `new`'s names in the pretrained class order (None when the scores do not separate them:
    ROC-AUC within `ALIGN_AUC` of chance either way round), and the ROC-AUC of the pretrained positive class
    for `new`'s second label."""
    from sklearn.metrics import roc_auc_score

    from ..inference.runtime import predict_loader
    from ..text.batching import TextDataset, make_loader

    y = new.encode(train_labels)
    rows = np.arange(len(y))
    if len(rows) > ALIGN_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(rows, ALIGN_ROWS, replace=False))
    if len(np.unique(y[rows])) < 2:  # one label in the sample: nothing to tell apart, no need to score
        return None, 0.5
    seqs = tokens.numericalize(pretrained.vocab, pretrained.max_length, pretrained.truncate)
    loader = make_loader(TextDataset([seqs[i] for i in rows]), 64, shuffle=False)
    scores = predict_loader(pretrained.model, loader, torch.device("cpu"))[0][:, 1]
    auc = float(roc_auc_score(y[rows], scores))
    if abs(auc - 0.5) < ALIGN_AUC - 0.5:
        return None, auc
    return LabelVocab(new.names if auc > 0.5 else new.names[::-1]), auc


def adapt(pretrained: Artifact, tokens: dict[str, Tokenized], labels: LabelVocab,
          new_tokens: int, min_freq: int, train_labels: Sequence[object] = (),
          head: str = "auto") -> tuple[Vocab, LabelVocab, dict]:
    """Vocab and labels for a fine-tuning run, and a summary of what was kept (logged and saved).

    `head`: "auto" keeps the pretrained head when the labels match by name, or (two labels) when the
    pretrained model's scores on the train rows tell which is which (`align_labels`); "new" never keeps it.
    """
    vocab = extend_vocab(pretrained.vocab, tokens["train"].counts(), new_tokens, min_freq)
    matched = match_labels(pretrained.labels, labels) if head == "auto" else None
    how, auc = "names", None
    if matched is None and head == "auto" and len(labels) == len(pretrained.labels) == 2:
        matched, auc = align_labels(pretrained, tokens["train"], train_labels, labels)
        how = "scores"
        if matched is not None:
            pairs = ", ".join(f"{n} = {p}" for n, p in zip(matched.names, pretrained.labels.names, strict=True))
            log.info("labels aligned by the pretrained model's scores on the train rows (ROC-AUC %.3f): %s; "
                     "set data.label_map to say otherwise, or init_head=new for a new head", max(auc, 1 - auc), pairs)
        else:
            log.info("labels %s: the pretrained scores do not tell which is which (ROC-AUC %.3f): a new head",
                     labels.names, auc)
    info = {
        "path": str(pretrained.folder),
        "head": "kept" if matched else "new",
        "labels_matched_by": how if matched else None,
        **({"alignment_auc": round(auc, 4)} if auc is not None else {}),
        "pretrained_labels": pretrained.labels.names,
        "pretrained_vocab_size": len(pretrained.vocab),
        "new_tokens": len(vocab) - len(pretrained.vocab),
        "oov_rate": {name: round(oov_rate(tok, pretrained.vocab), 4) for name, tok in tokens.items()},
    }
    if info["new_tokens"]:
        info["oov_rate_extended"] = {name: round(oov_rate(tok, vocab), 4) for name, tok in tokens.items()}
    log.info("init_from %s: %s head (labels %s → %s), vocab %d + %d new tokens, train OOV %.1f%%%s",
             info["path"], info["head"], pretrained.labels.names, (matched or labels).names, len(pretrained.vocab),
             info["new_tokens"], 100 * info["oov_rate"]["train"],
             f" → {100 * info['oov_rate_extended']['train']:.1f}%" if info["new_tokens"] else "")
    if info["oov_rate"]["train"] > 0.1 and not new_tokens:
        log.warning("%.0f%% of the train tokens are unknown to the pretrained vocab; vocab.new_tokens=N adds the "
                    "frequent ones", 100 * info["oov_rate"]["train"])
    return vocab, matched or labels, info
