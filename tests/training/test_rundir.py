"""The run folder: what a new run refuses to replace, and which checkpoints a resume accepts."""

import json

import pytest

from textclf.config import load_config, to_dict
from textclf.errors import TextclfError
from textclf.training.rundir import check_resumable, check_run_dir, check_unlabelled, write_config


def _checkpoint(config: dict, fingerprint: str = "f") -> dict:
    return {"config": json.dumps(config), "fingerprint": fingerprint, "path": "run/checkpoints/ckpt-000000002.pt"}


def test_a_resume_takes_the_defaults_of_keys_newer_than_its_checkpoint(tmp_path):
    cfg = load_config(None, [f"run_dir={tmp_path}"])
    older = to_dict(cfg)
    del older["model"]["type"]  # checkpoints written before model.type existed
    check_resumable(_checkpoint(older), cfg, "f")
    older["train"]["lr"] = 0.1
    with pytest.raises(TextclfError, match=r"saved with another config \(train.lr 0.1 → 0.002\)"):
        check_resumable(_checkpoint(older), cfg, "f")


def test_a_resume_may_move_files_but_not_change_the_data(tmp_path):
    cfg = load_config(None, [f"run_dir={tmp_path}"])
    moved = to_dict(load_config(None, [f"run_dir={tmp_path / 'elsewhere'}", "data.cache_dir=/tmp/c"]))
    check_resumable(_checkpoint(moved), cfg, "f")
    with pytest.raises(TextclfError, match="the data are not those"):
        check_resumable(_checkpoint(moved, "another"), cfg, "f")


def test_new_runs_refuse_finished_and_interrupted_ones(tmp_path):
    assert check_run_dir(tmp_path / "new", overwrite=False) is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "ckpt-000000004.pt").write_bytes(b"")
    with pytest.raises(TextclfError, match="holds an interrupted run"):
        check_run_dir(tmp_path, overwrite=False)
    assert check_run_dir(tmp_path, overwrite=False, resume="true").name == "ckpt-000000004.pt"
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(TextclfError, match="already holds a finished run"):
        check_run_dir(tmp_path, overwrite=False)
    assert check_run_dir(tmp_path, overwrite=True) is None


def test_config_yaml_reads_back_as_the_same_config(tmp_path):
    cfg = load_config(None, [f"run_dir={tmp_path}", "train.epochs=2"])
    assert load_config(write_config(tmp_path, cfg)) == cfg


def test_config_yaml_says_neither_overwrite_nor_resume(tmp_path):
    """A run started with overwrite=true and stopped prints `resume with: python train.py resume=RUN`, which reads
    RUN/config.yaml back: saved with overwrite=true it refused that resume ("contradict each other"), and as
    `--config` it replaced the finished run unasked."""
    cfg = load_config(None, [f"run_dir={tmp_path}", "overwrite=true"])
    saved = write_config(tmp_path, cfg)
    assert load_config(saved).overwrite is False
    assert load_config(saved, [f"resume={tmp_path}"]).resume


def test_a_resume_may_read_files_from_elsewhere_and_otherwise(tmp_path):
    """Where files are and how they are read may change on a resume: the data fingerprint guards the rows
    (issue 23: moved data.unlabelled, init_from, encodings and sheets were refused)."""
    cfg = load_config(None, [f"run_dir={tmp_path}"])
    for key, value in (("data.unlabelled", "/elsewhere/unsup.csv"), ("init_from", "/elsewhere/runs/imdb"),
                       ("data.encoding", "cp1252"), ("data.delimiter", "semicolon"), ("data.sheet", "Reviews"),
                       ("data.streaming", "true")):
        then = to_dict(load_config(None, [f"run_dir={tmp_path}", f"{key}={value}"]))
        check_resumable(_checkpoint(then), cfg, "f")


def test_a_resume_reads_the_unlabelled_texts_the_run_read():
    """The shortcut is checked on a sample of the unlabelled texts: a resume reading others would calibrate otherwise
    than the uninterrupted run. Checkpoints from before they were recorded are not checked."""
    ckpt = {"path": "runs/x/checkpoints/step-4.pt", "unlabelled": "abc"}
    check_unlabelled(ckpt, "abc")
    check_unlabelled({"path": ckpt["path"]}, "def")
    check_unlabelled({**ckpt, "unlabelled": None}, None)
    for key in ("def", None):
        with pytest.raises(TextclfError, match="the unlabelled texts are not those the run of runs/x/checkpoints/"
                                               "step-4.pt read .*resume with the same ones"):
            check_unlabelled(ckpt, key)
