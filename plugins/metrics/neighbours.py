"""Nearest-neighbour geometry in feature space, in chunks: memory linear in the point count.

Used by ``prdc`` (density and coverage) and ``memorization`` (nearest-training-neighbour
distances). Distances are Euclidean, computed by scikit-learn in
float64: ``NearestNeighbors`` for k-th neighbour radii and ``pairwise_distances_chunked`` for
ball membership, both in blocks of at most :data:`WORKING_MEMORY_MB` of distances, so a
10,000 x 10,000 comparison never holds the 800 MB matrix. scikit-learn's OpenMP/BLAS threads
are limited to torch's thread count, the worker's share of the cores.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

#: Largest block of pairwise distances held at once, in MB (scikit-learn's working_memory).
WORKING_MEMORY_MB = 64


@contextlib.contextmanager
def limited_sklearn():
    """scikit-learn (k-NN, K-means) with at most torch's threads, the worker's share of the
    cores, and at most :data:`WORKING_MEMORY_MB` per block of distances."""
    import sklearn
    from threadpoolctl import threadpool_limits

    with sklearn.config_context(working_memory=WORKING_MEMORY_MB), \
            threadpool_limits(limits=torch.get_num_threads()):
        yield


def _array(x) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected points as a 2-D array (n, d), got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float64)


def kth_neighbour_distances(x, k: int) -> np.ndarray:
    """Distance from each point of ``x`` ``(n, d)`` to its ``k``-th nearest *other* point
    (the point itself excluded, duplicates counted): the radius of its k-NN ball."""
    from sklearn.neighbors import NearestNeighbors

    x = _array(x)
    if not 1 <= k < len(x):
        raise ValueError(f"the {k}-th nearest neighbour needs more than {k} points, got {len(x)}")
    with limited_sklearn():
        dist, _ = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x).kneighbors()
    return dist[:, k - 1]


def nearest_neighbours(query, points, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(distances, indices)``, each ``(len(query), k)``: the ``k`` nearest rows of ``points``
    to each row of ``query``, nearest first (a query that is itself one of ``points`` finds
    itself at distance 0)."""
    from sklearn.neighbors import NearestNeighbors

    query, points = _array(query), _array(points)
    if not 1 <= k <= len(points):
        raise ValueError(f"{k} nearest neighbours need at least {k} points, got {len(points)}")
    with limited_sklearn():
        dist, idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(points).kneighbors(query)
    return dist, idx


def ball_membership(query, centres, radii) -> tuple[np.ndarray, np.ndarray]:
    """For balls ``B(centres[i], radii[i])`` (open: distance strictly below the radius):

    * ``counts[j]``: how many balls contain ``query[j]``;
    * ``hit[i]``: whether ball ``i`` contains at least one query point.

    One chunked pass over the query x centre distances.
    """
    from sklearn.metrics import pairwise_distances_chunked

    query, centres = _array(query), _array(centres)
    radii = np.asarray(radii, dtype=np.float64)
    if radii.shape != (len(centres),):
        raise ValueError(f"{len(centres)} centres but radii of shape {radii.shape}")
    counts = np.zeros(len(query), dtype=np.int64)
    nearest = np.full(len(centres), np.inf)

    def reduce(block: np.ndarray, start: int) -> np.ndarray:
        # scikit-learn wants one value per query row back; the per-centre minimum over the
        # block's rows is folded in here instead.
        np.minimum(nearest, block.min(axis=0), out=nearest)
        return (block < radii).sum(axis=1)

    with limited_sklearn():
        start = 0
        for block_counts in pairwise_distances_chunked(query, centres, reduce_func=reduce):
            counts[start:start + len(block_counts)] = block_counts
            start += len(block_counts)
    return counts, nearest < radii
