"""The model card: README.md in every model folder, in the Hub's format (YAML metadata, then what a person reads).
On the models' stage: every saved model (models/artifact.py) is written with one."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..files import write_text
from ..models.ensemble import SHORTCUT_CHANGES, SHORTCUT_CONFIDENCE
from .download import HF_PREFIX, IMDB_HUB_NAME

CARD = "README.md"
PLACEHOLDER = "USER/NAME"  # how the card names its Hub repository until `textclf push` knows it
METRICS = (("accuracy", "Accuracy"), ("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"),
           ("roc_auc", "ROC-AUC"), ("loss", "Loss"))
_KEPT = {"head": "first", "tail": "last", "both": "first and last (half each)"}


def hub_dataset(cfg: dict) -> str | None:
    """The Hub dataset a run trained on (data.path=hf:NAME, or imdb), or None for the user's own files."""
    data = cfg.get("data") or {}
    path = str(data.get("path") or "")
    if any(data.get(k) for k in ("train", "validation", "test")):
        return None
    if path == "imdb":
        return IMDB_HUB_NAME
    name = path.removeprefix(HF_PREFIX).split(":", 1)[0] if path.startswith(HF_PREFIX) else ""
    return name if name and not name.startswith((".", "/", "~")) and not Path(name).exists() else None


def data_source(cfg: dict) -> str:
    data = cfg.get("data") or {}
    files = [f"{k} `{data[k]}`" for k in ("train", "validation", "test") if data.get(k)]
    return ", ".join(files) if files else f"`{data.get('path')}`"


def _results(metrics: dict, dataset: str | None, source: str) -> list[dict]:
    """model-index results: one per evaluated split, with every figure metrics.json has for it."""
    out = []
    for split in ("test", "validation"):
        figures = metrics.get(split) or {}
        found = [{"type": key, "value": figures[key], "name": name} for key, name in METRICS
                 if figures.get(key) is not None]
        if found:
            out.append({"task": {"type": "text-classification", "name": "Text Classification"},
                        "dataset": {"name": dataset or source.replace("`", ""), "type": dataset or "local",
                                    "split": split},
                        "metrics": found})
    return out


def _figures(metrics: dict) -> list[str]:
    rows = ["| split | rows | " + " | ".join(name for _, name in METRICS) + " |",
            "| --- " * (len(METRICS) + 2) + "|"]
    for split in ("validation", "test"):
        m = metrics.get(split)
        if m:
            cells = ["–" if m.get(k) is None else f"{m[k]:.4f}" for k, _ in METRICS]
            rows.append(f"| {_split_name(split, m)} | {m.get('n', '–')} | " + " | ".join(cells) + " |")
    sources = [f"{_split_name(split, metrics[split])}: {metrics[split]['source']}" for split in ("validation", "test")
               if (metrics.get(split) or {}).get("source")]
    if sources:
        rows += ["", "Figures of " + "; ".join(sources) + "."]
    report = (metrics.get("test") or {}).get("report") or {}
    labels = (metrics.get("test") or {}).get("labels") or []
    if report and labels:
        rows += ["", "Per class, on test:", "", "| class | precision | recall | F1 | rows |",
                 "| --- | --- | --- | --- | --- |"]
        rows += [f"| {n} | {report[n]['precision']:.4f} | {report[n]['recall']:.4f} | {report[n]['f1-score']:.4f} | "
                 f"{int(report[n]['support'])} |" for n in labels if n in report]
    return rows


def _split_name(split: str, figures: dict) -> str:
    """A split as the card's table names it: validation's figures come from out-of-fold linear views where the
    run made them (metrics.json's `linear_folds`), not from the saved linear view, which learnt from those rows."""
    return f"{split} (out-of-fold linear view)" if split == "validation" and figures.get("linear_folds") else split


def _averaged(cal: dict | None) -> bool:
    """Whether config.json's calibration averages the LSTM with a linear view (its weight under 1)."""
    return (cal or {}).get("weight", 1.0) < 1


def _shortcut(cal: dict) -> str:
    if not cal.get("shortcut"):
        return ""
    rows, unlabelled = int(cal.get("shortcut_rows") or 0), int(cal.get("shortcut_unlabelled") or 0)
    which = (f"{rows - unlabelled:,} validation texts and {unlabelled:,} unlabelled texts" if unlabelled else
             f"{rows:,} validation texts")
    checked = (f"checked on the {which} it answered, each scored by a linear view that had not seen "
               f"it: with {SHORTCUT_CONFIDENCE:.0%} confidence it changes at most {SHORTCUT_CHANGES:.1%} of the full "
               "model's decisions" if rows else
               f"this changed at most {SHORTCUT_CHANGES:.1%} of validation decisions, on a number of texts this "
               "model, saved before textclf recorded it, does not say")
    return (f" Where the linear view is at least {cal['shortcut']:g} sure of a class, its answer is the model's and "
            f"the LSTM is not run ({checked}; `Classifier.load(..., shortcut=False)` or `--no-shortcut` runs the "
            "LSTM on every text).")


def _start(cal: dict) -> str:
    share = float(cal.get("start_weight") or 0.0)
    if not share:
        return ""
    return (f" It was fine-tuned from another model, which it holds whole in `start/`: its probabilities are "
            f"{share:g} of that model's (as it answers alone) and {1 - share:g} of its own, a share chosen by "
            f"validation log-loss, then temperature-scaled ({cal.get('start_temperature')}).")


def _calibration(cal: dict | None) -> str:
    """A sentence on how the probabilities are made, from config.json's calibration (absent: none fitted)."""
    return _own_calibration(cal) + _start(cal or {})


def _own_calibration(cal: dict | None) -> str:
    if not cal:
        return ""
    if _averaged(cal):
        return (f" Its probabilities average the LSTM's (weight {cal['weight']}) with those of a linear view of the "
                f"same tokens (n-gram logistic regression), each view temperature-scaled on validation "
                f"(LSTM {cal.get('lstm_temperature')}, linear view {cal.get('linear_temperature')}) and the average "
                f"too ({cal.get('temperature')})." + _shortcut(cal))
    return f" Its probabilities are temperature-scaled on validation ({cal.get('temperature')})."


def _header(meta: dict, metrics: dict | None) -> dict:
    """The card's YAML metadata: what the Hub indexes (library, task, labels, dataset, base model, results)."""
    cfg = meta.get("train_config") or {}
    labels = [str(n) for n in meta.get("labels", [])]
    dataset = hub_dataset(cfg)
    header: dict = {"library_name": "textclf", "pipeline_tag": "text-classification",
                    "tags": ["textclf", "lstm", "text-classification"], "labels": labels}
    if dataset:
        header["datasets"] = [dataset]
    if str(cfg.get("init_from") or "").startswith(HF_PREFIX):
        header["base_model"] = cfg["init_from"].removeprefix(HF_PREFIX).split("@")[0]
    results = _results(metrics or {}, dataset, data_source(cfg))
    if results:
        header["metrics"] = sorted({m["type"] for r in results for m in r["metrics"]} - {"loss"})
        header["model-index"] = [{"name": Path(str(cfg.get("run_dir") or "textclf-model")).name, "results": results}]
    return header


def _summary(meta: dict) -> str:
    """The card's first paragraph: the network, the tokens it reads, how its probabilities are made."""
    arch, labels = meta.get("model") or {}, [str(n) for n in meta.get("labels", [])]
    tok = meta.get("tokenizer") or {}
    lstm = (f"{'bidirectional ' if arch.get('bidirectional') else ''}LSTM ({arch.get('num_layers')} layer(s) of "
            f"{arch.get('hidden_size')} units{' per direction' if arch.get('bidirectional') else ''})")
    cut = (f"and cut to their {_KEPT.get(meta.get('truncate'), meta.get('truncate'))} {meta.get('max_length')} tokens"
           if meta.get("max_length") else "and read whole")
    return (f"A text classifier made with textclf {meta.get('textclf_version', '')}: {arch.get('embedding_dim')}-dim "
            f"embeddings of a {arch.get('vocab_size', 0):,}-token vocabulary, a {lstm}, {arch.get('pooling')} pooling "
            f"over its states and a linear layer onto {len(labels)} classes: {', '.join(labels)}. Texts are split by "
            f"textclf's {tok.get('kind')} tokenizer{', lowercased,' if tok.get('lowercase') else ''} {cut}."
            + _calibration(meta.get("calibration")))


def _use(meta: dict) -> list[str]:
    return ["## Use", "", "```bash", "pip install textclf",
            f'textclf predict hf:{PLACEHOLDER} "A quiet, beautiful film."',
            "```", "", "```python", "from textclf import Classifier", "",
            f'clf = Classifier.load("hf:{PLACEHOLDER}")  # or the folder that holds this card',
            'clf.predict(["A quiet, beautiful film."])  # [Prediction(label=..., probability=..., probabilities=...)]',
            "```", "",
            "The folder holds `model.safetensors` (the weights: loading them runs no code), `config.json` "
            "(architecture, labels, tokenizer, the training config, the calibration) and `vocab.json`"
            + (", and the linear view in `linear.safetensors` and `linear.json`"
               if _averaged(meta.get("calibration")) else "")
            + ("; `start/` holds the model it was fine-tuned from, whole." if _start(meta.get("calibration") or {})
               else "."), ""]


def _training(meta: dict, metrics: dict | None) -> list[str]:
    cfg = meta.get("train_config") or {}
    if metrics:
        said = (f"Best epoch {metrics.get('best_epoch')} of {metrics.get('epochs_run')} (picked on validation "
                f"{(cfg.get('train') or {}).get('monitor', '')}), {metrics.get('train_seconds')} s of training on "
                f"{metrics.get('device')} ({metrics.get('precision', 'float32')}), torch "
                f"{meta.get('torch_version')}, saved {meta.get('created')}. The resolved config:")
    else:
        said = f"Saved {meta.get('created')} with torch {meta.get('torch_version')}. The resolved config:"
    return ["## Training", "", said, "", "```yaml", yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True).rstrip(),
            "```", ""]


def _evaluation(meta: dict, metrics: dict | None, has_results: bool) -> list[str]:
    labels = [str(n) for n in meta.get("labels", [])]
    if not (metrics and has_results):
        return ["## Evaluation", "", "Not evaluated yet: this folder was saved during training (the best epoch so "
                "far); the run writes its figures here when it ends."]
    which = "of the second class, " + labels[1] if len(labels) == 2 else "macro averages"
    return ["## Evaluation", "", f"Precision, recall and F1 are {which}; the same figures are in the metadata above "
            "and in the run's metrics.json.", "", *_figures(metrics)]


def render(meta: dict, metrics: dict | None = None) -> str:
    """The card for a model folder's config.json contents (`meta`) and, once the run has them, its metrics."""
    cfg = meta.get("train_config") or {}
    data = cfg.get("data") or {}
    header = _header(meta, metrics)
    lines = [
        f"# {Path(str(cfg.get('run_dir') or 'textclf-model')).name}", "", _summary(meta), "",
        "## Data", "",
        f"Trained on {data_source(cfg)}: text from `{data.get('text_column')}`, labels from "
        f"`{data.get('label_column')}`" + (f", mapped by `{data.get('label_map')}`" if data.get("label_map") else "")
        + "." + (f" Fine-tuned from `{cfg['init_from']}`." if cfg.get("init_from") else ""), "",
        *_use(meta), *_training(meta, metrics), *_evaluation(meta, metrics, "model-index" in header)]
    front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n" + "\n".join(lines) + "\n"


def write_card(model_dir: str | Path, metrics: dict | None = None) -> Path:
    """(Re)write `model_dir`/README.md from its config.json and `metrics` (metrics.json's contents), atomically."""
    model_dir = Path(model_dir)
    meta = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    write_text(model_dir / CARD, render(meta, metrics))
    return model_dir / CARD


def for_repo(card: str, repo_id: str) -> str:
    """The card with its Hub repository's name where it said hf:USER/NAME."""
    return card.replace(f"{HF_PREFIX}{PLACEHOLDER}", f"{HF_PREFIX}{repo_id}")
