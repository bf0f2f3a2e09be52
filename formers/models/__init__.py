"""Model families. Importing this package registers each one by name."""

from formers.models.bert import Bert, BertConfig, BertOutput, MLMHead, Pooler
from formers.models.captioner import Captioner, CaptionerConfig
from formers.models.clip import CLIP, CLIPConfig, CLIPOutput
from formers.models.cnn import CNN, CNNConfig
from formers.models.coattention import CoAttention, CoAttentionConfig, CoAttentionOutput
from formers.models.dalle import DALLE, DALLEConfig
from formers.models.encoder_decoder import (
    BartConfig,
    EncoderDecoder,
    EncoderDecoderCache,
    EncoderDecoderConfig,
    T5Config,
    TransformerConfig,
)
from formers.models.gpt import GPT, GPTConfig
from formers.models.heads import SequenceClassifier, SpanQA, TokenClassifier, mean_pool, with_head
from formers.models.late_fusion import LateFusion, LateFusionConfig
from formers.models.lstm import LSTM, LSTMConfig, LSTMState
from formers.models.output import ModelOutput, VisionOutput
from formers.models.patchgan import PatchGAN, PatchGANConfig
from formers.models.towers import VisualTokens, image_tower_config
from formers.models.visualbert import VisualBert, VisualBertConfig, VisualBertOutput
from formers.models.vit import ViT, ViTConfig
from formers.models.vlp import VLP, VLPConfig
from formers.models.vqvae import VQVAE, VQVAEConfig, VQVAEOutput

__all__ = [
    "GPT", "BartConfig", "Bert", "BertConfig", "BertOutput", "EncoderDecoder", "EncoderDecoderCache",
    "EncoderDecoderConfig", "GPTConfig", "MLMHead", "ModelOutput", "Pooler", "SequenceClassifier", "SpanQA",
    "T5Config", "TokenClassifier", "TransformerConfig", "mean_pool", "with_head",
    "LSTM", "LSTMConfig", "LSTMState", "ViT", "ViTConfig", "VisionOutput",
    "CNN", "CNNConfig", "CLIP", "CLIPConfig", "CLIPOutput",
    "PatchGAN", "PatchGANConfig", "VQVAE", "VQVAEConfig", "VQVAEOutput", "DALLE",
    "DALLEConfig",
    "CoAttention", "CoAttentionConfig", "CoAttentionOutput", "LateFusion", "LateFusionConfig",
    "VisualBert", "VisualBertConfig", "VisualBertOutput", "VisualTokens", "image_tower_config",
    "VLP", "VLPConfig", "Captioner", "CaptionerConfig",
]
