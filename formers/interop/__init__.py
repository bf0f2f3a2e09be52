"""Weights in and out of other libraries' layouts (Hugging Face `transformers` today)."""

from formers.interop.hf import FAMILIES, load_hf, load_hf_tokenizer, save_hf

__all__ = ["FAMILIES", "load_hf", "load_hf_tokenizer", "save_hf"]
