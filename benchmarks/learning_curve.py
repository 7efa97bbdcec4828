"""Learning curves on real data: textclf from scratch, fine-tuned, the TF-IDF baseline and VADER, same rows.

    python benchmarks/learning_curve.py [--data-root ../shared/data] [--datasets airline,airline2,imdb,zh,zh-cat]
        [--sizes 100,500,2000,all] [--seeds 1] [--init-from runs/imdb] [--out runs/learning-curve]
        [--methods scratch,finetune,baseline,vader,untouched,char,words,nbchar] [--test-rows N] [key=value ...]

Data sets (real, none written for this benchmark):
  airline   ../shared/data/airline_tweets: 3 imbalanced classes of short tweets (negative/neutral/positive)
  airline2  the same tweets without the neutral ones: a short, binary sentiment task
  imdb      ../shared/data/imdb: long movie reviews, 2 classes (subsets of train; the full test set)
  zh        ../shared/data/chinese_reviews: Chinese shopping reviews, sentiment (label: 0/1)
  zh-cat    the same reviews, their 9 product categories (cat)
  imdb-heldout  IMDB rows the IMDB model never saw: train rows drawn from one half of IMDB's test split
                (stratified, seed 0), scored on the other half; for fine-tuning the IMDB model on its own domain
  zh-start  Chinese sentiment of 6 product categories (tablets, fruit, clothes, computers, phones, water
            heaters): what a Chinese start model is trained on (`scratch`)
  zh-shift  Chinese sentiment of the 3 others (shampoo, books, milk): fine-tuning that start model on
            products it never saw
  zh-start-b, zh-shift-b  the same the other way round: a start model of the 3, fine-tuned on the 6

For each data set and size, N train rows are drawn (stratified, seeded) and written to a CSV; every method
then reads exactly those rows and is scored on the same test file:
  scratch    python train.py data.train=... data.test=... (the plain command a user types; key=value added)
  finetune   python train.py --config configs/finetune.yaml init_from=INIT_FROM ... (the sets marked so in
             DATASETS; not imdb: the IMDB model has seen every IMDB train row)
  baseline   textclf baseline on the same rows (TF-IDF 1-2-grams + logistic regression)
  vader      the VADER lexicon, no training (compound >= 0.05 positive, <= -0.05 negative, else neutral;
             binary sets: compound >= 0 positive)
  untouched  INIT_FROM as it is, no training on the rows (binary sets that fine-tune)
  char       the classic model for Chinese: scikit-learn TF-IDF over character 1-3-grams of the raw text +
             logistic regression (C=8; the data card's reference)
  words      scikit-learn TF-IDF over jieba's word 1-2-grams + logistic regression (C=4)
  nbchar     NB-LR over character 1-3-grams (binary counts weighted by naive-Bayes log-count ratios, C=1;
             two classes only)
Accuracy and macro-F1 on test go to OUT/results.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
METHODS = ("scratch", "finetune", "baseline", "vader", "untouched", "char", "words", "nbchar")
PEERS = ("char", "words", "nbchar")  # scikit-learn models on the raw texts, outside textclf
DATASETS = {  # name: (folder, text column, label column, labels kept (None: all), English sentiment, fine-tune)
    "airline": ("airline_tweets", "text", "airline_sentiment", None, True, True),
    "airline2": ("airline_tweets", "text", "airline_sentiment", ("negative", "positive"), True, True),
    "imdb": ("imdb", "text", "label", None, True, False),
    # airline2 with its labels spelled unhappy/happy: in sorted order the IMDB model's classes the wrong way round
    "airline2-renamed": ("airline_tweets", "text", "airline_sentiment", ("negative", "positive"), True, True),
    "imdb-heldout": ("imdb", "text", "label", None, True, True),
    "zh": ("chinese_reviews", "review", "label", None, False, False),  # sentiment, but no English model fits Chinese
    "zh-cat": ("chinese_reviews", "review", "cat", None, False, False),
    "zh-start": ("chinese_reviews", "review", "label", None, False, False),
    "zh-shift": ("chinese_reviews", "review", "label", None, False, True),
    "zh-start-b": ("chinese_reviews", "review", "label", None, False, False),
    "zh-shift-b": ("chinese_reviews", "review", "label", None, False, True),
}
CATEGORIES = {"zh-start": ("平板", "水果", "衣服", "计算机", "手机", "热水器"),  # product categories kept (`cat`)
              "zh-shift": ("洗发水", "书籍", "蒙牛")}
CATEGORIES |= {"zh-start-b": CATEGORIES["zh-shift"], "zh-shift-b": CATEGORIES["zh-start"]}
RENAMED = {"negative": "unhappy", "positive": "happy"}
IMDB_NAMES = {0: "negative", 1: "positive"}


def read(folder: Path, split: str) -> pd.DataFrame:
    for suffix in (".parquet", ".csv"):
        if (folder / f"{split}{suffix}").is_file():
            path = folder / f"{split}{suffix}"
            if suffix == ".parquet":
                return pd.read_parquet(path)
            return pd.read_csv(path, dtype=str, keep_default_na=False)
    raise SystemExit(f"error: no {split}.parquet or {split}.csv in {folder}")


def prepare(name: str, root: Path, out: Path, sizes: list[str], seeds: list[int], test_rows: int | None) -> dict:
    """Write OUT/NAME/test.csv and OUT/NAME/SIZE-sSEED/train.csv; return {(size, seed): folder}."""
    from sklearn.model_selection import train_test_split

    sub, text, label, keep, _, _ = DATASETS[name]
    frames = {s: read(root / sub, s) for s in ("train", "test")}
    if name == "imdb-heldout":  # the IMDB model learnt from every train row: both halves of test are new to it
        frames["train"], frames["test"] = train_test_split(frames["test"], train_size=0.5, random_state=0,
                                                           stratify=frames["test"][label])
    for split, df in frames.items():
        if name in CATEGORIES:
            df = df[df["cat"].isin(CATEGORIES[name])]
        df = df[[text, label]].rename(columns={text: "text", label: "label"})
        if name.startswith("imdb"):
            df = df.assign(label=df["label"].astype(int).map(IMDB_NAMES))
        if keep:
            df = df[df["label"].isin(keep)]
        if name.endswith("-renamed"):
            df = df.assign(label=df["label"].map(RENAMED))
        frames[split] = df.reset_index(drop=True)
    test = frames["test"]
    if test_rows and test_rows < len(test):
        test, _ = train_test_split(test, train_size=test_rows, random_state=0, stratify=test["label"])
    (out / name).mkdir(parents=True, exist_ok=True)
    test.to_csv(out / name / "test.csv", index=False)
    folders = {}
    train = frames["train"]
    for size in sizes:
        for seed in seeds:
            n = len(train) if size == "all" else int(size)
            rows = train if n >= len(train) else train_test_split(train, train_size=n, random_state=seed,
                                                                    stratify=train["label"])[0]
            folder = out / name / f"{size}-s{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            rows.to_csv(folder / "train.csv", index=False)
            folders[size, seed] = folder
    return folders


def scores(metrics: dict) -> dict:
    return {"accuracy": round(metrics["accuracy"], 4), "macro_f1": round(metrics["report"]["macro avg"]["f1-score"], 4)}


def run(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as f:
        done = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"error: {' '.join(cmd)} exited {done.returncode}; see {log}")
    return time.perf_counter() - start


def textclf_run(folder: Path, test: Path, seed: int, extra: list[str], config: list[str]) -> tuple[dict, float]:
    run_dir = folder / ("finetune" if config else "scratch")
    cmd = [sys.executable, "train.py", *config, f"data.train={folder / 'train.csv'}", f"data.test={test}",
           f"train.seed={seed}", f"run_dir={run_dir}", "overwrite=true", *extra]
    seconds = run(cmd, folder / f"{run_dir.name}.log")
    # the finished run's resumable state is of no use here, and the runs of two seeds over a few data sets left
    # gigabytes of it: enough to fill the disk a later setup needed. The model folder stays (a start model).
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"]
    parts = {k: round(test[k], 4) for k in ("lstm_accuracy", "linear_accuracy", "exact_accuracy", "shortcut_share",
                                             "ece", "exact_ece") if k in test}  # exact_*, shortcut_*: where fitted
    return {**scores(test), **parts, "lstm_weight": metrics.get("calibration", {}).get("weight"),
            "validation_accuracy": round(metrics["validation"]["accuracy"], 4), "seconds": round(seconds, 1)}, metrics


def baseline(folder: Path, test: Path, seed: int) -> dict:
    out = folder / "baseline.json"
    seconds = run([sys.executable, "-m", "textclf", "baseline", f"data.train={folder / 'train.csv'}",
                   f"data.test={test}", f"train.seed={seed}", "--output", str(out)], folder / "baseline.log")
    return {**scores(json.loads(out.read_text())["test"]), "seconds": round(seconds, 1)}


def sentiment(labels: pd.Series) -> np.ndarray:
    """Labels as negative/neutral/positive again (the renamed set spells them unhappy/happy)."""
    back = {v: k for k, v in RENAMED.items()}
    return labels.map(lambda v: back.get(v, v)).to_numpy()


def vader(test: pd.DataFrame, binary: bool) -> dict:
    from sklearn.metrics import accuracy_score, f1_score
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyser = SentimentIntensityAnalyzer()
    compound = np.array([analyser.polarity_scores(t)["compound"] for t in test["text"]])
    if binary:
        pred = np.where(compound >= 0, "positive", "negative")
    else:
        pred = np.where(compound >= 0.05, "positive", np.where(compound <= -0.05, "negative", "neutral"))
    truth = sentiment(test["label"])
    return {"accuracy": round(float(accuracy_score(truth, pred)), 4),
            "macro_f1": round(float(f1_score(truth, pred, average="macro")), 4)}


def untouched(model_dir: str, test: pd.DataFrame, english: bool) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    from textclf.inference.classifier import Classifier

    clf = Classifier.load(model_dir)
    predicted = [p.label for p in clf.predict(list(test["text"]))]
    if english:  # the IMDB model's classes as sentiment names (its own labels may be 0/1 or neg/pos)
        predicted = [("negative", "positive")[clf.artifact.labels.get(label)] for label in predicted]
    truth = sentiment(test["label"]) if english else test["label"].to_numpy()
    return {"accuracy": round(float(accuracy_score(truth, predicted)), 4),
            "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 4)}


def peer(method: str, folder: Path, test: pd.DataFrame) -> dict:
    """One of the scikit-learn peers (`PEERS`), fitted on the same train rows, scored on the same test rows."""
    import jieba
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    start = time.perf_counter()
    train = pd.read_csv(folder / "train.csv", dtype=str, keep_default_na=False)
    if method == "char":
        vec, c = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2), 8.0
    elif method == "words":
        words = lambda text: [w for w in jieba.lcut(text.lower()) if w.strip()]  # noqa: E731
        vec, c = TfidfVectorizer(tokenizer=words, lowercase=False, token_pattern=None, ngram_range=(1, 2),
                                 sublinear_tf=True, min_df=2), 4.0
    else:
        vec, c = CountVectorizer(analyzer="char", ngram_range=(1, 3), binary=True, min_df=2), 1.0
    x, x_test = vec.fit_transform(train["text"]), vec.transform(test["text"])
    if method == "nbchar":
        y1 = (train["label"] == sorted(train["label"].unique())[1]).to_numpy()
        p, q = np.asarray(x[y1].sum(0)).ravel() + 1, np.asarray(x[~y1].sum(0)).ravel() + 1
        r = np.log((p / p.sum()) / (q / q.sum()))
        x, x_test = x.multiply(r).tocsr(), x_test.multiply(r).tocsr()
    pred = LogisticRegression(C=c, max_iter=2000).fit(x, train["label"]).predict(x_test)
    return {"accuracy": round(float(accuracy_score(test["label"], pred)), 4),
            "macro_f1": round(float(f1_score(test["label"], pred, average="macro")), 4),
            "seconds": round(time.perf_counter() - start, 1)}


def table(results: dict, methods: list[str]) -> str:
    lines = []
    for name, by_size in results.items():
        lines += [f"\n**{name}** (test accuracy / macro-F1; mean over seeds)\n",
                  "| train rows | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
        for size, runs in by_size.items():
            cells = []
            for m in methods:
                got = [r[m] for r in runs if m in r]
                if not got:
                    cells.append("–")
                    continue
                acc = statistics.mean(g["accuracy"] for g in got)
                f1 = statistics.mean(g["macro_f1"] for g in got)
                cells.append(f"{acc:.3f} / {f1:.3f}")
            lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--datasets", default="airline,airline2,imdb")
    ap.add_argument("--sizes", default="100,500,2000,all")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--init-from", default="runs/imdb", help="the IMDB model to fine-tune (finetune, untouched)")
    ap.add_argument("--finetune-config", default="configs/finetune.yaml")
    ap.add_argument("--test-rows", type=int, help="score on a stratified sample of the test set (default: all)")
    ap.add_argument("--out", default="runs/learning-curve")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="added to the from-scratch runs")
    args = ap.parse_args(argv)
    methods = args.methods.split(",")
    out, root = Path(args.out).resolve(), Path(args.data_root)
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict = {}
    for name in args.datasets.split(","):
        sizes = [s for s in args.sizes.split(",") if not (name == "imdb" and s == "all")]  # all: the README's run
        folders = prepare(name, root, out, sizes, seeds, args.test_rows)
        test_path = out / name / "test.csv"
        test = pd.read_csv(test_path, dtype=str, keep_default_na=False)
        binary = test["label"].nunique() == 2
        shared = {}
        if "vader" in methods and DATASETS[name][4]:
            shared["vader"] = vader(test, binary)
        if "untouched" in methods and binary and DATASETS[name][5]:
            shared["untouched"] = untouched(args.init_from, test, DATASETS[name][4])
        results[name] = {}
        for (size, seed), folder in folders.items():
            row = dict(shared)
            if "scratch" in methods:
                row["scratch"], _ = textclf_run(folder, test_path, seed, args.overrides, [])
            if "finetune" in methods and DATASETS[name][5]:
                row["finetune"], _ = textclf_run(folder, test_path, seed, [],
                                                 ["--config", args.finetune_config, f"init_from={args.init_from}"])
            if "baseline" in methods:
                row["baseline"] = baseline(folder, test_path, seed)
            for method in PEERS:
                if method in methods and (method != "nbchar" or binary):
                    row[method] = peer(method, folder, test)
            results[name].setdefault(size, []).append(row)
            print(f"{name} {size} seed {seed}: " + json.dumps(row), flush=True)
            (out / "results.json").write_text(json.dumps(results, indent=2))
    print(table(results, methods))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
