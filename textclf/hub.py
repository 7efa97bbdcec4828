"""Models on the Hugging Face Hub: load `hf:USER/NAME` (snapshot_download) and `textclf push` (upload_folder)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import TextclfError

HF_PREFIX = "hf:"  # marks a Hub name where a local path could stand: data.path=hf:NAME, Classifier.load("hf:U/N")
IGNORED = [".*", "*.onnx"]  # hidden temporaries; an ONNX export is not what Classifier.load reads
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")  # the Hub's own rule, roughly


def check_repo_id(repo_id: str) -> str:
    if not _REPO_ID.match(repo_id) or len(repo_id) > 96 or ".." in repo_id or "--" in repo_id:
        raise TextclfError(f'"{repo_id}" is not a Hub repository name: write USER/NAME (e.g. alice/imdb-lstm)')
    return repo_id


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def download_model(spec: str) -> Path:
    """`hf:USER/NAME` or `hf:USER/NAME@REVISION` → the local folder huggingface_hub keeps it in.

    Files already downloaded are not fetched again; with HF_HUB_OFFLINE=1 the cached copy is used.
    """
    repo_id, _, revision = spec[len(HF_PREFIX):].partition("@")
    check_repo_id(repo_id)
    from huggingface_hub import snapshot_download  # lazy: only hf: models need it

    try:
        folder = snapshot_download(repo_id, revision=revision or None, ignore_patterns=IGNORED,
                                   library_name="textclf")
    except Exception as e:  # not found, private, offline, a proxy: huggingface_hub raises a type for each
        raise TextclfError(f"could not download {spec} ({type(e).__name__}: {_first_line(e)}); check the name, "
                           "the network (HF_HUB_OFFLINE=1 uses a copy downloaded before) and HF_TOKEN for a "
                           "private model, or pass a local model folder") from None
    return Path(folder)


def push_model(path: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload a model folder, with its card, to the Hub model repository `repo_id` (created if needed).

    Needs the network and a token with write access (`hf auth login`, or HF_TOKEN). Everything that can be
    checked here (the name, the folder, the token) is checked before anything is written or sent.
    """
    import huggingface_hub

    from .files import write_text
    from .models.artifact import load_model
    from .models.card import CARD, for_repo, write_card

    repo_id = check_repo_id(repo_id.removeprefix(HF_PREFIX))
    if str(path).startswith(HF_PREFIX):
        raise TextclfError(f"{path} is on the Hub already: push a local run or model folder")
    # a folder that is not a whole textclf model stops here, not half-way up the Hub
    folder = load_model(path, "cpu").folder
    if huggingface_hub.get_token() is None:
        raise TextclfError("pushing needs a Hugging Face token with write access: run `hf auth login`, or set HF_TOKEN")
    if not (folder / CARD).is_file():  # a model saved before textclf wrote cards: its run's figures, when there
        metrics = folder.parent / "metrics.json"
        write_card(folder, json.loads(metrics.read_text(encoding="utf-8")) if metrics.is_file() else None)
    write_text(folder / CARD, for_repo((folder / CARD).read_text(encoding="utf-8"), repo_id))
    api = huggingface_hub.HfApi(library_name="textclf")
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), ignore_patterns=[".*"],
                          commit_message=f"textclf model {folder.resolve().parent.name}/{folder.name}")
    except Exception as e:  # offline, no write access, a name taken by another type of repo
        raise TextclfError(f"could not push to {repo_id} ({type(e).__name__}: {_first_line(e)}); check the network "
                           "and that your token may write to that repository") from None
    return f"https://huggingface.co/{repo_id}"
