"""Parity with Hugging Face `transformers`, both directions, on random-init reference models.

HF -> formers: the reference's save_pretrained folder loads with `formers.load`.
formers -> HF: `save_hf` writes a folder that `from_pretrained` loads with no missing, unexpected
or mismatched keys. Logits agree to 1e-4 (fp32) on a batch with padding; greedy and beam-search
generation give the same tokens.
"""

from __future__ import annotations

import pytest
import torch
import transformers as tf

import formers
from formers.generation import left_pad
from formers.interop import save_hf
from tests.interop.references import BUILDERS, ENCODER_DECODERS, batch, reference

# Two fp32 implementations of the same layers sum in other orders (and HF's GELU/softmax kernels differ):
# ~1e-6 of the outputs' scale. The bound is 1e-4 of that scale, floored at 1 so that the O(1) logits of
# random-init models are held to 1e-4 absolute, the figure the README states.
TOLERANCE = 1e-4


def assert_near(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    bound = TOLERANCE * max(1.0, expected.abs().max().item())
    assert (got - expected).abs().max() <= bound, what


_PAIRS: dict[str, tuple] = {}


def converted(name: str, tmp_path_factory) -> tuple:
    """(name, reference, ours loaded from the reference's folder, the reference reloaded from our export)."""
    if name not in _PAIRS:
        _PAIRS[name] = _convert(name, tmp_path_factory.mktemp(name))
    return _PAIRS[name]


def _convert(name: str, folder) -> tuple:
    with torch.no_grad():
        ref = reference(name)
        ref.save_pretrained(folder / "hf")
        ours = formers.load(folder / "hf")
        save_hf(ours, folder / "ours")
        back, info = type(ref).from_pretrained(folder / "ours", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    return name, ref, ours, back.eval()


@pytest.fixture(scope="module", params=list(BUILDERS))
def pair(request, tmp_path_factory):
    return converted(request.param, tmp_path_factory)


@pytest.fixture(scope="module", params=[name for name in BUILDERS if not name.startswith("bert")])
def generative(request, tmp_path_factory):
    return converted(request.param, tmp_path_factory)


def outputs(name: str, model: torch.nn.Module, hf: bool) -> dict[str, torch.Tensor]:
    """The outputs to compare, only at real (unpadded) positions."""
    x = batch()
    real, real_dec = x["attention_mask"].bool(), x["decoder_attention_mask"].bool()
    with torch.no_grad():
        if name.startswith("gpt2"):
            return {"logits": model(x["input_ids"], attention_mask=x["attention_mask"]).logits[real]}
        if name.startswith("bert"):
            out = model(x["input_ids"], attention_mask=x["attention_mask"], token_type_ids=x["token_type_ids"])
            logits, nsp = (out.prediction_logits, out.seq_relationship_logits) if hf else (out.logits, out.nsp_logits)
            return {"logits": logits[real], "nsp_logits": nsp}
        out = model(x["input_ids"], attention_mask=x["attention_mask"], decoder_input_ids=x["decoder_input_ids"],
                    decoder_attention_mask=x["decoder_attention_mask"])
        return {"logits": out.logits[real_dec], "memory": out.encoder_last_hidden_state[real]}


def test_logits_match_in_both_directions(pair):
    name, ref, ours, back = pair
    expected, got, again = outputs(name, ref, True), outputs(name, ours, False), outputs(name, back, True)
    for key in expected:
        assert expected[key].abs().max() > 0.5  # outputs large enough for a wrong weight to show
        assert_near(got[key], expected[key], f"{name} {key}: HF -> formers")
        assert_near(again[key], got[key], f"{name} {key}: formers -> HF")


def hf_generate(ref, ids, mask, **kw) -> torch.Tensor:
    config = tf.GenerationConfig(do_sample=False, pad_token_id=0, forced_eos_token_id=None, **kw)
    ref.generation_config = config  # nothing from the model's defaults (BART forces EOS) may leak in
    return ref.generate(ids, attention_mask=mask, generation_config=config)


def until_eos(row: torch.Tensor, start: int, eos: int | None) -> list[int]:
    """The generated part up to its EOS (padding after it differs: transformers pads with EOS when pad is 0)."""
    tokens = row[start:].tolist()
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


SEARCHES = [
    dict(num_beams=1),
    dict(num_beams=3),
    dict(num_beams=3, length_penalty=2.0),
    dict(num_beams=4, length_penalty=0.5, early_stopping=True),
    dict(num_beams=3, length_penalty=1.5, early_stopping="never"),
]


def test_greedy_and_beam_generation_match(generative):
    name, ref, ours, _ = generative
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12, 13], [3, 40]]
    if name in ENCODER_DECODERS:  # sources right-padded; the decoder starts from decoder_start_token_id
        ids = torch.tensor([p + [0] * (6 - len(p)) for p in prompts])
        mask, start = (ids != 0).long(), 1
        extra = dict(decoder_start_token_id=ours.config.decoder_start_token_id)
    else:  # prompts left-padded
        (ids, mask), start, extra = left_pad(prompts, pad_id=0), 6, {}
    greedy = formers.generate(ours, ids, attention_mask=mask, max_new_tokens=10)
    eos = int(greedy[0, start + 3])  # a token greedy emits mid-way, so hypotheses end at different steps
    beams_differ = False
    for search in SEARCHES:
        for stop in (None, eos):
            kw = dict(max_new_tokens=10, eos_token_id=stop, **search)
            theirs = hf_generate(ref, ids, mask, **kw, **extra)
            mine = formers.generate(ours, ids, attention_mask=mask, pad_token_id=0, **kw)
            for a, b in zip(theirs, mine, strict=True):
                assert until_eos(a, start, stop) == until_eos(b, start, stop), f"{name} {kw}"
            beams_differ |= not torch.equal(mine[:, : greedy.shape[1]], greedy[:, : mine.shape[1]])
    assert beams_differ  # the searches are not all greedy in disguise


def test_an_untied_bert_head_without_the_decoder_bias_copy_keeps_the_bias_it_has(tmp_path):
    from safetensors.torch import load_file, save_file

    ref = reference("bert-untied-gelu-new")
    ref.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["cls.predictions.bias"] = state.pop("cls.predictions.decoder.bias")  # as files that store one name do
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    expected = outputs("bert-untied-gelu-new", ref, True)
    got = outputs("bert-untied-gelu-new", formers.load(tmp_path), False)
    assert_near(got["logits"], expected["logits"], "bert-untied-gelu-new logits")
