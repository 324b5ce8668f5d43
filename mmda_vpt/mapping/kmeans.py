"""k-means steps on points: Lloyd from given centroids, random starts, re-seeding, balancing.

The building blocks of DA-VPT's class-to-prompt clustering (:mod:`.class_kmeans`), plain
functions on float64 arrays: :func:`warm_kmeans` (Lloyd's iterations from given centroids, cluster
i keeping index i), :func:`random_init_kmeans` (seeded random rows as the first centroids, the
authors' initial map), :func:`reseed_empty` (an empty cluster takes a far point of the largest
one), :func:`balanced_assignment` / :func:`balanced_kmeans` (floor(n/M) or ceil(n/M) points per
cluster by a minimum-cost assignment) and :func:`anchored_centroids` (the previous groups'
means on the current points). ``metric='euclidean'`` is plain k-means; ``'cosine'`` is spherical
k-means (centroids re-normalized after every update).
"""
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

import numpy as np

__all__ = [
    'KMEANS_METRICS', 'anchored_centroids', 'balanced_assignment', 'balanced_kmeans',
    'centroid_update', 'check_metric', 'distances', 'limited_threads', 'normalize_rows',
    'random_init_kmeans', 'reseed_empty', 'sklearn_warm_kmeans', 'warm_kmeans'
]

#: The k-means geometries: plain (squared Euclidean) or spherical (cosine).
KMEANS_METRICS = ('euclidean', 'cosine')


_CONTROLLER = None


@contextmanager
def limited_threads(threads: Optional[int]) -> Iterator[None]:
    """Limit the BLAS and OpenMP threads of numpy and scikit-learn (None: leave them).

    Clustering a few thousand class features gains nothing from threads, and threads that
    compete with data loaders or other processes for the cores make it many times slower.
    """
    global _CONTROLLER
    if threads is None:
        yield
        return
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController  # a scikit-learn dependency
        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=threads):
        yield


def normalize_rows(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """L2-normalize the rows of ``x`` (float64); all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)


def check_metric(metric: str) -> None:
    """Raise unless ``metric`` is one of :data:`KMEANS_METRICS`."""
    if metric not in KMEANS_METRICS:
        raise ValueError(f'metric must be one of {KMEANS_METRICS}, got {metric!r}')


def _assign(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean; ties go to the lower index)."""
    dist = ((centroids**2).sum(1)[None, :] - 2.0 * points @ centroids.T)
    return dist.argmin(axis=1)


def centroid_update(points: np.ndarray, labels: np.ndarray, centroids: np.ndarray,
                    spherical: bool) -> np.ndarray:
    """Means of the members of each cluster; an empty cluster keeps its centroid."""
    num = len(centroids)
    onehot = np.zeros((num, len(points)))
    onehot[labels, np.arange(len(points))] = 1.0
    counts = onehot.sum(axis=1)
    sums = onehot @ points
    new = centroids.copy()
    filled = counts > 0
    new[filled] = sums[filled] / counts[filled, None]
    if spherical:
        new[filled] = normalize_rows(new[filled])
    return new


def warm_kmeans(points: np.ndarray,
                init: np.ndarray,
                max_iter: int = 300,
                tol: float = 1e-4,
                metric: str = 'euclidean') -> Tuple[np.ndarray, np.ndarray, int]:
    """Lloyd's k-means from given centroids; cluster i keeps its index.

    The iteration and the stopping rules are scikit-learn's ``KMeans(init=init, n_init=1,
    algorithm='lloyd')``: stop when no label changes or when the total squared centre shift is
    at most ``tol`` times the mean per-feature variance of ``points``; then labels are
    recomputed from the final centres. The difference: an empty cluster keeps its centroid.

    Args:
        points: (n, D) points.
        init: (M, D) starting centroids.
        max_iter: Maximum Lloyd iterations. Defaults to 300.
        tol: Relative tolerance on the centre shift. Defaults to 1e-4.
        metric: ``'euclidean'`` or ``'cosine'`` (spherical: centroids re-normalized, the
            starting ones included, whatever their length). Defaults to ``'euclidean'``.

    Returns:
        tuple: labels (n,) int64, centroids (M, D) float64, iterations run.
    """
    check_metric(metric)
    points = np.asarray(points, dtype=np.float64)
    centroids = np.array(init, dtype=np.float64, copy=True)
    if metric == 'cosine':
        centroids = normalize_rows(centroids)
    if points.ndim != 2 or centroids.ndim != 2 or points.shape[1] != centroids.shape[1]:
        raise ValueError(f'points {points.shape} and centroids {centroids.shape} must be (n, D) '
                         'and (M, D) with the same D')
    if max_iter < 1:
        raise ValueError(f'max_iter must be >= 1, got {max_iter}')
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64), centroids, 0
    spherical = metric == 'cosine'
    threshold = float(np.mean(np.var(points, axis=0)) * tol) if tol > 0 else 0.0
    labels_old = np.full(len(points), -1, dtype=np.int64)
    strict = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        labels = _assign(points, centroids)
        new = centroid_update(points, labels, centroids, spherical)
        shift = float(((new - centroids)**2).sum())
        centroids = new
        if np.array_equal(labels, labels_old):
            strict = True
            break
        if shift <= threshold:
            break
        labels_old = labels
    if not strict:
        labels = _assign(points, centroids)
    return labels.astype(np.int64), centroids, n_iter


def random_init_kmeans(points: np.ndarray,
                       num_clusters: int,
                       seed: int = 0,
                       n_init: int = 1,
                       max_iter: int = 300,
                       tol: float = 1e-4,
                       metric: str = 'euclidean') -> Tuple[np.ndarray, np.ndarray, int]:
    """k-means started from random rows (the authors' initial map: one start, 20 iterations).

    Every start takes ``np.random.default_rng(seed).choice(n, num_clusters, replace=False)``
    (the generator is shared by the starts, in order) as the first centroids and runs
    :func:`warm_kmeans`; the start with the least total distance of the points to their
    centroids (squared Euclidean, or 1 - cosine similarity) is kept, the earlier one on a tie.

    Args:
        points: (n, D) points, n >= num_clusters.
        num_clusters: M.
        seed: Seed of the choice of rows. Defaults to 0.
        n_init: Starts. Defaults to 1.
        max_iter: Maximum Lloyd iterations per start. Defaults to 300.
        tol: Relative tolerance, as :func:`warm_kmeans`'s. Defaults to 1e-4.
        metric: ``'euclidean'`` or ``'cosine'``. Defaults to ``'euclidean'``.

    Returns:
        tuple: labels (n,) int64, centroids (M, D) float64 and the iterations of the kept start.
    """
    check_metric(metric)
    points = np.asarray(points, dtype=np.float64)
    if not 1 <= num_clusters <= len(points):
        raise ValueError(f'random_init_kmeans needs 1 <= num_clusters <= {len(points)} points, '
                         f'got {num_clusters}')
    if n_init < 1:
        raise ValueError(f'n_init must be >= 1, got {n_init}')
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_init):
        rows = rng.choice(len(points), num_clusters, replace=False)
        labels, centroids, n_iter = warm_kmeans(points, points[rows], max_iter, tol, metric)
        cost = float(distances(points, centroids, metric)[np.arange(len(points)),
                                                            labels].sum())
        if best is None or cost < best[0]:
            best = (cost, labels, centroids, n_iter)
    return best[1], best[2], best[3]


def distances(points: np.ndarray, centroids: np.ndarray, metric: str) -> np.ndarray:
    """(n, M) distances: squared Euclidean, or 1 - cosine similarity."""
    if metric == 'cosine':
        return 1.0 - points @ normalize_rows(centroids).T
    return ((points**2).sum(1)[:, None] + (centroids**2).sum(1)[None, :] -
            2.0 * points @ centroids.T)


def reseed_empty(points: np.ndarray, labels: np.ndarray, centroids: np.ndarray,
                 metric: str = 'euclidean',
                 pinned: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, int]:
    """Give every empty cluster one point, while there are at least as many points as clusters.

    An empty cluster takes the point farthest from its centroid in the largest cluster (a
    cluster of at least two points; pinned points move only when nothing else can), and becomes
    that point; the cluster it left is re-centred. Cluster i keeps index i.

    Args:
        points: (n, D) points.
        labels: (n,) cluster of every point.
        centroids: (M, D) centroids.
        metric: ``'euclidean'`` or ``'cosine'`` (centroids re-normalized). Defaults to
            ``'euclidean'``.
        pinned: (n,) bool, points that should keep their cluster. Defaults to None (none).

    Returns:
        tuple: labels, centroids and the number of clusters re-seeded.
    """
    labels = np.array(labels, dtype=np.int64, copy=True)
    centroids = np.array(centroids, dtype=np.float64, copy=True)
    num = len(centroids)
    if len(points) < num:
        return labels, centroids, 0
    pinned = np.zeros(len(points), dtype=bool) if pinned is None else np.asarray(pinned, bool)
    spherical = metric == 'cosine'
    reseeded = 0
    while True:
        sizes = np.bincount(labels, minlength=num)
        empty = np.flatnonzero(sizes == 0)
        if len(empty) == 0:
            return labels, centroids, reseeded
        target = int(empty[0])
        for allow_pinned in (False, True):
            movable = (sizes[labels] >= 2) & (allow_pinned | ~pinned)
            if movable.any():
                break
        # The largest cluster with a movable point; its farthest movable point.
        donor_sizes = np.where(np.bincount(labels[movable], minlength=num) > 0, sizes, -1)
        donor = int(np.argmax(donor_sizes))
        members = np.flatnonzero(movable & (labels == donor))
        dist = distances(points[members], centroids[[donor]], metric)[:, 0]
        point = int(members[np.argmax(dist)])
        labels[point] = target
        centroids[target] = points[point]
        centroids = centroid_update(points, labels, centroids, spherical)
        reseeded += 1


def balanced_assignment(points: np.ndarray,
                        centroids: np.ndarray,
                        metric: str = 'euclidean',
                        pinned_to: Optional[np.ndarray] = None) -> np.ndarray:
    """Assign n points to M clusters of floor(n/M) or ceil(n/M) points at least total distance.

    A minimum-cost assignment of points to cluster slots (SciPy's ``linear_sum_assignment``):
    every cluster has floor(n/M) slots that must be filled and one optional slot; n mod M of
    the optional slots are used.

    Args:
        points: (n, D) points, n >= M.
        centroids: (M, D) centroids.
        metric: ``'euclidean'`` or ``'cosine'``. Defaults to ``'euclidean'``.
        pinned_to: (n,) cluster a point must take, or -1 for free points. Defaults to None.

    Returns:
        np.ndarray: (n,) int64 cluster of every point.
    """
    from scipy.optimize import linear_sum_assignment
    num_points, num = len(points), len(centroids)
    base, extra = divmod(num_points, num)
    cost = distances(points, centroids, metric)
    big = 1.0 + 4.0 * float(np.abs(cost).max()) * num_points
    if pinned_to is not None:
        pinned_to = np.asarray(pinned_to, dtype=np.int64)
        rows = np.flatnonzero(pinned_to >= 0)
        penalty = np.full((len(rows), num), big)
        penalty[np.arange(len(rows)), pinned_to[rows]] = 0.0
        cost = cost.copy()
        cost[rows] += penalty
    # Columns: base required slots per cluster (a bonus makes all of them taken), then one
    # optional slot per cluster when the clusters cannot all be equal.
    required = np.repeat(cost, base, axis=1) - big * num_points
    columns = [required]
    owners = [np.repeat(np.arange(num), base)]
    if extra:
        columns.append(cost)
        owners.append(np.arange(num))
    rows, cols = linear_sum_assignment(np.concatenate(columns, axis=1))
    labels = np.empty(num_points, dtype=np.int64)
    labels[rows] = np.concatenate(owners)[cols]
    return labels


def balanced_kmeans(points: np.ndarray,
                    init: np.ndarray,
                    max_iter: int = 300,
                    metric: str = 'euclidean',
                    pinned_to: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, int]:
    """Lloyd's iterations with the balanced assignment step; cluster i keeps its index.

    Returns:
        tuple: labels (n,) with floor(n/M) or ceil(n/M) points per cluster, centroids (M, D)
        (the means of the final clusters) and the iterations run.
    """
    centroids = np.array(init, dtype=np.float64, copy=True)
    labels = None
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        new = balanced_assignment(points, centroids, metric, pinned_to)
        centroids = centroid_update(points, new, centroids, metric == 'cosine')
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
    return labels, centroids, n_iter


def sklearn_warm_kmeans(points: np.ndarray, init: np.ndarray, max_iter: int,
                        tol: float) -> Tuple[np.ndarray, np.ndarray, int]:
    """scikit-learn's Lloyd k-means from ``init`` (it moves an empty cluster to a far point)."""
    from sklearn.cluster import KMeans
    kmeans = KMeans(len(init), init=init, n_init=1, max_iter=max_iter, tol=tol,
                    algorithm='lloyd').fit(points)
    return (kmeans.labels_.astype(np.int64), kmeans.cluster_centers_.astype(np.float64),
            int(kmeans.n_iter_))


def anchored_centroids(points: np.ndarray, labels: np.ndarray, fallback: np.ndarray,
                       metric: str = 'euclidean') -> np.ndarray:
    """Means of ``points`` under ``labels``; a cluster without points takes ``fallback``'s row.

    The start of an update: the previous map's groups, measured on the current features, so a
    drift of the whole feature cloud does not leave the centroids behind.
    """
    return centroid_update(points, labels, np.asarray(fallback, dtype=np.float64),
                            metric == 'cosine')
