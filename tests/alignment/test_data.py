"""Records: the label layout, and typed errors that name the bad record."""

import re
from pathlib import Path

import pytest
import torch

from formers.alignment import RecordError, RecordTooLongError, collate, encode_prompts, encode_records
from formers.alignment.data import PREFERENCE_FIELDS, SFT_FIELDS
from formers.cli import main
from formers.errors import DataError, SequenceTooLongError
from formers.objectives import IGNORE_INDEX

GOOD = {"prompt": "len 2:", "chosen": "ab", "rejected": "abc"}


def test_collate_labels_response_tokens_only():
    batch = collate([([5, 6, 7], [8, 9, 1]), ([5, 6], [8, 1])], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 1], [5, 6, 8, 1, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]
    x = IGNORE_INDEX
    assert batch["labels"].tolist() == [[x, x, 8, 9, 1, x], [x, 8, 1, x, x, x]]


def test_records_encode_with_eos(tokenizer):
    (prompt, chosen, rejected), = encode_records([GOOD], PREFERENCE_FIELDS, tokenizer, 24)
    assert prompt == tokenizer.encode("len 2:") and chosen == tokenizer.encode("ab") + [tokenizer.eos_id]
    assert rejected[-1] == tokenizer.eos_id


@pytest.mark.parametrize("bad, fields, expected", [
    ({"prompt": "len 2:", "chosen": "ab"}, PREFERENCE_FIELDS, r"record 2: missing field\(s\) \['rejected'\]"),
    ({**GOOD, "rejected": ""}, PREFERENCE_FIELDS, "record 2: field 'rejected' is empty"),
    ({**GOOD, "prompt": ""}, PREFERENCE_FIELDS, "record 2: field 'prompt' is empty"),
    ({"prompt": "len 2:", "response": 7}, SFT_FIELDS, "record 2: field 'response' is a int, expected a string"),
    ("len 2: ab", SFT_FIELDS, "record 2: is a str, expected a mapping"),
])
def test_bad_records_name_their_index(tokenizer, bad, fields, expected):
    good = {k: GOOD.get(k, "ab") for k in fields}
    with pytest.raises(RecordError, match=expected) as caught:
        encode_records([good, good, bad], fields, tokenizer, 24)
    assert caught.value.index == 2 and isinstance(caught.value, DataError)


def test_prompts_longer_than_the_context_are_refused(tokenizer):
    long = {**GOOD, "prompt": "say " + "cat " * 8 + ":"}
    with pytest.raises(RecordTooLongError, match=r"record 1: prompt \(37 tokens\).*max_seq_len=24") as caught:
        encode_records([GOOD, long], PREFERENCE_FIELDS, tokenizer, 24)
    assert isinstance(caught.value, SequenceTooLongError)
    with pytest.raises(RecordTooLongError, match=r"record 0: prompt \(6 tokens\) \+ max_new_tokens=20"):
        encode_prompts(["len 2:"], tokenizer, max_seq_len=24, max_new_tokens=20)
    with pytest.raises(DataError, match="no records"):
        encode_records([], SFT_FIELDS, tokenizer, 24)
    assert torch.tensor(encode_prompts(["len 2:"], tokenizer, 24, 12)).shape == (1, 6)


def test_formers_train_runs_the_ppo_recipe_through_its_own_loop(tmp_path, capsys):
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "align-ppo.yaml"
    tiny = ["--model.d_model=32", "--model.n_layers=1", "--objective.ppo.iterations=2",
            "--objective.ppo.rollout_batch=16", "--objective.ppo.minibatch_size=8", "--objective.ppo.progress=false",
            "--objective.rules.n_test=32"]  # policy and reward null: a fresh policy against the rule itself
    assert main(["train", str(recipe), "--out", str(tmp_path), *tiny]) == 0
    printed = capsys.readouterr().out
    rate = float(re.search(r"test/satisfaction/all: ([\d.]+)", printed).group(1))
    assert 0.0 <= rate <= 1.0 and f"expect satisfaction/all >= 0.75: {rate:.4f}" in printed
    assert (tmp_path / "step-00000002" / "COMPLETE").is_file()  # a checkpoint per run, resumable with --resume
