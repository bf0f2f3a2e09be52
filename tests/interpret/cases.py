"""Tiny random models of every attention-bearing family, shared by the interpret and viz tests."""

from __future__ import annotations

from formers.models import BertConfig, GPTConfig
from formers.models.captioner import CaptionerConfig
from formers.models.clip import CLIPConfig
from formers.models.coattention import CoAttentionConfig
from formers.models.dalle import DALLEConfig
from formers.models.encoder_decoder import T5Config
from formers.models.visualbert import VisualBertConfig
from formers.models.vit import ViTConfig
from formers.models.vqvae import VQVAEConfig
from formers.nn.quantize import QuantizerConfig

TINY = dict(vocab_size=96, d_model=32, n_heads=4, n_layers=2, max_seq_len=32, dropout=0.0)
VIT = dict(image_size=16, patch_size=4, n_channels=3, d_model=32, n_heads=4, n_layers=2, dropout=0.0)
VIT_TOWER = {"family": "vit", **VIT}  # 4 x 4 patches + [CLS] = 17 visual tokens
VQVAE = VQVAEConfig(n_channels=3, image_size=8, hidden=8, n_downsample=2, n_res_blocks=0,
                    quantizer=QuantizerConfig(codebook_size=12, code_dim=4))

CONFIGS = {
    "gpt": GPTConfig(**TINY),
    "bert": BertConfig(**TINY),
    "t5": T5Config(**TINY),
    "vit": ViTConfig(**VIT, n_classes=3),
    "clip": CLIPConfig(image=ViTConfig(**VIT), text=GPTConfig(**TINY), embed_dim=16),
    "visualbert": VisualBertConfig(**TINY, image=VIT_TOWER),
    "coattention": CoAttentionConfig(**{**TINY, "n_layers": 1}, image=VIT_TOWER),
    "captioner": CaptionerConfig(image=VIT_TOWER, vocab_size=96, d_model=32, n_heads=4, n_layers=2, dropout=0.0),
    "dalle": DALLEConfig(text_vocab_size=96, text_len=6, d_model=32, n_heads=2, n_layers=2, dropout=0.0,
                         vqvae=VQVAE),
}
