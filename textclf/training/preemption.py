"""Stopping cleanly on SIGTERM (a scheduler preempting the job): the loop checkpoints between steps and raises
`Preempted`, which the CLI turns into exit 0 and the command that resumes."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import torch

from . import distributed


class Preempted(Exception):
    """Training stopped on SIGTERM (a scheduler preempting the job) after writing `checkpoint`: resume from it."""

    def __init__(self, checkpoint: Path, step: int):
        super().__init__(f"stopped by SIGTERM at step {step}: checkpoint {checkpoint}")
        self.checkpoint, self.step = checkpoint, step


class Sigterm:
    """While installed, SIGTERM only sets a flag that the loop reads between steps: a checkpoint written from
    inside the handler could catch the optimizer half-way through a step."""

    def __init__(self) -> None:
        self.received, self.installed, self.previous = False, False, None
        # signal.signal works in the main thread only; a SIGTERM someone chose to ignore stays ignored
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) != signal.SIG_IGN:
            self.previous = signal.signal(signal.SIGTERM, self._handle)
            self.installed = True

    def _handle(self, signum, frame) -> None:
        self.received = True

    def restore(self) -> None:
        if self.installed:  # None: the previous handler was not set from Python; the default is the best guess
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self.previous is None else self.previous)

    def agreed(self, sync: bool) -> bool:
        """Whether to stop now. Under torchrun every process must stop at the same step (the checkpoint is a
        collective), so the flags are summed over processes, only where `sync` is true: a collective every
        step would stall the GPUs."""
        if not distributed.active():
            return self.received
        return sync and bool(distributed.all_sum(torch.tensor(int(self.received))).item())
