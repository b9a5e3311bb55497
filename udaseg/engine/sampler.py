"""Infinite, seeded, resumable, DDP-sharded sampling.

The stream of a domain is a function of (seed, position) only: epoch e is the permutation
``default_rng([seed, e]).permutation(n)``, and every draw carries its global position as the
seed of its random transforms (see ``SegmentationDataset.__getitem__``). Resuming at iteration i
is therefore just starting the stream at position ``i × global batch`` — no iterator state to
save, and the same samples and augmentations whichever worker or rank loads them.
"""
from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler


class StreamSampler(Sampler):
    """Batches of keys drawn from an endless stream of positions: ``key_at(position)`` in a
    subclass. Global batch b covers positions [b·B·W, (b+1)·B·W) for batch size B per rank and
    world size W; rank r takes every W-th of them starting at r, so the union over ranks of one
    step equals the single-process batch of size B·W, and a resumed run (``start_batch``) draws
    the same keys."""

    def __init__(self, batch_size: int, start_batch: int = 0, rank: int = 0, world_size: int = 1):
        self.batch_size, self.start_batch, self.rank, self.world_size = batch_size, start_batch, rank, world_size

    def key_at(self, position: int) -> tuple:
        raise NotImplementedError

    def batch_keys(self, batch: int) -> list[tuple]:
        global_bs = self.batch_size * self.world_size
        start = batch * global_bs
        return [self.key_at(p) for p in range(start + self.rank, start + global_bs, self.world_size)]

    def __iter__(self):
        b = self.start_batch
        while True:
            yield self.batch_keys(b)
            b += 1

    def __len__(self):  # DataLoader asks; the stream is endless
        return 2**62


class InfiniteBatchSampler(StreamSampler):
    """Yields batches of ``(index, draw_seed)`` keys forever.

    Positions are split over batches and ranks as in :class:`StreamSampler`.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, start_batch: int = 0,
                 rank: int = 0, world_size: int = 1, shuffle: bool = True):
        if n <= 0:
            raise ValueError("cannot sample from an empty dataset")
        super().__init__(batch_size, start_batch, rank, world_size)
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self._perm_epoch, self._perm = -1, None

    def _index_at(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if not self.shuffle:
            return offset
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        return int(self._perm[offset])

    def key_at(self, position: int) -> tuple[int, int]:
        return self._index_at(position), position


class ShardSampler(Sampler):
    """Indices ``rank, rank + W, rank + 2W, …`` of a dataset of ``n``: over the W ranks, each
    index exactly once — no padding duplicates (torch's DistributedSampler repeats images to
    make the shards equal, which would count them twice in a confusion matrix)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.n, self.rank, self.world_size = n, rank, world_size

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self):
        return len(range(self.rank, self.n, self.world_size))
