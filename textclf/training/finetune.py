"""Fine-tuning (`init_from`), in one place: `plan` decides once, from the saved model and the run's data, what
the run starts from (head kept or new, which pretrained class each label is, the vocabulary, what is frozen
when); the pipeline
reads the `Plan`: `start_model` builds the network from it and `Plan.freezer` holds layers while training.

    load_pretrained → plan (labels by name or by the model's own scores, vocabulary, OOV rates)
                    → start_model (weights transferred, a kept head turned to the run's label order; a new head
                      from a linear probe) → freezer

The run's labels keep the order a run from scratch gives them (`LabelVocab.from_values`), whatever order the
pretrained head had: a threshold is on P(the second label as the data's labels sort) and binary precision,
recall and F1 are for that label, fine-tuned or not. A kept head's rows are turned to match (`turn_head`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import TextclfError
from ..inference import PREDICT_BATCH_SIZE
from ..models.artifact import Artifact, load_model
from ..models.lstm import build_model
from ..text.batching import TextDataset, predict_seqs
from ..text.tokens import Tokenized
from ..text.vocab import PAD, UNK, UNK_ID, LabelVocab, Vocab, canonical_label

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


def spelled_alike(pretrained: LabelVocab, new: LabelVocab) -> bool:
    """Whether two label sets are the same words (case and `pos`/`positive` forgiven), not merely matched by the
    0/1 ↔ negative/positive alias: a 0/1 file may mean 1 = a complaint."""
    return {canonical_label(n) for n in new.names} == {canonical_label(n) for n in pretrained.names}


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


def turn_head(state: dict[str, torch.Tensor], rows: Sequence[int]) -> None:
    """A kept head put in the run's label order, in `state`: class j starts as the pretrained class `rows[j]`.
    A binary head has one logit, the log-odds of class 1, so swapping the two classes negates its weight and
    bias; a wider head has its rows permuted. Either way every text keeps the probabilities it had, by name."""
    rows = list(rows)
    if rows == sorted(rows):
        return
    weight, bias = state["head.weight"], state["head.bias"]
    if len(weight) == 1:
        state["head.weight"], state["head.bias"] = -weight, -bias
    else:
        state["head.weight"], state["head.bias"] = weight[rows].clone(), bias[rows].clone()


def transfer_weights(pretrained: Artifact, vocab: Vocab, num_classes: int, keep_head: bool,
                     head_rows: Sequence[int] | None = None) -> nn.Module:
    """The pretrained architecture and weights, sized for `vocab` and `num_classes`.

    Rows of the pretrained vocab keep their vectors exactly; added rows start as copies of its <unk> row, so
    the model reads every text exactly as the pretrained one did until training moves them (the new words
    were <unk> to it). A kept head is turned to the run's label order (`head_rows`: see `turn_head`); a new
    head keeps its fresh (seeded) initialisation.
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
    if keep_head and head_rows is not None:
        turn_head(state, head_rows)
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


ALIGN_AUC = 0.6  # how well the pretrained scores must separate two labels to say which is which ...
ALIGN_Z = 3.0  # ... and how sure it must be that they do: chance passes |z| >= 3 on 0.3% of label sets
ALIGN_ROWS = 2000  # train rows scored to decide it (a sample, on large data)


@dataclass
class Alignment:
    """How the pretrained model's positive-class scores rank the train rows of a new label set's second label."""

    auc: float  # ROC-AUC (0.5: no information; near 0: the other way round)
    z: float  # (auc - 0.5) over its standard error with no signal (Mann-Whitney), for the rows scored
    rows: int

    def separates(self) -> bool:
        return abs(self.auc - 0.5) >= ALIGN_AUC - 0.5 and abs(self.z) >= ALIGN_Z


def auc_z(auc: float, positives: int, negatives: int) -> float:
    """The z-score of a ROC-AUC against chance: its standard error under no signal is
    sqrt((n1 + n0 + 1) / (12 n1 n0)) (the Mann-Whitney U statistic's)."""
    return (auc - 0.5) / float(np.sqrt((positives + negatives + 1) / (12.0 * positives * negatives)))


def align_labels(pretrained: Artifact, tokens: Tokenized, train_labels: Sequence[object],
                 new: LabelVocab) -> tuple[LabelVocab | None, Alignment]:
    """Two labels the names do not settle: the pretrained model's scores on the train rows say which is which.
    Returns `new`'s names in the pretrained class order, or None when the scores do not separate them both
    clearly (ROC-AUC at least `ALIGN_AUC` from chance either way round) and significantly for the number of
    rows (|z| >= `ALIGN_Z`): on a few dozen rows an AUC 0.1 from chance comes by chance alone, and an
    arbitrary head would be kept."""
    from sklearn.metrics import roc_auc_score


    y = new.encode(train_labels)
    rows = np.arange(len(y))
    if len(rows) > ALIGN_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(rows, ALIGN_ROWS, replace=False))
    positives = int(y[rows].sum())
    if positives in (0, len(rows)):  # one label in the sample: nothing to tell apart, no need to score
        return None, Alignment(0.5, 0.0, len(rows))
    seqs = tokens.numericalize(pretrained.vocab, pretrained.max_length, pretrained.truncate)
    scores = predict_seqs(pretrained.model, [seqs[i] for i in rows], torch.device("cpu"), PREDICT_BATCH_SIZE)[0][:, 1]
    auc = float(roc_auc_score(y[rows], scores))
    alignment = Alignment(auc, auc_z(auc, positives, len(rows) - positives), len(rows))
    if not alignment.separates():
        return None, alignment
    return LabelVocab(new.names if auc > 0.5 else new.names[::-1]), alignment


@dataclass
class Plan:
    """What a fine-tuning run starts from, decided once (`plan`) and read by the pipeline."""

    pretrained: Artifact
    vocab: Vocab  # the pretrained vocabulary, maybe extended (vocab.new_tokens)
    labels: LabelVocab  # the run's labels, in the order a run from scratch gives them
    keep_head: bool
    matched_by: str | None  # "names" (spelled alike) | "scores" (the model's scores on the train rows) | None
    alignment: Alignment | None  # when the scores were asked
    oov_rate: dict[str, float]  # each split's share of tokens unknown to the pretrained vocabulary
    oov_rate_extended: dict[str, float] | None  # ... and to the extended one
    freeze_embedding_epochs: int = 0
    freeze_encoder_epochs: int = 0
    head_rows: list[int] | None = None  # a kept head: the pretrained class each of `labels` starts as

    def summary(self) -> dict:
        """What config.json and metrics.json record as "init_from"."""
        info = {"path": str(self.pretrained.folder), "head": "kept" if self.keep_head else "new",
                "labels_matched_by": self.matched_by if self.keep_head else None}
        if self.alignment is not None:
            info["alignment_auc"] = round(self.alignment.auc, 4)
            info["alignment_z"] = round(self.alignment.z, 2)
        if self.keep_head and self.head_rows is not None:  # which pretrained class each label started as
            info["started_as"] = {name: self.pretrained.labels.names[r]
                                  for name, r in zip(self.labels.names, self.head_rows, strict=True)}
        info.update({"pretrained_labels": self.pretrained.labels.names,
                     "pretrained_vocab_size": len(self.pretrained.vocab),
                     "new_tokens": len(self.vocab) - len(self.pretrained.vocab), "oov_rate": self.oov_rate})
        if self.oov_rate_extended is not None:
            info["oov_rate_extended"] = self.oov_rate_extended
        return info

    def freezer(self, model: nn.Module) -> Callable[[int], None] | None:
        """`on_epoch_start` for `trainer.Loop.fit`: the layers to hold fixed while training, or None."""
        if not (self.freeze_embedding_epochs or self.freeze_encoder_epochs):
            return None
        return freezer(model, len(self.pretrained.vocab), self.freeze_embedding_epochs, self.freeze_encoder_epochs)


@dataclass
class PlanOptions:
    """What the config asks of fine-tuning: vocab.new_tokens and vocab.min_freq, init_head, and
    train.freeze_embedding_epochs / train.freeze_encoder_epochs."""

    new_tokens: int = 0  # tokens the pretrained vocabulary may gain (`extend_vocab`)
    min_freq: int = 2
    # "auto" keeps the pretrained head when the labels are spelled alike, or (two labels) when the pretrained
    # model's scores on the train rows tell which is which, clearly and significantly (`align_labels`; a 0/1
    # file matched to negative/positive only by the alias is checked so too); "new" never keeps it
    head: str = "auto"
    freeze_embedding_epochs: int = 0
    freeze_encoder_epochs: int = 0


def plan(pretrained: Artifact, tokens: dict[str, Tokenized], labels: LabelVocab, train_labels: Sequence[object],
         options: PlanOptions | None = None) -> Plan:
    """Decide what a fine-tuning run starts from, log it, and warn where the model does not fit the data."""
    o = options or PlanOptions()
    head, new_tokens = o.head, o.new_tokens
    vocab = extend_vocab(pretrained.vocab, tokens["train"].counts(), new_tokens, o.min_freq)
    matched = match_labels(pretrained.labels, labels) if head == "auto" else None
    if matched is not None and not spelled_alike(pretrained.labels, labels):
        matched = None  # 0/1 against negative/positive: the model's own scores say which is which
    how, alignment = ("names" if matched is not None else None), None
    if matched is None and head == "auto" and len(labels) == len(pretrained.labels) == 2:
        matched, alignment = align_labels(pretrained, tokens["train"], train_labels, labels)
        how = "scores"
        shown = f"ROC-AUC {alignment.auc:.3f}, z {alignment.z:+.1f} on {alignment.rows} rows"
        if matched is not None:
            pairs = ", ".join(f"{n} = {p}" for n, p in zip(matched.names, pretrained.labels.names, strict=True))
            log.info("labels aligned by the pretrained model's scores on the train rows (%s): %s; set data.label_map "
                     "to say otherwise, or init_head=new for a new head", shown, pairs)
        else:
            log.info("labels %s: the pretrained scores do not tell which is which clearly enough (%s, needs |z| >= "
                     "%g): a new head", labels.names, shown, ALIGN_Z)
    oov = {name: round(oov_rate(tok, pretrained.vocab), 4) for name, tok in tokens.items()}
    extended = {name: round(oov_rate(tok, vocab), 4) for name, tok in tokens.items()} \
        if len(vocab) > len(pretrained.vocab) else None
    rows = [matched.names.index(name) for name in labels.names] if matched is not None else None
    result = Plan(pretrained, vocab, labels, matched is not None, how if matched else None, alignment,
                  oov, extended, o.freeze_embedding_epochs, o.freeze_encoder_epochs, rows)
    log.info("init_from %s: %s head (labels %s → %s), vocab %d + %d new tokens, train OOV %.1f%%%s",
             pretrained.folder, "kept" if result.keep_head else "new", pretrained.labels.names, result.labels.names,
             len(pretrained.vocab), len(vocab) - len(pretrained.vocab), 100 * oov["train"],
             f" → {100 * extended['train']:.1f}%" if extended else "")
    if oov["train"] > 0.1 and not new_tokens:
        log.warning("%.0f%% of the train tokens are unknown to the pretrained vocab; vocab.new_tokens=N adds the "
                    "frequent ones", 100 * oov["train"])
    return result


def start_model(plan: Plan, train: TextDataset | None) -> nn.Module:
    """The network a fine-tuning run starts from: the pretrained weights sized for the plan's vocabulary and
    labels; a new head is started by a linear probe of the train rows (`train`; None: not, e.g. on a resume,
    whose checkpoint holds the weights)."""
    model = transfer_weights(plan.pretrained, plan.vocab, len(plan.labels), plan.keep_head, plan.head_rows)
    if not plan.keep_head and train is not None:
        linear_probe(model, train)
    return model
