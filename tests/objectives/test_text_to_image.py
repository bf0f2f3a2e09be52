"""The text-to-image LM loss: which targets count as text and image, and their separate weights."""

import pytest
import torch

from formers.data.text_image import TextImageBatches, fixed_text_image_batches
from formers.errors import DataError
from formers.objectives.causal_lm import IGNORE_INDEX, token_cross_entropy
from formers.objectives.text_to_image import TextToImageLM, TextToImageLMConfig, split_targets

PAD = 0


def test_targets_split_into_text_and_image_parts():
    ids = torch.tensor([[5, 7, 8, PAD, 20, 21, 22]])  # text_len 4: [BOS]=5, two words, one pad; 3 image ids
    text, image = split_targets(ids, text_len=4, pad_id=PAD)
    # position j predicts ids[j + 1]: text targets 7, 8 (the pad is not predicted); image targets 20, 21, 22
    assert text.tolist() == [[7, 8, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]
    assert image.tolist() == [[IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 20, 21, 22]]


class FixedLogits(torch.nn.Module):
    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, input_ids):
        from formers.models.output import ModelOutput

        return ModelOutput(logits=self.logits[:, : input_ids.shape[1]], last_hidden_state=self.logits)


def test_loss_weighs_the_mean_text_and_mean_image_cross_entropies():
    torch.manual_seed(0)
    ids = torch.tensor([[5, 7, 8, PAD, 20, 21, 22], [5, 9, PAD, PAD, 23, 20, 24]])
    logits = torch.randn(2, 6, 30)
    objective = TextToImageLM(TextToImageLMConfig(text_weight=0.25, image_weight=2.0), text_len=4, pad_id=PAD)
    out = objective(FixedLogits(logits), {"input_ids": ids})
    text, image = split_targets(ids, 4, PAD)
    text_ce = token_cross_entropy(logits, text)["loss"]  # mean over the 3 real text targets
    image_ce = token_cross_entropy(logits, image)["loss"]  # mean over the 6 image targets
    torch.testing.assert_close(out["loss"], 0.25 * text_ce + 2.0 * image_ce)
    torch.testing.assert_close(out["text_loss"], text_ce)
    torch.testing.assert_close(out["image_loss"], image_ce)


def test_dalle_weights_by_default_and_text_weight_zero_drops_the_text_term():
    assert TextToImageLMConfig().text_weight == pytest.approx(1 / 8)
    assert TextToImageLMConfig().image_weight == pytest.approx(7 / 8)
    ids = torch.tensor([[5, 7, 20, 21]])
    out = TextToImageLM(TextToImageLMConfig(text_weight=0.0), text_len=2, pad_id=PAD)(
        FixedLogits(torch.randn(1, 3, 30)), {"input_ids": ids})
    assert "text_loss" not in out
    with pytest.raises(DataError, match="hold no image"):
        TextToImageLM(text_len=4, pad_id=PAD)(FixedLogits(torch.randn(1, 3, 30)), {"input_ids": ids})


def test_text_image_batches_are_resumable_and_pair_each_image_with_one_of_its_captions():
    n, k, t, m = 10, 3, 4, 5
    text = torch.arange(n * k * t).reshape(n, k, t)
    images = 1000 + torch.arange(n * m).reshape(n, m)
    source = TextImageBatches(text, images, batch_size=4, seed=0)
    batches = [source.next_batch()["input_ids"] for _ in range(5)]
    for batch in batches:
        assert batch.shape == (4, t + m)
        for row in batch:
            i = int(row[t] - 1000) // m
            assert torch.equal(row[t:], images[i])
            assert any(torch.equal(row[:t], text[i, c]) for c in range(k))
    again = TextImageBatches(text, images, batch_size=4, seed=0)
    again.load_state_dict({"step": 3})
    assert torch.equal(again.next_batch()["input_ids"], batches[3])
    fixed = fixed_text_image_batches(text, images, batch_size=4)
    assert [len(b["input_ids"]) for b in fixed] == [4, 4, 2]
    assert torch.equal(fixed[0]["input_ids"][1], torch.cat((text[1, 0], images[1])))
    with pytest.raises(DataError, match="for the same N"):
        TextImageBatches(text[:3], images, batch_size=2, seed=0)
