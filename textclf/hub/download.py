"""Models on the Hugging Face Hub: names (`hf:USER/NAME`) and downloads (snapshot_download); on the ground floor,
with the leaves: data and model loading read hf: names."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import TextclfError, first_line

HF_PREFIX = "hf:"  # marks a Hub name where a local path could stand: data.path=hf:NAME, Classifier.load("hf:U/N")
IGNORED = [".*", "*.onnx"]  # hidden temporaries; an ONNX export is not what Classifier.load reads
IMDB_HUB_NAME = "stanfordnlp/imdb"  # data.path=imdb downloads it; a model card names it as the dataset
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")  # the Hub's own rule, roughly


def check_repo_id(repo_id: str) -> str:
    if not _REPO_ID.match(repo_id) or len(repo_id) > 96 or ".." in repo_id or "--" in repo_id:
        raise TextclfError(f'"{repo_id}" is not a Hub repository name: write USER/NAME (e.g. alice/imdb-lstm)')
    return repo_id



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
        raise TextclfError(f"could not download {spec} ({type(e).__name__}: {first_line(e)}); check the name, "
                           "the network (HF_HUB_OFFLINE=1 uses a copy downloaded before) and HF_TOKEN for a "
                           "private model, or pass a local model folder") from None
    return Path(folder)
