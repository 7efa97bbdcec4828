"""Language-model pretraining of the classifier's encoder on unlabelled text, ELMo-style.

The BiLSTM's forward direction learns to predict the next token and its backward direction the
previous one, through one adaptive softmax shared by both. The embedding and LSTM weights then start
the classifier; the LM head is thrown away. Cached by corpus, vocabulary, architecture and settings,
like the word vectors, so a second run (or a resume) does not pay for it again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..device import autocast, to_device
from ..errors import TrainingDiverged
from ..files import atomic_open, default_cache_dir
from ..models.lstm import Dropout, LSTMClassifier
from ..text.batching import TextDataset, make_loader
from .optim import grad_scaler, make_optimizer, make_scheduler, optimizer_step, sync_due

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def _cutoffs(vocab_size: int) -> list[int]:
    """Adaptive-softmax clusters: the frequent head words, then two tails (vocab ids are by frequency)."""
    cuts = [c for c in (2000, 10000) if c < vocab_size - 1]
    return cuts or [vocab_size // 2]


class BiLM(nn.Module):
    """Next-token (forward direction) and previous-token (backward direction) prediction from the LSTM states."""

    def __init__(self, encoder: LSTMClassifier, dropout: float = 0.1, sample: float = 1.0):
        super().__init__()
        self.encoder = encoder
        self.sample = sample  # while training, predict this random fraction of the positions (the softmax dominates)
        lstm = encoder.lstm
        self.hidden = lstm.hidden_size
        self.bidirectional = lstm.bidirectional
        self.dropout = Dropout(dropout)
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(lstm.hidden_size, encoder.embedding.num_embeddings,
                                                     _cutoffs(encoder.embedding.num_embeddings), div_value=4.0)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Mean negative log-likelihood over all predicted positions, and how many there were."""
        out, _, lengths = self.encoder.states(tokens, lengths)  # lengths on the tokens' device
        out = self.dropout(out)
        steps = torch.arange(tokens.size(1) - 1, device=tokens.device).unsqueeze(0)
        has_next = steps + 1 < lengths.unsqueeze(1)  # state t predicts token t+1 (forward); t+1 predicts t (backward)
        if self.training and self.sample < 1:
            has_next &= torch.rand(has_next.shape, device=has_next.device) < self.sample
        b, t = has_next.nonzero(as_tuple=True)  # the step's one host sync (how many positions), not one per mask
        states = [out[b, t, : self.hidden]]
        targets = [tokens[b, t + 1]]
        if self.bidirectional:
            states.append(out[b, t + 1, self.hidden :])
            targets.append(tokens[b, t])
        n = int(targets[0].numel()) * len(targets)
        return self.softmax(torch.cat(states), torch.cat(targets)).loss, n


def _finite(total: torch.Tensor, count: int, epoch: int, step: int) -> float:
    """The epoch's mean loss per predicted token so far (one host sync); TrainingDiverged when it is NaN/inf."""
    nll = total.item() / max(count, 1)
    if not np.isfinite(nll):
        raise TrainingDiverged(f"the language-model loss became {nll} by step {step} of epoch {epoch}; "
                               "try a lower pretrain.lm_lr")
    return nll


def cache_path(corpus_keys: list[str], vocab_itos: list[str], arch: dict, settings: dict,
               cache_dir: str | Path | None) -> Path | None:
    if not all(corpus_keys):
        return None
    key = hashlib.sha256(repr((CACHE_VERSION, corpus_keys, vocab_itos, sorted(arch.items()), sorted(settings.items())))
                         .encode("utf-8", errors="surrogatepass")).hexdigest()[:32]
    return Path(cache_dir or default_cache_dir()) / f"lm-{key}.pt"


@dataclass
class LMSettings:
    """How the language model trains: pretrain.lm_epochs, lm_lr and lm_sample, with the classifier's batch size,
    seed and gradient clipping."""

    epochs: int
    batch_size: int
    lr: float
    seed: int
    sample: float = 1.0  # the share of positions predicted (`BiLM.sample`)
    clip: float = 1.0  # the gradients' norm, 0: not clipped


def pretrain_lm(model: LSTMClassifier, seqs: list[np.ndarray], settings: LMSettings, device: torch.device,
                cache: Path | None = None, dtype: torch.dtype | None = None) -> dict:
    """Train `model`'s embedding and LSTM as a bidirectional LM on `seqs` (token-id arrays), in place.

    Returns {"loss": last epoch's mean NLL per token, "perplexity", "seconds", "tokens"}; from the
    cache (when given and present) it only loads the weights.
    """
    if cache is not None and cache.is_file():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        model.embedding.load_state_dict(saved["embedding"])
        model.lstm.load_state_dict(saved["lstm"])
        log.info("language model: loaded from the cache (%s)", cache.name)
        return saved["stats"]
    epochs, seed = settings.epochs, settings.seed
    torch.manual_seed(seed)
    lm = BiLM(model, sample=settings.sample).to(device)
    dataset = TextDataset(seqs, np.zeros(len(seqs), dtype=np.int64))
    loader = make_loader(dataset, settings.batch_size, shuffle=True, seed=seed, pin_memory=device.type == "cuda")
    opt = make_optimizer(lm, settings.lr, weight_decay=0.0)
    sched = make_scheduler(opt, "cosine", epochs * len(loader), 0.02)
    scaler = grad_scaler(device, dtype)
    start, tokens = time.perf_counter(), 0
    lm.train()
    for epoch in range(1, epochs + 1):
        loader.batch_sampler.set_epoch(epoch)
        total = torch.zeros((), device=device)
        count = 0
        bar = tqdm(loader, desc=f"LM {epoch}/{epochs}", unit=" batch", leave=False, disable=None)
        for i, batch in enumerate(bar, 1):
            x, _ = to_device(batch, device)
            with autocast(device, dtype):
                loss, n = lm(x, batch.lengths)
            opt.zero_grad(set_to_none=True)
            optimizer_step(loss, opt, sched, scaler, lm, settings.clip)
            total += loss.detach().float() * n  # summed on the device: a host sync only every optim.SYNC_EVERY steps
            count += n
            tokens += int(batch.lengths.sum())
            if sync_due(i, device):
                nll = _finite(total, count, epoch, i)
                if not bar.disable:
                    bar.set_postfix(ppl=f"{np.exp(nll):.1f}")
        nll = _finite(total, count, epoch, len(loader))
        log.info("LM epoch %d/%d: perplexity %.1f, %.0f tokens/s", epoch, epochs, np.exp(nll),
                 tokens / (time.perf_counter() - start))
    seconds = time.perf_counter() - start
    stats = {"loss": round(nll, 4), "perplexity": round(float(np.exp(nll)), 1), "seconds": round(seconds, 1),
             "tokens": tokens}
    if cache is not None:
        with atomic_open(cache) as f:
            torch.save({"embedding": model.embedding.state_dict(), "lstm": model.lstm.state_dict(), "stats": stats}, f)
    return stats
