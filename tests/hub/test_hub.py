"""Models on the Hub, tested without it: snapshot_download and HfApi are replaced by local stand-ins."""

import json
import shutil

import huggingface_hub
import pytest

from textclf import Classifier
from textclf.cli import main
from textclf.errors import TextclfError
from textclf.reports.evaluation import evaluate

from ..conftest import make_reviews


@pytest.fixture
def hub_copy(tiny_run, tmp_path, monkeypatch):
    """snapshot_download answers with a copy of the tiny model, as the Hub would after a push."""
    calls = []

    def snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        folder = tmp_path / "hub-cache" / repo_id.replace("/", "--")
        if not folder.exists():
            shutil.copytree(tiny_run / "model", folder)
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def test_classifier_and_evaluate_load_hf_names(tiny_run, hub_copy, tmp_path):
    texts = ["a wonderful, moving film", "dull and boring"]
    local, remote = Classifier.load(tiny_run, "cpu"), Classifier.load("hf:alice/tiny@v1", "cpu")
    assert remote.labels == local.labels and remote.predict(texts) == local.predict(texts)
    assert hub_copy[0][0] == "alice/tiny" and hub_copy[0][1]["revision"] == "v1"
    assert "*.onnx" in hub_copy[0][1]["ignore_patterns"]
    make_reviews(20).to_csv(tmp_path / "t.csv", index=False)
    assert evaluate("hf:alice/tiny", str(tmp_path / "t.csv"))["model"] == "hf:alice/tiny"


def test_a_hub_model_that_cannot_be_had_is_one_line(capsys):
    with pytest.raises(TextclfError, match=r"could not download hf:alice/nothing \(LocalEntryNotFoundError"):
        Classifier.load("hf:alice/nothing")  # HF_HUB_OFFLINE=1 in the tests: nothing cached, no network
    assert main(["predict", "hf:not a repo", "text"]) == 2
    assert '"not a repo" is not a Hub repository name' in capsys.readouterr().err


def _snapshot(folder):
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize(("args", "message"), [
    (["{run}", "not-a-repo"], '"not-a-repo" is not a Hub repository name: write USER/NAME'),
    (["{ws}/nomodel", "alice/tiny"], "model folder not found"),
    (["{run}", "alice/tiny"], "pushing needs a Hugging Face token"),  # none in the tests' HF_HOME or env
    (["hf:alice/tiny", "bob/tiny"], "is on the Hub already"),
])
def test_push_checks_its_arguments_before_anything_is_sent(tiny_run, tmp_path, capsys, args, message):
    before = _snapshot(tiny_run)
    argv = ["push", *[a.format(run=tiny_run, ws=tmp_path) for a in args]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert _snapshot(tiny_run) == before


def test_push_uploads_the_model_folder_with_its_card(tiny_run, tmp_path, monkeypatch, capsys):
    sent = []

    class FakeApi:
        def __init__(self, **kwargs):
            pass

        def create_repo(self, repo_id, **kwargs):
            sent.append(("create", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            sent.append(("upload", kwargs["repo_id"], kwargs))
            sent.append(("files", sorted(p.name for p in (tmp_path / "run" / "model").iterdir())))

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    shutil.copytree(tiny_run, tmp_path / "run")
    (tmp_path / "run" / "model" / "README.md").unlink()  # a run from before textclf wrote cards
    assert main(["push", str(tmp_path / "run"), "alice/tiny", "--private"]) == 0
    assert "to https://huggingface.co/alice/tiny" in capsys.readouterr().out
    assert sent[0] == ("create", "alice/tiny", {"private": True, "exist_ok": True})
    assert sent[1][2]["folder_path"] == str(tmp_path / "run" / "model")
    assert "README.md" in sent[2][1] and "model.safetensors" in sent[2][1]
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 'Classifier.load("hf:alice/tiny")' in card and "USER/NAME" not in card
    assert f"value: {metrics['test']['accuracy']}" in card  # written from the run's metrics.json
