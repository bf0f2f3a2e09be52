"""Losses that judge a generated or reconstructed image against its target, usable by any image model.

Each is a module `loss(prediction, target) -> ()` on float images (B, C, H, W) in one normalisation:

  L1, L2        pixel losses; their optimum under uncertainty is the median / mean of the plausible
                images, which is why they blur (Mathieu et al. 2016; Isola et al. 2017, section 3.1)
  Perceptual    distances between features of a frozen network at several layers (Johnson et al. 2016;
                LPIPS' channel-normalised form without its learned weights, Zhang et al. 2018)
  Style         distances between Gram matrices of those features (Gatys et al. 2016), unit-normalised
                like the perceptual term's: texture statistics, blind to where things are
  Adversarial   a discriminator's verdict (hinge: Lim & Ye 2017, Miyato et al. 2018; non-saturating:
                Goodfellow et al. 2014), weighted adaptively against the reconstruction as in VQGAN
                (Esser et al. 2021, eq. 7)
  ImageLoss     their weighted sum, the terms with weight 0 never built

No pretrained VGG or LPIPS network exists offline here (no download, and torchvision does not import
beside this torch), so the feature network is pluggable: any module, with the layers named whose outputs
count. The default is the ResNet-style CNN that `recipes/cnn-fashion-mnist.yaml` trains to classify
Fashion-MNIST (`load_feature_network(checkpoint)`); its features know clothing edges and textures,
not natural images, so a perceptual loss built on it is only as good as those features.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from formers.config import Config, check
from formers.errors import ConfigError
from formers.io import load

CNN_LAYERS = ("stem", "stages.0", "stages.1", "stages.2")  # formers' CNN: the stem and each stage's output


class L1(nn.Module):
    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (prediction.float() - target.float()).abs().mean()


class L2(nn.Module):
    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (prediction.float() - target.float()).pow(2).mean()


class FeatureNetwork(nn.Module):
    """A frozen copy of `network` that returns the outputs of its modules named `layers`, in order.

    The copy never trains (no gradients to its weights, always in eval mode) but passes gradients to
    its input, which is what a perceptual loss needs."""

    def __init__(self, network: nn.Module, layers: Sequence[str]) -> None:
        super().__init__()
        self.network = copy.deepcopy(network).eval().requires_grad_(False)
        modules = dict(self.network.named_modules())
        missing = [name for name in layers if name not in modules]
        if missing or not layers:
            raise ConfigError(f"feature layers {missing or list(layers)} are not modules of {type(network).__name__}; "
                              f"name some of {[n for n in modules if n][:12]}...")
        self.layers = list(layers)
        self._captured: dict[str, torch.Tensor] = {}
        for name in self.layers:
            modules[name].register_forward_hook(self._keep(name))

    def _keep(self, name: str):
        def hook(module, inputs, output):
            self._captured[name] = output
        return hook

    def train(self, mode: bool = True) -> FeatureNetwork:
        return super().train(False)  # frozen: dropout and norm statistics stay in eval mode

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images (B, C, H, W) -> the named layers' outputs [(B, C_l, H_l, W_l), ...]."""
        first = next(self.network.parameters())
        if first.device != images.device:  # the Trainer moves the model, not the objective that holds this
            self.network.to(images.device)
        self._captured.clear()
        self.network(images)
        features = [self._captured[name] for name in self.layers]
        self._captured.clear()
        return features


def load_feature_network(path: str, layers: Sequence[str] = CNN_LAYERS) -> FeatureNetwork:
    """A trained formers checkpoint (by default the Fashion-MNIST CNN) as a frozen feature network."""
    return FeatureNetwork(load(path), layers)


def feature_pair(features: FeatureNetwork, prediction: torch.Tensor, target: torch.Tensor):
    """(features of the prediction, with gradients; features of the target, without)."""
    with torch.no_grad():
        wanted = features(target)
    return features(prediction), wanted


def _unit_channels(f: torch.Tensor) -> torch.Tensor:
    """Each position's feature vector scaled to unit length (LPIPS, Zhang et al. 2018, eq. 1), so layers
    whose activations differ in scale by orders of magnitude count alike."""
    return f * torch.rsqrt(f.pow(2).sum(dim=1, keepdim=True) + 1e-10)


class FeatureLoss(nn.Module):
    """Interface: sum_l w_l distance_l(phi_l(x), phi_l(y)) over the layers of a frozen feature network."""

    def __init__(self, features: FeatureNetwork, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.features = features
        self.weights = list(weights) if weights is not None else [1.0] * len(features.layers)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.compare(*feature_pair(self.features, prediction, target))

    def compare(self, predicted: list[torch.Tensor], wanted: list[torch.Tensor]) -> torch.Tensor:
        """The loss from both images' features (ImageLoss computes them once for Perceptual and Style)."""
        total = predicted[0].new_zeros((), dtype=torch.float32)
        for w, fp, ft in zip(self.weights, predicted, wanted, strict=True):
            total = total + w * self.distance(_unit_channels(fp.float()), _unit_channels(ft.float()))
        return total

    def distance(self, up: torch.Tensor, ut: torch.Tensor) -> torch.Tensor:
        """One layer's distance between unit-normalised features (B, C, H, W) -> ()."""
        raise NotImplementedError


class Perceptual(FeatureLoss):
    """sum_l w_l mean_{b,h,w} ||u(phi_l(x)) - u(phi_l(y))||^2, u = unit length over channels."""

    def distance(self, up: torch.Tensor, ut: torch.Tensor) -> torch.Tensor:
        return (up - ut).pow(2).sum(dim=1).mean()


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """features (B, C, H, W) -> (B, C, C) channel correlations F F^T / (C H W) (Gatys et al. 2016, eq. 3,
    normalised as Johnson et al. 2016 do so that the value does not grow with the layer's size)."""
    b, c, h, w = features.shape
    flat = features.float().reshape(b, c, h * w)  # (B, C, HW)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class Style(FeatureLoss):
    """sum_l w_l ||G(u(phi_l(x))) - G(u(phi_l(y)))||_F^2, G(u) = U U^T / (H W), u = unit length over channels.

    Gatys et al. compare Gram matrices of the raw features, whose scale differs by orders of magnitude
    between layers and between networks, so the term's weight must be retuned for each feature network
    (with formers' CNN raw Gram distances were ~2e-5). Of unit-normalised features, as the perceptual
    term uses them, every Gram matrix has trace 1 and the squared distance lies in [0, 4] whatever the
    network: one weight serves them all."""

    def distance(self, up: torch.Tensor, ut: torch.Tensor) -> torch.Tensor:
        c = up.shape[1]  # gram_matrix divides by C H W; a trace-1 Gram divides by H W only
        return (gram_matrix(up) * c - gram_matrix(ut) * c).pow(2).sum(dim=(1, 2)).mean()


# ---- adversarial ---------------------------------------------------------------------------------
def hinge_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017): logits past the margin cost nothing."""
    return F.relu(1 - real.float()).mean() + F.relu(1 + fake.float()).mean()


def hinge_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))] (Miyato et al. 2018)."""
    return -fake.float().mean()


def non_saturating_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-E[log sigmoid(D(x))] - E[log(1 - sigmoid(D(G(z))))]: the GAN's cross-entropy (Goodfellow et al. 2014)."""
    return F.softplus(-real.float()).mean() + F.softplus(fake.float()).mean()


def non_saturating_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """-E[log sigmoid(D(G(z)))]: the generator's "-log D trick", strong gradients while D wins (Goodfellow 2014)."""
    return F.softplus(-fake.float()).mean()


AdversarialKind = Literal["hinge", "non_saturating"]
_ADVERSARIAL = {"hinge": (hinge_discriminator_loss, hinge_generator_loss),
                "non_saturating": (non_saturating_discriminator_loss, non_saturating_generator_loss)}


class Adversarial(nn.Module):
    """The two sides of a GAN loss of one kind, picked when built."""

    def __init__(self, kind: AdversarialKind = "hinge") -> None:
        super().__init__()
        self.kind = kind
        self.discriminator_loss, self.generator_loss = _ADVERSARIAL[kind]


def judged_by_frozen(discriminator: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The discriminator's logits for `images` with its parameters detached: gradients reach the images
    (the generator) and never the discriminator, so the generator's term cannot train it."""
    params = {name: p.detach() for name, p in discriminator.named_parameters()}
    return functional_call(discriminator, params, (images,))


def adaptive_weight(reconstruction: torch.Tensor, generator: torch.Tensor, last_layer: torch.Tensor,
                    *, delta: float = 1e-4, max_weight: float = 1e4) -> torch.Tensor:
    """lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + delta) (Esser et al. 2021, eq. 7), G_L the
    generator's last layer: the adversarial term then pulls on that layer as hard as the reconstruction.
    delta = 1e-4 and the clamp at 1e4 are taming-transformers' values (the paper writes delta = 1e-6)."""
    g_rec = torch.autograd.grad(reconstruction, last_layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(generator, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_gan.norm() + delta)).clamp(0.0, max_weight).detach()


# ---- the weighted sum ------------------------------------------------------------------------------
@dataclasses.dataclass(kw_only=True)
class ImageLossConfig(Config):
    l1: float = 0.0
    l2: float = 1.0
    perceptual: float = 0.0
    style: float = 0.0
    adversarial: float = 0.0  # times the adaptive weight when `adaptive` (VQGAN's disc_weight)
    adversarial_loss: AdversarialKind = "hinge"
    adaptive: bool = True  # scale the generator term by adaptive_weight (needs the model's last layer)
    feature_network: str | None = None  # checkpoint of the perceptual/style network (the Fashion-MNIST CNN)
    feature_layers: list[str] = dataclasses.field(default_factory=lambda: list(CNN_LAYERS))

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("l1", "l2", "perceptual", "style", "adversarial"):
            check(getattr(self, name) >= 0, f"ImageLossConfig.{name}", getattr(self, name), "a weight >= 0")
        check(self.l1 + self.l2 + self.perceptual + self.style > 0, "ImageLossConfig.l2", self.l2,
              "some reconstruction weight > 0 (l1, l2, perceptual or style): a GAN term alone ignores the target")

    @property
    def needs_features(self) -> bool:
        return self.perceptual > 0 or self.style > 0


class ImageLoss(nn.Module):
    """The weighted sum of the configured terms; returns every term and the total.

    With a discriminator, "loss" = the generator-side total + the discriminator's own loss. The two touch
    disjoint parameters (the generator term sees the discriminator through detached parameters, the
    discriminator sees detached predictions), so one backward pass and one optimiser step train both,
    as two optimisers with one learning rate would."""

    def __init__(self, config: ImageLossConfig, features: FeatureNetwork | None = None) -> None:
        super().__init__()
        self.config = config
        if config.needs_features and features is None:
            if config.feature_network is None:
                raise ConfigError("ImageLossConfig.feature_network=None is not allowed when perceptual or style > 0; "
                                  "give a checkpoint, e.g. a run of recipes/cnn-fashion-mnist.yaml")
            features = load_feature_network(config.feature_network, config.feature_layers)
        terms = {"l1": L1, "l2": L2}
        self.pixel = nn.ModuleDict({name: make() for name, make in terms.items() if getattr(config, name) > 0})
        self.features = features if config.needs_features else None
        self.perceptual = Perceptual(features) if config.perceptual > 0 else None
        self.style = Style(features) if config.style > 0 else None
        self.adversarial = Adversarial(config.adversarial_loss) if config.adversarial > 0 else None

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, *, discriminator: nn.Module | None = None,
                last_layer: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        cfg = self.config
        out: dict[str, torch.Tensor] = {}
        for name, term in self.pixel.items():
            out[name] = term(prediction, target)
        if self.features is not None:  # one pass of the feature network serves both terms
            predicted, wanted = feature_pair(self.features, prediction, target)
            if self.perceptual is not None:
                out["perceptual"] = self.perceptual.compare(predicted, wanted)
            if self.style is not None:
                out["style"] = self.style.compare(predicted, wanted)
        reconstruction = sum(getattr(cfg, name) * value for name, value in out.items())
        out["reconstruction"] = reconstruction
        if self.adversarial is None:
            out["loss"] = reconstruction
            return out
        if discriminator is None:
            raise ConfigError("ImageLossConfig.adversarial > 0 needs a discriminator; build the model with one")
        generator = self.adversarial.generator_loss(judged_by_frozen(discriminator, prediction))
        weight = torch.ones((), device=prediction.device)
        if cfg.adaptive and torch.is_grad_enabled() and last_layer is not None:  # evaluation has no gradients
            weight = adaptive_weight(reconstruction, generator, last_layer)
        fake, real = discriminator(prediction.detach()), discriminator(target)
        out["discriminator"] = self.adversarial.discriminator_loss(real, fake)
        out["generator"], out["adaptive_weight"] = generator, weight
        out["real_logit"], out["fake_logit"] = real.float().mean().detach(), fake.float().mean().detach()
        out["loss"] = reconstruction + cfg.adversarial * weight * generator + out["discriminator"]
        return out
