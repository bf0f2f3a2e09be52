"""The clip task's data: captions that name their class, resumable sources, probes of held-out pairs."""

import re

import torch

from formers.data.images import load_digits
from formers.data.shapes import ShapesConfig
from formers.data.shapes_text import shapes_tokenizer
from formers.data.tokenizers import TokenizerConfig, train_tokenizer
from formers.tasks.clip_data import (
    CaptionedImages,
    LabelledCaptionsConfig,
    ShapesCaptionsConfig,
    shapes_data,
    text_encoder,
)


def test_captioned_images_name_their_class_and_resume_exactly():
    data = load_digits("train")
    config = LabelledCaptionsConfig(dataset="digits", templates=["a photo of a {}.", "the digit {}"])
    tokenizer = train_tokenizer(TokenizerConfig(kind="word"), config.texts(data.classes))
    encode = text_encoder(tokenizer, ["[BOS]", "[EOS]"])
    source = CaptionedImages(data, config.templates, encode, batch_size=16, seed=3)
    source.next_batch()
    state = source.state_dict()
    batch = source.next_batch()
    assert batch["group_ids"].shape == (16,) and batch["pixel_values"].shape == (16, 1, 8, 8)
    for ids, mask, label in zip(batch["input_ids"], batch["attention_mask"], batch["group_ids"], strict=True):
        text = tokenizer.decode(ids[mask.bool()].tolist(), skip_special_tokens=False)
        assert text.startswith("[BOS]") and text.endswith("[EOS]")
        assert data.classes[int(label)] in re.findall(r"\w+", text)  # the group is the class the caption names
    again = CaptionedImages(data, config.templates, encode, batch_size=16, seed=3)
    again.load_state_dict(state)
    resumed = again.next_batch()
    for key in batch:
        assert torch.equal(batch[key], resumed[key]), key


def test_shapes_probes_hold_only_held_out_pairs_and_retrieval_marks_true_captions():
    config = ShapesCaptionsConfig(shapes=ShapesConfig(image_size=24), probe_images=40)
    data = shapes_data(config, shapes_tokenizer(), ["[BOS]", "[EOS]"], batch_size=8, seed=0, eval_batches=2,
                       retrieval_pairs=30)
    held_out = config.shapes.heldout_pairs
    colour, shape = data.probes[0], data.probes[1]
    assert (colour.name, shape.name) == ("colour", "shape") and torch.equal(colour.pixel_values, shape.pixel_values)
    pairs = {(colour.classes[c], shape.classes[s]) for c, s in zip(colour.labels.tolist(), shape.labels.tolist(),
                                                                   strict=True)}
    assert pairs <= held_out and len(pairs) > 1
    seen = {(colour.classes[c], shape.classes[s]) for c, s in zip(data.probes[2].labels.tolist(),
                                                                  data.probes[3].labels.tolist(), strict=True)}
    assert not seen & held_out
    assert colour.templates[0] == f"a {{}} {config.shapes.shapes[0]}"  # the other attribute, every value
    r = data.retrieval
    assert r.positives.shape == (30, 30) and r.positives.diagonal().all()
    assert len(data.val_batches) == 2 and data.val_batches[0]["pixel_values"].shape == (8, 3, 24, 24)
    assert "matches" in data.train_source.next_batch()
