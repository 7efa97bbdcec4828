"""Command line: `textclf train|evaluate|predict|explain|export|serve|push`; train.py and evaluate.py are shims."""

from __future__ import annotations

import argparse
import codecs
import contextlib
import gc
import json
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .errors import TextclfError
from .inference import PREDICT_BATCH_SIZE, PREDICT_CHUNK_ROWS, LoadOptions, binary_threshold
from .models.decision import DEFAULT_THRESHOLD, VIEWS

if TYPE_CHECKING:
    from .data import FileFormat

BF16_HELP = "run the model in bfloat16 on any device (default: where bf16 is faster there, else float32)"
FLOAT32_HELP = "run the model in exact float32 (default: bfloat16 where it is faster on the device)"
SHORTCUT_HELP = ("run the LSTM on every text (default: where the model was calibrated with a shortcut, texts its "
                 "linear view is sure of get that view's answer alone, a bounded share of validation decisions "
                 "changed: docs/serving.md)")
MODEL_HELP = "a model/ folder, the run folder holding it, or hf:USER/NAME on the Hugging Face Hub"
VIEWS_HELP = ("what answers: both (default: the model as trained), or one of its views alone, lstm or linear: on text "
              "unlike its training data one view may hold up better than the average")

log = logging.getLogger("textclf")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one `error:` line like every other mistake (exit code 2), and
    positional lists may go on after flags too: key=value overrides (`train.py data.path=x --dry-run run_dir=y`)
    and texts to label (`textclf predict MODEL --threshold 0.7 "a text"`). argparse takes a positional list in one
    run, so the ones after a flag come back unrecognised; they are added."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        parsed, extra = self.parse_known_args(args, namespace)
        flags = [a for a in extra if a.startswith("-") and a != "-"]  # "-": stdin, a text to label
        if extra and not flags and hasattr(parsed, "overrides") and all("=" in a for a in extra):
            parsed.overrides = [*(parsed.overrides or []), *extra]
        elif extra and not flags and isinstance(getattr(parsed, "texts", None), list):
            parsed.texts = [*parsed.texts, *extra]
        elif extra:
            command = getattr(parsed, "command", None)
            prog = f"{self.prog} {command}" if command and not self.prog.endswith(".py") else self.prog
            self.exit(2, f"error: unrecognized arguments: {' '.join(flags or extra)} (see {prog} --help)\n")
        return parsed


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("datasets", "httpx", "urllib3", "filelock", "gensim", "smart_open"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _resumed_config(overrides: list[str]) -> Path | None:
    """`resume=RUN_DIR` without --config continues with the config that run saved."""
    from .config import resume_target

    target = resume_target(next((o.split("=", 1)[1] for o in reversed(overrides) if o.startswith("resume=")), None))
    saved = Path(target) / "config.yaml" if target not in (None, "true") else None
    return saved if saved is not None and saved.is_file() else None


def _probability(text: str) -> float:
    """--threshold's type: out of [0, 1] it would silently label every text one class."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid probability: {text!r}") from None
    if not 0 <= value <= 1:  # NaN too
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text}")
    return value


def _config_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--config", help="a YAML file of keys that override the built-in IMDB recipe, e.g. "
                                    "configs/finetune.yaml (default: none, the recipe itself)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.epochs=3")
    return p


def _precision_args(p: argparse.ArgumentParser) -> None:
    """--bf16 / --float32; neither: bfloat16 where it is faster on the device (args.bf16 == "auto"). And
    --no-shortcut (args.shortcut False)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--bf16", dest="bf16", action="store_const", const=True, default="auto", help=BF16_HELP)
    group.add_argument("--float32", dest="bf16", action="store_const", const=False, help=FLOAT32_HELP)
    _answer_args(p)


def _answer_args(p: argparse.ArgumentParser) -> None:
    """--no-shortcut (args.shortcut False) and --views (args.views): what answers."""
    p.add_argument("--no-shortcut", dest="shortcut", action="store_false", help=SHORTCUT_HELP)
    p.add_argument("--views", choices=VIEWS, default="both", help=VIEWS_HELP)


def _loading(args: argparse.Namespace) -> LoadOptions:
    """How the command loads the model: --device, --bf16 / --float32, --no-shortcut, --views (the defaults where
    a command has no such flag)."""
    return LoadOptions(getattr(args, "device", "auto"), getattr(args, "bf16", "auto"), args.shortcut, args.views)


def _file_format(args: argparse.Namespace) -> FileFormat:
    """--encoding, --delimiter, --sheet as the data's `FileFormat`."""
    from .data import FileFormat
    from .data.tables import DELIMITED, SUFFIXES

    source = getattr(args, "input", None) or getattr(args, "data", None)
    suffix = Path(source).suffix.lower() if source and source != "-" else ""
    for flag, value, fits in (("--sheet", args.sheet, (".xlsx",)), ("--delimiter", args.delimiter, DELIMITED)):
        if value and suffix in SUFFIXES and suffix not in fits:  # read as if it were not given, without a word
            raise TextclfError(f"{flag} is for {', '.join(fits)} files; {source} is {suffix} (drop {flag})")
    return FileFormat(args.encoding, args.delimiter, args.sheet)


def _train_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    _config_args(p)
    p.add_argument("--dry-run", action="store_true",
                   help="check the config and data: load and tokenise, build the model, run one training step and "
                        "one validation batch, write RUN_DIR/config.yaml; nothing else is trained or saved")
    return p


def _baseline_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    _config_args(p)
    p.add_argument("--output", help="write the metrics as JSON here")
    p.add_argument("--C", dest="c", type=float,
                   help="inverse regularisation strength (default: the TF-IDF view's, textclf.models.linear.KINDS)")
    return p


def _reading_args(p: argparse.ArgumentParser) -> None:
    """evaluate's and predict's: texts per forward pass, bytes that are not UTF-8, and the file's format."""
    p.add_argument("--batch-size", type=int, default=PREDICT_BATCH_SIZE,
                   help=f"texts per forward pass (default {PREDICT_BATCH_SIZE}, fastest on CPU; GPUs like 256+)")
    p.add_argument("--encoding-errors", choices=("strict", "replace"), default="strict",
                   help="bytes that are not UTF-8: an error naming the row (strict), or U+FFFD (replace)")
    _file_format_args(p)


def _file_format_args(p: argparse.ArgumentParser) -> None:
    """How to read a data file: the same choices as data.encoding, data.delimiter, data.sheet (default: detect)."""
    p.add_argument("--encoding", help="a Python codec, e.g. cp1252 or utf-16 (default: the file's BOM, else UTF-8)")
    p.add_argument("--delimiter", help="csv/tsv/txt: one character, or comma, semicolon, tab, pipe "
                                       "(default: the one its header line holds)")
    p.add_argument("--sheet", help=".xlsx: the sheet to read (default: the first)")


def _evaluate_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("model_dir", help=MODEL_HELP)
    p.add_argument("--data", required=True,
                   help='a dataset folder (files, save_to_disk, Hub-style), a data file, "imdb", or hf:NAME[:CONFIG]')
    p.add_argument("--split", help="which split of a dataset folder or Hub dataset (default: test; a file is scored "
                                    "whole)")
    p.add_argument("--text-column", help="default: the column the model was trained on")
    p.add_argument("--label-column", help="default: the column the model was trained on")
    p.add_argument("--output", help="write the metrics as JSON here")
    p.add_argument("--plots", metavar="DIR", help="write PNG plots here (confusion matrix; ROC and PR for binary)")
    p.add_argument("--device", default="auto")
    _precision_args(p)
    _reading_args(p)
    return p


def _predict_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("model_dir", help=MODEL_HELP)
    p.add_argument("texts", nargs="*", help='texts to label; "-" reads one text per line from stdin')
    p.add_argument("--input", metavar="FILE",
                   help='label each row of a csv/tsv/txt/jsonl/parquet/xlsx file ("-": CSV on stdin)')
    p.add_argument("--text-column", help="with --input: the text column(s), e.g. title,body (default: the model's)")
    p.add_argument("--output", metavar="FILE",
                   help="with --input: write the rows here (atomically), not to stdout: .csv, .tsv, .jsonl or .parquet")
    p.add_argument("--format", choices=("text", "csv", "json"),
                   help="text (default for texts), csv (default for --input to stdout) or json (JSON lines); "
                        "--output FILE: default from its suffix")
    p.add_argument("--threshold", type=_probability,
                   help=f"binary models: P(second class) needed for it (default {DEFAULT_THRESHOLD})")
    p.add_argument("--chunk-size", type=int,
                   help=f"with --input: rows read at a time (memory bound; default {PREDICT_CHUNK_ROWS:,})")
    _reading_args(p)
    p.add_argument("--device", default="auto")
    _precision_args(p)
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): this process; ray: Ray Data, --input a folder or glob of parquet/csv/jsonl "
                        "files, --output a folder of Parquet files (pip install 'textclf[ray]')")
    p.add_argument("--address", help="with --engine ray: the Ray cluster (default: start a local Ray on this machine)")
    p.add_argument("--concurrency", type=int, help="with --engine ray: model copies (actors; default: one a CPU)")
    p.add_argument("--num-gpus", type=float, default=0.0, help="with --engine ray: GPUs per actor (default 0)")
    return p


def _push_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("model_dir", metavar="RUN_DIR", help="a run folder or its model/ folder")
    p.add_argument("repo_id", metavar="USER/NAME", help="the Hub model repository (created if it does not exist)")
    p.add_argument("--private", action="store_true", help="create the repository private")
    return p


def _export_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("model_dir", help="a model/ folder or the run folder holding it")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="only onnx for now")
    p.add_argument("--output", help="the file to write (default: MODEL_DIR/model.onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 12 to 20 (default 17)")
    _answer_args(p)
    return p


def _explain_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("model_dir", help="a model/ folder or the run folder holding it")
    p.add_argument("text", help='the text to explain; "-" reads it from stdin')
    p.add_argument("--top", type=int, default=10, help="show the N words that pushed hardest either way (default 10)")
    p.add_argument("--steps", type=int, default=100, help="integrated-gradients steps (default 100)")
    p.add_argument("--threshold", type=_probability,
                   help=f"binary models: P(second class) needed (default {DEFAULT_THRESHOLD})")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--device", default="auto")
    _answer_args(p)
    return p


def _serve_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("model_dir", help="a model/ folder or the run folder holding it")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="auto")
    _precision_args(p)
    p.add_argument("--max-texts", type=int, default=64, help="texts per /predict request (default 64)")
    p.add_argument("--max-chars", type=int, default=20_000, help="characters per text (default 20000)")
    p.add_argument("--max-body-bytes", type=int, default=1_000_000, help="request body size (default 1 MB)")
    p.add_argument("--max-batch", type=int, default=64,
                   help="texts of concurrent /predict requests run together as one batch (default 64)")
    p.add_argument("--batch-window-ms", type=float, default=5.0,
                   help="how long the first request of a batch waits for others to join (default 5)")
    p.add_argument("--max-queue", type=int, default=256,
                   help="texts waiting for the model; beyond this, 503 with Retry-After (default 256)")
    p.add_argument("--max-explain", type=int, default=8,
                   help="/explain requests in progress or waiting; beyond this, 503 with Retry-After (default 8)")
    p.add_argument("--forward-batch", type=int,
                   help="texts per LSTM forward within a batch, by length (default: 8 on CPU, --max-batch on GPU)")
    p.add_argument("--threads", type=int,
                   help="PyTorch threads for the batch worker (default: PyTorch's, one per core; with --workers, "
                        "the cores shared out)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes on the one port, each with its own copy of the model (default 1); "
                        "one keeps ~1 core busy, so on 2+ cores --workers 2 serves more requests/s")
    p.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"), default="info")
    return p


def run_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .threads import wait_passively

    wait_passively()  # before torch loads: runs beside another (a sweep, a server) share the cores
    from .training.distributed import is_main
    from .training.pipeline import train
    from .training.preemption import Preempted

    config = args.config or _resumed_config(args.overrides)
    # a run's config.yaml saved before it left out `overwrite` may say overwrite=true: not this command's wish
    saved = ["overwrite=false"] if config is not None and not args.config else []
    cfg = load_config(config, [*saved, *args.overrides])
    main = is_main()  # under torchrun, rank 0 speaks for all
    if main:
        log.info("config: %s%s", config or "the built-in recipe",
                 f" + {' '.join(args.overrides)}" if args.overrides else "")
    if args.dry_run:
        return _dry_run(cfg)
    world = int(os.environ.get("WORLD_SIZE", "1"))  # a resume runs as many processes: say how to start them
    launcher = "python" if world == 1 else f"torchrun --nproc_per_node={world}"
    try:
        metrics = train(cfg)
    except Preempted as e:  # a scheduler's SIGTERM: the job did what it was asked, and says how to go on
        if main:
            print(f"{e}; resume with: {launcher} train.py resume={shlex.quote(cfg.run_dir)}")
        return 0
    except (KeyboardInterrupt, _Terminated):  # Ctrl-C: the next plain run would be refused, so say how to go on
        from .training.rundir import holds_run

        if main and holds_run(Path(cfg.run_dir)) and not (Path(cfg.run_dir) / "metrics.json").exists():
            print(f"stopped; its last checkpoint resumes with: {launcher} train.py resume={shlex.quote(cfg.run_dir)}",
                  file=sys.stderr)
        raise
    if not main:
        return 0
    summary = {k: metrics[k]["accuracy"] for k in ("validation", "test") if k in metrics}
    print(f"saved {Path(cfg.run_dir) / 'model'}  " + "  ".join(f"{k} accuracy {v:.4f}" for k, v in summary.items()))
    return 0


def _dry_run(cfg) -> int:
    from .training.pipeline import dry_run

    s = dry_run(cfg)
    print(f"dry run: each step once, small ({cfg.run_dir}: nothing trained for real, no model saved)")
    print("data:  " + ", ".join(f"{k} {v:,}" for k, v in s.rows.items()) + f" rows; vocab {s.vocab:,}; "
          f"labels {', '.join(s.labels)}")
    print(f"model: {s.model}, {s.parameters:,} parameters on {s.device}")
    print(f"one training step ({s.train_texts} texts): loss {s.train_loss:.4f}")
    print(f"one validation batch ({s.validation_texts} texts): loss {s.validation_loss:.4f}, "
          f"accuracy {s.validation_accuracy:.4f}")
    if s.skipped:
        print(f"not run: {', '.join(s.skipped)}")
    print(f"wrote {s.config}" if s.config else f"{cfg.run_dir} holds a run: its config.yaml is kept as it was")
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    from .baseline import linear_baseline
    from .config import load_config
    from .files import check_writable, write_json
    from .reports.metrics import format_report
    from .text.tokenizer import for_run
    from .training.prepare import load_data

    if args.c is not None and not args.c > 0:  # NaN too
        raise TextclfError("--C must be > 0")
    if args.output:
        check_writable(args.output, "--output", example="baseline.json")  # before the fits, not after them
    cfg = load_config(args.config, args.overrides)
    unused = [key for key in (o.split("=", 1)[0] for o in args.overrides or [])
              if key.split(".")[0] not in ("data", "tokenizer") and key != "train.seed"]  # the seed carves validation
    if unused:  # run_dir=X wrote nothing there, without a word
        log.warning("textclf baseline reads data.*, tokenizer.* and train.seed only, and writes no run folder: %s not "
                    "used (--output FILE writes its figures)", ", ".join(unused))
    splits = load_data(cfg)
    tokenizer = for_run(cfg.tokenizer.kind, cfg.tokenizer.lowercase, splits["train"].texts)  # the model's tokens
    result = linear_baseline(splits, tokenizer, cfg.data.cache_dir, c=args.c)
    for name in ("validation", "test"):
        if name in result:
            print(format_report(result[name], title=f"{result['model']} [{name}]"))
    if args.output:
        write_json(args.output, result)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from .data.sources import is_data_file
    from .data.tables import column_options
    from .reports.evaluation import evaluate
    from .reports.metrics import format_report

    if args.batch_size <= 0:
        raise TextclfError("--batch-size must be > 0")
    if args.split is not None and is_data_file(args.data):
        raise TextclfError(f"--split picks a split of a dataset folder or Hub dataset; {args.data} is one file, scored "
                           "whole (drop --split)")
    with column_options("--text-column", "--label-column"):
        m = evaluate(args.model_dir, args.data, args.split or "test", text_column=args.text_column,
                     label_column=args.label_column, output=args.output, plots=args.plots, batch_size=args.batch_size,
                     encoding_errors=args.encoding_errors, file_format=_file_format(args), loading=_loading(args))
    print(format_report(m, title=f"{m['model']} on {m['data']} [{m['split']}]"))
    return 0


def _non_blank(texts: list[str], skipped: str, none_left: str) -> list[str]:
    """The texts that are not blank, the others skipped with a warning (a model labels an empty text as confidently
    as any other: its label would mean nothing); `none_left`: the error when none is left."""
    kept = [t for t in texts if t.strip()]
    if len(kept) < len(texts):
        log.warning("skipped %d %s", len(texts) - len(kept), skipped)
    if not kept:
        raise TextclfError(none_left)
    return kept


def _given_texts(texts: list[str]) -> list[str]:
    """The texts given on the command line, blank ones skipped as blank stdin lines are."""
    return _non_blank(texts, "blank text(s)",
                      'every text given is blank: give texts to label, "-" to read lines from stdin, or --input FILE')


def _stdin_lines(errors: str) -> list[str]:
    data = sys.stdin.buffer.read().removeprefix(codecs.BOM_UTF8)  # a byte-order mark (Windows tools): no text
    try:
        text = data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TextclfError(f"stdin line {line} is not UTF-8; re-encode it, or pass --encoding-errors replace") from None
    return _non_blank(text.splitlines(), "blank line(s) from stdin",
                      "stdin held no text: pipe one text per line into `textclf predict MODEL_DIR -`")


def _check_predict_args(args: argparse.Namespace) -> None:
    if args.input is None and not args.texts:
        raise TextclfError('give texts to label, "-" to read lines from stdin, or --input FILE')
    if args.input is not None and args.texts:
        raise TextclfError("give either texts or --input FILE, not both")
    if args.input is None and (args.output or args.text_column or args.encoding or args.delimiter or args.sheet):
        raise TextclfError("--output, --text-column, --encoding, --delimiter and --sheet go with --input FILE "
                           "(texts on the command line are printed)")
    if args.input is not None and args.format == "text":
        raise TextclfError("--format text is for texts on the command line; with --input use csv or json")
    if args.batch_size <= 0 or (args.chunk_size is not None and args.chunk_size <= 0):
        raise TextclfError("--batch-size and --chunk-size must be > 0")
    if args.output not in (None, "-"):
        from .inference.output import output_format

        output_format(args.output, args.format)  # an output it cannot write: said before the model loads


def _predict_on_ray(args: argparse.Namespace) -> int:
    from .ray import Labelling, label_files

    if args.input is None or args.texts or not args.output or args.output == "-":
        raise TextclfError("--engine ray labels files: give --input DIR_OR_GLOB and --output DIR (a new folder)")
    local_only = [flag for flag, given in (("--encoding", args.encoding), ("--delimiter", args.delimiter),
                                           ("--sheet", args.sheet), ("--format", args.format),
                                           ("--chunk-size", args.chunk_size is not None),
                                           ("--encoding-errors replace", args.encoding_errors == "replace")) if given]
    if local_only:  # Ray Data reads the files its own way, in blocks of its own, and the command writes Parquet
        raise TextclfError(f"{', '.join(local_only)}: not for --engine ray, which reads UTF-8 files (CSV with "
                           "commas) in blocks of its own and writes Parquet; re-save the files, or drop --engine ray")
    if args.concurrency is not None and args.concurrency <= 0:
        raise TextclfError("--concurrency must be > 0")
    if args.batch_size <= 0:
        raise TextclfError("--batch-size must be > 0")
    how = Labelling(args.text_column, args.threshold, _loading(args), args.batch_size)
    rows = label_files(args.model_dir, args.input, args.output, how, args.address, args.concurrency, args.num_gpus)
    print(f"wrote {rows:,} rows to {args.output}/ (Parquet)")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from .data.tables import column_options
    from .inference.classifier import Classifier

    if args.engine == "ray":
        return _predict_on_ray(args)
    if args.address or args.concurrency or args.num_gpus:
        raise TextclfError("--address, --concurrency and --num-gpus go with --engine ray")
    _check_predict_args(args)
    with column_options("--text-column", "--label-column"):
        return _predict(args, Classifier.load_with(args.model_dir, _loading(args)))


def _predict(args: argparse.Namespace, clf) -> int:
    """`textclf predict` with the model loaded: a file, stdin's lines or the texts given."""
    threshold = binary_threshold(args.threshold, len(clf.labels))
    try:
        if args.input is not None:
            to_file = args.output not in (None, "-")
            summary = clf.predict_file(sys.stdin.buffer if args.input == "-" else args.input,
                                       args.output if to_file else sys.stdout, args.text_column, args.format,
                                       threshold, chunk_size=args.chunk_size or PREDICT_CHUNK_ROWS,
                                       batch_size=args.batch_size, encoding_errors=args.encoding_errors,
                                       file_format=_file_format(args))
            if to_file:
                print(f"wrote {summary.rows:,} rows to {args.output}")
            return 0
        texts = _stdin_lines(args.encoding_errors) if args.texts == ["-"] else _given_texts(args.texts)
        if args.format == "csv":
            import pandas as pd

            clf.predict_frame(pd.DataFrame({"text": texts}), "text", threshold).to_csv(sys.stdout, index=False)
            return 0
        for text, p in zip(texts, clf.predict(texts, threshold=threshold, batch_size=args.batch_size), strict=True):
            if args.format == "json":
                print(json.dumps({"text": text, "label": p.label, "probability": p.probability,
                                  "probabilities": p.probabilities}, ensure_ascii=False))
            else:
                print(f"{p.label}\t{p.probability:.4f}\t{text}")
    except BrokenPipeError:  # `textclf predict ... | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .inference.export import export_onnx

    path, diff, _ = export_onnx(args.model_dir, args.output, args.opset, views=args.views, shortcut=args.shortcut)
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1e6:.1f} MB)" if size >= 1e5 else f"wrote {path} ({size / 1e3:.0f} kB)",
          f"- its probabilities against textclf's on sample texts: max abs difference {diff:.1e}")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    from .inference.classifier import Classifier
    from .inference.explain import Explainer

    if args.top <= 0:
        raise TextclfError("--top must be > 0")
    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise TextclfError("the text is blank: nothing to explain")
    clf = Classifier.load_with(args.model_dir, _loading(args))
    e = Explainer(clf, args.steps).explain(text, binary_threshold(args.threshold, len(clf.labels)))
    if args.format == "json":
        print(json.dumps(e.to_dict(), ensure_ascii=False))
        return 0
    who = _answered_by(e.answered_by, e.lstm_weight)
    if e.start_weight >= 1:
        who = f"the model it was fine-tuned from ({who})"
    elif e.start_weight > 0:
        who += f", averaged with the model it was fine-tuned from, share {e.start_weight:g}"
    print(f"{e.label}\t{e.probability:.4f}\t({len(e.tokens)} tokens read"
          + (f", {e.dropped} beyond max_length not read" if e.dropped else "") + f"; answered by {who})")
    for token, weight in e.top(args.top):
        print(f"{weight:+8.3f}  {token}")
    return 0


def _answered_by(views: str, lstm_weight: float) -> str:
    return {"lstm": "the LSTM", "linear": "the linear view alone",
            "both": f"both views, LSTM share {lstm_weight:g}"}[views]


def run_push(args: argparse.Namespace) -> int:
    from .hub.push import push_model

    url = push_model(args.model_dir, args.repo_id, private=args.private)
    print(f"pushed {args.model_dir} to {url}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from .serving.server import serve  # imports neither torch nor the app: serve sets the thread policy first
    from .serving.settings import AppOptions

    for name in ("max_texts", "max_chars", "max_body_bytes", "threads", "max_batch", "max_queue", "forward_batch",
                 "max_explain", "workers"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise TextclfError(f"--{name.replace('_', '-')} must be > 0")
    if not 0 <= args.batch_window_ms <= 1000:
        raise TextclfError(f"--batch-window-ms must be in 0..1000, got {args.batch_window_ms}")
    app = AppOptions(max_texts=args.max_texts, max_chars=args.max_chars, max_body_bytes=args.max_body_bytes,
                     max_batch=args.max_batch, batch_window_ms=args.batch_window_ms, max_queue=args.max_queue,
                     forward_batch=args.forward_batch, max_explain=args.max_explain)
    serve(args.model_dir, args.host, args.port, log_level=args.log_level, workers=args.workers, threads=args.threads,
          loading=_loading(args), app=app)
    return 0


COMMANDS = {
    "train": (_train_parser, run_train, "train a model (python train.py)"),
    "evaluate": (_evaluate_parser, run_evaluate, "evaluate a saved model (python evaluate.py)"),
    "predict": (_predict_parser, run_predict, "label raw texts with a saved model"),
    "baseline": (_baseline_parser, run_baseline, "TF-IDF + logistic regression on the same data, for comparison"),
    "explain": (_explain_parser, run_explain, "show which words pushed a prediction (integrated gradients)"),
    "export": (_export_parser, run_export, "write a saved model as ONNX"),
    "serve": (_serve_parser, run_serve, "serve a saved model over HTTP, with a demo page"),
    "push": (_push_parser, run_push, "upload a saved model with its card to the Hugging Face Hub (needs the network)"),
}


class _Terminated(BaseException):
    """SIGTERM (`kill`, a scheduler) outside training's own handler, raised in the main thread as Ctrl-C is: every
    `finally` and atomic write then cleans up (killed outright, `predict --output` left its temporary file)."""


def _terminate(signum, frame) -> NoReturn:
    raise _Terminated


@contextlib.contextmanager
def _cleanup_on_sigterm(run) -> Iterator[None]:
    """SIGTERM as `_Terminated` while a command runs: not for `serve`, whose server shuts down on its own signals,
    nor where the process's SIGTERM is not the default (ignored, or a caller's own), nor off the main thread."""
    mine = (run is not run_serve and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    if mine:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        if mine:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _guarded(run, args: argparse.Namespace) -> int:
    _setup_logging()
    try:
        with _cleanup_on_sigterm(run):
            return run(args)
    except TextclfError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM


def main(argv: list[str] | None = None) -> int:
    """`textclf COMMAND ...`"""
    _entering(argv)
    parser = _Parser(prog="textclf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (build, _, help_text) in COMMANDS.items():
        build(sub.add_parser(name, help=help_text))
    args = parser.parse_args(argv)
    return _leaving(_guarded(COMMANDS[args.command][1], args), argv)


def command_main(name: str, argv: list[str] | None = None) -> int:
    """One command as its own program: `python train.py ...` is `textclf train ...`."""
    _entering(argv)
    build, run, help_text = COMMANDS[name]
    parser = build(_Parser(prog=f"{name}.py", description=help_text))
    return _leaving(_guarded(run, parser.parse_args(argv)), argv)


def _entering(argv: list[str] | None) -> None:
    """When the command is the whole process (`argv` None), first make its allocator keep the memory torch frees
    (`allocator.keep_freed_memory`): before, a training step on the CPU spent a third of its time faulting in
    fresh pages. A caller's own process (`main([...])` from Python) is left as it is."""
    if argv is None:
        from .allocator import keep_freed_memory

        keep_freed_memory()


def _leaving(code: int, argv: list[str] | None) -> int:
    """`code`; when the command is the whole process (`argv` None: read from the command line), first collect its
    garbage once and freeze what is left, so that the interpreter's shutdown skips it: torch (with the
    torch._dynamo its optimizers import) leaves so many objects that the repeated full collections of a normal
    shutdown are a noticeable part of a small run. Objects in cycles are collected here, finalizers and all."""
    if argv is None:
        gc.collect()
        gc.freeze()
    return code


def train_main(argv: list[str] | None = None) -> int:
    return command_main("train", argv)


def evaluate_main(argv: list[str] | None = None) -> int:
    return command_main("evaluate", argv)
