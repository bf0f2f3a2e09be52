import json

import pytest
import torch

from formers.data import TokenWindows, eval_windows
from formers.errors import CheckpointError, DataError

# A stream whose value is its position: a window's first token is where it starts.
STREAM = torch.arange(10_000)


def windows(**kw) -> TokenWindows:
    return TokenWindows(STREAM, **{"seq_len": 16, "batch_size": 4, "seed": 0, **kw})


def draw(source: TokenWindows, n: int) -> list[dict[str, torch.Tensor]]:
    return [source.next_batch() for _ in range(n)]


def test_batch_shapes_and_labels_are_inputs_shifted_by_one():
    batch = windows().next_batch()
    x, y = batch["input_ids"], batch["labels"]
    assert x.shape == y.shape == (4, 16) and x.dtype == y.dtype == torch.long
    for row_x, row_y in zip(x, y, strict=True):
        start = int(row_x[0])
        assert torch.equal(row_x, STREAM[start : start + 16])  # a contiguous piece of the source
        assert torch.equal(row_y, STREAM[start + 1 : start + 17])


def test_windows_reach_the_end_of_the_stream_and_never_past_it():
    tokens = torch.arange(20)
    source = TokenWindows(tokens, seq_len=18, batch_size=64, seed=1)
    starts = {int(s) for b in draw(source, 4) for s in b["input_ids"][:, 0]}
    assert starts == {0, 1}  # the only windows of 19 tokens in 20


def test_same_seed_same_batches_and_different_seed_differs():
    a, b, c = draw(windows(), 3), draw(windows(), 3), draw(windows(seed=1), 3)
    assert all(torch.equal(p["input_ids"], q["input_ids"]) for p, q in zip(a, b, strict=True))
    assert not torch.equal(a[0]["input_ids"], c[0]["input_ids"])
    assert not torch.equal(a[0]["input_ids"], a[1]["input_ids"])  # steps differ too


def test_resume_from_state_reproduces_the_rest_of_the_run():
    straight = draw(windows(), 5)
    first = windows()
    draw(first, 3)
    state = json.loads(json.dumps(first.state_dict()))  # must survive JSON
    assert state == {"step": 3}
    resumed = windows()
    resumed.load_state_dict(state)
    for want, got in zip(straight[3:], draw(resumed, 2), strict=True):
        assert torch.equal(want["input_ids"], got["input_ids"])
        assert torch.equal(want["labels"], got["labels"])


def test_ranks_split_the_global_batch_of_one_process():
    one = draw(windows(batch_size=6), 3)
    ranks = [draw(windows(batch_size=2, rank=r, world_size=3), 3) for r in range(3)]
    for step, whole in enumerate(one):
        for key in ("input_ids", "labels"):
            # rank r holds rows [2r, 2r + 2) of the one-process batch: together exactly that batch
            assert torch.equal(torch.cat([ranks[r][step][key] for r in range(3)]), whole[key])


def test_bad_inputs_raise_data_error():
    with pytest.raises(DataError, match="has 10 tokens but seq_len=16 needs at least 17"):
        TokenWindows(torch.arange(10), seq_len=16, batch_size=2, seed=0)
    with pytest.raises(DataError, match="1-D torch.long"):
        TokenWindows(torch.zeros(100), seq_len=4, batch_size=2, seed=0)
    with pytest.raises(DataError, match="rank=2"):
        windows(rank=2, world_size=2)


def test_bad_state_raises_checkpoint_error():
    with pytest.raises(CheckpointError, match="'step'"):
        windows().load_state_dict({"epoch": 3})


def test_eval_windows_cover_the_stream_once_in_order():
    tokens = torch.arange(105)
    batches = eval_windows(tokens, seq_len=10, batch_size=4)
    assert [b["input_ids"].shape[0] for b in batches] == [4, 4, 2]  # last partial batch kept
    inputs = torch.cat([b["input_ids"] for b in batches]).flatten()
    labels = torch.cat([b["labels"] for b in batches]).flatten()
    assert torch.equal(inputs, tokens[:100])  # contiguous, non-overlapping, from the start
    assert torch.equal(labels, tokens[1:101])  # each token after the first predicted once
    again = eval_windows(tokens, seq_len=10, batch_size=4)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(batches, again, strict=True))


def test_eval_windows_max_batches_and_short_stream():
    batches = eval_windows(torch.arange(105), seq_len=10, batch_size=4, max_batches=2)
    assert len(batches) == 2 and batches[1]["input_ids"][-1, 0] == 70
    assert len(eval_windows(torch.arange(11), seq_len=10, batch_size=4)) == 1
    with pytest.raises(DataError, match="has 10 tokens"):
        eval_windows(torch.arange(10), seq_len=10, batch_size=4)
