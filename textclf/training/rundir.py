"""The run folder: refusing to replace a finished or interrupted run, starting a new one, and checking that a
resumed run is the run its checkpoint belongs to."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import Config, flat, to_dict, to_yaml
from ..errors import TextclfError
from ..files import write_text
from . import checkpoint, distributed

if TYPE_CHECKING:
    from .prepare import Prepared

CONFIG = "config.yaml"  # the resolved config, written when the run starts
OUTPUTS = ("model", "metrics.json", "log.jsonl", "plots", "tb", checkpoint.FOLDER)  # what a run writes after it

# What a resumed run may change: where files are and how they are read (the data fingerprint checks that the
# rows, vocabulary and labels are the same), and how often it checkpoints. Anything else would make the
# continuation a different run from the one the checkpoint belongs to.
RESUME_MAY_CHANGE = frozenset({
    "run_dir", "overwrite", "resume", "data.path", "data.train", "data.validation", "data.test", "data.cache_dir",
    "data.unlabelled", "data.encoding", "data.delimiter", "data.sheet", "data.streaming", "init_from",
    "train.device", "train.threads", "train.split_directions", "train.checkpoint_every", "train.checkpoint_steps",
    "train.keep_last",
})


def check_run_dir(run_dir: Path, overwrite: bool, resume: str | None = None) -> Path | None:
    """Refuse to replace a finished or interrupted run unless asked; with `resume`, the checkpoint to load. A
    run_dir that is a file (or under one) is refused here, before the data are read or word2vec runs."""
    blocker = next((p for p in (run_dir, *run_dir.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise TextclfError(f"run_dir={run_dir}: {blocker} is a file, not a folder; pass another run_dir=DIR")
    finished = (run_dir / "metrics.json").exists()
    saved = checkpoint.existing(run_dir / checkpoint.FOLDER)
    if resume:
        if finished:
            raise TextclfError(f"{run_dir} holds a finished run, there is nothing to resume "
                               "(pass overwrite=true instead of resume to train it again)")
        if not saved:
            raise TextclfError(f"nothing to resume in {run_dir}: no {checkpoint.FOLDER}/ckpt-*.pt there "
                               "(check run_dir, or train without resume)")
        return saved[-1]
    if finished and not overwrite:
        raise TextclfError(f"{run_dir} already holds a finished run; pass overwrite=true or another run_dir=DIR")
    if saved and not overwrite:
        raise TextclfError(f"{run_dir} holds an interrupted run ({checkpoint.FOLDER}/); pass resume=true to "
                           "continue it, or overwrite=true to start again")
    return None


def holds_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a finished or interrupted run (what `check_run_dir` refuses to replace unasked)."""
    return (run_dir / "metrics.json").exists() or bool(checkpoint.existing(run_dir / checkpoint.FOLDER))


def data_fingerprint(data: Prepared) -> str:
    """A hash of what the model sees (vocabulary, labels, every split's ids): a resume checks the data."""
    h = hashlib.sha256(data.vocab.to_json().encode("utf-8"))
    h.update(json.dumps(data.labels.names).encode("utf-8"))
    for name in sorted(data.datasets):
        ds = data.datasets[name]
        for part in (name.encode("utf-8"), ds.lengths, np.asarray(ds.labels, dtype=np.int64)):
            h.update(part if isinstance(part, bytes) else part.tobytes())
        if len(ds.seqs):
            h.update(np.concatenate(ds.seqs).astype(np.int64).tobytes())
    return h.hexdigest()


def write_config(run_dir: Path, cfg: Config) -> Path:
    """RUN_DIR/config.yaml: the resolved config, which `resume=RUN_DIR` and `--config` read back. Without
    `resume` and `overwrite`, which say how this command treated the folder, not what was trained: read back, they
    would refuse the resume the run's own message prints, or let `--config` replace a finished run unasked."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / CONFIG, to_yaml(replace(cfg, resume=None, overwrite=False)))
    return run_dir / CONFIG


def start_run_dir(run_dir: Path, cfg: Config, resume: dict | None) -> None:
    """Clear a new run's folder of an old run's outputs (or cut a resumed run's log back), write config.yaml."""
    for stale in OUTPUTS if resume is None else ():
        path = run_dir / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    write_config(run_dir, cfg)
    if resume is not None:  # the log as it stood at the checkpoint: later rows (or a torn last line) go
        write_text(run_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in json.loads(resume["history"])))


def run_checkpoints(cfg: Config, fingerprint: str, unlabelled: str | None = None) -> checkpoint.Checkpoints:
    """RUN_DIR/checkpoints/, as train.checkpoint_* say; each checkpoint carries the config and data fingerprint
    that `check_resumable` compares, and the key of the unlabelled texts the run read that `check_unlabelled`
    compares. Only rank 0 writes them."""
    return checkpoint.Checkpoints(Path(cfg.run_dir) / checkpoint.FOLDER, cfg.train.checkpoint_every,
                                  cfg.train.checkpoint_steps, cfg.train.keep_last,
                                  meta={"config": json.dumps(to_dict(cfg)), "fingerprint": fingerprint,
                                        "world_size": distributed.world_size(), "unlabelled": unlabelled},
                                  writer=distributed.is_main())


def check_unlabelled(ckpt: dict, key: str | None) -> None:
    """That a resumed run reads the unlabelled texts the run it continues read (their tokens' cache key): the
    shortcut is checked on a sample of them, so that the resumed run calibrates as the uninterrupted one would.
    Checkpoints written before textclf recorded them are not checked."""
    if "unlabelled" in ckpt and ckpt["unlabelled"] != key:
        raise TextclfError(f"the unlabelled texts are not those the run of {ckpt['path']} read (data.unlabelled, or "
                           "the data's unlabelled split); resume with the same ones or train in a new run_dir")


def load_resume(path: Path | None, cfg: Config) -> dict | None:
    """The checkpoint to continue from (None for a new run), after checking that it was saved with this config
    (`check_resumable`; the data once they are read): before reading them, so that `resume=true` given another
    run's keys is told to resume with the run's own, not sent to read or download the data those keys name."""
    if path is None:
        return None
    ckpt = checkpoint.load(path)
    check_resumable(ckpt, cfg)
    return ckpt


def check_resumable(ckpt: dict, cfg: Config, fingerprint: str | None = None) -> None:
    """That `ckpt` belongs to this run: its config (but for `RESUME_MAY_CHANGE`), its number of processes, and, given
    the data's `fingerprint`, its data."""
    # keys added to textclf since the checkpoint was written take their defaults
    then = {**flat(to_dict(Config())), **flat(json.loads(ckpt["config"]))}
    now = flat(to_dict(cfg))
    changed = [k for k in sorted(then.keys() | now.keys()) if k not in RESUME_MAY_CHANGE and then.get(k) != now.get(k)]
    if changed:
        shown = ", ".join(f"{k} {then.get(k)!r} → {now.get(k)!r}" for k in changed[:3])
        raise TextclfError(f"{ckpt['path']} was saved with another config ({shown}); resume with the run's own "
                           f"(python train.py resume={cfg.run_dir}) or train in a new run_dir")
    saved_world, world = ckpt.get("world_size", 1), distributed.world_size()
    if saved_world != world:  # the batches, their positions and the schedule's length all depend on it
        how = "python train.py" if saved_world == 1 else f"torchrun --nproc_per_node={saved_world} train.py"
        raise TextclfError(f"{ckpt['path']} was written by a run in {saved_world} process(es), this one has {world}; "
                           f"resume it with as many ({how} resume=...)")
    if fingerprint is not None and ckpt["fingerprint"] != fingerprint:
        raise TextclfError(f"the data are not those {ckpt['path']} was trained on (rows, vocabulary or labels "
                           "changed); resume with the same data or train in a new run_dir")
