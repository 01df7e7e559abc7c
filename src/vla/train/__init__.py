"""vla.train: the training loop (cache, AdamW + warmup/cosine, EMA, checkpoints/resume, torchrun).

Import from the submodules (``vla.train.loop.train``, ``vla.train.config.make_config``,
``vla.train.cache.build_cache``): this package imports nothing itself, so ``vla --help`` and the data
commands start without loading torch.
"""
