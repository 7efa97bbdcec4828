"""`textclf push`: a model folder and its card to a Hugging Face Hub model repository (upload_folder)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import TextclfError, first_line
from .download import HF_PREFIX, check_repo_id


def push_model(path: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload a model folder, with its card, to the Hub model repository `repo_id` (created if needed).

    Needs the network and a token with write access (`hf auth login`, or HF_TOKEN). Everything that can be
    checked here (the name, the folder, the token) is checked before anything is written or sent.
    """
    import huggingface_hub

    from ..files import write_text
    from ..models.artifact import load_model
    from .card import CARD, for_repo, write_card

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
        raise TextclfError(f"could not push to {repo_id} ({type(e).__name__}: {first_line(e)}); check the network "
                           "and that your token may write to that repository") from None
    return f"https://huggingface.co/{repo_id}"
