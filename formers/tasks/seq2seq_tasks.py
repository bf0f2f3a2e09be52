"""sequence_seq2seq: an encoder-decoder model on an algorithmic task (reverse, sort, copy, add, retrieval).

Training draws examples of the training sizes; validation and the report use only the
held-out sizes, which lie inside the trained range but were never seen. The report decodes
the held-out set with greedy search and with beam search and prints the exact-match rate of
each, per size.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import torch

from formers.config import Config, check
from formers.data.tasks import (
    SeededBatches,
    SequenceTaskConfig,
    held_out_examples,
    python_rng,
    sample_examples,
    sequence_tokenizer,
)
from formers.generation import generate
from formers.objectives import Seq2SeqLM, Seq2SeqLMConfig, collate_pairs
from formers.registry import build_model
from formers.tasks.base import Recipe, Run, Task


@dataclasses.dataclass(kw_only=True)
class SequenceSeq2SeqConfig(Config):
    sequences: SequenceTaskConfig = dataclasses.field(default_factory=SequenceTaskConfig)
    label_smoothing: float = 0.1  # Vaswani et al. 2017, section 5.4
    eval_per_size: int = 100  # held-out examples of each held-out size (validation and report)
    num_beams: int = 4  # beam width of the report's beam search
    length_penalty: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.label_smoothing < 1.0, "SequenceSeq2SeqConfig.label_smoothing", self.label_smoothing,
              "a value in [0, 1)")
        check(self.eval_per_size >= 1, "SequenceSeq2SeqConfig.eval_per_size", self.eval_per_size, "a positive int")
        check(self.num_beams >= 1, "SequenceSeq2SeqConfig.num_beams", self.num_beams, "a positive int")


def encode_pairs(examples: list[tuple[str, str]], tokenizer) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Strings -> token tensors; both sides end with EOS (the decoder learns to stop)."""
    eos = [tokenizer.eos_id]
    sources = [torch.tensor(tokenizer.encode(s, add_special_tokens=False) + eos) for s, _ in examples]
    targets = [torch.tensor(tokenizer.encode(t, add_special_tokens=False) + eos) for _, t in examples]
    return sources, targets


def collate(examples: list[tuple[str, str]], tokenizer) -> dict:
    return collate_pairs(*encode_pairs(examples, tokenizer), tokenizer.pad_id)


def _held_out(recipe: Recipe) -> list[tuple[str, str]]:
    return held_out_examples(recipe.objective.sequences, recipe.objective.eval_per_size, recipe.trainer.seed)


def make_objective(recipe: Recipe) -> Seq2SeqLM:
    return Seq2SeqLM(Seq2SeqLMConfig(label_smoothing=recipe.objective.label_smoothing),
                     pad_id=recipe.model.pad_token_id)


def eval_data(recipe: Recipe, tokenizer=None) -> list[dict]:
    """The held-out examples in batches: their loss and sequence accuracy (= greedy exact match)."""
    tokenizer = tokenizer or sequence_tokenizer()
    examples, b = _held_out(recipe), recipe.trainer.batch_size
    return [collate(examples[i: i + b], tokenizer) for i in range(0, len(examples), b)]


def build(recipe: Recipe) -> Run:
    tokenizer = sequence_tokenizer()
    torch.manual_seed(recipe.trainer.seed)
    model = build_model(recipe.model.replace(vocab_size=tokenizer.vocab_size))
    config, b = recipe.objective.sequences, recipe.trainer.batch_size
    source = SeededBatches(lambda g: collate(sample_examples(config, b, python_rng(g)), tokenizer), recipe.trainer.seed)
    return Run(model=model, objective=make_objective(recipe), train_source=source,
               val_batches=eval_data(recipe, tokenizer), tokenizer=tokenizer)


def decode_exact_match(run: Run, examples: list[tuple[str, str]], batch_size: int, **options) -> list[bool]:
    """Decode every source with `generate(**options)`; is each output exactly its target?"""
    tok, model = run.tokenizer, run.model
    device = next(model.parameters()).device
    hits = []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i: i + batch_size]
        batch = collate(chunk, tok)
        longest = int((batch["labels"] >= 0).sum(1).max())
        out = generate(model, batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                       max_new_tokens=longest + 2, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id, **options)
        for (_, target), row in zip(chunk, out[:, 1:].tolist(), strict=True):  # drop the decoder start token
            hits.append(tok.decode(row[: row.index(tok.eos_id)] if tok.eos_id in row else row) == target)
    return hits


def report(recipe: Recipe, run: Run) -> str:
    """Exact match on the held-out sizes, greedy and beam, overall and per size."""
    cfg, b = recipe.objective, recipe.trainer.batch_size
    examples = _held_out(recipe)
    sizes = cfg.sequences.held_out_sizes or list(range(cfg.sequences.min_size, cfg.sequences.max_size + 1))
    lines = [f"{cfg.sequences.task}: trained on sizes {cfg.sequences.train_sizes}; held out {sizes}, "
             f"{cfg.eval_per_size} examples each"]
    for name, options in (("greedy", {}), (f"beam (num_beams={cfg.num_beams})",
                                          {"num_beams": cfg.num_beams, "length_penalty": cfg.length_penalty})):
        hits = decode_exact_match(run, examples, b, **options)
        per_size: dict[int, list[bool]] = defaultdict(list)
        for hit, size in zip(hits, [s for s in sizes for _ in range(cfg.eval_per_size)], strict=True):
            per_size[size].append(hit)
        detail = ", ".join(f"{s}: {sum(h) / len(h):.1%}" for s, h in sorted(per_size.items()))
        lines.append(f"exact match, {name}: {sum(hits) / len(hits):.2%} on held-out sizes ({detail})")
    source, target = examples[0]
    lines.append(f"example: {source} -> {target}")
    return "\n".join(lines)


SEQUENCE_SEQ2SEQ = Task(
    objective_config=SequenceSeq2SeqConfig, make_objective=make_objective, build=build, report=report,
    eval_data=eval_data)
