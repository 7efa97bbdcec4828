"""Plots and TensorBoard: PNGs after training and from evaluate.py --plots; scalars in RUN_DIR/tb/."""

import sys

import numpy as np

from textclf.cli import evaluate_main, train_main
from textclf.reports.plots import plot_evaluation, plot_history

from ..conftest import TINY

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == PNG and path.stat().st_size > 5_000


def test_evaluation_plots_binary_multiclass_and_one_class(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    p1 = np.clip(y * 0.6 + rng.random(100) * 0.4, 0, 1)
    paths = plot_evaluation(y, np.stack([1 - p1, p1], 1), ["neg", "pos"], tmp_path, prefix="test_")
    assert [p.name for p in paths] == ["test_confusion_matrix.png", "test_roc.png", "test_pr.png"]
    assert all(_is_png(p) for p in paths)

    probs3 = rng.dirichlet(np.ones(3), 60)
    paths = plot_evaluation(rng.integers(0, 3, 60), probs3, ["a", "b", "c"], tmp_path / "multi")
    assert [p.name for p in paths] == ["confusion_matrix.png"]  # ROC/PR are drawn for binary models

    paths = plot_evaluation(np.ones(10, dtype=int), np.full((10, 2), 0.5), ["neg", "pos"], tmp_path / "one")
    assert [p.name for p in paths] == ["confusion_matrix.png"]  # no curve from one class


def test_labels_the_font_cannot_draw_are_drawn_in_one_that_can_or_numbered(tmp_path, caplog, monkeypatch):
    """The 9 Chinese product categories came out as rows of empty boxes, with 36 "Glyph missing" warnings."""
    import warnings

    from textclf.reports import plots

    monkeypatch.setattr(plots, "_warned", [])  # said once a process: perhaps already, by another test
    labels = ["书籍", "平板", "手机", "水果"]
    y, probs = np.array([0, 1, 2, 3, 1]), np.eye(4)[[0, 1, 2, 3, 2]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a glyph warning fails the test
        drawn, font = plots._drawable(labels)
        assert "Last Resort" not in str(font)  # matplotlib's own, which claims every character and draws boxes
        if not font:  # this machine has no font for them (CI's has none): numbered, said once
            assert drawn == ["0", "1", "2", "3"] and "no installed font draws the labels 书籍" in caplog.text
        plot_evaluation(y, probs, labels, tmp_path)
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 0
    covers = {ord(c) for label in labels for c in label}  # a font that has them: drawn by name in it
    monkeypatch.setattr(plots, "_charmap", lambda path: frozenset(covers) if "Serif" in path else frozenset())
    drawn, font = plots._drawable(labels)
    assert drawn == labels and font["font.sans-serif"][0] == "DejaVu Sans" and "Serif" in font["font.sans-serif"][1]


def test_history_plot(tmp_path):
    rows = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 0.5 + e / 10, "val_f1": 0.5,
             "val_roc_auc": None} for e in (1, 2, 3)]
    assert _is_png(plot_history(rows, tmp_path, best=2))
    assert _is_png(plot_history(rows, tmp_path / "ft", best=0))  # fine-tuning kept the model it started from


def test_training_writes_plots_and_tensorboard_scalars(tmp_path, tiny_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    assert train_main([f"data.path={tiny_dir}", f"run_dir={run_dir}", *TINY, "train.tensorboard=true"]) == 0
    names = {p.name for p in (run_dir / "plots").iterdir()}
    assert names == {"history.png"} | {f"{s}_{k}.png" for s in ("validation", "test")
                                        for k in ("confusion_matrix", "roc", "pr")}
    assert all(_is_png(p) for p in (run_dir / "plots").iterdir())

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/train", "loss/validation", "validation/accuracy", "final/test_accuracy"} <= tags
    assert [e.step for e in events.Scalars("loss/train")] == [1, 2, 3, 4]
    assert events.Scalars("final/test_accuracy")[0].value >= 0.9

    out = tmp_path / "eval_plots"
    assert evaluate_main([str(run_dir), "--data", str(tiny_dir), "--plots", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["test_confusion_matrix.png", "test_pr.png", "test_roc.png"]


def test_tensorboard_missing_is_one_line_error_before_anything_is_written(tmp_path, tiny_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what an install without it looks like
    run_dir = tmp_path / "run"
    code = train_main([f"data.path={tiny_dir}", f"run_dir={run_dir}", *TINY, "train.tensorboard=true"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and "textclf[tensorboard]" in err[-1]
    assert not run_dir.exists()


def test_tensorboard_flag_is_type_checked(tmp_path, tiny_dir, capsys):
    assert train_main([f"data.path={tiny_dir}", f"run_dir={tmp_path / 'r'}", "train.tensorboard=maybe"]) == 2
    assert '"train.tensorboard" is "maybe"; choose one of: true, false' in capsys.readouterr().err
