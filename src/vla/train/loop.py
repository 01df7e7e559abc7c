"""The training loop: cache -> batches -> Policy losses -> AdamW/EMA, logs, checkpoints, final policy.

Single process or under torchrun (DistributedDataParallel; rank 0 alone logs, plots and saves).
On CPU a run is bit-exactly resumable: the batch and the torch RNG seed of every step depend only on
(seed, rank, step), and the checkpoint holds weights, EMA, AdamW state and RNG state.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from vla.data import Dataset
from vla.models import NormalizationStats, Policy, PolicyConfig
from vla.models.config import ConfigError
from vla.models.embodiments import EmbodimentRegistry
from vla.models.serialization import atomic_write_text

from . import distributed
from .cache import TrainingCache, build_cache, concat_caches
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .metrics import LossWindow, MetricsLog
from .mixture import MixtureEntry, MixtureSampler, build_registry, cache_cameras, dataset_cameras, parse_mixture
from .normalization import policy_normalization
from .optim import EMA, adamw, lr_at
from .sampler import BatchSampler, Prefetcher

EvalFn = Callable[[Policy, int], dict[str, Any] | None]


def _cache_dir(config: TrainConfig, run: Path) -> Path:
    return Path(config.cache_dir or os.environ.get("VLA_CACHE_DIR") or run / "cache")


def _prepare_cache(config: TrainConfig, pcfg: dict[str, Any], run: Path, info: distributed.DistInfo,
                   dataset: str | None = None, cameras: list[str] | None = None) -> TrainingCache:
    cameras = list(cameras or pcfg.get("cameras", PolicyConfig().cameras))
    size = int(pcfg.get("image_size", PolicyConfig().image_size))
    args = (dataset or config.dataset, cameras, size, _cache_dir(config, run), config.max_episodes)
    select = {"episodes": config.episodes if dataset in (None, config.dataset) else None}  # the main dataset's
    if info.is_main:
        bar = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if not config.progress:
                return
            if bar is None:  # made on the first report, once the dataset has opened
                from tqdm import tqdm

                bar = tqdm(desc="cache", unit="episode", leave=False, total=total)
            bar.total = total
            bar.update(done - bar.n)

        try:
            cache = build_cache(*args, progress=progress, **select)
        finally:  # closed on errors too, so an error message gets a line of its own
            if bar is not None:
                bar.close()
    distributed.barrier(info)
    if not info.is_main:
        cache = build_cache(*args, **select)
    return cache


def _policy_config(config: TrainConfig, cache: TrainingCache) -> PolicyConfig:
    fields = {**config.policy, "state_dim": int(cache.state.shape[1]), "action_dim": int(cache.action.shape[1])}
    if float(fields.get("aux_env_state_weight") or 0) > 0:
        if cache.env_state is None:
            raise ConfigError(f"policy.aux_env_state_weight > 0, but dataset {config.dataset} has no "
                              "observation.environment_state (vla collect metaworld records it)")
        fields["env_state_dim"] = int(cache.env_state.shape[1])
    return PolicyConfig.from_dict(fields)


@dataclass
class _Data:
    """What a run trains on: the batch sampler, the policy settings and statistics, and for the logs and the
    auxiliary head the number of frames, the simulator states (or None) and the (first) cache folder."""

    sampler: BatchSampler | MixtureSampler
    pcfg: PolicyConfig
    stats: NormalizationStats
    registry: EmbodimentRegistry | None
    num_frames: int
    env_state: np.ndarray | None
    cache_root: Path


def _single_data(config: TrainConfig, init: Policy | None, run: Path, info: distributed.DistInfo) -> _Data:
    # before the cache: a dataset that cannot be undone stops here (a fine-tuned policy keeps its normalization)
    stats = init.stats if init is not None else policy_normalization(config.dataset)
    fields = init.config.to_dict() if init is not None else config.policy
    cache = concat_caches([_prepare_cache(config, fields, run, info, d)
                           for d in (config.dataset, *config.extra_datasets)])
    pcfg = _policy_config(config, cache) if init is None else _init_config(init.config, cache)
    sampler = BatchSampler(cache, config.batch_size, pcfg.chunk, pcfg.cameras, config.seed, info.rank,
                           pcfg.context_cameras)
    return _Data(sampler, pcfg, stats, None, cache.num_frames, cache.env_state, cache.root)


def _mixture_data(config: TrainConfig, init: Policy | None, run: Path, info: distributed.DistInfo) -> _Data:
    """A weighted mixture (`vla.train.mixture`): one cache per dataset with the policy cameras it has; two or more
    robots make a multi-robot policy (embodiment registry, padded state and action)."""
    entries = parse_mixture(config.mixture) if config.mixture else [MixtureEntry(config.dataset)]
    # statistics that are missing or cannot be undone stop the run here, before any cache is built
    dataset_stats = [policy_normalization(e.dataset) for e in entries]
    fields = init.config.to_dict() if init is not None else dict(config.policy)
    if "cameras" not in fields:  # every camera of the mixture, in order of first appearance
        fields["cameras"] = list(dict.fromkeys(c for e in entries for c in dataset_cameras(e.dataset)))
    cameras = list(fields["cameras"])
    caches = [_prepare_cache(config, fields, run, info, e.dataset, cache_cameras(e.dataset, cameras))
              for e in entries]
    names, registry = build_registry(entries, caches, cameras, dataset_stats)
    multi = len(registry.embodiments) > 1
    stats = registry.embodiments[0].stats
    if init is not None:
        if init.registry is None:
            raise ConfigError("init_policy drives one robot and names none; a dataset mixture can fine-tune a "
                              "multi-robot policy only (or pass a single --dataset)")
        known = init.registry.names
        new = [e for e in registry.embodiments if e.name not in known]
        # robots new to the policy join its registry (their stats from their data; the shared layers are kept)
        registry_out = EmbodimentRegistry([*init.registry.embodiments, *new])
        pcfg = init.config.replace(embodiments=registry_out.names) if new else init.config
        if new and not init.per_robot and (registry_out.max_state_dim > pcfg.state_dim
                                           or registry_out.max_action_dim > pcfg.action_dim):
            raise ConfigError(f"robots {[e.name for e in new]} have more state/action dims than init_policy pads to "
                              f"({pcfg.state_dim}/{pcfg.action_dim}); train it with larger policy.state_dim / "
                              "policy.action_dim (fixed padded sizes, as pi0 pads to 32)")
        if new and init.per_robot:
            pcfg = pcfg.replace(state_dim=max(pcfg.state_dim, registry_out.max_state_dim),
                                action_dim=max(pcfg.action_dim, registry_out.max_action_dim))
        stats, multi = init.stats, True
    else:
        # padded sizes: the largest robot's, or larger when set (room for robots added by later fine-tuning)
        fields["state_dim"] = max(registry.max_state_dim, int(fields.get("state_dim") or 0)) if multi \
            else registry.max_state_dim
        fields["action_dim"] = max(registry.max_action_dim, int(fields.get("action_dim") or 0)) if multi \
            else registry.max_action_dim
        fields["embodiments"] = registry.names if multi else []
        if float(fields.get("aux_env_state_weight") or 0) > 0:
            dims = {c.env_state.shape[1] if c.env_state is not None else None for c in caches}
            if None in dims or len(dims) != 1:
                raise ConfigError("policy.aux_env_state_weight > 0: every dataset of the mixture needs "
                                  "observation.environment_state of one size")
            fields["env_state_dim"] = dims.pop()
        pcfg = PolicyConfig.from_dict(fields)
        registry_out = registry if multi else None
    sampler = MixtureSampler(caches, names, [e.weight for e in entries], config.mixture_balance, config.batch_size,
                             pcfg.chunk, pcfg.cameras, pcfg.image_size, config.seed, info.rank, multi_robot=multi,
                             state_dim=pcfg.state_dim, action_dim=pcfg.action_dim, context_cameras=pcfg.context_cameras)
    env = [c.env_state for c in caches]
    env_state = np.concatenate(env) if all(x is not None for x in env) else None  # type: ignore[arg-type]
    return _Data(sampler, pcfg, stats, registry_out, sum(c.num_frames for c in caches), env_state, caches[0].root)


def _init_config(config: PolicyConfig, cache: TrainingCache) -> PolicyConfig:
    dims = (int(cache.state.shape[1]), int(cache.action.shape[1]))
    if dims != (config.state_dim, config.action_dim):
        raise ConfigError(f"init_policy: made for state_dim={config.state_dim}, action_dim={config.action_dim}; "
                          f"the dataset has {dims[0]}, {dims[1]}")
    return config


def _step_seed(seed: int, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step, 7]).generate_state(1)[0])


def train(config: TrainConfig, eval_fn: EvalFn | None = None, resume: bool = False,
          stop_at: int | None = None) -> Path:
    """Train a policy; returns the run folder (RUN/policy holds the final EMA policy).

    ``stop_at`` ends this process after that step with a checkpoint (the schedule still spans
    ``config.steps``): train in slices and continue each with ``resume=True``.

    ``eval_fn(policy, step)`` (optional, rank 0, every ``eval_every`` steps and at the end) gets the
    EMA policy in eval mode and may return metrics, logged with an "eval/" prefix.
    """
    config.validate()
    if not config.dataset or not config.out:
        raise ValueError("train: config.dataset and config.out are required")
    info = distributed.setup(config.device)
    try:
        return _train(config, eval_fn, resume, info, stop_at)
    finally:
        distributed.teardown(info)


def _train(config: TrainConfig, eval_fn: EvalFn | None, resume: bool, info: distributed.DistInfo,
           stop_at: int | None) -> Path:
    run = Path(config.out)
    if not resume and (run / "checkpoints").exists():
        raise ConfigError(f"{run} already holds a run; pass --resume to continue it or choose another --out")
    if resume and latest_checkpoint(run) is None:
        raise ConfigError(f"--resume: no complete checkpoint under {run / 'checkpoints'}")
    for path in (config.dataset, *config.extra_datasets, *(e["dataset"] for e in config.mixture)):
        Dataset.open(path)  # a missing or unreadable dataset fails here, before anything is written
    init = Policy.from_pretrained(config.init_policy) if config.init_policy else None
    distributed.barrier(info)
    if info.is_main:
        run.mkdir(parents=True, exist_ok=True)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    elif info.local_world_size > 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // info.local_world_size))
    torch.manual_seed(config.seed)

    multi_init = init is not None and init.registry is not None
    data = (_mixture_data if config.mixture or multi_init else _single_data)(config, init, run, info)
    pcfg, stats, registry, num_frames = data.pcfg, data.stats, data.registry, data.num_frames
    policy = Policy(pcfg, stats, registry)
    fine_tune = init is not None
    if init is not None:
        policy.load_from(init)
        del init
    policy = policy.to(info.device)
    if policy.env_state_head is not None and not fine_tune:  # before the EMA copies the weights
        assert data.env_state is not None
        policy.env_state_head.set_stats(data.env_state)
    policy.train()
    optimizer = adamw(policy, config.lr, config.weight_decay, tuple(policy.pretrained_prefixes()),
                      config.pretrained_lr_scale)
    ema = EMA(policy, config.ema_decay)
    start = 0
    if resume:
        ckpt = latest_checkpoint(run)
        assert ckpt is not None  # checked before the run started
        saved = PolicyConfig.load(ckpt / "policy" / "config.json")
        if saved != pcfg:
            diff = {k: (v, pcfg.to_dict()[k]) for k, v in saved.to_dict().items() if pcfg.to_dict()[k] != v}
            raise ValueError(f"--resume: the policy settings differ from {ckpt} (saved, now): {diff}")
        start = load_checkpoint(ckpt, policy, ema, optimizer)
    if info.is_main:
        atomic_write_text(run / "train_config.json", json.dumps(config.to_dict(), indent=2))
    model: torch.nn.Module = policy
    if info.enabled:
        unused = pcfg.vision_encoder == "hf" and not pcfg.vision_frozen
        model = DistributedDataParallel(policy, device_ids=[info.device] if info.device.type == "cuda" else None,
                                        find_unused_parameters=unused)
    use_bf16 = config.bf16 if config.bf16 is not None else (
        info.device.type == "cuda" and torch.cuda.is_bf16_supported())

    log = MetricsLog(run, truncate_after=start if resume else None) if info.is_main else None
    if log is not None and not resume:
        log.path.write_text("")
    sampler = data.sampler
    end = min(config.steps, stop_at) if stop_at else config.steps
    loader = Prefetcher(sampler, start, end, config.prefetch)
    bar = None
    if info.is_main and config.progress:
        from tqdm import tqdm

        bar = tqdm(total=end, initial=start, desc="train", unit="step", dynamic_ncols=True, mininterval=1.0)
    frames_per_step = config.batch_size * info.world_size
    epoch_steps = max(1, num_frames // frames_per_step)
    window = LossWindow(time.perf_counter(), 0.0)
    after_epoch = {"wait": 0.0, "time": 0.0, "steps": 0}
    summary: dict[str, Any] = {}
    run_t0 = time.perf_counter()
    try:
        for step in range(start, end):
            t_step = time.perf_counter()
            wait_before = loader.wait_s
            got, batch = loader.next()
            assert got == step
            lr = lr_at(step, config.lr, config.warmup_steps, config.steps, config.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            torch.manual_seed(_step_seed(config.seed, info.rank, step))
            with torch.autocast(info.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                losses = model(batch)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            grad_norm = (torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip)
                         if config.grad_clip > 0 else torch.tensor(0.0))
            optimizer.step()
            ema.update(policy)
            done = step + 1
            window.add(losses)
            if step >= epoch_steps:
                after_epoch["wait"] += loader.wait_s - wait_before
                after_epoch["time"] += time.perf_counter() - t_step
                after_epoch["steps"] += 1
            if done % config.log_every == 0 or done == config.steps:
                elapsed = time.perf_counter() - window.t0
                record = {
                    "step": done,
                    "epoch": round(done * frames_per_step / num_frames, 3),
                    **{k: distributed.all_reduce_mean(v, info) for k, v in window.means().items()},
                    "lr": lr,
                    "grad_norm": float(grad_norm),
                    "samples_per_s": window.n * frames_per_step / elapsed,
                    "data_wait_frac": (loader.wait_s - window.wait0) / elapsed,
                    "time_s": round(time.perf_counter() - run_t0, 2),
                }
                if log is not None:
                    log.write(record)
                if bar is not None:
                    bar.set_postfix(loss=f"{record['loss']:.4f}", sps=f"{record['samples_per_s']:.0f}",
                                    wait=f"{record['data_wait_frac']:.0%}")
                window = LossWindow(time.perf_counter(), loader.wait_s)
            if bar is not None:
                bar.update(1)
            is_last = done == config.steps
            t_side = time.perf_counter()  # checkpoint / eval time is kept out of samples/s
            if done % config.checkpoint_every == 0 or done == end:
                if info.is_main:
                    save_checkpoint(run, done, policy, ema, optimizer, config.to_dict(), config.keep_checkpoints)
                    log.plot(run / "loss.png")
                distributed.barrier(info)
            if eval_fn is not None and (is_last or (config.eval_every and done % config.eval_every == 0)):
                if info.is_main:
                    _run_eval(eval_fn, policy, ema, done, log)
                distributed.barrier(info)
            window.t0 += time.perf_counter() - t_side
        digests = distributed.gather_digests(_weights_digest(policy), info)  # DDP keeps ranks in sync
        if info.is_main and end == config.steps:
            final = Policy(pcfg, stats, registry)
            final.load_state_dict(ema.state_dict_for(policy))
            final.save(run / "policy")
            summary = {
                "steps": config.steps, "world_size": info.world_size, "batch_size": config.batch_size,
                "torch_threads": torch.get_num_threads(),
                "num_frames": num_frames, "params": policy.num_parameters(),
                "embodiments": policy.embodiment_names,
                "wall_s": round(time.perf_counter() - run_t0, 2),
                "data_wait_frac_after_first_epoch": (after_epoch["wait"] / after_epoch["time"]
                                                     if after_epoch["time"] else None),
                "samples_per_s_after_first_epoch": (after_epoch["steps"] * frames_per_step / after_epoch["time"]
                                                    if after_epoch["time"] else None),
                "policy": str(run / "policy"), "cache": str(data.cache_root),
                "weights_sha256_per_rank": digests, "ranks_in_sync": len(set(digests)) == 1,
            }
            atomic_write_text(run / "summary.json", json.dumps(summary, indent=2))
    finally:
        loader.close()
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
    distributed.barrier(info)
    return run


def _weights_digest(policy: Policy) -> bytes:
    h = hashlib.sha256()
    for k, v in sorted(policy.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.digest()


def _run_eval(eval_fn: EvalFn, policy: Policy, ema: EMA, step: int, log: MetricsLog | None) -> None:
    ema_policy = Policy(policy.config, policy.stats, policy.registry)
    ema_policy.load_state_dict(ema.state_dict_for(policy))
    ema_policy.eval()
    metrics = eval_fn(ema_policy, step) or {}
    if log is not None and metrics:
        log.write({"step": step, **{f"eval/{k}": v for k, v in metrics.items()}})
