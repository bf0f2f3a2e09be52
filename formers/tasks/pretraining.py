"""Pretraining tasks on a text corpus: masked_lm (BERT), span_corruption (T5), denoising (BART).

Each joins a corpus, a tokenizer with the task's special tokens, a seeded transform from
objectives/ and a model from the recipe. Batches come from `SeededBatches`, so the masking
or corruption at step n is fixed by (seed, n) and a resumed run sees exactly the same
data. The report states the unigram baseline next to the loss the model reached.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from formers.data import Tokenizer
from formers.data.tasks import SeededBatches
from formers.generation import generate
from formers.objectives import (
    BartNoiseConfig,
    BertPretraining,
    MaskedLM,
    MaskedLMConfig,
    Seq2SeqLM,
    Seq2SeqLMConfig,
    SpanCorruptionConfig,
    bart_noise,
    collate_pairs,
    mask_tokens,
    next_sentence_pairs,
    span_corrupt,
    word_ids_from_starts,
)
from formers.registry import build_model
from formers.tasks.base import Recipe, Run, Task
from formers.tasks.language_modeling import corpus_split
from formers.tasks.pretraining_data import (
    baseline_report,
    corpus_with_specials,
    fixed_batches,
    ids_of,
    random_windows,
    sentence_end_ids,
    word_start_table,
)

MASK, CLS, SEP = "<mask>", "<cls>", "<sep>"
NSP_DOCUMENT_WINDOWS = 8  # next-sentence "documents" are contiguous chunks of 8 * seq_len tokens


def special_ids(tokenizer: Tokenizer) -> list[int]:
    return sorted(tokenizer.backend.get_added_tokens_decoder())


@dataclasses.dataclass
class Pretraining:
    """A pretraining task from its moving parts; `task` makes it the Task a recipe's `task:` names.

    make_batch(recipe, tokenizer, token stream) -> (generator -> batch): the seeded transform.
    make_objective(recipe) -> objective(model, batch). metric(recipe): the validation loss the
    report holds against the unigram baseline.
    """

    specials: Callable[[Recipe], list[str]]
    make_batch: Callable[[Recipe, Tokenizer, torch.Tensor], Callable[[torch.Generator], dict]]
    make_objective: Callable[[Recipe], Callable]
    metric: Callable[[Recipe], str]
    example: Callable[[Run], str]  # one validation example: what the model does with it

    def build(self, recipe: Recipe) -> Run:
        tokenizer, train_ids, val_ids = corpus_with_specials(recipe, self.specials(recipe))
        torch.manual_seed(recipe.trainer.seed)
        model = build_model(recipe.model.replace(vocab_size=tokenizer.vocab_size))
        t = recipe.trainer
        return Run(
            model=model, objective=self.make_objective(recipe), tokenizer=tokenizer,
            train_source=SeededBatches(self.make_batch(recipe, tokenizer, train_ids), t.seed),
            val_batches=fixed_batches(self.make_batch(recipe, tokenizer, val_ids), t.seed, t.eval_batches),
        )

    def eval_data(self, recipe: Recipe, tokenizer: Tokenizer) -> list[dict]:
        """The validation batches again, from the checkpoint's own tokenizer (`formers eval`)."""
        val_ids = torch.tensor(tokenizer.encode(corpus_split(recipe)[1], add_special_tokens=False), dtype=torch.long)
        t = recipe.trainer
        return fixed_batches(self.make_batch(recipe, tokenizer, val_ids), t.seed, t.eval_batches)

    def report(self, recipe: Recipe, run: Run) -> str:
        return baseline_report(recipe, run, self.metric(recipe)) + "\n" + self.example(run)

    def task(self, objective_config: type) -> Task:
        return Task(objective_config=objective_config, make_objective=self.make_objective, build=self.build,
                    report=self.report, eval_data=self.eval_data)


# ---- masked_lm: BERT --------------------------------------------------------------------
def mlm_batches(recipe: Recipe, tokenizer: Tokenizer, stream: torch.Tensor) -> Callable[[torch.Generator], dict]:
    """Windows `[CLS] ... [SEP]` (or NSP segment pairs), then 80/10/10 masking."""
    cfg, t, b = recipe.objective, recipe.data.seq_len, recipe.trainer.batch_size
    mask_id, cls_id, sep_id = ids_of(tokenizer, [MASK, CLS, SEP])
    specials = special_ids(tokenizer)
    starts = word_start_table(tokenizer) if cfg.whole_word else None
    docs = list(stream.split(NSP_DOCUMENT_WINDOWS * t))

    def make(g: torch.Generator) -> dict:
        if cfg.next_sentence:
            batch = next_sentence_pairs(docs, batch_size=b, max_len=t, cls_id=cls_id, sep_id=sep_id,
                                        pad_id=tokenizer.pad_id, generator=g)
        else:
            windows = random_windows(stream, b, t - 2, g)  # (B, T-2)
            batch = {"input_ids": torch.cat([torch.full((b, 1), cls_id), windows, torch.full((b, 1), sep_id)], 1)}
        word_ids = word_ids_from_starts(starts[batch["input_ids"]]) if starts is not None else None
        inputs, labels = mask_tokens(
            batch["input_ids"], mask_id=mask_id, vocab_size=tokenizer.vocab_size, special_ids=specials,
            generator=g, mask_rate=cfg.mask_rate, mask_fraction=cfg.mask_fraction,
            random_fraction=cfg.random_fraction, word_ids=word_ids,
        )
        return {**batch, "input_ids": inputs, "labels": labels}

    return make


def mlm_objective(recipe: Recipe) -> Callable:
    return BertPretraining() if recipe.objective.next_sentence else MaskedLM(recipe.objective)


@torch.no_grad()
def mlm_example(run: Run) -> str:
    """The first validation row: its masked input, and the model's guess at each selected position."""
    batch, tok = run.val_batches[0], run.tokenizer
    device = next(run.model.parameters()).device
    was_training = run.model.training
    run.model.eval()
    row = {k: v[:1].to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    logits = run.model(**row).logits[0]
    run.model.train(was_training)
    selected = (batch["labels"][0] >= 0).nonzero().squeeze(1).tolist()
    guesses = [f"{tok.decode([int(batch['labels'][0, i])])!r}->{tok.decode([int(logits[i].argmax())])!r}"
               for i in selected[:12]]
    masked = tok.decode(batch["input_ids"][0].tolist(), skip_special_tokens=False).replace("<pad>", "")
    return f"masked input: {masked[:300]!r}\ntarget->prediction: {', '.join(guesses)}"


def _mlm_metric(recipe: Recipe) -> str:
    return "val/mlm_loss" if recipe.objective.next_sentence else "val/loss"


# ---- span_corruption: T5 ----------------------------------------------------------------
def t5_specials(recipe: Recipe) -> list[str]:
    # Appended in reverse, so <extra_id_0> is the last id of the vocabulary, as in T5.
    return [f"<extra_id_{i}>" for i in reversed(range(recipe.objective.n_sentinels))]


def span_batches(recipe: Recipe, tokenizer: Tokenizer, stream: torch.Tensor) -> Callable[[torch.Generator], dict]:
    cfg, t, b = recipe.objective, recipe.data.seq_len, recipe.trainer.batch_size

    def make(g: torch.Generator) -> dict:
        pairs = [span_corrupt(w, noise_density=cfg.noise_density, mean_span_length=cfg.mean_span_length,
                              vocab_size=tokenizer.vocab_size, n_sentinels=cfg.n_sentinels, eos_id=tokenizer.eos_id,
                              generator=g) for w in random_windows(stream, b, t, g)]
        return collate_pairs([p[0] for p in pairs], [p[1] for p in pairs], tokenizer.pad_id)

    return make


# ---- denoising: BART --------------------------------------------------------------------
def denoise_batches(recipe: Recipe, tokenizer: Tokenizer, stream: torch.Tensor) -> Callable[[torch.Generator], dict]:
    cfg, t, b = recipe.objective, recipe.data.seq_len, recipe.trainer.batch_size
    mask_id, eos = tokenizer.token_to_id(MASK), torch.tensor([tokenizer.eos_id])
    ends = sentence_end_ids(tokenizer)

    def make(g: torch.Generator) -> dict:
        windows = random_windows(stream, b, t - 1, g)  # (B, T-1): room for EOS
        sources = [torch.cat([bart_noise(w, cfg, mask_id=mask_id, sentence_end_ids=ends, generator=g), eos])
                   for w in windows]
        return collate_pairs(sources, [torch.cat([w, eos]) for w in windows], tokenizer.pad_id)

    return make


def seq2seq_objective(recipe: Recipe) -> Seq2SeqLM:
    """Teacher-forced cross-entropy; the decoder starts from the model's decoder_start_token_id."""
    return Seq2SeqLM(Seq2SeqLMConfig(label_smoothing=recipe.objective.label_smoothing),
                     pad_id=recipe.model.pad_token_id)


def _nll(recipe: Recipe) -> str:
    return "val/nll_loss"


def seq2seq_example(run: Run) -> str:
    """The first validation row: the corrupted source, the target and the greedy decoding."""
    batch, tok = run.val_batches[0], run.tokenizer
    device = next(run.model.parameters()).device
    labels = batch["labels"][0][batch["labels"][0] >= 0]
    out = generate(run.model, batch["input_ids"][:1].to(device), attention_mask=batch["attention_mask"][:1].to(device),
                   max_new_tokens=len(labels) + 8, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)[0, 1:]

    def show(ids) -> str:
        return repr(tok.decode([int(i) for i in ids], skip_special_tokens=False).replace("<pad>", "")[:300])

    return f"source: {show(batch['input_ids'][0])}\ntarget: {show(labels)}\ngreedy: {show(out)}"


MASKED_LM = Pretraining(lambda r: [MASK, CLS, SEP], mlm_batches, mlm_objective, _mlm_metric, mlm_example).task(
    MaskedLMConfig)
SPAN_CORRUPTION = Pretraining(t5_specials, span_batches, seq2seq_objective, _nll, seq2seq_example).task(
    SpanCorruptionConfig)
DENOISING = Pretraining(lambda r: [MASK], denoise_batches, seq2seq_objective, _nll, seq2seq_example).task(
    BartNoiseConfig)
