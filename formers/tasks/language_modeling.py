"""causal_lm: train a decoder-only model on a text corpus; report loss and samples."""

from __future__ import annotations

import torch

from formers.data import TokenWindows, eval_windows, load_corpus, split_text, train_tokenizer
from formers.generation import generate, left_pad
from formers.objectives import CausalLM, CausalLMConfig
from formers.registry import build_model
from formers.tasks.base import Recipe, Run, Task
from formers.training import distributed


def corpus_split(recipe: Recipe) -> tuple[str, str]:
    text = load_corpus(recipe.data.corpus)
    if recipe.data.max_chars is not None:
        text = text[: recipe.data.max_chars]
    return split_text(text, recipe.data.val_fraction)


def encode_corpus(recipe: Recipe):
    """Read the corpus, train the tokenizer on the training part, return (tokenizer, train ids, val ids)."""
    train_text, val_text = corpus_split(recipe)
    tokenizer = train_tokenizer(recipe.tokenizer, train_text)
    train_ids = torch.tensor(tokenizer.encode(train_text, add_special_tokens=False), dtype=torch.long)
    val_ids = torch.tensor(tokenizer.encode(val_text, add_special_tokens=False), dtype=torch.long)
    return tokenizer, train_ids, val_ids


def make_objective(recipe: Recipe) -> CausalLM:
    return CausalLM(recipe.objective)


def build(recipe: Recipe) -> Run:
    tokenizer, train_ids, val_ids = encode_corpus(recipe)
    torch.manual_seed(recipe.trainer.seed)
    model = build_model(recipe.model.replace(vocab_size=tokenizer.vocab_size))
    t = recipe.trainer
    return Run(
        model=model,
        objective=make_objective(recipe),
        # under torchrun each rank keeps its slice of every global batch (batch_size is per rank)
        train_source=TokenWindows(train_ids, seq_len=recipe.data.seq_len, batch_size=t.batch_size, seed=t.seed,
                                  rank=distributed.rank(), world_size=distributed.world_size()),
        val_batches=eval_windows(val_ids, seq_len=recipe.data.seq_len, batch_size=t.batch_size,
                                 max_batches=t.eval_batches),
        tokenizer=tokenizer,
    )


def eval_data(recipe: Recipe, tokenizer) -> list[dict]:
    """The validation windows, encoded with the checkpoint's own tokenizer."""
    val_ids = torch.tensor(tokenizer.encode(corpus_split(recipe)[1], add_special_tokens=False), dtype=torch.long)
    t = recipe.trainer
    return eval_windows(val_ids, seq_len=recipe.data.seq_len, batch_size=t.batch_size, max_batches=t.eval_batches)


def report(recipe: Recipe, run: Run) -> str:
    """Generated continuations of the recipe's prompts."""
    s, tok = recipe.sample, run.tokenizer
    ids, mask = left_pad([tok.encode(p) for p in s.prompts], tok.pad_id)
    device = next(run.model.parameters()).device
    out = generate(
        run.model, ids.to(device), attention_mask=mask.to(device), max_new_tokens=s.max_new_tokens,
        do_sample=s.do_sample, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
        eos_token_id=tok.eos_id, pad_token_id=tok.pad_id, generator=torch.Generator(device).manual_seed(s.seed),
    )
    lines = []
    for prompt, row in zip(s.prompts, out, strict=True):
        lines.append(f"--- {prompt!r}\n{prompt}{tok.decode(row[ids.shape[1]:].tolist())}")
    return "\n".join(lines)


CAUSAL_LM = Task(
    objective_config=CausalLMConfig, make_objective=make_objective, build=build, report=report, eval_data=eval_data)
