"""word2vec alone, and beside the linear view's second process, on the same data: what issue 29's `Beside` costs
word2vec and what it saves the run.

    python benchmarks/linear_beside.py [--data ../shared/data/imdb] [--passes 1] [--workers 1]

The data is read and tokenised as `python train.py data.path=DATA` does (the token cache is used). Then, in this
order: word2vec alone; word2vec with the linear view fitted in its second process (`linear_view.Beside`) started at
the same moment, and when that process was done; the linear view fitted in this process (`linear_view.Here`);
word2vec alone again; word2vec on `--workers` threads each time (`pretrain.workers`). word2vec writes its vectors
to a fresh temporary folder each time, so none is cached.
Prints a Markdown table and one JSON line. Run it alone: it is a timing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from textclf.config import load_config
from textclf.training import linear_view, pipeline
from textclf.training.pretrain import pretrain_corpora
from textclf.training.word2vec import Settings, word2vec

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "imdb"))
    ap.add_argument("--passes", type=int, default=1, help="word2vec's passes each time (default 1)")
    ap.add_argument("--workers", type=int, default=1, help="word2vec's threads (pretrain.workers; default 1)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        cfg = load_config(None, [f"data.path={args.data}", f"run_dir={work}/run"])
        cfg, _, data, _ = pipeline.set_up(cfg)
        corpora = pretrain_corpora(cfg, data)
        views = linear_view.ViewData.of(data)

        def vectors() -> float:
            clock = time.perf_counter()
            how = Settings(cfg.model.embedding_dim, args.passes, cfg.pretrain.window, cfg.train.seed, args.workers)
            word2vec(corpora, data.vocab, how, tempfile.mkdtemp(dir=work))
            return time.perf_counter() - clock

        out = {"word2vec alone": vectors()}
        clock = time.perf_counter()
        beside = linear_view.Beside(views, cfg.train.seed)
        out["word2vec beside the linear view's process"] = vectors()
        beside.result()
        out["the linear view's process, done after"] = time.perf_counter() - clock
        clock = time.perf_counter()
        linear_view.Here(views, cfg.train.seed).result()
        out["the linear view in this process"] = time.perf_counter() - clock
        out["word2vec alone, again"] = vectors()
    print(f"| what ({args.passes} word2vec pass(es) on {args.workers} thread(s), {sum(len(t) for t in corpora):,} "
          "texts) | seconds |")
    print("| --- | --- |")
    for what, seconds in out.items():
        print(f"| {what} | {seconds:.1f} |")
    print(json.dumps({"passes": args.passes, "workers": args.workers, **{k: round(v, 1) for k, v in out.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
