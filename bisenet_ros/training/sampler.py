"""Deterministic, resumable data order for iteration-based training.

Iteration ``i`` uses global batch ``b = i % batches_per_epoch`` of epoch ``e = i //
batches_per_epoch``; each epoch is a permutation seeded by ``(seed, e)`` (the last incomplete
batch is dropped). Each sample also gets its own augmentation seed ``(seed, e, position)``. The
order is a pure function of ``(seed, iteration)``, so resuming needs only the iteration, and a
``world_size``-process run splits every global batch into the same samples a 1-process run uses.
"""

from __future__ import annotations

from typing import Iterator, List, Tuple

import numpy as np

#: One sample request: (dataset index, augmentation seed triple).
Key = Tuple[int, Tuple[int, int, int]]


class IterationBatchSampler:
    """Yields lists of :data:`Key` for iterations ``start, start+1, ..., stop-1``.

    Args:
        dataset_size: Number of samples.
        global_batch: Samples per iteration over all processes.
        rank, world_size: This process's share: positions ``rank::world_size`` of each batch.
    """

    def __init__(self, dataset_size: int, global_batch: int, *, seed: int = 0, start: int = 0,
                 stop: int, rank: int = 0, world_size: int = 1) -> None:
        if global_batch % world_size:
            raise ValueError(f'global batch {global_batch} is not divisible by world size '
                             f'{world_size}')
        if dataset_size < global_batch:
            raise ValueError(f'dataset has {dataset_size} samples, fewer than one global batch '
                             f'({global_batch}); lower train.batch_size')
        self.size, self.batch, self.seed = dataset_size, global_batch, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world_size
        self.per_epoch = dataset_size // global_batch

    def epoch_of(self, iteration: int) -> int:
        return iteration // self.per_epoch

    def batch_keys(self, iteration: int) -> List[Key]:
        """This rank's keys for ``iteration``."""
        epoch, b = divmod(iteration, self.per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
        positions = range(b * self.batch + self.rank, (b + 1) * self.batch, self.world)
        return [(int(order[p]), (self.seed, epoch, p)) for p in positions]

    def __iter__(self) -> Iterator[List[Key]]:
        for iteration in range(self.start, self.stop):
            yield self.batch_keys(iteration)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)
