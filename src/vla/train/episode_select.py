"""Which episodes of a dataset a run trains on: ``episodes=`` as a list of indices or ranges.

``"0:10,50:60"`` (half-open ranges, as Python slices), ``"3,7,9"`` and ``[3, 7, 9]`` all select by episode
index; LeRobot's ``--dataset.episodes`` takes a list the same way. Every selected index must exist.
"""

from __future__ import annotations

from typing import Any

from vla.models.config import ConfigError


def parse_episodes(spec: Any) -> list[int] | None:
    """The sorted, de-duplicated episode indices of ``spec`` (None: all episodes); ConfigError if malformed."""
    if spec is None:
        return None
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = [spec]
    if isinstance(spec, str):
        out: list[int] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            try:
                if ":" in part:
                    lo, hi = part.split(":", 1)
                    out.extend(range(int(lo), int(hi)))
                else:
                    out.append(int(part))
            except ValueError as exc:
                raise ConfigError(f"episodes: cannot read {part!r} in {spec!r} (expected indices and "
                                  "ranges like '0:10,50:60')") from exc
        spec = out
    if not isinstance(spec, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in spec):
        raise ConfigError(f"episodes: expected a list of episode indices or a string like '0:10,50:60', got {spec!r}")
    if not spec or min(spec) < 0:
        raise ConfigError(f"episodes: expected at least one index, all >= 0, got {spec!r}")
    return sorted(set(spec))


def select_episodes(available: list[int], spec: Any, max_episodes: int | None, dataset: str) -> list[int]:
    """``available`` episode indices filtered by ``spec`` (see parse_episodes), then cut to ``max_episodes``."""
    wanted = parse_episodes(spec)
    chosen = available
    if wanted is not None:
        missing = sorted(set(wanted) - set(available))
        if missing:
            raise ConfigError(f"episodes: dataset {dataset} has no episode(s) {missing[:10]}"
                              f"{' ...' if len(missing) > 10 else ''} (it has {len(available)}: "
                              f"{available[0]}..{available[-1]})")
        chosen = [e for e in available if e in set(wanted)]
    return chosen[: max_episodes or None]
