"""One generation loop for decoder-only and encoder-decoder models: greedy, sampling, beam search, KV cache.

Decoder-only: `input_ids` is the prompt. Prompts of different lengths go in left-padded with
an attention mask (see `left_pad`); absolute positions then start at each prompt's first real
token, so a padded prompt produces the same tokens as the same prompt alone.

Encoder-decoder (a model declaring `is_encoder_decoder = True`, with `encode`): `input_ids` is
the source, padded either side with its attention mask. The encoder runs once; the decoder
starts from `decoder_start_token_id` and keeps its self-attention keys/values in a KV cache and
the cross-attention keys/values, projected from the memory once, in StaticKVs. The result is
the decoder sequence, start token included (as Hugging Face returns it).

Both kinds hide behind a small "stepper" that turns the sequence so far into the next-token
logits, so greedy/sampling and beam search are each written once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn

from formers.compiled_decoding import compiled_forward
from formers.errors import ConfigError, SequenceTooLongError
from formers.nn.embeddings import position_limit

EarlyStopping = bool | Literal["never"]
# (sequence so far (B, T), next-token logits (B, V)) -> logits to sample from; e.g. TokenRange
LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TokenRange:
    """A logits processor that allows only ids in [start, end): a text-to-image model's image part draws
    from the image codes alone, never from the text vocabulary (formers/text_to_image.py)."""

    def __init__(self, start: int, end: int) -> None:
        if not 0 <= start < end:
            raise ConfigError(f"TokenRange({start}, {end}) is empty; expected 0 <= start < end")
        self.start, self.end = start, end

    def __call__(self, sequence: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if self.end > logits.shape[-1]:
            raise ConfigError(f"TokenRange({self.start}, {self.end}) passes the vocabulary of {logits.shape[-1]}")
        ids = torch.arange(logits.shape[-1], device=logits.device)
        return logits.masked_fill((ids < self.start) | (ids >= self.end), float("-inf"))


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> (input_ids (B, T), attention_mask (B, T)), padded on the left."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ConfigError("every prompt needs at least one token")
    t = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), t), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, t - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, t - len(s):] = 1
    return ids, mask


def sample_next(
    logits: torch.Tensor,
    *,
    do_sample: bool,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits (B, V) -> next token ids (B,)."""
    if not do_sample:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        # Nucleus sampling (Holtzman et al. 2020): keep the smallest set whose mass reaches top_p.
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p  # mass before this token
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _check_options(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    if max_new_tokens < 0:
        raise ConfigError(f"max_new_tokens={max_new_tokens} is not allowed; expected >= 0")
    if temperature <= 0:
        raise ConfigError(f"temperature={temperature} is not allowed; expected > 0 (use do_sample=False for greedy)")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k={top_k} is not allowed; expected >= 1 or None")
    if top_p is not None and not 0 < top_p <= 1:
        raise ConfigError(f"top_p={top_p} is not allowed; expected a value in (0, 1]")


def _new_cache(model: nn.Module, batch: int, max_len: int, device: torch.device):
    """A cache in the dtype keys/values come out in: the autocast dtype when autocast is on."""
    if torch.is_autocast_enabled(device.type):
        dtype = torch.get_autocast_dtype(device.type)
    else:
        dtype = next(model.parameters()).dtype
    return model.new_cache(batch, max_len, dtype=dtype, device=device)


def check_position_room(model: nn.Module, needed: int, what: str) -> None:
    """Refuse before the first step a decoding that would run past the model's last learned position,
    instead of failing part-way through it."""
    limit = position_limit(model)
    if limit is not None and needed > limit:
        raise SequenceTooLongError(
            f"{what} needs {needed} positions but the model's learned positions stop at {limit}; "
            f"lower max_new_tokens by {needed - limit} or shorten the prompt"
        )


class DecoderOnlyStepper:
    """Feeds a decoder-only model the part of the sequence its cache has not seen yet."""

    def __init__(self, model, input_ids, attention_mask, *, max_new_tokens: int, use_cache: bool, expand: int = 1,
                 forward: Callable | None = None):
        input_ids = input_ids.repeat_interleave(expand, 0)  # (B*K, T): one row per beam
        b, t = input_ids.shape
        device = input_ids.device
        self.model, self.prefix = model, input_ids
        self.forward = forward or model  # what runs a step: the model, or its compiled forward
        self.mask = torch.ones((b, t + max_new_tokens), dtype=torch.long, device=device)
        if attention_mask is not None:
            self.mask[:, :t] = attention_mask.repeat_interleave(expand, 0)
        self.padded = not bool(self.mask[:, :t].all())  # an all-ones mask would only block the fused causal path
        self.positions = (self.mask.cumsum(-1) - 1).clamp(min=0)  # absolute positions count real tokens only
        longest = int(self.mask[:, :t].sum(-1).max())
        # the last new token is never fed back, so it needs no position
        check_position_room(model, longest + max_new_tokens - 1,
                            f"a prompt of {longest} tokens plus max_new_tokens={max_new_tokens}")
        self.cache = _new_cache(model, b, t + max_new_tokens, device) if use_cache else None
        self.fed = 0  # positions already in the cache

    def next_logits(self, sequence: torch.Tensor) -> torch.Tensor:
        """sequence (B, T_so_far) -> logits (B, V) of the token that follows it."""
        start, end = (self.fed if self.cache is not None else 0), sequence.shape[1]
        out = self.forward(
            sequence[:, start:end],
            attention_mask=self.mask[:, :end] if self.padded else None,
            position_ids=self.positions[:, start:end],
            cache=self.cache,
        )
        self.fed = end
        return out.logits[:, -1]

    def reorder(self, rows: torch.Tensor) -> None:
        # Beams of one prompt share its mask and positions, so only the cache needs reordering.
        if self.cache is not None:
            self.cache.reorder(rows)


class EncoderDecoderStepper:
    """Runs the encoder once, then feeds the decoder the target tokens its cache has not seen yet."""

    def __init__(self, model, input_ids, attention_mask, *, max_new_tokens: int, use_cache: bool, expand: int = 1,
                 decoder_start_token_id: int | None = None, forward: Callable | None = None):
        start_id = model.config.decoder_start_token_id if decoder_start_token_id is None else decoder_start_token_id
        check_position_room(model, max_new_tokens, f"decoding max_new_tokens={max_new_tokens} (after the start token)")
        self.model = model
        self.forward = forward or model  # the decoder steps; encode runs once, eagerly
        self.memory = model.encode(input_ids, attention_mask).repeat_interleave(expand, 0)  # (B*K, S, D)
        self.memory_mask = attention_mask.repeat_interleave(expand, 0) if attention_mask is not None else None
        b, device = self.memory.shape[0], input_ids.device
        self.prefix = torch.full((b, 1), start_id, dtype=torch.long, device=device)
        self.cache = _new_cache(model, b, 1 + max_new_tokens, device) if use_cache else None
        self.fed = 0

    def next_logits(self, sequence: torch.Tensor) -> torch.Tensor:
        start, end = (self.fed if self.cache is not None else 0), sequence.shape[1]
        out = self.forward(
            attention_mask=self.memory_mask, decoder_input_ids=sequence[:, start:end],
            encoder_outputs=self.memory, cache=self.cache,
        )
        self.fed = end
        return out.logits[:, -1]

    def reorder(self, rows: torch.Tensor) -> None:
        # Beams of one source share its memory; the cross-attention StaticKVs reorder with the cache.
        if self.cache is not None:
            self.cache.reorder(rows)


def make_stepper(model, input_ids, attention_mask, *, max_new_tokens, use_cache, expand=1,
                 decoder_start_token_id=None, compile=False):
    """The stepper for this kind of model (encoder-decoder models declare `is_encoder_decoder = True`)."""
    forward = compiled_forward(model, input_ids) if compile else None
    if getattr(type(model), "is_encoder_decoder", False):
        return EncoderDecoderStepper(model, input_ids, attention_mask, max_new_tokens=max_new_tokens,
                                     use_cache=use_cache, expand=expand, decoder_start_token_id=decoder_start_token_id,
                                     forward=forward)
    return DecoderOnlyStepper(model, input_ids, attention_mask, max_new_tokens=max_new_tokens, use_cache=use_cache,
                              expand=expand, forward=forward)


def _sample_loop(stepper, *, max_new_tokens, eos_token_id, pad_token_id, streamer, logits_processor=None,
                 **sampling) -> torch.Tensor:
    """Greedy or sampled decoding, one token per row per step."""
    prefix = stepper.prefix
    b, t = prefix.shape
    out = torch.empty((b, t + max_new_tokens), dtype=torch.long, device=prefix.device)
    out[:, :t] = prefix
    finished = torch.zeros(b, dtype=torch.bool, device=prefix.device)
    end = t
    for _ in range(max_new_tokens):
        logits = stepper.next_logits(out[:, :end])
        if logits_processor is not None:
            logits = logits_processor(out[:, :end], logits)
        token = sample_next(logits, **sampling)
        token = torch.where(finished, torch.full_like(token, pad_token_id), token)
        out[:, end] = token
        end += 1
        if streamer is not None:
            streamer(token)
        if eos_token_id is not None:
            finished |= token == eos_token_id
            if bool(finished.all()):
                break
    return out[:, :end]


@torch.no_grad()
def generate(
    model: nn.Module,
    input_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    attention_mask: torch.Tensor | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    num_beams: int = 1,
    length_penalty: float = 1.0,
    early_stopping: EarlyStopping = False,
    eos_token_id: int | None = None,
    pad_token_id: int = 0,
    decoder_start_token_id: int | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    streamer: Callable[[torch.Tensor], None] | None = None,
    logits_processor: LogitsProcessor | None = None,
    compile: bool = False,
) -> torch.Tensor:
    """Extend each prompt (or decode each source) by up to `max_new_tokens`; returns token ids.

    Decoder-only models return (B, T + new); encoder-decoder models (B, 1 + new), starting with
    `decoder_start_token_id` (default: the model config's). Rows that emit `eos_token_id` are
    finished and padded with `pad_token_id`; the loop stops when every row is finished.
    `streamer` receives each step's new ids (B,). `logits_processor` edits each step's logits before
    sampling (`TokenRange` allows a range of ids only). `num_beams > 1` runs `beam_search`.
    """
    _check_options(max_new_tokens, temperature, top_k, top_p)
    if num_beams > 1:
        if do_sample or streamer is not None or logits_processor is not None:
            raise ConfigError(f"num_beams={num_beams} is deterministic beam search: it takes neither do_sample=True, "
                              "a streamer nor a logits_processor; use num_beams=1 for those")
        return beam_search(
            model, input_ids, max_new_tokens=max_new_tokens, attention_mask=attention_mask, num_beams=num_beams,
            length_penalty=length_penalty, early_stopping=early_stopping, eos_token_id=eos_token_id,
            pad_token_id=pad_token_id, decoder_start_token_id=decoder_start_token_id, use_cache=use_cache,
            compile=compile,
        )
    if num_beams < 1:
        raise ConfigError(f"num_beams={num_beams} is not allowed; expected >= 1")
    was_training = model.training
    model.eval()
    try:
        stepper = make_stepper(model, input_ids, attention_mask, max_new_tokens=max_new_tokens, use_cache=use_cache,
                               decoder_start_token_id=decoder_start_token_id, compile=compile)
        return _sample_loop(
            stepper, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
            streamer=streamer, logits_processor=logits_processor, do_sample=do_sample, temperature=temperature,
            top_k=top_k, top_p=top_p, generator=generator,
        )
    finally:
        model.train(was_training)


NEG = -1.0e9  # the score of a slot that must not be chosen (finite, so sums and divisions stay finite)


class FinishedHypotheses:
    """Per input, the `k` best finished sequences so far, sorted by length-normalised score."""

    def __init__(self, b: int, k: int, total: int, pad_token_id: int, device: torch.device) -> None:
        self.k = k
        self.sequences = torch.full((b, k, total), pad_token_id, dtype=torch.long, device=device)
        self.scores = torch.full((b, k), NEG, device=device)
        self.lengths = torch.zeros((b, k), dtype=torch.long, device=device)  # prefix + generated
        self.filled = torch.zeros((b, k), dtype=torch.bool, device=device)

    @property
    def full(self) -> torch.Tensor:
        return self.filled.all(dim=1)  # (B,)

    def add(self, candidates: torch.Tensor, scores: torch.Tensor, accepted: torch.Tensor, length: int) -> None:
        """Merge candidates (B, C, total) with normalised scores (B, C) (NEG where not accepted)."""
        keep = torch.cat((self.scores, scores), dim=1).topk(self.k).indices  # (B, K), best first
        lengths = torch.full_like(scores, length, dtype=torch.long)
        self.sequences = _gather_rows(torch.cat((self.sequences, candidates), dim=1), keep)
        self.scores = torch.cat((self.scores, scores), dim=1).gather(1, keep)
        self.lengths = torch.cat((self.lengths, lengths), dim=1).gather(1, keep)
        self.filled = torch.cat((self.filled, accepted), dim=1).gather(1, keep)

    def best(self) -> torch.Tensor:
        """(B, longest best length): each input's best sequence, padded after its end."""
        return self.sequences[:, 0, : int(self.lengths[:, 0].max())]


def _gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, N, T), index (B, M) -> (B, M, T): the chosen rows of each input."""
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


def _beam_loop(stepper, *, k: int, max_new_tokens: int, eos_token_id: int | None, pad_token_id: int,
               length_penalty: float, early_stopping: EarlyStopping) -> torch.Tensor:
    prefix = stepper.prefix  # (B*K, T): K copies of each input
    bk, t = prefix.shape
    b, total, device = bk // k, t + max_new_tokens, prefix.device
    running = torch.full((b, k, total), pad_token_id, dtype=torch.long, device=device)
    running[:, :, :t] = prefix.view(b, k, t)
    running_scores = torch.zeros((b, k), device=device)
    running_scores[:, 1:] = NEG  # the K copies are identical: only the first may extend at step one
    finished = FinishedHypotheses(b, k, total, pad_token_id, device)
    improvable = torch.ones(b, dtype=torch.bool, device=device)
    in_top_k = torch.arange(2 * k, device=device) < k  # the other K continuations are spares that keep K running
    row_offset = torch.arange(b, device=device)[:, None] * k
    for step in range(max_new_tokens):
        cur = t + step
        log_probs = torch.log_softmax(stepper.next_logits(running.view(bk, total)[:, :cur]).float(), dim=-1)
        v = log_probs.shape[-1]
        scores = (log_probs.view(b, k, v) + running_scores[..., None]).view(b, k * v)  # sum of log-probs
        top_scores, top = scores.topk(2 * k)  # (B, 2K): at most K end in EOS, so K always continue
        parent, token = top // v, top % v
        candidates = _gather_rows(running, parent)  # (B, 2K, total)
        candidates[:, :, cur] = token
        ends = token == eos_token_id if eos_token_id is not None else torch.zeros_like(token, dtype=torch.bool)
        ends |= cur + 1 == total  # the last step finishes every candidate
        # A candidate finishes if it ends, ranks in the top K, and its input can still take hypotheses.
        open_inputs = improvable & ~(finished.full & (early_stopping is True))
        accepted = ends & in_top_k & open_inputs[:, None]
        normalised = top_scores / (step + 1) ** length_penalty  # Wu et al. 2016 style length normalisation
        finished.add(candidates, normalised.masked_fill(~accepted, NEG), accepted, cur + 1)
        alive = top_scores.masked_fill(ends, NEG)
        keep = alive.topk(k).indices  # (B, K)
        running, running_scores = _gather_rows(candidates, keep), alive.gather(1, keep)
        stepper.reorder((parent.gather(1, keep) + row_offset).view(-1))
        # Can the best running beam still beat the worst finished hypothesis? ("never": at the longest length)
        best_len = max_new_tokens if early_stopping == "never" and length_penalty > 0 else step + 1
        best_possible = running_scores[:, 0] / best_len**length_penalty
        improvable &= ~finished.full | (best_possible > finished.scores.min(dim=1).values)
        if not bool(improvable.any()) or (early_stopping is True and bool(finished.full.all())):
            break
    return finished.best() if max_new_tokens else prefix.view(b, k, t)[:, 0]


@torch.no_grad()
def beam_search(
    model: nn.Module,
    input_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    attention_mask: torch.Tensor | None = None,
    num_beams: int = 4,
    length_penalty: float = 1.0,
    early_stopping: EarlyStopping = False,
    eos_token_id: int | None = None,
    pad_token_id: int = 0,
    decoder_start_token_id: int | None = None,
    use_cache: bool = True,
    compile: bool = False,
) -> torch.Tensor:
    """Keep the `num_beams` most probable sequences per input; return each input's best finished one.

    A finished hypothesis scores sum(log p) / generated_length ** length_penalty, so a positive
    penalty favours longer outputs. The rules are Hugging Face's, so outputs match its `generate`:
    each step keeps the 2K best continuations of the K beams; those that end (EOS or the length
    limit) and rank in the top K become finished hypotheses; the best K others keep running.
    early_stopping=True stops an input at K finished hypotheses; False when its best running beam,
    scored at its current length, cannot beat the worst finished one; "never" scores it at the
    longest length instead (the exact bound when length_penalty > 0). Returns the same layout as
    `generate`: (B, prefix + longest best), padded with `pad_token_id` after each end.
    """
    _check_options(max_new_tokens, 1.0, None, None)
    if num_beams < 1:
        raise ConfigError(f"num_beams={num_beams} is not allowed; expected >= 1")
    if early_stopping not in (True, False, "never"):
        raise ConfigError(f"early_stopping={early_stopping!r} is not allowed; expected True, False or 'never'")
    was_training = model.training
    model.eval()
    try:
        stepper = make_stepper(model, input_ids, attention_mask, max_new_tokens=max_new_tokens, use_cache=use_cache,
                               expand=num_beams, decoder_start_token_id=decoder_start_token_id, compile=compile)
        return _beam_loop(stepper, k=num_beams, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id,
                          pad_token_id=pad_token_id, length_penalty=length_penalty, early_stopping=early_stopping)
    finally:
        model.train(was_training)
