"""Typed run configuration: defaults ← YAML file ← dotted command-line overrides → a checked `Config`.

The dataclass defaults below are the recipe: `python train.py` with no file trains exactly them, in the repo
or from an installed wheel. configs/imdb.yaml is their commented copy (tests/test_config.py holds the two
equal); other config files only override.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, get_type_hints

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from .data.tables import ENCODING_ERRORS
from .errors import TextclfError, did_you_mean
from .inference import PREDICT_BATCH_SIZE
from .models.lstm import LSTM_IMPLS, POOLINGS, TYPES
from .text.tokenizer import KINDS
from .text.tokens import TRUNCATIONS

log = logging.getLogger(__name__)

# The rules a type cannot express, kept with each section's fields as its RULES (scikit-learn keeps
# `_parameter_constraints` with the estimator): a tuple of allowed values, or one of these ranges.
POSITIVE, NON_NEGATIVE, FRACTION, SHARE = "> 0", ">= 0", "[0, 1)", "(0, 1]"
Rule = str | tuple[str, ...]


@dataclass
class DataConfig:
    # "imdb", "hf:NAME" / "hf:NAME:CONFIG" (any Hub dataset), a save_to_disk or Hub-style datasets folder,
    # a folder of train/validation/test files, aclImdb/ or its tarball, or one file
    path: str | None = "imdb"
    train: str | None = None  # separate files (csv/tsv/txt/jsonl/parquet/xlsx); with any of them, `path` is not read
    validation: str | None = None
    test: str | None = None
    train_split: str = "train"  # the source's split names (hf:, datasets folders, a folder's files); train[:5000]
    validation_split: str | None = "validation"  # null, or missing under this name: carved from train
    test_split: str | None = "test"  # null: no test figures
    unlabelled: str | None = None  # a file of unlabelled texts (data.text_column) for pretraining, beside train's
    encoding: str | None = None  # csv/tsv/txt/jsonl: a Python codec (cp1252, utf-16); null: the BOM's, else UTF-8
    delimiter: str | None = None  # csv/tsv/txt: one character or comma|semicolon|tab|pipe; null: from the header
    sheet: str | None = None  # .xlsx: the sheet to read; null: the first
    streaming: bool = False  # hf:NAME: read the rows as they download, no full copy in the datasets cache
    text_column: str = "text"  # several columns: "title,body" (joined with a space)
    label_column: str = "label"
    validation_fraction: float = 0.1  # carved from train (stratified, seeded) when no validation file
    max_length: int | None = 400  # tokens kept per text; null keeps all
    truncate: str = "both"  # which tokens a long text keeps: head | tail | both (half each end: opening and verdict)
    cache_dir: str | None = None  # tokenised-text cache; default $TEXTCLF_CACHE or ~/.cache/textclf
    label_map: dict[Any, Any] | None = None  # raw label → class name, e.g. {1: negative, 5: positive}; null drops
    encoding_errors: str = "strict"  # strict (bytes that are not UTF-8 are an error naming the row) | replace
    RULES: ClassVar[dict[str, Rule]] = {"truncate": TRUNCATIONS, "encoding_errors": ENCODING_ERRORS,
                                       "validation_fraction": FRACTION}


@dataclass
class TokenizerConfig:
    # auto (from the training texts: regex, or zh / char for scripts written without spaces) | regex (words at
    # spaces and punctuation: spaCy's English splits in one pattern) | spacy (spacy.blank("en")) | zh (Chinese
    # words, jieba) | char (one token per character of scripts without spaces)
    kind: str = "auto"
    lowercase: bool = True
    RULES: ClassVar[dict[str, Rule]] = {"kind": ("auto", *KINDS)}


@dataclass
class VocabConfig:
    min_freq: int = 2
    max_size: int | None = None  # not counting <pad> and <unk>; null: every token seen min_freq times
    new_tokens: int = 0  # init_from: add up to N tokens of the new train split seen >= min_freq times
    RULES: ClassVar[dict[str, Rule]] = {"min_freq": POSITIVE, "new_tokens": NON_NEGATIVE}


@dataclass
class ModelConfig:
    type: str = "lstm"  # the architecture (model.build_model): lstm
    embedding_dim: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3  # before the output layer and between LSTM layers
    embedding_dropout: float = 0.1
    pooling: str = "max"  # last | max | mean | max_mean
    linear: bool = True  # average the LSTM with a TF-IDF + logistic-regression view (its share fitted on validation)
    RULES: ClassVar[dict[str, Rule]] = {"type": TYPES, "pooling": POOLINGS, "embedding_dim": POSITIVE,
                                       "hidden_size": POSITIVE, "num_layers": POSITIVE, "dropout": FRACTION,
                                       "embedding_dropout": FRACTION}


@dataclass
class PretrainConfig:
    word2vec: bool = True  # start the embedding from skip-gram vectors of the training (+ unlabelled) texts
    unlabelled: bool = True  # pretrain on the data's unlabelled split too, when it has one (IMDB: 50k reviews)
    epochs: int = 3  # passes over a large corpus (IMDB's 72.5k reviews); a small one gets more (min_tokens)
    min_tokens: int = 5_000_000  # a small corpus gets more word2vec passes, until it has read this many tokens
    max_epochs: int = 30  # ... but at most this many passes (0: no limit)
    window: int = 5
    workers: int = 0  # word2vec's threads; 0 (auto): 1 on the CPU, where the vectors then follow the seed and runs
                      # repeat, and on a small corpus; up to 8 on a GPU machine for a corpus of 1M+ tokens
    lm_epochs: int = 0  # >0: first train the embedding + LSTM as a bidirectional language model on those texts
    lm_lr: float = 2e-3
    lm_sample: float = 0.25  # fraction of positions predicted per step: the softmax, not the LSTM, is the LM's cost
    RULES: ClassVar[dict[str, Rule]] = {"epochs": POSITIVE, "window": POSITIVE, "lm_lr": POSITIVE,
                                       "min_tokens": NON_NEGATIVE, "max_epochs": NON_NEGATIVE,
                                       "workers": NON_NEGATIVE, "lm_epochs": NON_NEGATIVE, "lm_sample": SHARE}

@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 64
    eval_batch_size: int = PREDICT_BATCH_SIZE
    lr: float = 2e-3
    weight_decay: float = 0.01
    clip_grad_norm: float = 1.0
    scheduler: str = "cosine"  # cosine | linear | constant, each after a linear warmup
    warmup_ratio: float = 0.05
    patience: int = 3  # epochs without a better validation score before stopping
    min_steps: int = 1500  # small data: more epochs, so that training makes at least this many optimizer steps
    min_epoch_steps: int = 50  # an epoch of fewer optimizer steps makes several passes over the train rows
    layer_lr_decay: float = 1.0  # > 1: the LSTM learns at lr / this, the embedding at lr / this**2 (fine-tuning)
    monitor: str = "loss"  # loss (calibrated validation log-loss) | accuracy | f1
    seed: int = 42
    device: str = "auto"  # auto (cuda → mps → cpu) | cpu | cuda | cuda:N | mps
    threads: int | None = None  # PyTorch's CPU threads; null: OMP_NUM_THREADS if set, else the cores it may use
    split_directions: bool = True  # CPU: a BiLSTM's two directions on two threads at once (false: one after the other)
    amp: bool = True  # mixed precision (false: float32 on every device); amp_cpu / amp_gpu choose it per device
    amp_cpu: str = "auto"  # bf16 autocast on CPU: auto (where measured faster than float32) | true | false
    amp_gpu: str = "auto"  # with amp, on CUDA: auto (bf16 on compute capability >= 8.0, else fp16) | bf16 | fp16
    lstm_impl: str = "auto"  # auto (packed on CUDA, padded-exact on CPU) | packed | padded
    deterministic: bool = False  # deterministic kernels only (slower on CUDA; an op without one raises)
    checkpoint_every: int = 1  # epochs between resumable checkpoints in run_dir/checkpoints (0: none)
    checkpoint_steps: int = 0  # also every N optimizer steps, mid-epoch (0: none)
    keep_last: int = 2  # checkpoints kept on disk (the oldest are deleted)
    class_weights: str = "auto"  # auto (balanced when a class has 2x the rows of another) | balanced | none
    adversarial: float = 0.02  # >0: also train on embedded tokens pushed by this fraction of their norm (2x cost)
    adversarial_min_tokens: int = 100_000  # small data: no adversarial pass on fewer train tokens (0: on any data)
    adversarial_fraction: float = 1.0  # the share of each batch's rows (random) that take that second pass
    freeze_embedding_epochs: int = 0  # init_from: keep the pretrained embedding rows fixed for the first N epochs
    freeze_encoder_epochs: int = 0  # init_from: keep the LSTM fixed for the first N epochs
    tensorboard: bool = False  # log scalars to RUN_DIR/tb/ (needs the tensorboard extra)
    RULES: ClassVar[dict[str, Rule]] = {
        "scheduler": ("cosine", "linear", "constant"), "monitor": ("accuracy", "f1", "loss"),
        "lstm_impl": LSTM_IMPLS, "amp_gpu": ("auto", "bf16", "fp16"), "class_weights": ("auto", "balanced", "none"),
        "epochs": POSITIVE, "batch_size": POSITIVE, "eval_batch_size": POSITIVE, "lr": POSITIVE, "keep_last": POSITIVE,
        "layer_lr_decay": POSITIVE, "checkpoint_every": NON_NEGATIVE, "checkpoint_steps": NON_NEGATIVE,
        "adversarial": NON_NEGATIVE, "adversarial_min_tokens": NON_NEGATIVE, "min_steps": NON_NEGATIVE,
        "min_epoch_steps": NON_NEGATIVE,
        "freeze_embedding_epochs": NON_NEGATIVE, "freeze_encoder_epochs": NON_NEGATIVE, "warmup_ratio": FRACTION,
        "adversarial_fraction": SHARE, "patience": POSITIVE, "weight_decay": NON_NEGATIVE,
        "clip_grad_norm": NON_NEGATIVE,
    }


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init_from: str | None = None  # a saved model (run or model/ folder): start from its vocab and weights
    init_head: str = "auto"  # init_from: keep its head when the labels match by name or by its scores (auto) | new
    run_dir: str = "runs/imdb"
    overwrite: bool = False  # allow replacing a run directory that holds a finished run
    resume: str | None = None  # continue an interrupted run: true (this run_dir) or RUN_DIR
    RULES: ClassVar[dict[str, Rule]] = {"init_head": ("auto", "new")}


def _keys(cls: type = Config, prefix: str = "") -> Iterator[tuple[str, type, type]]:
    """Every key that holds a value, depth first in the order the fields are declared: its dotted name
    ("train.lr"), its type, and the section that declares it (whose RULES name it)."""
    hints = get_type_hints(cls)
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            yield from _keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield prefix + f.name, hints[f.name], cls


def rules() -> dict[str, Rule]:
    """Every rule of the sections' RULES by dotted key ("train.lr": POSITIVE), in the order the keys are declared."""
    return {key: section.RULES[name] for key, _, section in _keys()
            if (name := key.rsplit(".", 1)[-1]) in vars(section).get("RULES", {})}


RULES_BY_KEY = rules()
# allowed values; those the code below the config acts on come from there, one source each
CHOICES: dict[str, tuple[str, ...]] = {k: v for k, v in RULES_BY_KEY.items() if isinstance(v, tuple)}
FINETUNE_KEYS: tuple[str, ...] = ("vocab.new_tokens", "train.freeze_embedding_epochs", "train.freeze_encoder_epochs")
# The recipe's rules that change a key on small data: the key, and the rule's own key (0 turns it off). A value
# the user gave the key wins over a rule they did not set as close to the run (`_kept_as_set`). The first two raise
# their key; the last turns its key off (0), so a key set to 0 leaves it nothing to change.
SMALL_DATA_RULES: dict[str, str] = {"train.epochs": "train.min_steps", "pretrain.epochs": "pretrain.min_tokens",
                                    "train.adversarial": "train.adversarial_min_tokens"}
TURNED_OFF_ON_SMALL_DATA = ("train.adversarial",)


def flat(d: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config as a plain dict (`to_dict`) by dotted key: {"train": {"lr": 0.002}} → {"train.lr": 0.002}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _all_keys(schema: DictConfig) -> list[str]:
    """Every key a config may set, sections too ("train", "train.lr", ...)."""
    leaves = list(flat(OmegaConf.to_container(schema)))
    return [*dict.fromkeys(k.split(".")[0] for k in leaves if "." in k), *leaves]


def _friendly(err: OmegaConfBaseException, schema: DictConfig) -> TextclfError:
    key = getattr(err, "full_key", None) or "?"
    if isinstance(err, ConfigKeyError):
        return TextclfError(f'unknown config key "{key}"{did_you_mean(key, _all_keys(schema))}')
    if isinstance(err, ValidationError):
        want = OmegaConf.select(schema, key)
        kind = type(want).__name__ if want is not None else "the documented type"
        return TextclfError(f'config key "{key}" has the wrong type: {str(err).splitlines()[0]} (expected {kind})')
    return TextclfError(f"bad config ({key}): {str(err).splitlines()[0]}")


def _bad_value(overrides: Sequence[str], schema: DictConfig, err: Exception, path: str | Path | None
               ) -> TextclfError:
    """The override whose value does not read (unbalanced brackets) or does not fit its key (a list for a mapping),
    found by trying each alone; else the config file, where a value does not fit its key."""
    for item in overrides:
        try:
            OmegaConf.to_object(OmegaConf.merge(schema, OmegaConf.from_dotlist([item])))
        except Exception as e:  # noqa: BLE001 - the first that fails alone is the one to name
            problem, key = str(e).splitlines()[0], item.split("=", 1)[0].strip()
            example = "'data.label_map={1: negative, 5: positive}'" if key == "data.label_map" else f"'{key}=VALUE'"
            return TextclfError(f'override "{item}" has a value that does not fit its key ({problem}); write it '
                                f"as the key's type and quote it whole in the shell, e.g. {example}")
    problem = str(err).splitlines()[0]
    if path is not None:
        return TextclfError(f"config file {path} has a value that does not fit its key ({problem}); write each as its "
                            "key's type (configs/imdb.yaml shows them all)")
    return TextclfError(f"the overrides do not fit the config ({problem})")


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, but a key given twice in one mapping is an error: YAML keeps the last, and a
    second `train:` block would drop the first one's keys without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: merged by SafeLoader itself
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                twice = key in seen
            except TypeError:  # an unhashable key: SafeLoader says so in its own words
                continue
            if twice:
                raise yaml.constructor.ConstructorError(None, None, f'key "{key}" is given twice: merge the two',
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> DictConfig:
    if path.is_dir():
        raise TextclfError(f"--config {path} is a folder: pass a YAML file (e.g. configs/finetune.yaml)")
    if not path.is_file():
        raise TextclfError(f"config file not found: {path} (pass an existing --config FILE)")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as e:
        line = path.read_bytes().count(b"\n", 0, e.start) + 1
        raise TextclfError(f"config file {path} is not UTF-8 text (line {line}): save it as UTF-8, or pass a YAML "
                           "file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TextclfError(f"config file {path} is not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise TextclfError(f"config file {path} must hold a mapping of keys (e.g. `train:`), not {type(data).__name__}")
    layer = OmegaConf.create(data)
    _check_bools(layer)
    return layer


def value_of(cfg: Config, key: str):
    """The value of dotted `key` ("train.lr") in `cfg`: read off the dataclasses, where building OmegaConf's view of
    the whole config once per key cost more than all the rest of loading it."""
    return functools.reduce(getattr, key.split("."), cfg)


def _check_rule(key: str, value, rule: Rule) -> None:
    if isinstance(rule, tuple):
        if value not in rule:
            raise TextclfError(f'config key "{key}" is "{value}"; choose one of: {", ".join(rule)}')
    elif not (math.isfinite(value) and {POSITIVE: value > 0, NON_NEGATIVE: value >= 0, FRACTION: 0 <= value < 1,
                                        SHARE: 0 < value <= 1}[rule]):
        hint = " (0 turns it off)" if rule == NON_NEGATIVE else ""
        raise TextclfError(f'config key "{key}" must be {"in " if "," in rule else ""}{rule}{hint}, got {value}')


def check(cfg: Config) -> Config:
    """Check values a type cannot express (choices, ranges); raise TextclfError naming the key."""
    for key, rule in RULES_BY_KEY.items():
        _check_rule(key, value_of(cfg, key), rule)
    for key, value in (("data.max_length", cfg.data.max_length), ("vocab.max_size", cfg.vocab.max_size)):
        if value is not None and value <= 0:
            raise TextclfError(f'config key "{key}" must be > 0 or null, got {value}')
    if cfg.train.threads is not None and cfg.train.threads < 0:
        raise TextclfError(f'config key "train.threads" must be >= 0 or null (every core it may use), got '
                           f"{cfg.train.threads}")
    if not 0 <= cfg.train.seed < 2**32:  # numpy's seeds
        raise TextclfError(f'config key "train.seed" must be in [0, 2**32), got {cfg.train.seed}')
    if cfg.data.label_map and all(v is None for v in cfg.data.label_map.values()):
        raise TextclfError('config key "data.label_map" maps every label to null; write it as '
                           '"{1: negative, 5: positive}" (a space after each colon)')
    for k, v in (cfg.data.label_map or {}).items():
        if isinstance(v, dict | list) or isinstance(k, dict | list):
            raise TextclfError(f'config key "data.label_map" maps {k!r} to {v!r}; map each raw label to one name '
                               "or null, e.g. {1: negative, 3: null, 5: positive}")
    cfg.train.amp_cpu = _switch("train.amp_cpu", cfg.train.amp_cpu)
    if not cfg.train.amp and cfg.train.amp_cpu == "true":
        raise TextclfError("train.amp=false and train.amp_cpu=true contradict each other: pass one of them")
    cfg.resume = resume_target(cfg.resume)
    if cfg.resume and cfg.overwrite:
        raise TextclfError("resume and overwrite=true contradict each other: pass one of them")
    if cfg.resume and cfg.resume != "true":
        cfg.run_dir = cfg.resume  # resume=RUN_DIR names the run to continue
    return cfg


def check_finetune(cfg: Config) -> None:
    """Fine-tuning keys need a model to start from (checked when training, so every config file loads); all those
    set are named at once (configs/finetune.yaml without init_from sets three)."""
    if cfg.init_from:
        return
    undo = {key: f"{key}=0" for key in FINETUNE_KEYS if value_of(cfg, key)}
    if cfg.init_head != "auto":
        undo["init_head"] = "init_head=auto"
    if undo:
        names = ", ".join(f'"{key}"' for key in undo)
        raise TextclfError(f"config key{'s' if len(undo) > 1 else ''} {names} {'are' if len(undo) > 1 else 'is'} for "
                           f"fine-tuning: set init_from=MODEL_DIR (or {' '.join(undo.values())})")


def bool_keys() -> list[str]:
    """The dotted names of the keys typed `bool`."""
    return [key for key, kind, _ in _keys() if kind is bool]


BOOL_WORDS = ("true", "false", "yes", "no", "on", "off")


def _check_bools(layer: DictConfig) -> None:
    """A bool key takes a boolean only. OmegaConf would read 2, 1 or "y" as true, and a typo'd value
    would silently switch a feature on."""
    values = flat(OmegaConf.to_container(layer, resolve=False))
    for key in bool_keys():
        value = values.get(key)
        if value is None or isinstance(value, bool) or str(value).strip().lower() in BOOL_WORDS:
            continue  # None: absent here (or null, which OmegaConf refuses itself)
        if isinstance(value, str) and value.startswith("${"):
            continue  # an interpolation, checked once resolved
        raise TextclfError(f'config key "{key}" is "{value}"; choose one of: true, false')


def _switch(key: str, value: str) -> str:
    """An auto | true | false key: YAML booleans (and yes/on, no/off) arrive as strings; → "auto", "true", "false"."""
    word = str(value).strip().lower()
    word = {"yes": "true", "on": "true", "1": "true", "no": "false", "off": "false", "0": "false"}.get(word, word)
    if word not in ("auto", "true", "false"):
        raise TextclfError(f'config key "{key}" is "{value}"; choose one of: auto, true, false')
    return word


def resume_target(value: str | None) -> str | None:
    """`resume=true` → "true" (continue run_dir), false/null → None, anything else is a run folder."""
    if value is None or value.strip().lower() in ("false", "no", "off", "null", ""):
        return None
    return "true" if value.strip().lower() in ("true", "yes", "on") else value


def _kept_as_set(cfg: Config, set_by: dict[str, int]) -> None:
    """A key the user set keeps its value: where it is set closer to the run (the command line over the YAML file
    over the recipe) than the rule that would change it (`SMALL_DATA_RULES`), the rule is off (0), said in one
    line. Set as close as the key, the rule stays on: `train.epochs=1 train.min_steps=1500` asks for both."""
    for key, rule in SMALL_DATA_RULES.items():
        (section, name), (rule_section, rule_name) = key.split("."), rule.split(".")
        value, floor = getattr(getattr(cfg, section), name), getattr(getattr(cfg, rule_section), rule_name)
        if floor and set_by.get(key, 0) > set_by.get(rule, 0):
            if value or key not in TURNED_OFF_ON_SMALL_DATA:  # configs/finetune.yaml's adversarial 0: nothing to say
                log.info("%s=%s as set: %s=%s (the recipe's rule for small data) is off; set %s too to keep it",
                         key, value, rule, floor, rule)
            setattr(getattr(cfg, rule_section), rule_name, 0)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Merge defaults ← YAML file ← `key=value` overrides, type-check, and return a `Config`."""
    schema = OmegaConf.structured(Config)
    layers = [schema]
    if path is not None:
        layers.append(_read_yaml(Path(path)))
    given: dict[str, str] = {}
    for item in overrides:
        if "=" not in item:
            raise TextclfError(f'override "{item}" is not key=value (e.g. train.epochs=3)')
        key, value = item.split("=", 1)
        key = key.strip()
        if key in given:  # the last counts, as scripts that add to a user's overrides expect
            log.info("%s is given twice (%s, then %s): the last counts", key, given[key], value)
        given[key] = value
        if isinstance(section := OmegaConf.select(schema, key, default=None), DictConfig):
            raise TextclfError(f'"{key}" is a section of the config, not a key: set its keys, e.g. '
                               f"{key}.{next(iter(section))}=VALUE")
    try:
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        _check_bools(layers[-1])
        merged = OmegaConf.merge(*layers)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise _friendly(e, schema) from None
    except (yaml.YAMLError, TypeError, ValueError) as e:  # a value OmegaConf reads as YAML, or of another shape
        raise _bad_value(overrides, schema, e, path) from None
    set_by = {}  # dotted key → the last layer that set it: 1 the YAML file, 2 the command line (0: the recipe)
    for level, layer in enumerate(layers[1:], 1):
        set_by.update(dict.fromkeys(flat(OmegaConf.to_container(layer, resolve=False)), level))
    check(cfg)  # before `_kept_as_set`'s line: a value refused says nothing else
    _kept_as_set(cfg, set_by)
    return cfg


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: Config) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg))
