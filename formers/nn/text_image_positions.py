"""Positions for a sequence of text tokens followed by an image's grid of tokens (DALL-E).

Ramesh et al. 2021 ("Zero-Shot Text-to-Image Generation", appendix B.1) give the text part a learned
embedding per position and the image part a learned row embedding plus a learned column embedding, so
a token knows where in the picture it sits, not only how far along the sequence:

    position p <  text_len:  text[p]
    position p >= text_len:  row[(p - text_len) // w] + column[(p - text_len) % w]    (row-major grid, h x w)

It is an absolute position scheme like `LearnedPositions` (formers/nn/embeddings.py) and answers the
same questions, so GPT takes it in place of the one its config names.
"""

from __future__ import annotations

import torch
from torch import nn

from formers.errors import SequenceTooLongError
from formers.nn.embeddings import PositionScheme


class TextImagePositions(PositionScheme):
    def __init__(self, text_len: int, grid: tuple[int, int], d_model: int) -> None:
        super().__init__()
        self.text_len, (self.h, self.w) = text_len, grid
        self.position_limit = text_len + self.h * self.w
        self.text = nn.Embedding(text_len, d_model)
        self.row = nn.Embedding(self.h, d_model)
        self.column = nn.Embedding(self.w, d_model)

    def absolute(self, position_ids: torch.Tensor) -> torch.Tensor:
        limit = self.position_limit
        if position_ids.numel() and not torch.compiler.is_compiling() and int(position_ids.max()) >= limit:
            raise SequenceTooLongError(
                f"position {int(position_ids.max())} is past the last image token: the model reads "
                f"{self.text_len} text tokens and a {self.h}x{self.w} grid ({limit} positions)"
            )
        is_text = position_ids < self.text_len  # (B, T)
        cell = (position_ids - self.text_len).clamp(min=0)  # index into the grid, row-major
        image = self.row(cell // self.w) + self.column(cell % self.w)  # (B, T, D)
        text = self.text(position_ids.clamp(max=self.text_len - 1))  # (B, T, D)
        return torch.where(is_text[..., None], text, image)
