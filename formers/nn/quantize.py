"""Vector quantisation: a codebook of K vectors that turns continuous encoder outputs into discrete codes.

van den Oord et al. 2017, "Neural Discrete Representation Learning" (VQ-VAE). Each encoder output
z_e (one D-vector per grid cell) is replaced by its nearest codebook vector e_k; k is the cell's code.
The argmin has no gradient, so the decoder's gradient is copied straight through to z_e (section 3.2):

    z_q = z_e + sg[e_k - z_e]          forward: e_k;  backward: d/dz_q goes to z_e unchanged

and the loss adds two terms that the reconstruction gradient cannot provide (eq. 3):

    codebook   ||sg[z_e] - e_k||^2       moves the codes towards the encoder outputs
    commitment beta ||z_e - sg[e_k]||^2  keeps the encoder near its codes; beta = 0.25 in the paper

How the codebook learns is a module chosen when the quantiser is built:

  LearnedCodebook  the codebook is a parameter trained by the optimiser through the codebook term
  EMACodebook      the codebook is a buffer set to exponential moving averages of the encoder outputs
                   assigned to each code (the paper's appendix A.1; Razavi et al. 2019, VQ-VAE-2), with
                   Laplace smoothing of the counts; the loss keeps only the commitment term

Both revive dead codes (Dhariwal et al. 2020, Jukebox, "random restarts"): a code whose moving-average
usage falls below `revive_below` times the uniform share is reset to a random encoder output of the
current batch. Usage starts at zero, so the first training batch initialises every code from the data.
Distances and updates run in fp32 whatever the autocast dtype: a nearest-neighbour search in bf16 would
tie codes whose distances differ in the third digit.

Under DDP each rank would revive and average with its own batch; the codebook is then no longer the
same on every rank. These modules are meant for one process (the recipes here).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from formers.config import Config, check


@dataclasses.dataclass(kw_only=True)
class QuantizerConfig(Config):
    kind: Literal["learned", "ema"] = "ema"
    codebook_size: int = 256  # K codes
    code_dim: int = 64  # D, the width of each code vector
    beta: float = 0.25  # commitment weight (van den Oord et al. 2017, section 3.2: "we use beta = 0.25")
    decay: float = 0.99  # EMA codebook: gamma of the moving averages (Razavi et al. 2019 use 0.99)
    eps: float = 1e-5  # EMA codebook: Laplace smoothing of the counts, so no code divides by zero
    revive_below: float = 0.03  # a code is dead below this fraction of the uniform usage share; 0 = never revive
    usage_decay: float = 0.95  # moving average of each code's usage, for revival: dead after ~70 unused steps
    # (0.99 waits ~350: a Fashion-MNIST run then used 27% of 256 codes after 300 steps)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.codebook_size >= 2, "QuantizerConfig.codebook_size", self.codebook_size, "an int >= 2")
        check(self.code_dim > 0, "QuantizerConfig.code_dim", self.code_dim, "a positive int")
        check(self.beta >= 0, "QuantizerConfig.beta", self.beta, "a value >= 0")
        for name in ("decay", "usage_decay"):
            check(0.0 < getattr(self, name) < 1.0, f"QuantizerConfig.{name}", getattr(self, name), "a value in (0, 1)")
        check(self.eps > 0, "QuantizerConfig.eps", self.eps, "a value > 0")
        check(0.0 <= self.revive_below < 1.0, "QuantizerConfig.revive_below", self.revive_below, "a value in [0, 1)")


@dataclasses.dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # (B, D, H, W) straight-through: the codes' vectors forward, identity backward
    codes: torch.Tensor  # (B, H, W) long, index of each cell's code
    loss: torch.Tensor  # () what the quantiser adds to the training loss
    commitment: torch.Tensor  # () ||z_e - sg[e]||^2, mean over elements (before beta)
    codebook: torch.Tensor  # () ||sg[z_e] - e||^2, the same value; in `loss` only for the learned codebook
    perplexity: torch.Tensor  # () exp(entropy of the batch's code histogram): K when all codes are used evenly


def nearest_codes(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """z (N, D), codebook (K, D) -> index of the nearest code by Euclidean distance (N,)."""
    # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2; ||z||^2 is the same for every code and drops out of the argmin
    distances = codebook.pow(2).sum(1)[None] - 2 * z @ codebook.T  # (N, K)
    return distances.argmin(1)


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of a histogram of code counts (K,)."""
    p = counts / counts.sum().clamp(min=1)
    return torch.exp(-(p * torch.log(p.clamp(min=1e-10))).sum())


class Quantizer(nn.Module):
    """Interface and shared machinery; LearnedCodebook and EMACodebook say how the codebook moves."""

    def __init__(self, config: QuantizerConfig) -> None:
        super().__init__()
        self.config = config
        # Moving average of how many of a batch's vectors each code takes; zero at first, so the first
        # training batch revives (data-initialises) every code.
        self.register_buffer("usage", torch.zeros(config.codebook_size))

    @property
    def embedding(self) -> torch.Tensor:
        """(K, D) the current code vectors."""
        raise NotImplementedError

    @torch.no_grad()
    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """z_e (B, D, H, W) -> codes (B, H, W), touching nothing (no update, no revival)."""
        b, d, h, w = z_e.shape
        with torch.autocast(z_e.device.type, enabled=False):
            z = z_e.float().permute(0, 2, 3, 1).reshape(-1, d)  # (N, D)
            return nearest_codes(z, self.embedding.float()).reshape(b, h, w)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, H, W) long -> code vectors (B, D, H, W)."""
        return F.embedding(codes, self.embedding).permute(0, 3, 1, 2)

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        """z_e (B, D, H, W) encoder outputs -> QuantizerOutput."""
        b, d, h, w = z_e.shape
        with torch.autocast(z_e.device.type, enabled=False):
            z = z_e.float().permute(0, 2, 3, 1).reshape(-1, d)  # (N, D), N = B*H*W cells
            codes = nearest_codes(z.detach(), self.embedding.float())  # (N,)
            counts = torch.bincount(codes, minlength=self.config.codebook_size).float()  # (K,)
            e = F.embedding(codes, self.embedding.float())  # (N, D) the codes as they were when chosen
            commitment = F.mse_loss(z, e.detach())
            codebook = F.mse_loss(z.detach(), e)
            loss = self.config.beta * commitment + self.codebook_term(codebook)
            quantized = z + (e - z).detach()  # straight-through estimator (section 3.2)
            if self.training:  # then move the codebook for the next batch
                self.update(z.detach(), codes, counts)
                self.revive(z.detach(), counts)
        quantized = quantized.reshape(b, h, w, d).permute(0, 3, 1, 2).to(z_e.dtype)  # (B, D, H, W)
        return QuantizerOutput(quantized=quantized, codes=codes.reshape(b, h, w), loss=loss, commitment=commitment,
                               codebook=codebook.detach(), perplexity=perplexity(counts))

    def codebook_term(self, codebook_loss: torch.Tensor) -> torch.Tensor:
        """What of ||sg[z_e] - e||^2 the loss keeps (all of it for a learned codebook, none for EMA)."""
        raise NotImplementedError

    def update(self, z: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        """Move the codebook with this batch (EMA); nothing for a learned codebook (the optimiser does it)."""

    @torch.no_grad()
    def revive(self, z: torch.Tensor, counts: torch.Tensor) -> None:
        """Reset codes whose usage fell below `revive_below` of the uniform share to random vectors of z (N, D)."""
        cfg = self.config
        self.usage.mul_(cfg.usage_decay).add_(counts, alpha=1 - cfg.usage_decay)
        uniform = len(z) / cfg.codebook_size
        dead = (self.usage < cfg.revive_below * uniform).nonzero().flatten()
        if cfg.revive_below == 0 or len(dead) == 0:
            return
        picked = z[torch.randint(len(z), (len(dead),), device=z.device)]  # (n_dead, D), with replacement
        self.reset_codes(dead, picked)
        self.usage[dead] = uniform  # a grace period: a revived code is not dead again before it could be used

    def reset_codes(self, index: torch.Tensor, vectors: torch.Tensor) -> None:
        raise NotImplementedError


class LearnedCodebook(Quantizer):
    """The codebook is a parameter; the codebook term ||sg[z_e] - e||^2 trains it (van den Oord eq. 3)."""

    def __init__(self, config: QuantizerConfig) -> None:
        super().__init__(config)
        k = config.codebook_size
        self.weight = nn.Parameter(torch.empty(k, config.code_dim).uniform_(-1 / k, 1 / k))

    @property
    def embedding(self) -> torch.Tensor:
        return self.weight

    def codebook_term(self, codebook_loss: torch.Tensor) -> torch.Tensor:
        return codebook_loss

    @torch.no_grad()
    def reset_codes(self, index: torch.Tensor, vectors: torch.Tensor) -> None:
        self.weight[index] = vectors.to(self.weight.dtype)


class EMACodebook(Quantizer):
    """The codebook is the moving average of the encoder outputs each code is assigned (appendix A.1):

        N_k <- gamma N_k + (1 - gamma) n_k                 n_k: how many of the batch's vectors chose k
        m_k <- gamma m_k + (1 - gamma) sum_{z -> k} z
        e_k  = m_k / N~_k,   N~_k = (N_k + eps) / (sum N + K eps) * sum N   (Laplace smoothing)

    N starts at 1 and m at the initial codes, so a code nothing chooses keeps its vector while N_k >> eps
    (~1,000 steps at gamma 0.99; revival restarts it well before, after ~70 unused steps).
    """

    def __init__(self, config: QuantizerConfig) -> None:
        super().__init__(config)
        k, d = config.codebook_size, config.code_dim
        initial = torch.randn(k, d)
        self.register_buffer("weight", initial.clone())  # (K, D) the codes, e = m / N~
        self.register_buffer("cluster_size", torch.ones(k))  # (K,) N
        self.register_buffer("embed_sum", initial.clone())  # (K, D) m

    @property
    def embedding(self) -> torch.Tensor:
        return self.weight

    def codebook_term(self, codebook_loss: torch.Tensor) -> torch.Tensor:
        return codebook_loss.new_zeros(())  # the averages move the codes; no gradient is needed

    @torch.no_grad()
    def update(self, z: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        cfg = self.config
        sums = torch.zeros_like(self.embed_sum).index_add_(0, codes, z)  # (K, D) sum of the vectors each code took
        self.cluster_size.mul_(cfg.decay).add_(counts, alpha=1 - cfg.decay)
        self.embed_sum.mul_(cfg.decay).add_(sums, alpha=1 - cfg.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + cfg.eps) / (total + cfg.codebook_size * cfg.eps) * total  # (K,)
        self.weight.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def reset_codes(self, index: torch.Tensor, vectors: torch.Tensor) -> None:
        self.weight[index] = vectors
        self.embed_sum[index] = vectors  # with N_k = 1, m_k / N_k is the new vector
        self.cluster_size[index] = 1.0


def make_quantizer(config: QuantizerConfig) -> Quantizer:
    return EMACodebook(config) if config.kind == "ema" else LearnedCodebook(config)
