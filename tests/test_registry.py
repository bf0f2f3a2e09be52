"""The family and task tables: complete, static, and enough to load any checkpoint in a fresh process."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from formers import storage
from formers.alignment.reward import RewardModelConfig
from formers.errors import ConfigError
from formers.models import BertConfig, GPTConfig, LSTMConfig
from formers.models.captioner import CaptionerConfig
from formers.models.clip import CLIPConfig
from formers.models.cnn import CNNConfig
from formers.models.coattention import CoAttentionConfig
from formers.models.dalle import DALLEConfig
from formers.models.encoder_decoder import BartConfig, T5Config, TransformerConfig
from formers.models.heads import SequenceClassifierConfig, SpanQAConfig, TokenClassifierConfig
from formers.models.late_fusion import LateFusionConfig
from formers.models.patchgan import PatchGANConfig
from formers.models.visualbert import VisualBertConfig
from formers.models.vit import ViTConfig
from formers.models.vlp import VLPConfig
from formers.models.vqvae import VQVAEConfig
from formers.nn.quantize import QuantizerConfig
from formers.registry import FAMILIES, build_model, family_classes
from formers.tasks import TASKS, Task, get_task

TINY = dict(vocab_size=61, d_model=32, n_heads=4, n_layers=2, max_seq_len=32, dropout=0.0)
BERT = BertConfig(**TINY).to_dict()
VIT = dict(image_size=16, patch_size=4, n_channels=3, d_model=32, n_heads=4, n_layers=1, dropout=0.0)
VIT_TOWER = {"family": "vit", **VIT}
VQVAE_TINY = VQVAEConfig(n_channels=3, image_size=8, hidden=8, n_downsample=2, n_res_blocks=0,
                         quantizer=QuantizerConfig(codebook_size=12, code_dim=4))

# One small config per family: a family added to FAMILIES without one here fails the test below.
EXAMPLES = {
    "gpt": GPTConfig(**TINY),
    "bert": BertConfig(**TINY),
    "transformer": TransformerConfig(**TINY),
    "t5": T5Config(**TINY),
    "bart": BartConfig(**TINY),
    "lstm": LSTMConfig(vocab_size=61, d_model=32, n_layers=2, max_seq_len=32, dropout=0.0),
    "sequence_classifier": SequenceClassifierConfig(trunk=BERT, n_outputs=3, pooling="mean"),
    "token_classifier": TokenClassifierConfig(trunk=BERT, n_labels=5),
    "span_qa": SpanQAConfig(trunk=BERT),
    "reward_model": RewardModelConfig(trunk=GPTConfig(**TINY).to_dict()),
    "vit": ViTConfig(**VIT, n_classes=3),
    "cnn": CNNConfig(n_channels=3, widths=[8, 16], depths=[1, 1], groups=4),
    "clip": CLIPConfig(image=ViTConfig(**VIT), text=GPTConfig(**TINY), embed_dim=16),
    "visualbert": VisualBertConfig(**TINY, image=VIT_TOWER),
    "coattention": CoAttentionConfig(**{**TINY, "n_layers": 1}, visual_dim=12),
    "late_fusion": LateFusionConfig(image=VIT_TOWER, text=BERT, n_outputs=4, hidden=16, dropout=0.0),
    "captioner": CaptionerConfig(image=VIT_TOWER, vocab_size=61, d_model=32, n_heads=4, n_layers=1, dropout=0.0),
    "vlp": VLPConfig(trunk={**BERT, "family": "visualbert", "image": VIT_TOWER}, embed_dim=16),
    "vqvae": VQVAE_TINY,
    "dalle": DALLEConfig(text_vocab_size=61, text_len=6, d_model=32, n_heads=2, n_layers=2, dropout=0.0,
                         vqvae=VQVAE_TINY),
    "patchgan": PatchGANConfig(n_channels=1, width=8, n_layers=1),
}

# Runs in a new interpreter: nothing imported before but formers itself. reward_model goes first:
# its family lives in formers.alignment, which nothing else imports.
LOAD_ALL = """
import json, sys
import formers
from formers import storage
before = sorted(m for m in sys.modules if m.startswith("formers.alignment"))
out = {"alignment_before": before}
for name, path in json.loads(sys.argv[1]):
    model = formers.load(path)
    out[name] = [type(model).__name__, model.config.family, storage.tensor_digest(storage.unique_state_dict(model))]
print(json.dumps(out))
"""


def test_every_family_has_an_example_and_a_matching_config_class():
    assert sorted(EXAMPLES) == sorted(FAMILIES)
    for name in FAMILIES:
        config_cls, _ = family_classes(name)
        family = {f.name: f.default for f in dataclasses.fields(config_cls)}["family"]
        assert family == name and isinstance(EXAMPLES[name], config_cls)


def test_every_family_saved_here_loads_in_a_fresh_process(tmp_path):
    expected, paths = {}, []
    for name in sorted(FAMILIES, key=lambda n: n != "reward_model"):
        torch.manual_seed(0)
        model = build_model(EXAMPLES[name])
        storage.save_model(model, tmp_path / name)
        expected[name] = [type(model).__name__, name, storage.tensor_digest(storage.unique_state_dict(model))]
        paths.append([name, str(tmp_path / name)])
    done = subprocess.run([sys.executable, "-c", LOAD_ALL, json.dumps(paths)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded.pop("alignment_before") == []  # the table imported formers.alignment when asked, not before
    assert loaded == expected


def test_unknown_family_and_task_name_the_allowed_ones():
    with pytest.raises(ConfigError, match="model.family='nope' is not allowed; expected one of .*'reward_model'"):
        family_classes("nope")
    with pytest.raises(ConfigError, match="task='nope' is not allowed; expected one of .*'causal_lm'"):
        get_task("nope")


def test_every_task_entry_is_a_task():
    for name in TASKS:
        assert isinstance(get_task(name), Task), name
