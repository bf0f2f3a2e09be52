"""Small random-init `transformers` reference models, built from config (no download), one per family."""

from __future__ import annotations

import torch
import transformers as tf

V = 97  # vocabulary of every reference
BART = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=40, vocab_size=V)
T5 = dict(d_model=32, d_kv=6, d_ff=64, num_layers=2, num_heads=4, vocab_size=V)  # d_kv * heads != d_model on purpose

BUILDERS = {
    "gpt2": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=40, vocab_size=V,
                                                     bos_token_id=1, eos_token_id=1)),
    "bert": lambda: tf.BertForPreTraining(tf.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                        intermediate_size=64, max_position_embeddings=40,
                                                        vocab_size=V)),
    "t5-v1.0": lambda: tf.T5ForConditionalGeneration(tf.T5Config(**T5, feed_forward_proj="relu")),
    "t5-v1.1": lambda: tf.T5ForConditionalGeneration(tf.T5Config(**T5, feed_forward_proj="gated-gelu",
                                                                 tie_word_embeddings=False)),
    "bart": lambda: tf.BartForConditionalGeneration(tf.BartConfig(**BART)),
    # variants: other activations, an untied head, 8 heads, an inner width of its own, fewer relative buckets
    "gpt2-relu-untied": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(
        n_embd=32, n_layer=2, n_head=8, n_positions=40, vocab_size=V, activation_function="relu", n_inner=48,
        layer_norm_epsilon=1e-6, tie_word_embeddings=False, bos_token_id=1, eos_token_id=1)),
    "bert-untied-gelu-new": lambda: tf.BertForPreTraining(tf.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=40, max_position_embeddings=40,
        vocab_size=V, hidden_act="gelu_new", type_vocab_size=3, tie_word_embeddings=False)),
    "t5-buckets": lambda: tf.T5ForConditionalGeneration(tf.T5Config(
        **T5, feed_forward_proj="relu", relative_attention_num_buckets=8, relative_attention_max_distance=12)),
    "t5-gated-relu": lambda: tf.T5ForConditionalGeneration(tf.T5Config(
        **T5, feed_forward_proj="gated-relu", tie_word_embeddings=True)),
    "bart-scaled-relu": lambda: tf.BartForConditionalGeneration(tf.BartConfig(
        **{**BART, "encoder_layers": 1}, scale_embedding=True, activation_function="relu")),
}
# ViT (images, not token batches: tests/interop/test_vit_parity.py): a bare ViTModel with its tanh pooler, a
# classifier, and a bare model without pooler but with a mask token, other activation, eps, channels and heads
VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=16,
           patch_size=4, num_channels=3)
VISION_BUILDERS = {
    "vit": lambda: tf.ViTModel(tf.ViTConfig(**VIT)),
    "vit-classifier": lambda: tf.ViTForImageClassification(tf.ViTConfig(**VIT, num_labels=5)),
    "vit-bare-mask-gelu-new": lambda: tf.ViTModel(tf.ViTConfig(
        **{**VIT, "num_attention_heads": 2, "num_channels": 1}, hidden_act="gelu_new", layer_norm_eps=1e-6),
        add_pooling_layer=False, use_mask_token=True),
}
CLIP_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=20, vocab_size=V)
CLIP_VISION = dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, image_size=16,
                   patch_size=4)
CLIP_BUILDERS = {  # pooled at the first eos_token_id 5; and the pre-#24773 rule (eos_token_id 2: the highest id)
    "clip": lambda: tf.CLIPModel(tf.CLIPConfig(text_config={**CLIP_TEXT, "eos_token_id": 5},
                                               vision_config=CLIP_VISION, projection_dim=16)),
    "clip-argmax-gelu": lambda: tf.CLIPModel(tf.CLIPConfig(
        text_config={**CLIP_TEXT, "eos_token_id": 2, "hidden_act": "gelu"},
        vision_config={**CLIP_VISION, "num_channels": 1, "hidden_act": "gelu_new"}, projection_dim=8)),
}
ENCODER_DECODERS = ("t5-v1.0", "t5-v1.1", "bart", "t5-buckets", "t5-gated-relu", "bart-scaled-relu")


def reference(name: str) -> torch.nn.Module:
    """The reference model with every weight redrawn at a scale where mistakes show (N(0, 0.3); norms ~1)."""
    torch.manual_seed(0)
    model = {**BUILDERS, **VISION_BUILDERS, **CLIP_BUILDERS}[name]().eval()
    if name == "t5-v1.1":  # transformers 5 ties T5's head at init whatever the config says: untie it as v1.1 is
        model.lm_head.weight = torch.nn.Parameter(torch.empty_like(model.lm_head.weight))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                is_norm_scale = "norm" in key.lower() and key.endswith("weight")
                tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.3 + float(is_norm_scale))
    return model


def batch() -> dict[str, torch.Tensor]:
    """Three rows right-padded to different lengths, for both sides of an encoder-decoder."""
    g = torch.Generator().manual_seed(2)
    mask = (torch.arange(9)[None] < torch.tensor([9, 6, 3])[:, None]).long()
    decoder_mask = (torch.arange(7)[None] < torch.tensor([7, 5, 2])[:, None]).long()
    return {
        "input_ids": torch.randint(3, V, (3, 9), generator=g) * mask,
        "attention_mask": mask,
        "token_type_ids": (torch.arange(9)[None] >= 4).long().expand(3, -1),
        "decoder_input_ids": torch.randint(3, V, (3, 7), generator=g),
        "decoder_attention_mask": decoder_mask,
    }


# Both sides compute the same fp32 math with sums in another order (SDPA kernels, fused qkv): that differs
# by ~1e-6 of the outputs' scale. 1e-4 of the scale leaves that 100x room, while one wrong weight, a swapped
# q/k or a misplaced norm moves outputs by O(1) (the references' weights are N(0, 0.3), outputs ~1).
RELATIVE = 1e-4


def assert_close(got: dict, expected: dict, what: str, least: float = 0.5) -> None:
    """Every output within RELATIVE of its scale; `least`: the scale below which a wrong weight could hide."""
    assert got.keys() == expected.keys(), what
    for key, value in expected.items():
        scale = value.abs().max()
        assert scale > least, f"{what} {key}: outputs too small for a wrong weight to show"
        assert (got[key] - value).abs().max() <= RELATIVE * scale, f"{what} {key}"


def round_trip(name: str, folder, **build_kwargs) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """(reference, ours loaded from its save_pretrained folder, the reference's class reloaded from our
    save_hf export), refusing any missing, unexpected or mismatched key on the way back."""
    import formers
    from formers.interop import save_hf

    with torch.no_grad():
        ref = reference(name)
        ref.save_pretrained(folder / "hf")
        ours = formers.load(folder / "hf")
        save_hf(ours, folder / "ours")
        back, info = type(ref).from_pretrained(folder / "ours", output_loading_info=True, **build_kwargs)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    return ref, ours, back.eval()
