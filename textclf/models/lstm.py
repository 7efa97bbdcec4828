"""The classifier: embedding → LSTM over the real tokens only → pooling → dropout → linear.

What the rest of textclf asks of a model, so that a second architecture is a file of its own that meets it,
plus one branch in `build_model`:

    Model(args)             built from a small dataclass of plain values (here `ModelArgs`); the model keeps it
                            as `.args`; `.arch` is its dict (config.json's "model") and `.kind` its name
                            (config.json's "type")
    forward(tokens, lengths, delta=None) → logits
                            tokens [B, T] int64, right-padded with 0; lengths [B] int64 on the CPU (0 for an
                            empty text); delta [B, T, E] or None, added to the embedded tokens (adversarial
                            training); logits [B] for two classes (the log-odds of class 1), else [B, C]
    .probabilities(logits)  → [B, C] (the other half of `device.loss_fn`, which trains those logits)
    .features(tokens, lengths) → [B, F], what `.head` (an nn.Linear) reads (fine-tuning's linear probe)
    .embedding              the nn.Embedding (word2vec rows, adversarial scale, explanations, freezing)
    .num_classes
    .lstm_impl              "auto" | "packed" | "padded" (train.lstm_impl); a model without variants ignores it

Language-model pretraining (lm.py: `.lstm`, `.states`), holding the encoder fixed while fine-tuning
(finetune.freezer), layer-wise learning rates (optim.make_optimizer) and explanations on CUDA also read `.lstm`:
an architecture without one does without those features.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

POOLINGS = ("last", "max", "mean", "max_mean")
LSTM_IMPLS = ("auto", "packed", "padded")  # how the LSTM runs (train.lstm_impl; `LSTMClassifier._impl`)
TYPES = ("lstm",)  # what `build_model` builds (model.type; config.json's "type")


# Dropout on the CPU draws its mask from 16 random bits an element, four to each 64-bit draw of the generator:
# `bernoulli_` (nn.Dropout's way) draws a float an element, and the embedded tokens' mask was the costliest
# part of a CPU training step outside the LSTM's kernels (benchmarks/README.md). The rate is taken to the
# nearest 1/65536 and the kept values scaled by its exact inverse, so the output's expectation is the input, as
# with nn.Dropout. CUDA keeps PyTorch's kernel.
_BITS = 65536


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`F.dropout(x, p, training)`, with the mask drawn as above on the CPU (from torch's default generator)."""
    if not training or p <= 0 or x.device.type != "cpu" or p >= 1:
        return F.dropout(x, p, training)
    n, dropped = x.numel(), round(p * _BITS)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2**63, 2**63 - 1).view(torch.int16)[:n]
    keep = (bits.view(x.shape) >= dropped - _BITS // 2).to(x.dtype).mul_(_BITS / (_BITS - dropped))
    return x * keep


class Dropout(nn.Dropout):
    """nn.Dropout through `dropout`: the same module (no state; saved models load either way), cheaper on the CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training) if not self.inplace else super().forward(x)


class LSTM(nn.LSTM):
    """nn.LSTM whose bfloat16 weights on a GPU are flattened into one block, as torch does for the other dtypes.

    cuDNN runs an LSTM from one contiguous block of weights, and torch re-flattens them after every `.to`; but
    `flatten_parameters` skips bfloat16 (`cudnn.is_acceptable` knows half, float and double) though cuDNN runs a
    bfloat16 LSTM. So a model cast to bfloat16 for prediction on a GPU (`load_model`) had its weights copied into
    a block at every call, with a warning that the copies may "greatly increase memory usage". Same parameters
    and state dict as nn.LSTM; on the CPU flattening is a no-op either way.
    """

    def flatten_parameters(self) -> None:
        accepted = torch.backends.cudnn.CUDNN_TENSOR_DTYPES
        bf16 = any(isinstance(w, torch.Tensor) and w.dtype == torch.bfloat16 for w in self._flat_weights)
        if not bf16 or torch.bfloat16 in accepted:
            return super().flatten_parameters()
        accepted.add(torch.bfloat16)  # for this call only
        try:
            return super().flatten_parameters()
        finally:
            accepted.discard(torch.bfloat16)


def flip_index(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[B, T] index that reverses each row's first `lengths[b]` steps and leaves padding in place."""
    t = torch.arange(max_len, device=lengths.device)
    lens = lengths.unsqueeze(1)
    return torch.where(t < lens, lens - 1 - t, t)


def flip_rows(flip: torch.Tensor) -> torch.Tensor:
    """`flip_index` [B, T] as row numbers of the [B * T, F] view of a batch (what `_Flip` reads)."""
    B, T = flip.shape
    return (flip + torch.arange(B, device=flip.device).unsqueeze(1) * T).reshape(-1)


def _gather_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """x [B, T, F] with its B * T time steps in the order `rows` gives (`flip_rows`)."""
    return x.reshape(-1, x.size(2)).index_select(0, rows).view(x.shape)


class _Flip(torch.autograd.Function):
    """x [B, T, F] with each row's first `lengths[b]` steps reversed (`rows`: `flip_rows`). The flip is its own
    inverse, so its backward flips the gradient the same way: one row gather each way, the same numbers as a
    `gather` along time, whose forward took ~8x as long on the CPU and whose backward is a scatter-add."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        return _gather_rows(x, rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (rows,) = ctx.saved_tensors
        return _gather_rows(grad, rows), None


def _flip_time(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        return _Flip.apply(x, rows)
    return _gather_rows(x, rows)  # no graph (inference, export): no Function


def lstm_packed(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference semantics (and the cuDNN path): run on a PackedSequence.

    A batch sorted longest-first (as loaders for a GPU make them) packs as it is. Any other order is sorted
    inside pack_padded_sequence, whose index tensors travel to the GPU and back: host syncs every call.
    Returns outputs [B, T, D*H] (zero at padding) and the last layer's final states [B, D*H].
    """
    lengths = lengths.cpu()
    longest_first = bool((lengths[:-1] >= lengths[1:]).all())  # on the CPU: no sync
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=longest_first)
    out, (h_n, _) = lstm(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
    dirs = 2 if lstm.bidirectional else 1
    return out, torch.cat(list(h_n[-dirs:]), dim=1)


def _weights(lstm: nn.LSTM, layer: int, reverse: bool) -> list[torch.Tensor]:
    suffix = "_reverse" if reverse else ""
    return [getattr(lstm, f"{w}_l{layer}{suffix}") for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


def _direction(weights: Sequence[torch.Tensor], x: torch.Tensor, train: bool) -> torch.Tensor:
    """One direction of one layer as a forward pass over batch-first `x` (padded; oneDNN on CPU)."""
    h0 = x.new_zeros(1, x.size(0), weights[1].size(1))
    return torch.lstm(x, (h0, h0), list(weights), True, 1, 0.0, train, False, True)[0]


# The two directions of a BiLSTM on two threads at once, one core each (`split_directions`). On the CPU one
# direction's time steps are small matrix products; split over cores, every step ends at a barrier where
# OpenMP's threads either spin (burning a core that a second process needs) or sleep and are woken (slow
# on a VM). Two independent directions need no barrier until the layer ends.
_pool: ThreadPoolExecutor | None = None


def split_directions(threads: int, split: bool = True) -> int:
    """Compute with `threads` cores on the CPU: with `split` (and 2+ cores) a BiLSTM's two directions run side
    by side, each with half of them as intra-op threads; else one after the other with all of them (PyTorch's
    way, and the default). Sets PyTorch's intra-op threads (process-wide) and returns them."""
    global _pool
    if _pool is not None:
        _pool.shutdown()
        _pool = None
    split = split and threads >= 2
    per = max(1, threads // 2) if split else max(1, threads)
    if split:  # the helper's own OpenMP setting: a new thread starts from the default, all cores
        _pool = ThreadPoolExecutor(1, "textclf-lstm", initializer=torch.set_num_threads, initargs=(per,))
    torch.set_num_threads(per)
    return per


def directions_split() -> bool:
    return _pool is not None


def _here(fn: Callable) -> Callable:
    """`fn`, to run on another thread as it would on this one: grad mode, inference mode and autocast are
    per thread."""
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    amp, dtype = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    def run():
        with torch.inference_mode(inference), torch.set_grad_enabled(grad), \
                torch.autocast("cpu", dtype=dtype, enabled=amp):
            return fn()
    return run


def _side_by_side(first: Callable, second: Callable) -> tuple:
    """first() here and second() on the helper thread, at once; the helper's exception is raised."""
    pending = _pool.submit(_here(second))
    try:
        a = first()
    finally:
        b = pending.result()
    return a, b


class _Directions(torch.autograd.Function):
    """Both directions of one layer, forward and backward, each on its own thread. Each direction is a small
    graph of its own (from detached inputs), so its backward can run on the thread that takes it."""

    @staticmethod
    def forward(ctx, runs: tuple[Callable, Callable], x: torch.Tensor, *weights: torch.Tensor):
        def graph(run: Callable, w: Sequence[torch.Tensor]):
            with torch.enable_grad():
                leaves = [x.detach().requires_grad_(), *(t.detach().requires_grad_() for t in w)]
                return leaves, run(leaves[0], leaves[1:])

        ctx.graphs = _side_by_side(lambda: graph(runs[0], weights[:4]), lambda: graph(runs[1], weights[4:]))
        return tuple(out.detach() for _, out in ctx.graphs)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        def grad(index: int):
            leaves, out = ctx.graphs[index]
            g = grads[index] if grads[index] is not None else torch.zeros_like(out)
            return torch.autograd.grad(out, leaves, g)

        fwd, rev = _side_by_side(lambda: grad(0), lambda: grad(1))
        ctx.graphs = None  # the two small graphs hold the LSTM's workspace: free it now
        return None, fwd[0] + rev[0], *fwd[1:], *rev[1:]


def _both_directions(lstm: nn.LSTM, layer: int, x: torch.Tensor, flip: torch.Tensor, reorder: bool
                     ) -> list[torch.Tensor]:
    """A bidirectional layer's two outputs; the reverse one read from `x` reversed within each length, and put
    back in order when `reorder`."""
    def forward(x: torch.Tensor, w: Sequence[torch.Tensor]) -> torch.Tensor:
        return _direction(w, x, lstm.training)

    def reverse(x: torch.Tensor, w: Sequence[torch.Tensor]) -> torch.Tensor:
        out = _direction(w, _flip_time(x, flip), lstm.training)
        return _flip_time(out, flip) if reorder else out

    w_fwd, w_rev = _weights(lstm, layer, False), _weights(lstm, layer, True)
    split = _pool is not None and x.device.type == "cpu" and not torch.jit.is_tracing()
    if not split:
        return [forward(x, w_fwd), reverse(x, w_rev)]
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, *w_fwd, *w_rev)):
        return list(_Directions.apply((forward, reverse), x, *w_fwd, *w_rev))
    return list(_side_by_side(lambda: forward(x, w_fwd), lambda: reverse(x, w_rev)))


def _layers(lstm: nn.LSTM, x: torch.Tensor, flip: torch.Tensor, ordered: bool) -> list[torch.Tensor]:
    """All layers on padded batch-first input; the last layer's states per direction. The reverse direction
    reads its input reversed within each length (`flip`: `flip_rows`); `ordered=False` leaves the last layer's reverse
    states in that order (enough for order-free pooling)."""
    for layer in range(lstm.num_layers):
        last = layer == lstm.num_layers - 1
        if lstm.bidirectional:
            outs = _both_directions(lstm, layer, x, flip, reorder=ordered or not last)
        else:
            outs = [_direction(_weights(lstm, layer, False), x, lstm.training)]
        if last:
            return outs
        x = torch.cat(outs, dim=2)
        x = dropout(x, lstm.dropout, lstm.training) if lstm.dropout > 0 else x
    raise ValueError("an LSTM has at least one layer")


def lstm_padded(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What `lstm_packed` computes, on padded tensors: on CPU only padded input reaches oneDNN's fused kernel.

    Right padding cannot change a forward step at t < length (the LSTM is causal). The reverse
    direction would start in the padding, so its input is reversed *within each length* first:

        x      a b c _ _      reversed-in-length   c b a _ _   → forward pass with reverse weights
        out_r  = the result reversed in length again: position t holds the state after x[t:len]
    """
    B, T, _ = x.shape
    lengths = lengths.to(x.device)
    flip = flip_rows(flip_index(lengths, T))
    valid = (torch.arange(T, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)
    x = torch.cat(_layers(lstm, x, flip, ordered=True), dim=2) * valid
    last_fwd = x[torch.arange(B, device=x.device), lengths - 1, : lstm.hidden_size]
    last = torch.cat([last_fwd, x[:, 0, lstm.hidden_size :]], dim=1) if lstm.bidirectional else last_fwd
    return x, last


def pooled_padded(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """`pool(*lstm_padded(...), how)` for the order-free poolings (max, mean, max_mean), faster.

    The last layer's reverse states are pooled as they come out, still reversed within each length: a max
    or a mean does not care about order, so the copy that puts them back is skipped; padding is masked
    once, in place when no gradient is kept.
    """
    T = x.size(1)
    lengths = lengths.to(x.device)
    pad = (torch.arange(T, device=x.device).unsqueeze(0) >= lengths.unsqueeze(1)).unsqueeze(2)  # [B, T, 1]
    flip = flip_rows(flip_index(lengths, T))
    outs = _layers(lstm, x, flip, ordered=False)
    inplace = not torch.is_grad_enabled()  # with autograd on, the LSTM's backward needs its outputs intact

    def fill(o: torch.Tensor, value: float) -> torch.Tensor:
        return o.masked_fill_(pad, value) if inplace else o.masked_fill(pad, value)

    means = [fill(o, 0.0).sum(1) / lengths.unsqueeze(1).to(o.dtype) for o in outs] if how != "max" else []
    maxes = [fill(o, float("-inf")).amax(1) for o in outs] if how != "mean" else []
    return torch.cat(maxes + means, dim=1)


def pool(out: torch.Tensor, last: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """[B, T, F] states (zero at padding) → [B, F] (or [B, 2F] for max_mean)."""
    if how == "last":
        return last
    lengths = lengths.to(out.device)
    mean = out.sum(1) / lengths.unsqueeze(1).to(out.dtype)
    if how == "mean":
        return mean
    pad = torch.arange(out.size(1), device=out.device).unsqueeze(0) >= lengths.unsqueeze(1)
    mx = out.masked_fill(pad.unsqueeze(2), float("-inf")).amax(1)
    return mx if how == "max" else torch.cat([mx, mean], dim=1)


@dataclass
class ModelArgs:
    """What an LSTMClassifier is built from; saved as config.json's "model". The values come from the config
    (model.*: what each means, and the recipe's, are written there) and the vocab's and label set's sizes."""

    vocab_size: int
    num_classes: int
    embedding_dim: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    dropout: float
    embedding_dropout: float
    pooling: str  # one of POOLINGS
    padding_idx: int = 0  # <pad>'s id in every textclf vocab


class LSTMClassifier(nn.Module):
    """Binary models have one logit (BCEWithLogits); k > 2 classes have k logits (cross-entropy).

    `lstm_impl` picks how the LSTM runs: "packed" (PackedSequence; cuDNN's fast path), "padded"
    (exactly the same numbers via `lstm_padded`; the fast path on CPU), or "auto" (by device).
    """

    kind = "lstm"

    def __init__(self, args: ModelArgs):
        super().__init__()
        if args.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {args.pooling!r}")
        if args.num_classes < 2:
            raise ValueError("a classifier needs at least 2 classes")
        self.args = args
        self.num_classes = args.num_classes
        self.pooling = args.pooling
        self.lstm_impl = "auto"
        self.embedding = nn.Embedding(args.vocab_size, args.embedding_dim, padding_idx=args.padding_idx)
        self.embedding_dropout = Dropout(args.embedding_dropout)
        self.lstm = LSTM(args.embedding_dim, args.hidden_size, args.num_layers, batch_first=True,
                         bidirectional=args.bidirectional, dropout=args.dropout if args.num_layers > 1 else 0.0)
        features = args.hidden_size * (2 if args.bidirectional else 1) * (2 if args.pooling == "max_mean" else 1)
        self.dropout = Dropout(args.dropout)
        self.head = nn.Linear(features, 1 if args.num_classes == 2 else args.num_classes)

    @property
    def arch(self) -> dict:
        return asdict(self.args)

    def _embed(self, tokens: torch.Tensor, lengths: torch.Tensor, delta: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embedding (+ `delta` [B, T, E], an adversarial perturbation), and the lengths, >= 1, twice: on the
        CPU (for packing) and on the tokens' device (for masks and pooling)."""
        on_cpu = lengths.cpu().clamp(min=1)  # an empty text is one <pad> step (a zero vector), not a crash
        # one copy a forward, from the loader's pinned memory: queued behind the GPU's work, no host sync
        on_device = on_cpu if tokens.device.type == "cpu" else lengths.to(tokens.device, non_blocking=True).clamp(min=1)
        x = self.embedding(tokens)
        return self.embedding_dropout(x if delta is None else x + delta.to(x.dtype)), on_cpu, on_device

    def _impl(self, device: torch.device) -> str:
        return self.lstm_impl if self.lstm_impl != "auto" else ("padded" if device.type == "cpu" else "packed")

    def states(self, tokens: torch.Tensor, lengths: torch.Tensor, delta: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embedding (+ `delta`) → LSTM: states [B, T, D*H] (zero at padding), final states [B, D*H], and the
        lengths (>= 1) on the states' device."""
        x, on_cpu, lengths = self._embed(tokens, lengths, delta)
        if self._impl(x.device) == "padded":
            return (*lstm_padded(self.lstm, x, lengths), lengths)
        return (*lstm_packed(self.lstm, x, on_cpu), lengths)

    def features(self, tokens: torch.Tensor, lengths: torch.Tensor, delta: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled LSTM states [B, F] that the head reads."""
        if self._impl(tokens.device) == "packed" or self.pooling == "last":
            out, last, lengths = self.states(tokens, lengths, delta)
            return pool(out, last, lengths, self.pooling)
        x, _, lengths = self._embed(tokens, lengths, delta)
        return pooled_padded(self.lstm, x, lengths, self.pooling)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, delta: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, T], lengths [B] → logits [B] (binary) or [B, C]."""
        logits = self.head(self.dropout(self.features(tokens, lengths, delta)))
        return logits.squeeze(1) if self.num_classes == 2 else logits

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        """Logits → [B, C] class probabilities (for binary: [1 - p, p])."""
        if logits.dim() == 1:
            p = torch.sigmoid(logits.float())
            return torch.stack([1 - p, p], dim=1)
        return torch.softmax(logits.float(), dim=1)


def _args(cls: type, values: Mapping):
    return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def build_model(kind: str, args: Mapping) -> nn.Module:
    """A new (untrained) network of type `kind` (model.type; config.json's "type") from the values in `args`
    (model.* with the vocab and label counts; config.json's "model"); keys the type does not take are ignored.
    Another architecture: a module of its own and one more branch here."""
    if kind == "lstm":
        return LSTMClassifier(_args(ModelArgs, args))
    raise ValueError(f'unknown model type "{kind}": this textclf builds lstm (a newer textclf may know it)')
