"""``dinov2-vitb14`` and ``dinov2-vitl14``: DINOv2 ViT-B/14 and ViT-L/14 (Oquab et al. 2023)
as feature extractors.

ViT-B/14 is the backbone of Stein et al. (NeurIPS 2023, "Exposing flaws of generative model
evaluation metrics") and of their dgm-eval package, whose features agree with human judgement
far better than Inception's; ViT-L/14 is the one dgm-eval recommends for reported numbers and
the network of EDM2's FD_DINOv2 (Karras et al. 2024: ViT-L/14 at 224 px, bicubic; EDM2 resizes with
torch's ``interpolate`` by default, genbench with PIL's filter as dgm-eval does). The networks are
timm's ``vit_base_patch14_dinov2`` and ``vit_large_patch14_dinov2`` architectures (an optional
extra: ``pip install "genbench[dinov2]"``); genbench builds them without weights
(``pretrained=False``, never a download) and loads Meta's official checkpoint
(``dinov2_vitb14_pretrain.pth``, ``dinov2_vitl14_pretrain.pth``) from disk. Both variants run
the code of :class:`DINOv2`; each declares its facts (timm architecture, feature width, weights
file and URL) once, as class attributes. The module-level ``TIMM_MODEL``, ``FEATURE_DIM``,
``WEIGHTS_FILENAME``, ``WEIGHTS_URL``, ``WEIGHTS_SHA256`` and :func:`build_backbone` are
ViT-B/14's.

Weights. Looked up where torch hub keeps them (``$TORCH_HOME/hub/checkpoints/``, where
``torch.hub.load("facebookresearch/dinov2", "dinov2_vitb14")`` (or ``"dinov2_vitl14"``) -- and
so dgm-eval -- caches them) or taken from an explicit path (spec ``feature_weights`` /
``--feature-weights``). When absent, :class:`~genbench.api.errors.AssetMissingError` names the
file, its URL and where to put it. ``weights_sha256`` is ``None``: Meta publishes no digest for
the files and their URLs carry no hash prefix, so genbench records the sha256 of the file it
loads (``weights_verified`` is ``None`` for an explicit path, ``False`` at the default place)
and ``genbench assets`` reports it as "present (sha256 not recorded)".

The official state dicts use timm's key names plus ``mask_token`` (dropped: only used in
training), and their position embedding covers a 37 x 37 patch grid (518 px). The official model
resamples that grid at every forward to the input's (bicubic, scale factor ``(16 + 0.1) / 37``,
no antialiasing); :func:`convert_checkpoint` does the same resampling once, to the 16 x 16 grid
of a 224 px input, so the fixed-size timm model computes what the official one does at 224 px.
A state dict already in timm's layout at 224 px (257 position tokens) is loaded as it is.

Preprocessing follows dgm-eval (``Resize((224, 224), BICUBIC)`` of a PIL image, ``ToTensor``,
ImageNet mean/std): uint8 ``Bx3xHxW`` images are resized to 224 x 224 with PIL's bicubic filter
(:func:`resize_like_pil`: two separable antialiased passes, rounded to uint8 after each, as PIL
does; for square images within 2 grey levels of PIL, on under 1% of the pixels), scaled to
[0, 1] and normalised. The feature (``cls``: 768-d for ViT-B/14, 1024-d for ViT-L/14) is the
final layer's class token after the last LayerNorm, the output of the official model's
``forward``. There are no class logits, so the Inception Score is skipped with that reason. The
features are not rescaled (dgm-eval's convention), so KID values are comparable with published
DINOv2 KIDs.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from genbench import (AssetMissingError, ConfigError, FeatureExtractor, MissingDependencyError,
                      registered_name)

INSTALL_HINT = 'pip install "genbench[dinov2]"  (or: pip install "timm>=0.9")'

INPUT_SIZE = 224
PATCH_SIZE = 14
GRID = INPUT_SIZE // PATCH_SIZE  # 16
#: The official checkpoint's position-embedding grid (518 px / 14) and the offset its
#: ``interpolate_pos_encoding`` adds to the target grid size.
CHECKPOINT_GRID = 37
POS_EMBED_OFFSET = 0.1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resample_pos_embed(pos_embed: torch.Tensor, grid: int = GRID) -> torch.Tensor:
    """Position embedding ``(1, 1 + m*m, D)`` resampled to ``(1, 1 + grid*grid, D)``.

    The class token's entry is kept; the ``m x m`` patch grid is interpolated as the official
    DINOv2 model does at run time: bicubic, ``align_corners=False``, no antialiasing, with the
    scale factor ``(grid + 0.1) / m`` (not the size), which fixes the sampling positions.
    """
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        raise ConfigError(f"pos_embed must have shape (1, tokens, dim), got {tuple(pos_embed.shape)}")
    dim = pos_embed.shape[-1]
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    m = math.isqrt(patch_pos.shape[1])
    if m * m != patch_pos.shape[1]:
        raise ConfigError(f"pos_embed has {patch_pos.shape[1]} patch tokens, not a square grid")
    if m == grid:
        return pos_embed
    scale = (grid + POS_EMBED_OFFSET) / m
    patches = patch_pos.float().reshape(1, m, m, dim).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, scale_factor=(scale, scale), mode="bicubic", align_corners=False)
    if patches.shape[-2:] != (grid, grid):
        raise ConfigError(f"resampling a {m}x{m} grid gave {tuple(patches.shape[-2:])}, not {grid}x{grid}")
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, dim).to(pos_embed.dtype)
    return torch.cat([cls_pos, patches], dim=1)


def convert_checkpoint(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official DINOv2 state dict (ViT-B/14, ViT-L/14; or one in timm's layout) as timm's
    224 px model's.

    Drops ``mask_token``, flattens chunked block names (``blocks.<chunk>.<i>.`` ->
    ``blocks.<i>.``, from checkpoints saved with ``block_chunks > 0``) and resamples the
    position embedding to the 16 x 16 grid (:func:`resample_pos_embed`).
    """
    for wrapper in ("model", "state_dict"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    out = {}
    for key, value in state.items():
        if key == "mask_token":
            continue
        key = re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", key)
        if key == "pos_embed":
            value = resample_pos_embed(value)
        out[key] = value
    return out


def resize_like_pil(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 images ``(B, C, H, W)`` resized to ``size x size`` as PIL's bicubic filter does.

    Returns float values in [0, 255] on integers. PIL resizes horizontally then vertically with
    an antialiased bicubic kernel (a = -0.5) and stores each pass as uint8; torch's antialiased
    bicubic uses the same kernel, so two passes rounded and clamped in between reproduce it up
    to PIL's fixed-point rounding. An axis already of the right size is left alone, as in PIL.
    """
    x = x.float()
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(x.shape[-2], size), mode="bicubic", antialias=True,
                          align_corners=False).round_().clamp_(0.0, 255.0)
    if x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True,
                          align_corners=False).round_().clamp_(0.0, 255.0)
    return x


class DINOv2(FeatureExtractor):
    """DINOv2 class token of uint8 ``Bx3xHxW`` images, via timm: the code of every variant.

    A variant subclasses it and declares its facts as class attributes: ``variant`` (its name
    in messages, ``"ViT-B/14"``), ``timm_model``, ``feature_dim``, ``weights_filename``,
    ``weights_url`` and ``used_by`` (for its description, which is made from them).
    """

    variant: ClassVar[str]
    timm_model: ClassVar[str]
    feature_dim: ClassVar[int]
    used_by: ClassVar[str]
    #: Not published by Meta, and not verifiable offline: genbench records the loaded file's digest.
    weights_sha256 = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "description" not in vars(cls) and hasattr(cls, "timm_model"):
            cls.description = (f"DINOv2 {cls.variant} ({cls.used_by}): {cls.feature_dim}-d class "
                               f"token at {INPUT_SIZE} px, no logits (no IS); needs timm "
                               f"(genbench[dinov2]) and Meta's {cls.weights_filename}, never "
                               "downloaded")

    @classmethod
    def missing_timm(cls) -> str:
        """The message of the :class:`MissingDependencyError` raised without timm."""
        return (f"feature extractor {registered_name(cls)!r} needs the timm package, which is "
                f"not installed: {INSTALL_HINT}")

    @classmethod
    def check_dependencies(cls) -> None:
        # find_spec does not import timm (seconds); it is None when timm is not installed.
        if importlib.util.find_spec("timm") is None:
            raise MissingDependencyError(cls.missing_timm())

    @classmethod
    def build_backbone(cls) -> nn.Module:
        """timm's network of this variant for 224 px inputs, randomly initialised, without a
        head.

        Raises :class:`MissingDependencyError` (with the install command) when timm is missing.
        """
        try:
            import timm
        except ImportError as exc:
            raise MissingDependencyError(cls.missing_timm()) from exc
        return timm.create_model(cls.timm_model, pretrained=False, img_size=INPUT_SIZE,
                                 num_classes=0)

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            # Direct torch-fidelity use: the default place, never a download.
            from genbench import resolve_weights

            feature_extractor_weights_path, _, _ = resolve_weights(name, type(self))
        path = Path(feature_extractor_weights_path)
        if not path.is_file():
            raise AssetMissingError(f"{name} weights {path} do not exist; get "
                                    f"{self.weights_filename} from {self.weights_url}")
        # Built on the CPU, not on a meta device (which would skip the random initialisation
        # the weights overwrite): timm 0.9 computes drop-path rates with .item() in __init__.
        self.model = self.build_backbone()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ConfigError(f"{name}: {path} is not a readable PyTorch state dict "
                              f"({type(exc).__name__}: {exc})") from exc
        if not isinstance(state, dict):
            raise ConfigError(f"{name}: {path} holds a {type(state).__name__}, not a state dict")
        try:
            state = convert_checkpoint(state)
            self._check_size(state)
            # float32 and contiguous, as copying into initialised parameters would make them
            state = {k: v.float().contiguous() if torch.is_tensor(v) and v.is_floating_point()
                     else v for k, v in state.items()}
            self.model.load_state_dict(state, strict=True, assign=True)
        except (RuntimeError, ConfigError) as exc:
            raise ConfigError(f"{name}: {path} is not a DINOv2 {self.variant} checkpoint "
                              f"({self.weights_filename}): {exc}") from exc
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0,
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0,
                             persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _check_size(self, state: dict[str, torch.Tensor]) -> None:
        """Refuse another DINOv2 size (ViT-B/14's weights given to ViT-L/14) in one line, where
        ``load_state_dict`` would list hundreds of mismatched tensors."""
        token = state.get("cls_token")
        if not torch.is_tensor(token):
            return
        depth = len({m.group(1) for key in state if (m := re.match(r"blocks\.(\d+)\.", key))})
        expected = (self.model.embed_dim, len(self.model.blocks))
        if (token.shape[-1], depth) != expected:
            raise ConfigError(f"it holds a {token.shape[-1]}-wide ViT with {depth} blocks, and "
                              f"DINOv2 {self.variant} is {expected[0]}-wide with {expected[1]} "
                              "blocks")

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 ``Bx3xHxW`` -> the network's input: 224 x 224, ImageNet-normalised float."""
        return (resize_like_pil(x) - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3):
            got = f"{x.dtype} {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"{self.name} expects uint8 images of shape (B, 3, H, W), got {got}")
        feats = self.model(self.preprocess(x))
        out = {"cls": feats}
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return ("cls",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"fid": "cls", "kid": "cls", "prc": "cls"}[metric]  # no logits: KeyError for isc

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, dtype=torch.uint8)


class DINOv2ViTB14(DINOv2):
    """DINOv2 ViT-B/14 class token (768-d) of uint8 ``Bx3xHxW`` images, via timm."""

    variant = "ViT-B/14"
    used_by = "Stein et al. 2023, dgm-eval"
    timm_model = "vit_base_patch14_dinov2"
    feature_dim = 768
    weights_filename = "dinov2_vitb14_pretrain.pth"
    weights_url = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth"


class DINOv2ViTL14(DINOv2):
    """DINOv2 ViT-L/14 class token (1024-d) of uint8 ``Bx3xHxW`` images, via timm."""

    variant = "ViT-L/14"
    used_by = "dgm-eval's recommended backbone, EDM2's FD_DINOv2"
    timm_model = "vit_large_patch14_dinov2"
    feature_dim = 1024
    weights_filename = "dinov2_vitl14_pretrain.pth"
    weights_url = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth"


# ViT-B/14's facts under the module-level names they had before ViT-L/14 was added.
TIMM_MODEL = DINOv2ViTB14.timm_model
FEATURE_DIM = DINOv2ViTB14.feature_dim
WEIGHTS_FILENAME = DINOv2ViTB14.weights_filename
WEIGHTS_URL = DINOv2ViTB14.weights_url
WEIGHTS_SHA256 = DINOv2ViTB14.weights_sha256


def build_backbone() -> nn.Module:
    """timm's DINOv2 ViT-B/14 for 224 px inputs, randomly initialised, without a head.

    Raises :class:`MissingDependencyError` (with the install command) when timm is missing.
    """
    return DINOv2ViTB14.build_backbone()
