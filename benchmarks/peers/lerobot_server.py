"""Serve a LeRobot 0.6.1 policy (ACT, Diffusion Policy) through vla's websocket protocol, as a peer baseline.

Runs INSIDE the LeRobot venv (Python 3.12, ``lerobot[dataset,training]==0.6.1``; Diffusion Policy also needs
``diffusers>=0.38,<0.40``, LeRobot's ``diffusion`` extra), with vla installed there without its dependencies,
so that the policy is served by vla's own ``PolicyServer`` and evaluated by an unchanged ``vla eval --server``:

    /work/lerobot-venv/bin/pip install --no-deps -e /path/to/vla   # vla.serve needs numpy, msgpack, websockets
    /work/lerobot-venv/bin/pip install msgpack websockets "diffusers>=0.38,<0.40"

1. Train on one of our datasets (``vla collect metaworld ...`` writes LeRobot v3.0 datasets; LeRobot warns
   ``Unknown fields in DatasetInfo: ['vla']`` and ignores them). ``--dataset.video_backend=pyav``: LeRobot's
   default is torchcodec whenever it imports, and it does not decode here. ``--policy.input_features`` leaves
   out ``observation.environment_state`` (object and goal poses), which our MetaWorld datasets carry but the
   served observation does not (LeRobot would otherwise feed it to the policy: simulator privilege).
   ``--policy.pretrained_backbone_weights=null`` trains the ResNet-18 from scratch (the ImageNet default is a
   torchvision download; leave the flag out where that works). Shapes are [C, H, W] at the dataset's size::

     DS=/path/to/our/mt10_dataset   # e.g. vla collect metaworld --suite mt10 --image-size 128 --out $DS
     FEAT='{"observation.state": {"type": "STATE", "shape": [4]},
            "observation.images.corner4": {"type": "VISUAL", "shape": [3, 128, 128]},
            "observation.images.gripperPOV": {"type": "VISUAL", "shape": [3, 128, 128]}}'
     /work/lerobot-venv/bin/lerobot-train --dataset.repo_id=local/mt10 --dataset.root=$DS \
         --dataset.video_backend=pyav --policy.type=act --policy.device=cpu --policy.push_to_hub=false \
         --policy.input_features="$FEAT" --policy.pretrained_backbone_weights=null \
         --output_dir=runs/lerobot_act_mt10 --steps=20000 --batch_size=8 --num_workers=2 --wandb.enable=false
     # Diffusion Policy: --policy.type=diffusion (n_obs_steps 2, horizon 64, n_action_steps 32 by default)

   The policy folder is OUTPUT_DIR/checkpoints/last/pretrained_model (config.json, model.safetensors,
   policy_{pre,post}processor*.json/.safetensors, train_config.json).

2. Serve it (127.0.0.1 only; ``--port 0`` picks a free port and prints it)::

     /work/lerobot-venv/bin/python benchmarks/peers/lerobot_server.py \
         --policy runs/lerobot_act_mt10/checkpoints/last/pretrained_model --port 8765 [--safety metaworld_sawyer]

3. Evaluate from vla's venv, exactly as for a vla policy::

     MUJOCO_GL=egl vla eval --server ws://127.0.0.1:8765 --suite mt10 --episodes-per-task 10 --split train \
         --out runs/lerobot_act_mt10/eval

Inference follows LeRobot's own ``common.control_utils.predict_action`` and ``async_inference.policy_server``:
``policies.utils.prepare_observation_for_inference`` (uint8 HWC -> float CHW in [0, 1], batch dim, ``task``
= the instruction), the saved preprocessor (``make_pre_post_processors(cfg, pretrained_path=...)``:
normalization, device), ``policy.predict_action_chunk``, then the saved postprocessor step by step
(unnormalization). The reply is the whole chunk, float32 [H, A] in robot units: ACT's ``chunk_size`` actions,
Diffusion's ``n_action_steps``; vla's executor runs ``n_action_steps`` of them and asks again.

Differences from LeRobot's own rollout, on purpose or forced by the protocol:
- Diffusion with ``n_obs_steps`` > 1: the server sees one observation per chunk, not every control step, so
  the observation history is the current observation repeated (what LeRobot does on an episode's first step).
- ACT's temporal ensembling (``temporal_ensemble_coeff``) needs a query every step: the server refuses such a
  policy rather than serve something else.
- Camera names are the feature keys without ``observation.images.`` (``corner4``, ``gripperPOV``): they must be
  camera names of the evaluation suite.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"
ACTION_KEY = "action"
log = logging.getLogger("vla.peers.lerobot")


class PeerError(ValueError):
    """The LeRobot policy folder cannot be served through vla's observation (the message says why)."""


def _dataset_info(policy_dir: Path) -> dict[str, Any]:
    """fps, robot_type and names from the training dataset's meta/info.json, or {} when it is gone."""
    cfg_file = policy_dir / "train_config.json"
    try:
        root = json.loads(cfg_file.read_text())["dataset"]["root"]
        info = json.loads((Path(root) / "meta" / "info.json").read_text())
    except (OSError, KeyError, TypeError, ValueError):
        return {}
    feats = info.get("features") or {}
    return {"fps": info.get("fps"), "robot_type": info.get("robot_type"),
            "state_names": (feats.get(STATE_KEY) or {}).get("names"),
            "action_names": (feats.get(ACTION_KEY) or {}).get("names")}


def _features(config: Any, policy_dir: Path) -> tuple[dict[str, tuple[int, int, int]], int, int]:
    """(camera -> (H, W, 3), state_dim, action_dim) from the policy config, or PeerError naming the field."""
    where = f"{policy_dir / 'config.json'}"
    cams: dict[str, tuple[int, int, int]] = {}
    state_dim = None
    for key, ft in config.input_features.items():
        kind = getattr(ft.type, "name", str(ft.type))
        shape = tuple(int(x) for x in ft.shape)
        if kind == "VISUAL":
            if not key.startswith(IMAGE_PREFIX) or len(shape) != 3 or shape[0] != 3:
                raise PeerError(f"{where}: input_features[{key!r}]: expected '{IMAGE_PREFIX}<camera>' of shape "
                                f"[3, H, W], got shape {list(shape)}")
            cams[key[len(IMAGE_PREFIX):]] = (shape[1], shape[2], 3)
        elif key == STATE_KEY:
            state_dim = shape[0]
        elif key == ENV_STATE_KEY:
            raise PeerError(f"{where}: the policy reads {ENV_STATE_KEY!r} (object and goal poses), which a vla "
                            "observation does not carry: train with --policy.input_features listing only "
                            f"{STATE_KEY!r} and the cameras")
        else:
            raise PeerError(f"{where}: input_features[{key!r}] ({kind}): a vla observation has only "
                            f"{STATE_KEY!r} and '{IMAGE_PREFIX}<camera>'")
    if state_dim is None or not cams:
        raise PeerError(f"{where}: input_features: expected {STATE_KEY!r} and at least one camera, got "
                        f"{sorted(config.input_features)}")
    action = config.output_features.get(ACTION_KEY)
    if action is None:
        raise PeerError(f"{where}: output_features: expected {ACTION_KEY!r}, got {sorted(config.output_features)}")
    return cams, state_dim, int(action.shape[0])


def load_lerobot_service(path: str | Path, device: str = "cpu", fps: float | None = None
                         ) -> tuple[Callable[[dict[str, Any]], np.ndarray], Any, dict[str, Any]]:
    """(predict, ObservationSpec, metadata) for a LeRobot ``pretrained_model`` folder (or a training output dir)."""
    import torch
    from lerobot import __version__ as lerobot_version
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies import get_policy_class, make_pre_post_processors, prepare_observation_for_inference

    import vla
    from vla.serve.obs_schema import ObservationSpec

    policy_dir = Path(path)
    if (policy_dir / "checkpoints" / "last" / "pretrained_model").is_dir():
        policy_dir = policy_dir / "checkpoints" / "last" / "pretrained_model"
    if not (policy_dir / "config.json").is_file():
        raise PeerError(f"{policy_dir}: expected a LeRobot pretrained_model folder (config.json, model.safetensors, "
                        "policy_preprocessor.json, ...) or the lerobot-train --output_dir holding one")
    config = PreTrainedConfig.from_pretrained(policy_dir)
    config.device = device
    if getattr(config, "temporal_ensemble_coeff", None) is not None:
        raise PeerError(f"{policy_dir}/config.json: temporal_ensemble_coeff is set; ensembling needs a query every "
                        "control step, which this chunk server does not reproduce (train or load without it)")
    cams, state_dim, action_dim = _features(config, policy_dir)
    policy = get_policy_class(config.type).from_pretrained(policy_dir, config=config)
    policy.to(device).eval()
    dev = {"device": device}
    preprocessor, postprocessor = make_pre_post_processors(
        policy.config, pretrained_path=str(policy_dir),
        preprocessor_overrides={"device_processor": dev}, postprocessor_overrides={"device_processor": dev})
    n_obs = int(getattr(config, "n_obs_steps", 1) or 1)
    n_action_steps = int(config.n_action_steps)
    chunk = int(getattr(config, "chunk_size", None) or n_action_steps) if config.type == "act" else n_action_steps
    info = _dataset_info(policy_dir)
    robot_type = info.get("robot_type") or ""
    torch_device = torch.device(device)
    cam_keys = {cam: IMAGE_PREFIX + cam for cam in cams}

    def predict(obs: dict[str, Any]) -> np.ndarray:
        if obs.get("reset"):
            policy.reset()
        frame = {STATE_KEY: np.asarray(obs["state"], np.float32)}
        frame.update({key: obs["images"][cam] for cam, key in cam_keys.items()})
        with torch.inference_mode():
            batch = prepare_observation_for_inference(frame, torch_device, obs["instruction"], robot_type)
            batch = preprocessor(batch)
            if n_obs > 1:  # one observation per request: the history is it, repeated (see module docstring)
                for key in (STATE_KEY, *cam_keys.values()):
                    batch[key] = batch[key].unsqueeze(1).repeat_interleave(n_obs, dim=1)
            actions = policy.predict_action_chunk(batch)  # normalized, [1, H, A]
            if actions.ndim == 2:
                actions = actions.unsqueeze(0)
            steps = [postprocessor(actions[:, i]) for i in range(actions.shape[1])]
            out = torch.stack(steps, dim=1)[0]
        return out.detach().to("cpu", torch.float32).numpy()

    spec = ObservationSpec(cams, state_dim)
    names_ok = (len(info.get("state_names") or []) == state_dim and len(info.get("action_names") or []) == action_dim)
    metadata = {
        "policy": {"name": f"lerobot-{config.type}", "path": str(policy_dir), "head": f"lerobot:{config.type}",
                   "parameters": int(sum(p.numel() for p in policy.parameters())),
                   "trainable_parameters": int(sum(p.numel() for p in policy.parameters() if p.requires_grad)),
                   "vision_encoder": getattr(config, "vision_backbone", None), "language_encoder": None,
                   "framework": "lerobot", "framework_version": lerobot_version, "n_obs_steps": n_obs},
        "vla_version": vla.__version__,
        "state_dim": state_dim, "action_dim": action_dim,
        "state_names": list(info["state_names"]) if names_ok else [f"state.{i}" for i in range(state_dim)],
        "action_names": list(info["action_names"]) if names_ok else [f"action.{i}" for i in range(action_dim)],
        "chunk": chunk, "n_action_steps": n_action_steps, "fps": fps if fps is not None else info.get("fps"),
        "robot_type": info.get("robot_type"), "instruction": "string (ignored by ACT and Diffusion Policy)",
    }
    return predict, spec, metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--policy", required=True, help="LeRobot pretrained_model folder (or lerobot-train output)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for inference")
    parser.add_argument("--safety", default=None, help="vla safety config (YAML/JSON file or 'metaworld_sawyer')")
    parser.add_argument("--fps", type=float, default=None, help="control rate to announce (default: the dataset's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch

    from vla.serve.server import PolicyServer

    torch.set_num_threads(max(1, args.threads))
    try:
        safety = None
        if args.safety:
            from vla.serve.safety import SafetyConfig, load_safety_config

            safety = (SafetyConfig.for_metaworld_sawyer() if args.safety == "metaworld_sawyer"
                      else load_safety_config(args.safety))
        t0 = time.perf_counter()
        predict, spec, meta = load_lerobot_service(args.policy, args.device, args.fps)
        if safety is not None and safety.action_dim != meta["action_dim"]:
            raise PeerError(f"--safety {args.safety}: {safety.action_dim} action dims, the policy has "
                            f"{meta['action_dim']}")
        server = PolicyServer(predict, meta, spec, host="127.0.0.1", port=args.port, safety=safety)
        server.start()
    except (PeerError, FileNotFoundError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"serving {meta['policy']['name']} ({meta['policy']['parameters']:,} parameters, chunk {meta['chunk']}, "
          f"n_action_steps {meta['n_action_steps']}, cameras {sorted(spec.cameras)}) on {server.url} "
          f"(loaded in {time.perf_counter() - t0:.1f} s)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
