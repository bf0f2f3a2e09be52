"""Model families (formers.registry.FAMILIES lists them by name)."""

from formers.models.bert import Bert, BertConfig, BertOutput, MLMHead, Pooler
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
from formers.models.lstm import LSTM, LSTMConfig, LSTMState
from formers.models.output import ModelOutput

__all__ = [
    "GPT", "BartConfig", "Bert", "BertConfig", "BertOutput", "EncoderDecoder", "EncoderDecoderCache",
    "EncoderDecoderConfig", "GPTConfig", "MLMHead", "ModelOutput", "Pooler", "SequenceClassifier", "SpanQA",
    "T5Config", "TokenClassifier", "TransformerConfig", "mean_pool", "with_head",
    "LSTM", "LSTMConfig", "LSTMState",
]
