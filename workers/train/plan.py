"""Which examples each step trains on: :class:`StepPlan` maps a step to this worker's example indices.

Imports: numpy and :mod:`counterpoint.errors` only.
"""

from __future__ import annotations

import numpy as np

from counterpoint.errors import InvalidInput


class StepPlan:
    """Maps a step number (1-based) to this worker's example indices, without replaying earlier steps."""

    def __init__(
        self,
        n_examples: int,
        batch_size: int,
        *,
        world_size: int = 1,
        seed: int = 0,
        epochs: int = 1,
        max_steps: int | None = None,
    ) -> None:
        if n_examples < batch_size:
            raise InvalidInput(f"data holds {n_examples} examples, fewer than batch_size={batch_size}")
        if batch_size < world_size:
            raise InvalidInput(f"batch_size={batch_size} cannot be split over {world_size} workers")
        self.n_examples = n_examples
        self.batch_size = batch_size
        self.world_size = world_size
        self.seed = seed
        self.steps_per_epoch = n_examples // batch_size  # the last partial batch is dropped
        self.total_steps = max_steps if max_steps is not None else epochs * self.steps_per_epoch
        self._epoch = -1
        self._perm = np.arange(0)

    def epoch(self, step: int) -> int:
        return (step - 1) // self.steps_per_epoch

    def global_batch(self, step: int) -> np.ndarray:
        if not 1 <= step <= self.total_steps:
            raise ValueError(f"step {step} outside 1..{self.total_steps}")
        epoch = self.epoch(step)
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_examples)
            self._epoch = epoch
        start = ((step - 1) % self.steps_per_epoch) * self.batch_size
        return self._perm[start : start + self.batch_size]

    def indices(self, step: int, rank: int = 0) -> list[int]:
        return [int(i) for i in np.array_split(self.global_batch(step), self.world_size)[rank]]
