"""The instruction of a simulated episode: the one asked for, else the env's fixed one, else a train
instruction drawn from a generator of its own (seeded per episode, apart from the scene's random stream)."""

from __future__ import annotations

import numpy as np


class InstructionPicker:
    """Chooses each episode's instruction; ``salt`` keeps the draw independent of the simulator's scene stream
    (``default_rng(seed)`` would replay the bits that place the objects, correlating instruction and scene)."""

    def __init__(self, train: list[str], fixed: str | None, salt: int, seed: int = 0) -> None:
        if not train:
            raise ValueError("InstructionPicker: no train instructions")
        self.train, self.fixed, self.salt = list(train), fixed, salt
        self.first = fixed or self.train[0]
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self._rng = np.random.default_rng([int(seed), self.salt])

    def pick(self, instruction: str | None = None) -> str:
        """``instruction`` if given, else the fixed one, else a random train instruction."""
        if instruction is not None:
            return instruction
        if self.fixed is not None:
            return self.fixed
        return str(self._rng.choice(self.train))
