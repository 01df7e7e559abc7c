"""Policy: images + state + instruction -> a chunk of actions, with normalization and save/load.

Token sequence fed to the transformer: [language tokens | image tokens per camera | first-frame image
tokens per context camera | state token | H action readout tokens]; the action head reads the readout
tokens. Context cameras (``config.context_cameras``, off by default) add the episode's first frame of those
cameras: at inference ``predict_chunk`` keeps it from the first observation after ``reset()`` unless the
observation brings its own (``obs["context_images"]``). Observations arrive in robot units and
are normalized inside; predictions leave in robot units, also for a policy trained on a standardized
dataset (normalized, delta actions): the way back travels in normalization.json (`vla.models.normalize`).
Training batches are in the training dataset's units.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .action_queue import ActionQueue, TemporalEnsembler
from .aux_env_state import EnvStateHead
from .backbone import Transformer
from .config import ConfigError, PolicyConfig
from .embodiments import EmbodimentError, EmbodimentRegistry, PaddedNormalizer
from .heads import build_head
from .image_ops import random_shift, resize, to_float_nchw
from .language import FrozenTextEncoder, drop_words, get_text_encoder
from .normalize import NormalizationStats, TensorNormalizer
from .serialization import PolicyLoadError, describe_keys, read_policy_folder, write_policy_folder
from .vision_conv import ConvEncoder
from .vision_efficientnet import EfficientNetEncoder
from .vision_hf import HFVisionEncoder


class AttentionPool(nn.Module):
    """A learned query attends over the language tokens -> one conditioning vector [B, d]."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(d_model) * 0.02)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = (tokens @ self.query) / math.sqrt(tokens.shape[-1])
        scores = scores.masked_fill(~mask, float("-inf"))
        return self.norm((scores.softmax(-1)[..., None] * tokens).sum(1))


class Policy(nn.Module):
    """Vision-language-action policy (see module docstring); ``forward(batch)`` -> dict of losses."""

    def __init__(self, config: PolicyConfig, normalization: NormalizationStats | dict[str, Any],
                 embodiments: EmbodimentRegistry | None = None) -> None:
        super().__init__()
        config.validate()
        if not isinstance(normalization, NormalizationStats):
            normalization = (NormalizationStats.from_dict(normalization) if "state" in normalization
                             else NormalizationStats.from_dataset_stats(normalization))
        self.registry = self._check_registry(config, embodiments)
        if self.registry is not None:
            normalization = self.registry.embodiments[0].stats  # the default robot (normalization.json)
        elif normalization.state_dim != config.state_dim or normalization.action_dim != config.action_dim:
            raise ValueError(f"normalization stats are for state_dim={normalization.state_dim}, "
                             f"action_dim={normalization.action_dim}; config has {config.state_dim}, "
                             f"{config.action_dim}")
        if config.aux_env_state_weight > 0 and config.env_state_dim == 0:
            raise ConfigError("aux_env_state_weight > 0 needs env_state_dim > 0 (training sets it from the "
                              "dataset's observation.environment_state)")
        self.config = config
        d = config.d_model
        self.normalizer = TensorNormalizer(normalization, config.state_norm)
        text = get_text_encoder(config.language_encoder, config.language_path)
        self.__dict__["_text"] = text  # plain attribute: never in state_dict, .to(), or DDP
        self.lang_proj = nn.Linear(text.dim, d)
        self.lang_pos = nn.Parameter(torch.randn(config.max_instruction_tokens, d) * 0.02)
        # FiLM needs one condition vector per sample; without FiLM language enters only the backbone.
        self.lang_pool = AttentionPool(d) if config.film else None
        # the "no instruction" token (instruction dropout in training; an empty instruction at inference)
        self.null_instruction = (nn.Parameter(torch.randn(1, d) * 0.02) if config.instruction_dropout > 0
                                 else None)
        n_enc = 1 if config.share_vision_encoder else len(config.cameras)
        self.vision = nn.ModuleList(self._build_vision() for _ in range(n_enc))
        self.camera_emb = nn.Parameter(torch.randn(len(config.cameras), d) * 0.02)
        reg = self.registry
        self.per_robot = reg is not None and config.embodiment_mode == "projection"
        # one robot, or several padded to the largest state and action: one state projection and one head;
        # "projection": one of each per robot (GR00T / HPT style). (Creation order fixes the initial weights.)
        self.state_proj = None if self.per_robot else nn.Linear(config.state_dim, d)
        self.readouts = nn.Parameter(torch.randn(config.chunk, d) * 0.02)
        self.backbone = Transformer(d, config.layers, config.heads, config.mlp_ratio, config.dropout)
        if self.per_robot:
            assert reg is not None
            self.state_projs = nn.ModuleList(nn.Linear(e.state_dim, d) for e in reg.embodiments)
            self.head = None
            self.heads_per_robot = nn.ModuleList(build_head(config.head, d, e.action_dim, config.chunk,
                                                            config.head_config) for e in reg.embodiments)
        else:
            self.head = build_head(config.head, d, config.action_dim, config.chunk, config.head_config)
        if reg is not None:
            self.robot_normalizers = nn.ModuleList(TensorNormalizer(e.stats, config.state_norm)
                                                   for e in reg.embodiments)
            self.padded = PaddedNormalizer(reg, config.state_norm, config.state_dim, config.action_dim,
                                           list(self.robot_normalizers))
            self.embodiment_emb = nn.Parameter(torch.randn(len(reg.embodiments), d) * 0.02)
            valid = [[cam in e.cameras for cam in config.cameras] for e in reg.embodiments]
            self.register_buffer("camera_valid", torch.tensor(valid, dtype=torch.bool), persistent=False)
        self.env_state_head = (EnvStateHead(d, config.env_state_dim) if config.aux_env_state_weight > 0
                               else None)
        # the first frame's tokens get their own embedding on top of the camera's (created last: policies
        # without context cameras keep their initial weights)
        self.context_emb = (nn.Parameter(torch.randn(len(config.context_cameras), d) * 0.02)
                            if config.context_cameras else None)
        self._selector = self._build_selector()
        self._episode_generator: torch.Generator | None = None
        self._episode_context: dict[str, torch.Tensor] | None = None  # first frames of this episode
        self._last_features: torch.Tensor | None = None  # readout features of the latest prediction [B, H, d]
        self._last_embodiment: int | None = None

    # ---- construction --------------------------------------------------------------------------------
    @staticmethod
    def _check_registry(config: PolicyConfig, registry: EmbodimentRegistry | None) -> EmbodimentRegistry | None:
        if not config.embodiments:
            if registry is not None:
                raise ConfigError("an embodiment registry was given, but config.embodiments is empty")
            return None
        if registry is None:
            raise ConfigError(f"config.embodiments lists {config.embodiments}: the policy needs their registry "
                              "(embodiments.json)")
        if registry.names != config.embodiments:
            raise ConfigError(f"embodiment registry {registry.names} does not match config.embodiments "
                              f"{config.embodiments}")
        dims = (registry.max_state_dim, registry.max_action_dim)
        if dims[0] > config.state_dim or dims[1] > config.action_dim:
            raise ConfigError(f"config state_dim/action_dim {config.state_dim}/{config.action_dim} (the padded sizes) "
                              f"must be at least the largest of the embodiments ({dims[0]}/{dims[1]})")
        for e in registry.embodiments:
            unknown = [cam for cam in e.cameras if cam not in config.cameras]
            if unknown or not e.cameras:
                raise ConfigError(f"embodiment {e.name!r}: cameras {e.cameras} must be a non-empty subset of "
                                  f"the policy's cameras {config.cameras}")
        return registry

    @property
    def embodiment_names(self) -> list[str]:
        """The robots this policy drives ([] for a single-robot policy)."""
        return self.registry.names if self.registry is not None else []

    def robot_normalizer(self, embodiment: str | None) -> TensorNormalizer:
        """The normalization chain of one robot (the only one of a single-robot policy)."""
        if self.registry is None:
            return self.normalizer
        return self.robot_normalizers[self._embodiment_index(embodiment)]

    def _embodiment_index(self, name: str | None) -> int:
        assert self.registry is not None
        if name is None:
            raise EmbodimentError(f"this policy drives several robots {self.registry.names}: name one "
                                  "(predict_chunk(obs, embodiment=...) or obs['embodiment'])")
        return self.registry.index(name)

    def _build_vision(self) -> nn.Module:
        c = self.config
        if c.vision_encoder == "conv":
            return ConvEncoder(c.d_model, c.vision_widths, c.vision_blocks, c.vision_grid, c.vision_keypoints,
                               c.keypoint_tokens, c.d_model if c.film else None, c.vision_stem_stride,
                               c.keypoint_stage)
        if c.vision_encoder == "efficientnet_lite0":
            return EfficientNetEncoder(c.d_model, c.vision_grid, c.vision_feature_stride, c.vision_keypoints,
                                       c.keypoint_tokens, frozen=c.vision_frozen,
                                       weights_sha256=c.vision_weights_sha256)
        return HFVisionEncoder(c.vision_path, c.d_model, c.vision_grid, frozen=c.vision_frozen)

    def _build_selector(self) -> ActionQueue | TemporalEnsembler:
        c = self.config
        if c.temporal_ensemble is not None:
            return TemporalEnsembler(c.temporal_ensemble, c.chunk)
        return ActionQueue(c.n_action_steps)

    @property
    def text_encoder(self) -> FrozenTextEncoder:
        return self.__dict__["_text"]

    @property
    def stats(self) -> NormalizationStats:
        return self.normalizer.stats

    @property
    def device(self) -> torch.device:
        return self.readouts.device

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- model ---------------------------------------------------------------------------------------
    def encode(self, images: dict[str, torch.Tensor], state: torch.Tensor, instructions: list[str],
               embodiment_ids: torch.Tensor | None = None,
               context: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Backbone features of the action readout tokens [B, H, d]; ``state`` in the dataset's units ([B, S],
        padded to the largest robot's for a multi-robot policy, which also needs ``embodiment_ids`` [B]);
        ``context``: the episode's first frames of ``config.context_cameras`` (uint8 [B, H, W, 3] each)."""
        c = self.config
        b = state.shape[0]
        if (self.registry is None) != (embodiment_ids is None):
            raise ValueError("encode: embodiment_ids are needed by (and only by) a multi-robot policy")
        if c.context_cameras and (context is None or any(cam not in context for cam in c.context_cameras)):
            raise KeyError(f"encode: this policy needs the episode's first frames of {c.context_cameras} "
                           f"(context), got {sorted(context) if context is not None else None}")
        lang, lmask = self._language_tokens(list(instructions))
        cond = self.lang_pool(lang, lmask) if self.lang_pool is not None else None
        # (camera index, uint8 frames): the current frame of every camera, then the first frames
        views = [(i, images[cam]) for i, cam in enumerate(c.cameras)]
        views += [(c.cameras.index(cam), context[cam]) for cam in c.context_cameras]  # type: ignore[index]
        ids = None if embodiment_ids is None else embodiment_ids.to(self.device)
        # per view, which rows' robots have that camera ([B] bool; None: a single-robot policy)
        valid = [None if ids is None else self.camera_valid[ids, i] for i, _ in views]
        rows = [None if v is None else self._camera_rows(v) for v in valid]
        pixels = []
        for (_, img), r in zip(views, rows, strict=True):
            if r is not None:
                img = img[r.to(img.device)]
            if self.training and c.augment_shift:
                img = random_shift(img, c.augment_shift)
            pixels.append(resize(to_float_nchw(img), c.image_size))  # [B_v, 3, S, S]
        counts = [x.shape[0] for x in pixels]
        conds = [None if cond is None else (cond if r is None else cond[r]) + self.camera_emb[i]  # [B_v, d]
                 for (i, _), r in zip(views, rows, strict=True)]
        if len(self.vision) == 1:
            joint = torch.cat(conds) if cond is not None else None  # type: ignore[arg-type]
            encoded = list(self.vision[0](torch.cat(pixels), joint).split(counts))  # each [B_v, T, d]
        else:
            encoded = [self.vision[i](x, cv) for (i, _), x, cv in zip(views, pixels, conds, strict=True)]
        cam_tokens = []
        for (i, _), t, r in zip(views, encoded, rows, strict=True):
            t = t + self.camera_emb[i]  # [B_v, T, d]
            if r is not None:  # back to the whole batch; rows without the camera stay 0 and are masked below
                t = t.new_zeros(b, *t.shape[1:]).index_copy(0, r, t)  # [B, T, d]
            cam_tokens.append(t)
        if self.context_emb is not None:  # the first frames come after the current ones
            n = len(c.cameras)
            cam_tokens[n:] = [t + self.context_emb[j] for j, t in enumerate(cam_tokens[n:])]
        ones = lambda n: torch.ones(b, n, dtype=torch.bool, device=self.device)  # noqa: E731
        if ids is None:
            state_tok = self.state_proj(self.normalizer.state(state.float()))[:, None]  # [B, 1, d]
            cam_masks = [ones(t.shape[1]) for t in cam_tokens]
        else:
            state_tok = (self._robot_state_tokens(state.float(), ids) + self.embodiment_emb[ids])[:, None]  # [B, 1, d]
            # a camera a robot does not have: its tokens (zeros, never encoded) are masked out of attention
            cam_masks = [v[:, None].expand(b, t.shape[1]) for v, t in zip(valid, cam_tokens, strict=True)]
        readouts = self.readouts[None].expand(b, -1, -1)
        seq = torch.cat([lang, *cam_tokens, state_tok, readouts], dim=1)
        key_mask = torch.cat([lmask, *cam_masks, ones(1 + c.chunk)], dim=1)
        return self.backbone(seq, key_mask)[:, -c.chunk:]

    @staticmethod
    def _camera_rows(valid: torch.Tensor) -> torch.Tensor | None:
        """The rows of a view to encode ([B] bool -> [B_v] indices): those whose robot has the camera; None when
        every row has it (the whole batch, no gather); row 0 when none has it, so that every encoder still takes
        part in the step (DistributedDataParallel)."""
        if bool(valid.all()):
            return None
        r = valid.nonzero().flatten()
        return r if r.numel() else torch.zeros(1, dtype=torch.long, device=valid.device)

    def _robot_state_tokens(self, state: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Padded dataset-unit states [B, S_max] of mixed robots -> state features [B, d]."""
        norm = self.padded.state(state, ids)  # [B, S_max], padded dims 0
        if not self.per_robot:
            assert self.state_proj is not None
            return self.state_proj(norm)
        assert self.registry is not None
        out = norm.new_zeros(norm.shape[0], self.config.d_model)
        for i, (e, proj) in enumerate(zip(self.registry.embodiments, self.state_projs, strict=True)):
            # every projection runs on the whole batch and is masked to its robot's rows, so all of them take
            # part in every step (DistributedDataParallel needs every parameter used)
            out = out + proj(norm[:, : e.state_dim]) * (ids == i)[:, None]
        return out

    def _language_tokens(self, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Instruction token features [B, T, d] and mask [B, T], with the training-time language
        augmentation (word and instruction dropout) and the "no instruction" token for empty strings."""
        c = self.config
        if self.training and c.word_dropout > 0:
            instructions = [drop_words(text, c.word_dropout) for text in instructions]
        empty = torch.tensor([not text.strip() for text in instructions], dtype=torch.bool)
        if self.null_instruction is None and bool(empty.any()):
            raise ValueError("instruction: empty, and this policy was trained without instruction_dropout "
                             "(it has no 'no instruction' token)")
        feats, lmask = self.text_encoder.encode([text if text.strip() else "-" for text in instructions],
                                                c.max_instruction_tokens)
        feats, lmask = feats.to(self.device), lmask.to(self.device)
        lang = self.lang_proj(feats) + self.lang_pos[: feats.shape[1]]
        if self.null_instruction is None:
            return lang, lmask
        drop = empty
        if self.training:
            drop = drop | (torch.rand(len(instructions)) < c.instruction_dropout)
        drop = drop.to(self.device)
        b, t, d = lang.shape
        null = torch.cat([self.null_instruction.expand(b, 1, d), lang.new_zeros(b, t - 1, d)], dim=1)
        null_mask = torch.zeros_like(lmask)
        null_mask[:, 0] = True
        # torch.where keeps the null token in the graph even when no sample is dropped (DDP needs every
        # parameter to take part in every step)
        return torch.where(drop[:, None, None], null, lang), torch.where(drop[:, None], null_mask, lmask)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Training losses for a batch in the training dataset's units (see docs/contracts.md); "loss" is
        optimized."""
        self._check_batch(batch)
        action = batch["action"].to(self.device).float()
        mask = batch.get("action_mask")
        mask = (torch.ones(action.shape, dtype=torch.bool, device=self.device) if mask is None
                else mask.to(self.device).bool())
        if mask.ndim == 2:  # [B, H]: time steps only; every action dimension is present
            mask = mask[..., None].expand(action.shape)
        images = {cam: batch["images"][cam].to(self.device) for cam in self.config.cameras}
        context = ({cam: batch["context_images"][cam].to(self.device) for cam in self.config.context_cameras}
                   if self.config.context_cameras else None)
        if self.registry is None:
            features = self.encode(images, batch["state"].to(self.device), batch["instruction"], context=context)
            assert self.head is not None
            losses = self.head.loss(features, self.normalizer.action(action), mask)
        else:
            ids = torch.tensor([self.registry.index(n) for n in batch["embodiment"]], device=self.device)
            features = self.encode(images, batch["state"].to(self.device), batch["instruction"], ids, context)
            mask = mask & self.padded.action_dims(ids)[:, None]  # [B, H, A_max]: padded dims never count
            losses = self._robot_losses(features, self.padded.action(action, ids), mask, ids)
        if self.env_state_head is not None and "environment_state" not in batch:
            # fine-tuning on data without the simulator state (robot or adaptation episodes): actions only; the
            # zero term keeps the head's parameters in the graph, as DistributedDataParallel requires
            losses = {**losses, "loss": losses["loss"] + 0.0 * self.env_state_head(features).sum()}
        elif self.env_state_head is not None:
            aux = self.env_state_head.loss(features, batch["environment_state"].to(self.device))
            losses = {**losses, "env_state": aux,
                      "loss": losses["loss"] + self.config.aux_env_state_weight * aux}
        return losses

    def _robot_losses(self, features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                      ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Losses of a mixed-robot batch: the shared head on padded actions, or each robot's own head on its
        rows (weighted by their share of the batch; unused heads join the graph with weight 0)."""
        if not self.per_robot:
            assert self.head is not None
            return self.head.loss(features, target, mask)
        assert self.registry is not None
        total: dict[str, torch.Tensor] = {}
        for i, (e, head) in enumerate(zip(self.registry.embodiments, self.heads_per_robot, strict=True)):
            sel = ids == i
            n = int(sel.sum())
            if n == 0:
                total["loss"] = total.get("loss", features.new_zeros(())) + 0.0 * sum(
                    p.sum() for p in head.parameters())
                continue
            part = head.loss(features[sel], target[sel][..., : e.action_dim], mask[sel][..., : e.action_dim])
            for key, value in part.items():
                total[key] = total.get(key, features.new_zeros(())) + value * (n / len(ids))
        return total

    def _dim_mask(self, index: int | None, b: int) -> torch.Tensor | None:
        """The shared (padded) head's mask of robot ``index``'s action dims [B, A_max]; None otherwise."""
        if index is None or self.per_robot:
            return None
        return self.padded.action_valid[index].expand(b, -1)

    def _head_for(self, index: int | None) -> Any:
        if self.per_robot:
            assert index is not None
            return self.heads_per_robot[index]
        return self.head

    @torch.inference_mode()
    def predict_chunks(self, images: dict[str, torch.Tensor], state: torch.Tensor, instructions: list[str], *,
                       generator: torch.Generator | None = None, steps: int | None = None,
                       embodiment: str | None = None,
                       context_images: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Batched inference in eval behaviour (no augmentation, no dropout): state [B, S] in robot units ->
        [B, H, A] robot units. On delta dims every step of a chunk is taken against this state.

        Sampling heads (diffusion, flow, bins with temperature > 0) draw their noise from ``generator``
        (None: torch's global RNG) and run ``steps`` steps (None: the head's default).

        A multi-robot policy needs the robot's name (``embodiment``); ``state`` and the result then have that
        robot's own dims, and its cameras are the only ones read (the others are masked).

        A policy with context cameras needs ``context_images``: the episode's first frames of those cameras,
        uint8 [B, H, W, 3] each."""
        was_training = self.training
        self.eval()
        try:
            state = state.to(self.device).float()
            norm = self.robot_normalizer(embodiment)
            index = None if self.registry is None else self._embodiment_index(embodiment)
            model_state = norm.dataset_state(state)
            ids = None
            if index is not None:
                b = state.shape[0]
                model_state = torch.nn.functional.pad(model_state, (0, self.config.state_dim - state.shape[1]))
                ids = torch.full((b,), index, dtype=torch.long, device=self.device)
                blank = torch.zeros(b, self.config.image_size, self.config.image_size, 3, dtype=torch.uint8)
                images = {cam: images.get(cam, blank) for cam in self.config.cameras}
                if context_images is not None:
                    context_images = {cam: context_images.get(cam, blank) for cam in self.config.context_cameras}
            context = ({k: v.to(self.device) for k, v in context_images.items()} if context_images is not None
                       else None)
            features = self.encode({k: v.to(self.device) for k, v in images.items()}, model_state, instructions, ids,
                                   context)
            self._last_features = features
            self._last_embodiment = index
            actions = self._head_for(index).predict(features, generator=generator, steps=steps,
                                                    dim_mask=self._dim_mask(index, state.shape[0]))
            actions = actions[..., : norm.stats.action_dim]  # a padded head's extra dims are dropped
            return norm.robot_actions(norm.unaction(actions.float()), state)
        finally:
            self.train(was_training)

    def predict_chunk(self, obs: dict[str, Any], *, seed: int | None = None,
                      generator: torch.Generator | None = None, steps: int | None = None,
                      embodiment: str | None = None) -> np.ndarray:
        """One observation dict -> np.ndarray float32 [H, A] in robot units.

        The noise of a sampling head comes from ``generator``, else from a new generator seeded with
        ``seed`` (the same observation and seed give the same chunk), else from the episode's generator
        set by ``reset(seed=...)``, else from torch's global RNG.

        A multi-robot policy reads the robot's name from ``embodiment``, else from ``obs["embodiment"]``, and
        returns that robot's dims in its own units.

        A policy with context cameras reads the episode's first frames from ``obs["context_images"]``, else
        remembers those of the first observation it sees after ``reset()``."""
        embodiment = self._obs_embodiment(obs, embodiment)
        images, state, instruction = self._check_obs(obs, embodiment)
        context = self._context_of(obs, images)
        chunk = self.predict_chunks({k: v[None] for k, v in images.items()}, state[None], [instruction],
                                    generator=self._generator(seed, generator), steps=steps, embodiment=embodiment,
                                    context_images=None if context is None else {k: v[None] for k, v in
                                                                                 context.items()})
        return chunk[0].cpu().numpy().astype(np.float32)

    def select_action(self, obs: dict[str, Any], *, seed: int | None = None,
                      generator: torch.Generator | None = None, embodiment: str | None = None) -> np.ndarray:
        """Next action (float32 [A], robot units) from the action queue or the temporal ensembler; a new
        chunk, when one is needed, is predicted with ``seed`` / ``generator`` as in ``predict_chunk``.

        For a policy trained on delta actions, queued steps are kept as deltas and each is added to the
        state observed when it is executed (what a delta in the dataset means), not to the state the chunk
        was predicted from; ``predict_chunk`` has only the latter."""
        # only the arguments given are passed on: callers (rollouts, servers) may wrap predict_chunk(obs)
        given = {k: v for k, v in (("seed", seed), ("generator", generator), ("embodiment", embodiment))
                 if v is not None}
        predict = lambda: self.predict_chunk(obs, **given)  # noqa: E731
        robot = self._obs_embodiment(obs, embodiment)
        norm = self.robot_normalizer(robot)
        ref = norm.delta_reference(self._check_obs(obs, robot)[1].numpy()) if norm.delta_dims else None
        if ref is None:
            return np.asarray(self._selector.next(predict), dtype=np.float32)
        dims = norm.delta_dims

        def deltas() -> np.ndarray:
            chunk = predict()
            chunk[:, dims] -= ref
            return chunk

        action = np.array(self._selector.next(deltas), dtype=np.float32)
        action[dims] += ref
        return action

    @property
    def last_features(self) -> np.ndarray | None:
        """Mean readout features [d] of the first observation of the latest prediction (the failure
        monitor's out-of-distribution signal reads them), or None before any prediction."""
        if self._last_features is None:
            return None
        return self._last_features[0].mean(0).float().cpu().numpy().astype(np.float64)

    @torch.inference_mode()
    def resample_last(self, n: int, seed: int | None = None) -> np.ndarray | None:
        """``n`` more chunks [n, H, A] (normalized units) from the latest prediction's features, for the
        sample-spread signal of sampling heads, with noise from a generator seeded with ``seed`` (None: torch's
        global RNG; the episode's generator is left alone); None before any prediction."""
        if self._last_features is None or n < 1:
            return None
        feats = self._last_features[:1].expand(n, -1, -1)
        gen = self._seeded(seed) if seed is not None else None
        chunks = self._head_for(self._last_embodiment).predict(
            feats, generator=gen, dim_mask=self._dim_mask(self._last_embodiment, n)).float()
        if self._last_embodiment is not None:  # a padded head: that robot's dims only
            assert self.registry is not None
            chunks = chunks[..., : self.registry.embodiments[self._last_embodiment].action_dim]
        return chunks.cpu().numpy()

    def flush_actions(self) -> None:
        """Drop queued actions and past chunks: the next ``select_action`` predicts a new chunk."""
        self._selector.reset()

    def set_temporal_ensemble(self, coeff: float | None) -> None:
        """Switch action selection to ACT temporal ensembling with ``coeff`` (a chunk every step), or back to
        the configured selector with None; either way the queue starts empty (recovery's ``replan``)."""
        self._selector = TemporalEnsembler(coeff, self.config.chunk) if coeff is not None else self._build_selector()

    def reset(self, seed: int | None = None) -> None:
        """Forget queued actions / past chunks (call at the start of every episode). With ``seed``, the
        chunks of the episode draw their sampling noise from one generator seeded with it, so the
        episode is reproducible."""
        self._selector = self._build_selector()
        self._episode_generator = None if seed is None else self._seeded(seed)
        self._last_features = None
        self._episode_context = None

    def _context_of(self, obs: dict[str, Any], images: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """The first frames of the context cameras for this observation: ``obs["context_images"]`` when given,
        else the episode's memory, which the first observation after ``reset()`` fills; None without context
        cameras."""
        if not self.config.context_cameras:
            return None
        # a context camera is needed where its current frame is (a robot without that camera has neither)
        cams = [cam for cam in self.config.context_cameras if cam in images]
        given = obs.get("context_images")
        if given is not None:
            if not isinstance(given, dict) or any(cam not in given for cam in cams):
                raise KeyError(f"observation['context_images']: expected the first frames of {cams}, got "
                               f"{sorted(given) if isinstance(given, dict) else type(given).__name__}")
            return {cam: self._image_tensor(given[cam], f"observation['context_images'][{cam!r}]") for cam in cams}
        if self._episode_context is None:
            self._episode_context = {cam: images[cam].clone() for cam in cams}
        return self._episode_context

    def _seeded(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def _generator(self, seed: int | None, generator: torch.Generator | None) -> torch.Generator | None:
        if generator is not None:
            return generator
        return self._seeded(seed) if seed is not None else self._episode_generator

    # ---- validation ----------------------------------------------------------------------------------
    def _check_batch(self, batch: dict[str, Any]) -> None:
        c = self.config
        missing = [k for k in ("images", "state", "instruction", "action") if k not in batch]
        if missing:
            raise KeyError(f"batch is missing {missing} (has {sorted(batch)})")
        cams = [cam for cam in c.cameras if cam not in batch["images"]]
        if cams:
            raise KeyError(f"batch['images'] is missing camera(s) {cams} (has {sorted(batch['images'])})")
        state, action = batch["state"], batch["action"]
        b = state.shape[0]
        if state.ndim != 2 or state.shape[1] != c.state_dim:
            raise ValueError(f"batch['state']: expected [B, {c.state_dim}], got {tuple(state.shape)}")
        if tuple(action.shape) != (b, c.chunk, c.action_dim):
            raise ValueError(f"batch['action']: expected [{b}, {c.chunk}, {c.action_dim}], got {tuple(action.shape)}")
        if "action_mask" in batch and tuple(batch["action_mask"].shape) not in ((b, c.chunk),
                                                                                (b, c.chunk, c.action_dim)):
            raise ValueError(f"batch['action_mask']: expected [{b}, {c.chunk}] or [{b}, {c.chunk}, {c.action_dim}], "
                             f"got {tuple(batch['action_mask'].shape)}")
        if len(batch["instruction"]) != b:
            raise ValueError(f"batch['instruction']: expected {b} strings, got {len(batch['instruction'])}")
        if self.registry is not None:
            names = batch.get("embodiment")
            if names is None or len(names) != b:
                raise KeyError(f"batch['embodiment']: a multi-robot policy needs {b} robot names (one of "
                               f"{self.registry.names} per sample)")
        if c.context_cameras:
            ctx = batch.get("context_images")
            missing = [cam for cam in c.context_cameras if not isinstance(ctx, dict) or cam not in ctx]
            if missing:
                raise KeyError(f"batch['context_images'] is missing the first frames of context camera(s) {missing}")
        views = [("images", cam) for cam in c.cameras] + [("context_images", cam) for cam in c.context_cameras]
        for key, cam in views:
            img = batch[key][cam]
            if img.dtype != torch.uint8 or img.ndim != 4 or img.shape[0] != b or img.shape[-1] != 3:
                raise ValueError(f"batch[{key!r}][{cam!r}]: expected uint8 [{b}, H, W, 3], got "
                                 f"{img.dtype} {tuple(img.shape)}")

    def _obs_embodiment(self, obs: Any, embodiment: str | None) -> str | None:
        """The robot an observation is from: the argument, else obs['embodiment']; None for one-robot policies
        (which ignore the field)."""
        if self.registry is None:
            return None
        name = embodiment if embodiment is not None else (obs.get("embodiment") if isinstance(obs, dict) else None)
        if name is not None and not isinstance(name, str):
            raise ValueError(f"observation['embodiment']: expected a robot name, got {name!r}")
        self._embodiment_index(name)  # unknown or missing: EmbodimentError naming the known ones
        return name

    def _check_obs(self, obs: dict[str, Any], embodiment: str | None = None,
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor, str]:
        c = self.config
        if not isinstance(obs, dict):
            raise TypeError(f"observation: expected a dict, got {type(obs).__name__}")
        missing = [k for k in ("images", "state", "instruction") if k not in obs]
        if missing:
            raise KeyError(f"observation is missing {missing} (has {sorted(obs)})")
        robot = self.registry[embodiment] if self.registry is not None and embodiment is not None else None
        cameras = robot.cameras if robot is not None else c.cameras
        state_dim = robot.state_dim if robot is not None else c.state_dim
        cams = [cam for cam in cameras if cam not in obs["images"]]
        if cams:
            raise KeyError(f"observation['images'] is missing camera(s) {cams} (has {sorted(obs['images'])})")
        images = {cam: self._image_tensor(obs["images"][cam], f"observation['images'][{cam!r}]") for cam in cameras}
        state = np.asarray(obs["state"], dtype=np.float32)
        if state.shape != (state_dim,):
            raise ValueError(f"observation['state']: expected shape ({state_dim},), got {state.shape}"
                             + (f" (robot {embodiment!r})" if robot is not None else ""))
        instruction = obs["instruction"]
        if not isinstance(instruction, str) or (self.null_instruction is None and not instruction.strip()):
            raise ValueError(f"observation['instruction']: expected a non-empty string, got {instruction!r} "
                             "(only policies trained with instruction_dropout > 0 accept '')")
        return images, torch.from_numpy(state), instruction

    @staticmethod
    def _image_tensor(value: Any, where: str) -> torch.Tensor:
        img = np.asarray(value)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
            raise ValueError(f"{where}: expected uint8 HxWx3, got {img.dtype} {img.shape}")
        return torch.from_numpy(np.ascontiguousarray(img))

    # ---- save / load ---------------------------------------------------------------------------------
    def pretrained_prefixes(self) -> list[str]:
        """State-dict prefixes of the pretrained vision weights (HF tower, EfficientNet trunk); [] for conv."""
        name = {"hf": "tower", "efficientnet_lite0": "backbone"}.get(self.config.vision_encoder)
        return [f"vision.{i}.{name}." for i in range(len(self.vision))] if name else []

    def _external_prefixes(self) -> list[str]:
        """State-dict prefixes not saved: frozen pretrained vision weights (reloaded from their path or package)."""
        return self.pretrained_prefixes() if self.config.vision_frozen else []

    def save(self, folder: str | Path, weights: dict[str, torch.Tensor] | None = None) -> Path:
        """Write config.json, model.safetensors and normalization.json (each atomically).

        ``weights`` replaces this module's state_dict (e.g. EMA weights kept by the trainer).
        """
        folder = Path(folder)
        skip = tuple(self._external_prefixes())
        state = self.state_dict() if weights is None else weights
        tensors = {k: v for k, v in state.items() if not (skip and k.startswith(skip))}
        write_policy_folder(folder, self.config, tensors, self.stats, self.registry)
        return folder

    def load_from(self, other: Policy) -> None:
        """Start from ``other``'s weights. This policy may know more robots than ``other`` (a fine-tuning that
        adds robots): their embodiment tokens start at the mean of the known ones, their own projections and
        heads (per-robot mode) from this policy's initialization; every other weight must match."""
        theirs = other.state_dict()
        if self.registry is None or other.registry is None or self.registry.names == other.registry.names:
            self.load_state_dict(theirs)
            return
        known = other.registry.names
        if self.registry.names[: len(known)] != known:
            raise ConfigError(f"load_from: this policy's robots {self.registry.names} must start with {known}")
        mine = self.state_dict()
        out = {}
        for key, value in mine.items():
            if key == "embodiment_emb":
                old = theirs[key]
                value = torch.cat([old, old.mean(0, keepdim=True).expand(len(mine[key]) - len(old), -1)])
            elif key.startswith(("state_projs.", "heads_per_robot.")) and int(key.split(".")[1]) >= len(known):
                pass  # a new robot's own layers: this policy's initialization
            elif key not in theirs or theirs[key].shape != value.shape:
                raise ConfigError(f"load_from: weight {key!r} does not match ({tuple(value.shape)} here)")
            else:
                value = theirs[key]
            out[key] = value
        self.load_state_dict(out)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> Policy:
        """Load a folder written by ``save``; a missing/corrupt/inconsistent file raises PolicyLoadError."""
        config, tensors, stats, registry = read_policy_folder(folder)
        policy = cls(config, stats, registry)
        skip = tuple(policy._external_prefixes())
        expected = {k for k in policy.state_dict() if not (skip and k.startswith(skip))}
        missing = sorted(expected - set(tensors))
        unexpected = sorted(set(tensors) - expected)
        if missing or unexpected:
            raise PolicyLoadError(f"{Path(folder) / 'model.safetensors'} does not match config.json: "
                                  f"missing [{describe_keys(missing)}], unexpected [{describe_keys(unexpected)}]")
        try:
            policy.load_state_dict(tensors, strict=not skip)
        except RuntimeError as exc:
            raise PolicyLoadError(f"{Path(folder) / 'model.safetensors'}: {exc}") from exc
        return policy.to(device).eval()
