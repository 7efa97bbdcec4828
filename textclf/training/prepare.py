"""The run's data, ready for the model: the configured splits (validation carved from train when there is
none), tokenised (cached), the vocab and label set built from train (or inherited, fine-tuning), every split
as token ids."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import Config, DataConfig
from ..data import FileFormat, Split, apply_label_map, check_text_file, is_data_file, load_splits
from ..data.split import split_dataset
from ..errors import TextclfError
from ..files import check_writable
from ..models.artifact import Artifact
from ..text.batching import TextDataset
from ..text.tokenizer import Tokenizer, for_run, unspaced, without_spaces
from ..text.tokens import Tokenized, group_ids, tokenize_cached
from ..text.vocab import UNK_ID, LabelVocab, Vocab, label_key
from . import distributed, finetune

log = logging.getLogger(__name__)

VALIDATION_ROWS, MAX_FRACTION = 200, 0.3
MANY_COPIES = 20  # a text with more copies than 2 and than 1/20 of validation's rows stays in train
_LETTER = re.compile(r"[^\W\d_]")


@dataclass
class Prepared:
    """Numericalised splits plus the vocabularies built from train."""

    datasets: dict[str, TextDataset]
    tokens: dict[str, Tokenized]
    vocab: Vocab
    labels: LabelVocab
    tokenizer: Tokenizer
    tokenize_seconds: float
    finetune: finetune.Plan | None = None  # what fine-tuning starts from, when it starts from a model
    duplicates: dict[str, int] | None = None  # texts of one split found in another (`duplicates`)


def file_format(d: DataConfig) -> FileFormat:
    """How to read the user's files (None: detect): data.encoding, data.delimiter, data.sheet."""
    return FileFormat(d.encoding, d.delimiter, d.sheet)


def uses_files(d: DataConfig) -> bool:
    """data.train / validation / test name the data: data.path is then not read at all."""
    return bool(d.train or d.validation or d.test)


def load_data(cfg: Config) -> dict[str, Split]:
    """train / validation / test splits; validation carved from train when the data has none."""
    d = cfg.data
    if d.cache_dir:  # a file there failed at the first token cache, after the data were read; a read-only cache,
        check_writable(d.cache_dir, "data.cache_dir", folder=True, permission=False)  # shared and full, is fine
    files = {"train": d.train, "validation": d.validation, "test": d.test}
    if uses_files(d) and d.path:
        log.info("data.train/validation/test are given: data.path (%s) is not read", d.path)
    if d.unlabelled and not cfg.resume:  # checked now, before the run folder is touched; a resume does not read it
        check_text_file(d.unlabelled, d.text_column, d.encoding_errors, file_format(d))
        if not (cfg.pretrain.unlabelled and (cfg.pretrain.word2vec or cfg.pretrain.lm_epochs)) or cfg.init_from:
            log.warning("data.unlabelled is read by pretraining only (pretrain.word2vec or pretrain.lm_epochs, with "
                        "pretrain.unlabelled, from scratch): this run does not read it")
    names = {"train": d.train_split, "validation": d.validation_split, "test": d.test_split}
    path = None if uses_files(d) else d.path
    if path and is_data_file(path):  # one file is the rows to learn from, never its own test
        log.info("data.path is one file: it is the train split (validation carved from it, no test split); "
                 "pass data.test=FILE for test figures")
        path, files = None, {"train": path}
    splits = load_splits(path, files, d.text_column, d.label_column, encoding_errors=d.encoding_errors,
                         split_names=names, streaming=d.streaming, file_format=file_format(d))
    splits = {name: apply_label_map(split, d.label_map) for name, split in splits.items()}
    if "train" not in splits:
        raise TextclfError("the data has no train split (set data.train=FILE or name a file train.csv/parquet)")
    check_label_count(splits["train"], d.label_column)
    if "validation" not in splits:
        splits["train"], splits["validation"] = carve_validation(splits["train"], d.validation_fraction, cfg.train.seed)
    if "test" not in splits:
        log.warning("no test split: the run reports validation figures only (pass data.test=FILE for test figures)")
    if len(splits["validation"]) < 100:
        log.warning("validation has %d rows: its accuracy moves in steps of %.1f%%, so small differences are noise",
                    len(splits["validation"]), 100 / len(splits["validation"]))
    return splits


MANY_CLASSES = 20  # more classes than this and than 90% of the train rows: the label column holds ids or texts


def check_label_count(train: Split, label_column: str) -> None:
    """An ID or text column named as the labels (`data.label_column=tweet_id`) made a class of nearly every row, a
    model that cannot learn, with no word: refused here, before tokenising, where nearly every row is a class of
    its own (no class could then be validated either); warned of where classes average under two rows (a long tail
    of categories may be meant)."""
    classes, rows = len({label_key(v) for v in train.labels}), len(train)
    if classes > max(MANY_CLASSES, 0.9 * rows):
        raise TextclfError(f'data.label_column "{label_column}" has {classes:,} distinct values in {rows:,} train '
                           "rows: ids or texts, not labels, by the look of it; set data.label_column to the column of "
                           "labels (or map rare labels together with data.label_map)")
    if classes > max(MANY_CLASSES, rows / 2):
        log.warning('data.label_column "%s" has %s classes in %s train rows, under two rows a class: most cannot be '
                    "learnt or validated (is it the column of labels?)", label_column, f"{classes:,}", f"{rows:,}")


DEGENERATE = 0.5  # a vocabulary is degenerate when words seen once, or unknown ones, are more than this share


def check_vocabulary(tokens: dict[str, Tokenized], vocab: Vocab, tokenizer: Tokenizer) -> None:
    """Warn in one line when the tokens do not fit the texts: most words of train occur once, or most words of
    the other splits are unknown (Chinese split at spaces: clause-long "words"). Words: tokens holding a letter,
    so punctuation does not hide it. English sets, even of a hundred reviews, stay far below."""
    once, unknown = word_share(tokens["train"], vocab)
    unknown = max((word_share(tok, vocab)[1] for name, tok in tokens.items() if name != "train"), default=unknown)
    if once > DEGENERATE or unknown > DEGENERATE:
        if any(map(unspaced, tokens["train"].table)) or without_spaces(tokenizer.kind):
            fix = "try tokenizer.kind=" + " or ".join(k for k in ("zh", "char", "regex") if k != tokenizer.kind)
        else:  # words written with spaces, split at them: the rows are too few, not the tokenizer wrong
            fix = f"{len(tokens['train'])} training texts are too few to learn words from: add rows"
        log.warning("the vocabulary does not fit these texts: %.0f%% of the training words occur once and %.0f%% "
                    "of the other splits' are unknown, with tokenizer.kind=%s (%s); %s", 100 * once, 100 * unknown,
                    tokenizer.kind, tokenizer.describe(), fix)


def word_share(tokens: Tokenized, vocab: Vocab) -> tuple[float, float]:
    """(the share of word occurrences whose word occurs once here, the share unknown to `vocab`)."""
    is_word = np.fromiter((bool(_LETTER.search(t)) for t in tokens.table), dtype=bool, count=len(tokens.table))
    counts = np.bincount(tokens.ids, minlength=len(tokens.table))
    words = int(counts[is_word].sum())
    if not words:
        return 0.0, 0.0
    once = int(counts[is_word & (counts == 1)].sum())
    unknown = int(counts[is_word & (vocab.lookup(tokens.table) == UNK_ID)].sum())
    return once / words, unknown / words


def duplicates(splits: dict[str, Split]) -> dict[str, int]:
    """How many texts of validation and test are also in train (and test's in validation), compared whole after
    stripping spaces; logged in one line when there are any: their figures flatter the model, and validation
    duplicates make the linear view look surer than it is."""
    found = {}
    for later, earlier in (("validation", "train"), ("test", "train"), ("test", "validation")):
        if later in splits and earlier in splits:
            seen = {t.strip() for t in splits[earlier].texts}
            found[f"{later}_in_{earlier}"] = sum(t.strip() in seen for t in splits[later].texts)
    if any(found.values()):
        log.warning("duplicates: %s (the same text in two splits: figures on them flatter the model; drop them "
                    "from validation and test for a cleaner measure)",
                    ", ".join(f"{n:,} {k.split('_in_')[0]} text(s) of {len(splits[k.split('_in_')[0]]):,} in "
                              f"{k.split('_in_')[1]}" for k, n in found.items() if n))
    return found


def carve_fraction(rows: int, fraction: float) -> float:
    """The share of train carved off for validation: `fraction`, but on small data as much as gives
    validation 200 rows, up to 30%: validation picks the epoch, the LSTM's share and the temperature, and 10
    rows cannot."""
    return max(fraction, min(MAX_FRACTION, VALIDATION_ROWS / max(rows, 1)))


def carve_validation(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Train, and a validation split carved from it (stratified, seeded; `carve_fraction` of it).

    The carve deals in texts, not rows: every copy of a text (compared stripped) goes to the same side, so no
    validation row is a train row again, which would flatter the epoch, the LSTM's share and the temperatures
    that validation picks. A class with one text only stays in train (said in a line): carved off, it would be
    a label the model never saw; so does a text with many copies, which would fill validation, and a text whose
    copies carry a class no train row has. Data without repeated texts or such classes is carved row by row, as
    before."""
    group = group_ids(t.strip() for t in train.texts)
    first = np.unique(group, return_index=True)[1]  # each text's first row: its label stratifies
    classes = [set() for _ in first]  # each text's classes (copies of a text may carry other labels)
    for g, label in zip(group, train.labels, strict=True):
        classes[g].add(label_key(label))
    counts = Counter(k for c in classes for k in c)
    lone = {k for k, n in counts.items() if n < 2}
    if len(lone) == len(counts):  # every class one text: no carve by text keeps them all in train; by row, then
        group, first, lone = np.arange(len(train)), np.arange(len(train)), set()
        classes = [{label_key(label)} for label in train.labels]
    if lone:
        log.warning("class(es) with one text only, kept in train and none in validation: %s (a typo in the label "
                    "column? data.label_map can map or drop a label)", ", ".join(sorted(lone)))
    fraction = carve_fraction(len(first), fraction)
    # a text with many copies stays in train: carved off, it would fill validation with one text
    sizes = np.bincount(group, minlength=len(first))
    many = max(2, round(len(train) * fraction) // MANY_COPIES)
    carved = np.flatnonzero([not (c & lone) and n <= many for c, n in zip(classes, sizes, strict=True)])
    try:
        rows = stratified_split([str(train.labels[first[g]]) for g in carved], fraction, seed)[1]
        va_groups = carved[rows]
    except ValueError:  # scikit-learn's way of saying the split would leave train empty
        va_groups = np.zeros(0, dtype=np.int64)
    in_train = set().union(*(classes[g] for g in np.setdiff1d(np.arange(len(first)), va_groups)))
    va_groups = [g for g in va_groups if classes[g] <= in_train]  # a class on copies of others' texts stays in train
    held = np.isin(group, va_groups)
    tr, va = np.flatnonzero(~held), np.flatnonzero(held)
    if len(tr) == 0 or len(va) == 0:
        raise TextclfError(f"{train.source} has too few rows ({len(train)}) to carve a validation split "
                           "(add rows, or pass data.validation=FILE)")
    pick = lambda idx, name: Split([train.texts[i] for i in idx], [train.labels[i] for i in idx], name)  # noqa: E731
    repeated = len(first) < len(group)
    log.info("validation: %d rows carved from train (%.0f%%, stratified, seed %d%s)", len(va), 100 * fraction, seed,
             "; a text's copies kept on one side" if repeated else "")
    return pick(tr, train.source), pick(va, f"{train.source} (validation)")


@distributed.main_first()  # under torchrun rank 0 fills the token cache, the others read it
def prepare(cfg: Config, splits: dict[str, Split], pretrained: Artifact | None = None) -> Prepared:
    """Tokenise, build (or, fine-tuning, inherit) the vocab and label set, and numericalise every split."""
    train_texts = splits["train"].texts
    tokenizer = for_run(cfg.tokenizer.kind, cfg.tokenizer.lowercase, train_texts,
                        pretrained.tokenizer if pretrained else None)
    start = time.perf_counter()
    tokens = {name: tokenize_cached(s.texts, tokenizer, cfg.data.cache_dir, desc=f"tokenising {name}")
              for name, s in splits.items()}
    seconds = time.perf_counter() - start
    labels = LabelVocab.from_values(splits["train"].labels)
    if len(labels) < 2:
        raise TextclfError(f"{splits['train'].source} has one class only ({labels.names[0]}); "
                           "a classifier needs at least two (check data.label_column / data.label_map)")
    plan = None
    if pretrained is None:
        vocab = Vocab.build(tokens["train"].counts(), cfg.vocab.min_freq, cfg.vocab.max_size)
    else:
        options = finetune.PlanOptions(cfg.vocab.new_tokens, cfg.vocab.min_freq, cfg.init_head,
                                       cfg.train.freeze_embedding_epochs, cfg.train.freeze_encoder_epochs)
        plan = finetune.plan(pretrained, tokens, labels, splits["train"].labels, options)
        vocab, labels = plan.vocab, plan.labels
    check_vocabulary(tokens, vocab, tokenizer)
    datasets = {name: split_dataset(tok, splits[name], vocab, labels, cfg.data.max_length, cfg.data.truncate)
                for name, tok in tokens.items()}
    n_tokens = int(tokens["train"].offsets[-1])
    log.info("data: %s | vocab %d | labels %s | train tokens %d | tokenised in %.1fs",
             ", ".join(f"{k} {len(v)}" for k, v in datasets.items()), len(vocab), labels.names, n_tokens, seconds)
    return Prepared(datasets, tokens, vocab, labels, tokenizer, seconds, plan, duplicates(splits))


def stratified_split(labels: list, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): a seeded, stratified carve-out (plain random if a class is too rare)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    keys = [str(v) for v in labels]
    counts = pd.Series(keys).value_counts()
    n_val = max(1, round(len(labels) * fraction))
    stratify = keys if counts.min() >= 2 and n_val >= len(counts) else None
    tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(tr), np.sort(va)
