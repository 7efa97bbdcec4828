"""The bad-input table of docs/errors.md, row by row: one `error:` line on stderr, exit code 2, nothing written."""

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from textclf.cli import main
from textclf.config import load_config
from textclf.training import checkpoint
from textclf.training.pipeline import train

from .conftest import REPO, TINY, make_reviews
from .data.test_data import write_datasets_folders


@dataclass
class Case:
    id: str
    argv: str  # `textclf ...` arguments; {ws} is the test's folder, {data} a tiny dataset, {run} a finished run
    message: str  # part of the one error line; docs/errors.md's table quotes it
    setup: Callable[[Path], None] | None = None


def _write(name: str, content: bytes | str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        path = ws / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return setup


def _frame(name: str, df: pd.DataFrame) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(ws / name, index=False)
    return setup


def _unfinished(damage: Callable[[Path], None] | None = None) -> Callable[[Path], None]:
    """The finished run minus metrics.json: what a killed run looks like; `damage` its newest checkpoint."""
    def setup(ws: Path) -> None:
        (ws / "run" / "metrics.json").unlink()
        if damage:
            damage(checkpoint.existing(ws / "run" / checkpoint.FOLDER)[-1])
    return setup


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def _newer_format(ws: Path) -> None:
    path = ws / "run" / "model" / "config.json"
    path.write_text(re.sub(r'"format_version": \d+', '"format_version": 99', path.read_text()))


def _edit_config(ws: Path, old: str, new: str) -> None:
    path = ws / "run" / "model" / "config.json"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))


T = " ".join(TINY)
NEW = "run_dir={ws}/new"
TRAIN = f"train {T} {NEW} data.path={{data}}"
EVAL = "evaluate {run} --data {data} --output {ws}/out.json"
ONE_CLASS = make_reviews(20).assign(label="pos")
CASES = [
    # files
    Case("data path missing", f"train {T} {NEW} data.path={{ws}}/nowhere", "data path not found"),
    Case("data file missing", f"train {T} {NEW} data.train={{ws}}/nope.csv", "data file not found"),
    Case("a folder where a file is expected", f"train {T} {NEW} data.train={{data}}", "it is a folder; pass a file"),
    Case("unsupported file type", f"train {T} {NEW} data.train={{ws}}/train.xls", "unsupported data file type",
         _write("train.xls", b"\xd0\xcf\x11\xe0")),
    Case("unknown encoding", f"{TRAIN} data.encoding=utf-9", 'unknown encoding "utf-9"'),
    Case("spreadsheet sheet missing", f"train {T} {NEW} data.train={{ws}}/book.xlsx data.sheet=Nope",
         'has no sheet "Nope"', lambda ws: make_reviews(20).to_excel(ws / "book.xlsx", index=False)),
    Case("unlabelled file missing", f"{TRAIN} data.unlabelled={{ws}}/more.csv", "data file not found"),
    Case("unlabelled text column missing", f"{TRAIN} data.unlabelled={{ws}}/more.csv", 'more.csv has no column "text"',
         _frame("more.csv", make_reviews(5).rename(columns={"text": "review"}))),
    Case("file not UTF-8", f"train {T} {NEW} data.train={{ws}}/l1.csv", "is not UTF-8 in column",
         _write("l1.csv", "text,label\ncaf\xe9 cr\xe8me,pos\n".encode("latin-1"))),
    Case("malformed CSV", f"train {T} {NEW} data.train={{ws}}/bad.csv", "EOF inside string",
         _write("bad.csv", 'text,label\n"unclosed,pos\nfine,neg\n')),
    Case("empty file", f"train {T} {NEW} data.train={{ws}}/empty.csv", "is empty (no header line)",
         _write("empty.csv", b"")),
    Case("folder without split files", f"train {T} {NEW} data.path={{ws}}/docs", "has no train or validation or test",
         _write("docs/readme.txt", "hi")),
    Case("folder without a train split", f"train {T} {NEW} data.path={{ws}}/only", "the data has no train split",
         _frame("only/test.csv", make_reviews(20))),
    # Hugging Face datasets (hf:NAME, save_to_disk and Hub-style folders)
    Case("Hub dataset unreachable", f"train {T} {NEW} data.path=hf:nobody/nothing",
         "could not load hf:nobody/nothing"),
    Case("dataset split missing", f"train {T} {NEW} data.path={{ws}}/hf/saved data.text_column=review "
         "data.label_column=sentiment data.test_split=holdout", 'has no split "holdout"; its splits: train, test',
         lambda ws: write_datasets_folders(ws / "hf")),
    Case("dataset config missing", f"train {T} {NEW} data.path=hf:{{ws}}/hf/hub:tiny data.text_column=review "
         "data.label_column=sentiment", 'has no config "tiny"; configs: default, small',
         lambda ws: write_datasets_folders(ws / "hf")),
    Case("dataset column missing", f"train {T} {NEW} data.path={{ws}}/hf/saved", 'has no column "text"; columns: '
         "review, sentiment", lambda ws: write_datasets_folders(ws / "hf")),
    # columns
    Case("text column missing", f"{TRAIN} data.text_column=txt", 'no column "txt" (did you mean "text"?)'),
    Case("label column missing", f"{TRAIN} data.label_column=sentiment", 'no column "sentiment"'),
    # labels
    Case("one class only", f"train {T} {NEW} data.train={{ws}}/one.csv", "has one class only",
         _frame("one.csv", ONE_CLASS)),
    Case("test label unseen in train", f"train {T} {NEW} data.path={{ws}}/odd", "has labels the model does not know",
         lambda ws: (_frame("odd/train.csv", make_reviews(40))(ws),
                     _frame("odd/test.csv", make_reviews(4).assign(label="meh"))(ws))),
    # empty data
    Case("no row with text and label", f"train {T} {NEW} data.train={{ws}}/blank.csv", "no rows with both text",
         _frame("blank.csv", pd.DataFrame({"text": ["", " "], "label": ["pos", "neg"]}))),
    Case("too few rows for a validation split", f"train {T} {NEW} data.train={{ws}}/tiny.csv",
         "too few rows (1) to carve a validation split", _frame("tiny.csv", make_reviews(1))),
    # configs
    Case("unknown config key", f"{TRAIN} train.epoch=2", 'unknown config key "train.epoch" (did you mean'),
    Case("wrong value type", f"{TRAIN} train.epochs=many", '"train.epochs" has the wrong type'),
    Case("value outside its choices", f"{TRAIN} model.pooling=sum", '"model.pooling" is "sum"; choose one of'),
    Case("value out of range", f"{TRAIN} model.dropout=1.5", '"model.dropout" must be in [0, 1)'),
    Case("boolean that is not true or false", f"{TRAIN} train.tensorboard=2",
         '"train.tensorboard" is "2"; choose one of: true, false'),
    Case("boolean in a config file", f"train --config {{ws}}/flag.yaml {T} {NEW}",
         '"model.bidirectional" is "maybe"; choose one of: true, false',
         _write("flag.yaml", "model:\n  bidirectional: maybe\n")),
    Case("malformed YAML", f"train --config {{ws}}/bad.yaml {T} {NEW}", "is not valid YAML at line 3",
         _write("bad.yaml", "train:\n  epochs: 3\n    lr: 0.1\n")),
    Case("a key given twice in a config file", f"train --config {{ws}}/twice.yaml {T} {NEW}",
         'not valid YAML at line 3, column 1: key "train" is given twice', _write("twice.yaml", "train:\n  lr: 0.1\n"
                                                                                 "train:\n  epochs: 3\n")),
    Case("a config file that is not UTF-8", f"train --config {{ws}}/latin.yaml {T} {NEW}",
         "latin.yaml is not UTF-8 text (line 2)", _write("latin.yaml", b"train:\n  epochs: 3  # caf\xe9\n")),
    Case("a value of another shape in a config file", f"train --config {{ws}}/shape.yaml {T} {NEW}",
         "shape.yaml has a value that does not fit its key", _write("shape.yaml", "data:\n  label_map: [a, b]\n")),
    Case("config file missing", f"train --config {{ws}}/nope.yaml {NEW}", "config file not found"),
    Case("a folder given as the config file", f"train --config {{ws}}/data {NEW}", "is a folder: pass a YAML file"),
    Case("a section given a value", f"{TRAIN} train=3", '"train" is a section of the config, not a key'),
    Case("patience not positive", f"{TRAIN} train.patience=0", '"train.patience" must be > 0, got 0'),
    Case("config file not a mapping", f"train --config {{ws}}/list.yaml {NEW}", "must hold a mapping of keys",
         _write("list.yaml", "- 1\n- 2\n")),
    Case("override without =", f"{TRAIN} train.epochs", 'is not key=value'),
    Case("an override value that does not read", f"{TRAIN} data.label_map={{{{1:", 'override "data.label_map={1:" '
         "has a value that does not fit its key"),
    Case("a list for a mapping", f"{TRAIN} data.label_map=[a,b]", "has a value that does not fit its key"),
    Case("seed out of range", f"{TRAIN} train.seed=-1", '"train.seed" must be in [0, 2**32)'),
    Case("vocabulary size not positive", f"{TRAIN} vocab.max_size=0", '"vocab.max_size" must be > 0 or null'),
    Case("negative threads", f"{TRAIN} train.threads=-2", '"train.threads" must be >= 0 or null'),
    Case("negative weight decay", f"{TRAIN} train.weight_decay=-1", '"train.weight_decay" must be >= 0'),
    Case("an infinite learning rate", f"{TRAIN} train.lr=inf", '"train.lr" must be > 0, got inf'),
    Case("unknown device", f"{TRAIN} train.device=gpu", 'unknown device "gpu"'),
    Case("device this machine lacks", f"{TRAIN} train.device=cuda:7", 'device "cuda:7" is not available'),
    Case("resume and overwrite together", f"{TRAIN} resume=true overwrite=true", "contradict each other"),
    # run folders and checkpoints
    Case("run_dir holds a finished run", f"train {T} run_dir={{run}} data.path={{data}}",
         "already holds a finished run; pass overwrite=true"),
    Case("run_dir holds an interrupted run", f"train {T} run_dir={{run}} data.path={{data}}",
         "holds an interrupted run", _unfinished()),
    Case("resume with no checkpoints", f"{TRAIN} resume=true", "nothing to resume in"),
    Case("resume a finished run", "train resume={run}", "holds a finished run, there is nothing to resume"),
    Case("resume with another config", "train resume={run} train.lr=0.5", "was saved with another config (train.lr",
         _unfinished()),
    Case("resume on other data", "train resume={run} data.path={ws}/other", "the data are not those",
         lambda ws: (_unfinished()(ws), _frame("other/train.csv", make_reviews(60, seed=7))(ws))),
    Case("corrupt checkpoint", "train resume={run}", ".pt is corrupt",
         _unfinished(lambda p: p.write_bytes(p.read_bytes()[:200]))),
    Case("checkpoint that would run code", "train resume={run}", ".pt was refused: loading it would import and run",
         _unfinished(lambda p: torch.save({"x": _RunsCode(p.parent.parent.parent / "pwned")}, p))),
    # model folders
    Case("model folder missing", "evaluate {ws}/nomodel --data {data} --output {ws}/out.json",
         "model folder not found"),
    Case("not a model folder", "evaluate {data} --data {data} --output {ws}/out.json",
         "is not a textclf model folder"),
    Case("config.json corrupt", EVAL, "config.json is corrupt", _write("run/model/config.json", "{not json")),
    Case("weights corrupt", EVAL, "model.safetensors is corrupt", _write("run/model/model.safetensors", b"\0" * 9)),
    Case("weights missing", EVAL, "model.safetensors is missing",
         lambda ws: (ws / "run" / "model" / "model.safetensors").unlink()),
    Case("model from a newer textclf", EVAL, "upgrade textclf", _newer_format),
    # command-line arguments
    Case("evaluation labels the model never saw", "evaluate {run} --data {ws}/meh.csv --output {ws}/out.json",
         "labels the model does not know: meh", _frame("meh.csv", make_reviews(4).assign(label="meh"))),
    Case("split the data lack", f"{EVAL} --split validation", "has no validation split"),
    Case("a split of one file", "evaluate {run} --data {ws}/meh.csv --split train --output {ws}/out.json",
         "is one file, scored whole (drop --split)", _frame("meh.csv", make_reviews(4))),
    Case("evaluation column missing", "evaluate {run} --data {ws}/meh.csv --text-column review --output {ws}/out.json",
         'has no column "review"; columns: text, label (set --text-column)', _frame("meh.csv", make_reviews(4))),
    Case("batch size not positive", f"{EVAL} --batch-size 0", "--batch-size must be > 0"),
    Case("not a number", f"{EVAL} --batch-size many", "invalid int value: 'many'"),
    Case("threshold not a probability", "predict {run} good --threshold 7",
         "argument --threshold: must be a probability in [0, 1], got 7"),
    Case("an Excel workbook as the output", "predict {run} --input {data}/test.csv --output {ws}/out.xlsx",
         "textclf does not write Excel workbooks"),
    Case("an output path through a file", "evaluate {run} --data {data} --output {data}/test.csv/out.json",
         "test.csv is a file, not a folder; choose another path"),
    Case("a folder as a file output", "evaluate {run} --data {data} --output {data}",
         "is a folder; give a file name such as"),
    Case("a file as the plots folder", "evaluate {run} --data {data} --plots {data}/test.csv",
         "test.csv is a file; give a folder"),
    Case("run_dir is a file", f"train {T} run_dir={{data}}/test.csv data.path={{data}}",
         "test.csv is a file, not a folder; pass another run_dir"),
    Case("baseline C not a number", "baseline data.path={data} --C nan", "--C must be > 0"),
    Case("a JSON-lines row that is not an object", "predict {run} --input {ws}/rows.jsonl --output {ws}/o.csv",
         "holds a JSON record that is not an object of columns",
         _write("rows.jsonl", '{"text": "good", "label": "pos"}\n[1, 2]\n')),
    Case("an ONNX opset the graph does not export at", "export {run} --output {ws}/m.onnx --opset 9",
         "--opset must be in 12..20 (default 17), got 9"),
    Case("too many explanation steps", "explain {run} good --steps 100000", "--steps must be in 2..1000"),
    Case("a malformed file predicted into new folders", "predict {run} --input {ws}/bad.csv --output "
         "{ws}/new/deep/out.csv", "bad.csv is malformed", _write("bad.csv", 'text\n"unclosed\n')),
    Case("a tokenizer config.json does not know", EVAL, "config.json is incomplete or inconsistent",
         lambda ws: _edit_config(ws, '"kind": "regex"', '"kind": "wordpiece"')),
    Case("a sheet for a CSV file", "predict {run} --input {data}/test.csv --output "
         "{ws}/o.csv --sheet Reviews", "--sheet is for .xlsx files; "),
    Case("an id or text column as the labels", f"{TRAIN} data.label_column=text",
         "train rows: ids or texts, not labels"),
    Case("a cache folder that is a file", f"{TRAIN} data.cache_dir={{data}}/test.csv", "test.csv is a file; give a "
         "folder"),
    Case("unknown option", f"{TRAIN} --epochs 3", "unrecognized arguments: --epochs"),
    Case("missing argument", "evaluate {run} --output {ws}/out.json", "the following arguments are required: --data"),
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A dataset and a finished run with checkpoints, trained once for the module."""
    root = tmp_path_factory.mktemp("bad")
    make_reviews(60, seed=1).to_csv(root / "train.csv", index=False)
    make_reviews(20, seed=2).to_csv(root / "test.csv", index=False)
    train(load_config(None, [f"data.path={root}", f"run_dir={root / 'run'}", f"data.cache_dir={root / 'cache'}",
                             *TINY, "train.epochs=2"]))
    return root


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, finished, tmp_path, capsys):
    ws = tmp_path
    shutil.copytree(finished / "run", ws / "run")
    (ws / "data").mkdir()
    for name in ("train.csv", "test.csv"):
        shutil.copy(finished / name, ws / "data" / name)
    if case.setup:
        case.setup(ws)
    before = _snapshot(ws)
    capsys.readouterr()
    argv = case.argv.format(ws=ws, data=ws / "data", run=ws / "run").split()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0] and "Traceback" not in err, err
    assert case.message in errors[0], errors[0]
    assert _snapshot(ws) == before, "the failed command wrote or changed files"


def test_the_errors_page_lists_every_case():
    page = (REPO / "docs" / "errors.md").read_text(encoding="utf-8")
    table = page.split("\n## Bad input\n", 1)[1].split("\n\n#", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| input")]
    assert len(rows) - 1 == len(CASES)  # minus the |---| line
    for case in CASES:
        assert case.id in table and case.message.replace("|", "\\|") in table, case.id


def test_overwrite_true_replaces_a_finished_run(finished, tmp_path):
    shutil.copytree(finished / "run", tmp_path / "run")
    assert main(["train", *TINY, "train.epochs=1", f"data.path={finished}", f"run_dir={tmp_path / 'run'}",
                 "overwrite=true"]) == 0
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert [json.loads(row)["epoch"] for row in log] == [1]
