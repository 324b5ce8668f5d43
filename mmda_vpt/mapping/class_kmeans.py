"""Clustering of per-class mean features into prompt groups: DA-VPT's class-to-prompt map.

Plain functions on arrays, with no runner: :class:`ClassPromptMappingHook` calls them, the tests
check them on synthetic features and the benchmarks (``benchmarks/``) time them.

- :func:`initial_class_map` clusters the normalized class features with scikit-learn's
  ``KMeans`` (k-means++ with a fixed seed; ``init='random'``: seeded random rows as the first
  centroids, :func:`random_init_kmeans`, the authors' code) into M groups: class -> prompt.
- :func:`update_class_map` re-clusters them from the previous map: the centroids are first
  re-computed as the means of the current class features under the previous map (so a drift of
  the whole feature cloud moves the centroids with it), then Lloyd iterations follow; cluster i
  stays prompt i. An empty cluster is re-seeded with a far class of the largest cluster
  (``empty_cluster='reseed'``), so with C >= M every prompt holds a class; ``'keep'`` keeps
  the authors' behaviour (an empty cluster keeps its centroid). ``balanced=True`` gives every
  prompt floor(C/M) or ceil(C/M) classes by a minimum-cost assignment.

Both take ``metric='euclidean'`` (plain k-means on the normalized features, the paper) or
``'cosine'`` (spherical k-means: centroids re-normalized after every update, the authors' code),
and ``feature_norm`` (:func:`normalize_features`): ``'l2'`` (the rows on the unit sphere) or
``'layer'`` (the rows centred first: the authors' LayerNorm before their cosine k-means).
"""
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

import numpy as np


__all__ = [
    'ClassMap', 'normalize_rows', 'normalize_features', 'initial_class_map', 'warm_kmeans',
    'random_init_kmeans', 'update_class_map', 'anchored_centroids', 'reseed_empty',
    'balanced_assignment', 'balanced_kmeans', 'cluster_sizes', 'KMEANS_METRICS',
    'EMPTY_CLUSTER_MODES', 'FEATURE_NORMS', 'KMEANS_INITS'
]

KMEANS_METRICS = ('euclidean', 'cosine')
EMPTY_CLUSTER_MODES = ('reseed', 'keep')
#: How class features are normalized before clustering (:func:`normalize_features`).
FEATURE_NORMS = ('l2', 'layer')
#: How the initial map's k-means starts: scikit-learn's k-means++ or random rows.
KMEANS_INITS = ('k-means++', 'random')


@dataclass
class ClassMap:
    """The result of one clustering.

    Attributes:
        class_to_prompt: (C,) int64 prompt of every class.
        centroids: (M, D) float64 cluster centres; row i belongs to prompt i.
        n_iter: Lloyd iterations run (for the initial map: of the best scikit-learn run).
        elapsed_ms: Wall time of the clustering in milliseconds.
    """
    class_to_prompt: np.ndarray
    centroids: np.ndarray
    n_iter: int
    elapsed_ms: float


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


def normalize_features(x: np.ndarray, feature_norm: str = 'l2') -> np.ndarray:
    """The class features as the k-means sees them (float64); all-zero rows stay zero.

    ``'l2'``: every row on the unit sphere (:func:`normalize_rows`). ``'layer'``: every row
    minus its mean over the D features, then on the unit sphere. This is the authors' row-wise
    LayerNorm without affine (``F.layer_norm(x, x.shape[1:])``) followed by their cosine
    k-means: LayerNorm centres a row and divides it by a positive scalar (its standard deviation
    with eps), and the cosine geometry ignores the scale of a row, so the assignments are theirs.
    The rows are kept on the unit sphere so that the Euclidean metric works on them too.

    Args:
        x (np.ndarray): (C, D) features.
        feature_norm (str): ``'l2'`` or ``'layer'``. Defaults to ``'l2'``.

    Returns:
        np.ndarray: (C, D) normalized features. Normalizing them again changes nothing beyond
        rounding.
    """
    _check_feature_norm(feature_norm)
    x = np.asarray(x, dtype=np.float64)
    if feature_norm == 'layer':
        x = x - x.mean(axis=1, keepdims=True)
    return normalize_rows(x)


def _check_metric(metric: str) -> None:
    if metric not in KMEANS_METRICS:
        raise ValueError(f'metric must be one of {KMEANS_METRICS}, got {metric!r}')


def _check_feature_norm(feature_norm: str) -> None:
    if feature_norm not in FEATURE_NORMS:
        raise ValueError(f'feature_norm must be one of {FEATURE_NORMS}, got {feature_norm!r}')


def _check_init(init: str) -> None:
    if init not in KMEANS_INITS:
        raise ValueError(f'init must be one of {KMEANS_INITS}, got {init!r}')


def _check_features(features: np.ndarray, valid: Optional[np.ndarray]) -> Tuple[np.ndarray,
                                                                                np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f'class features must be (C, D), got shape {features.shape}')
    if valid is None:
        valid = np.ones(len(features), dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != (len(features), ):
        raise ValueError(f'valid must be ({len(features)},), got shape {valid.shape}')
    if not np.isfinite(features[valid]).all():
        raise ValueError('class features contain NaN or inf')
    return features, valid


def _assign(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean; ties go to the lower index)."""
    dist = ((centroids**2).sum(1)[None, :] - 2.0 * points @ centroids.T)
    return dist.argmin(axis=1)


def _centroid_update(points: np.ndarray, labels: np.ndarray, centroids: np.ndarray,
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
    _check_metric(metric)
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
        new = _centroid_update(points, labels, centroids, spherical)
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
    _check_metric(metric)
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
        cost = float(_distances(points, centroids, metric)[np.arange(len(points)),
                                                            labels].sum())
        if best is None or cost < best[0]:
            best = (cost, labels, centroids, n_iter)
    return best[1], best[2], best[3]


def _few_classes_map(features: np.ndarray, valid: np.ndarray,
                     num_prompts: int) -> Tuple[np.ndarray, np.ndarray]:
    """Fewer (valid) classes than prompts: every valid class gets its own prompt.

    With C <= M class c goes to prompt c. Otherwise the k < M valid classes take prompts
    0..k-1 in class order and the others are spread over the remaining prompts in turn.
    Centroids are the features of the prompt's class; prompts without a valid class get zeros.
    """
    num_classes, dim = features.shape
    centroids = np.zeros((num_prompts, dim))
    if num_classes <= num_prompts:
        mapping = np.arange(num_classes, dtype=np.int64)
    else:
        mapping = np.empty(num_classes, dtype=np.int64)
        seen = np.flatnonzero(valid)
        unseen = np.flatnonzero(~valid)
        mapping[seen] = np.arange(len(seen))
        spare = num_prompts - len(seen)
        mapping[unseen] = len(seen) + np.arange(len(unseen)) % spare
    rows = np.flatnonzero(valid)
    centroids[mapping[rows]] = features[rows]
    return mapping, centroids


def initial_class_map(features: np.ndarray,
                      num_prompts: int,
                      valid: Optional[np.ndarray] = None,
                      seed: int = 0,
                      n_init: int = 10,
                      max_iter: int = 300,
                      tol: float = 1e-4,
                      metric: str = 'euclidean',
                      empty_cluster: str = 'reseed',
                      balanced: bool = False,
                      feature_norm: str = 'l2',
                      init: str = 'k-means++',
                      threads: Optional[int] = 1) -> ClassMap:
    """The first class-to-prompt map: k-means of the normalized class features into M groups.

    Args:
        features: (C, D) per-class mean features (normalized here).
        num_prompts: M, the number of groups.
        valid: (C,) bool, the classes that have a feature. A class without one goes to prompt
            ``c mod M``. Defaults to None (all).
        seed: ``random_state`` of scikit-learn's ``KMeans`` (``init='random'``: the seed of
            the choice of rows). Defaults to 0.
        n_init: Initializations; the best run is kept. Defaults to 10.
        max_iter: Maximum Lloyd iterations. Defaults to 300.
        tol: Relative tolerance, as scikit-learn's. Defaults to 1e-4.
        metric: ``'euclidean'`` (the paper) or ``'cosine'`` (spherical k-means refined from the
            scikit-learn result, the authors' code). Defaults to ``'euclidean'``.
        empty_cluster: ``'reseed'`` or ``'keep'``, as :func:`update_class_map`'s. Defaults to
            ``'reseed'``.
        balanced: Give each prompt floor(C/M) or ceil(C/M) classes. Defaults to False.
        feature_norm: ``'l2'`` or ``'layer'`` (:func:`normalize_features`). Defaults to
            ``'l2'``.
        init: ``'k-means++'`` (scikit-learn's ``KMeans``) or ``'random'``
            (:func:`random_init_kmeans`, with ``metric``: the authors' random-init cosine
            k-means). Defaults to ``'k-means++'``.
        threads: BLAS / OpenMP threads while clustering; None leaves the libraries' own.
            Defaults to 1.

    Returns:
        ClassMap: With fewer valid classes than prompts, every valid class gets its own prompt
        (C <= M: class c -> prompt c) and the rest of the prompts are unused.
    """
    _check_metric(metric)
    _check_empty_cluster(empty_cluster)
    _check_feature_norm(feature_norm)
    _check_init(init)
    if num_prompts < 1:
        raise ValueError(f'num_prompts must be >= 1, got {num_prompts}')
    features, valid = _check_features(features, valid)
    import sklearn.cluster  # noqa: F401  (imported before the clock starts)
    start = time.perf_counter()
    with limited_threads(threads):
        mapping, centroids, n_iter = _initial(features, valid, num_prompts, seed, n_init,
                                              max_iter, tol, metric, empty_cluster, balanced,
                                              feature_norm, init)
    elapsed = (time.perf_counter() - start) * 1000.0
    return ClassMap(mapping, centroids, n_iter, elapsed)


def _initial(features: np.ndarray, valid: np.ndarray, num_prompts: int, seed: int, n_init: int,
             max_iter: int, tol: float, metric: str, empty_cluster: str, balanced: bool,
             feature_norm: str, init: str) -> Tuple[np.ndarray, np.ndarray, int]:
    """The body of :func:`initial_class_map`: map, centroids and iterations."""
    from sklearn.cluster import KMeans
    features = normalize_features(features, feature_norm)
    num_classes = len(features)
    if num_classes <= num_prompts or int(valid.sum()) < num_prompts:
        mapping, centroids = _few_classes_map(features, valid, num_prompts)
        n_iter = 0
    else:
        points = features[valid]
        if init == 'random':
            labels, centroids, n_iter = random_init_kmeans(points, num_prompts, seed, n_init,
                                                           max_iter, tol, metric)
            refine = balanced  # already spherical with the cosine metric
        else:
            kmeans = KMeans(n_clusters=num_prompts, n_init=n_init, max_iter=max_iter, tol=tol,
                            random_state=seed).fit(points)
            labels = kmeans.labels_.astype(np.int64)
            centroids = kmeans.cluster_centers_.astype(np.float64)
            n_iter = int(kmeans.n_iter_)
            refine = metric == 'cosine' or balanced
        if refine:
            init = normalize_rows(centroids) if metric == 'cosine' else centroids
            none = np.zeros(len(points), dtype=bool)
            labels, centroids, extra = _cluster(points, init, labels, none, max_iter, tol,
                                                metric, 'keep', balanced)
            n_iter += extra
        if empty_cluster == 'reseed' and not balanced:
            labels, centroids, _ = reseed_empty(points, labels, centroids, metric)
        mapping = np.arange(num_classes, dtype=np.int64) % num_prompts
        mapping[valid] = labels
    return mapping, centroids, n_iter


def _distances(points: np.ndarray, centroids: np.ndarray, metric: str) -> np.ndarray:
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
        dist = _distances(points[members], centroids[[donor]], metric)[:, 0]
        point = int(members[np.argmax(dist)])
        labels[point] = target
        centroids[target] = points[point]
        centroids = _centroid_update(points, labels, centroids, spherical)
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
    cost = _distances(points, centroids, metric)
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
        centroids = _centroid_update(points, new, centroids, metric == 'cosine')
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
    return labels, centroids, n_iter


def _sklearn_warm_kmeans(points: np.ndarray, init: np.ndarray, max_iter: int,
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
    return _centroid_update(points, labels, np.asarray(fallback, dtype=np.float64),
                            metric == 'cosine')


def update_class_map(features: np.ndarray,
                     previous: np.ndarray,
                     centroids: np.ndarray,
                     valid: Optional[np.ndarray] = None,
                     keep: Optional[np.ndarray] = None,
                     max_iter: int = 300,
                     tol: float = 1e-4,
                     metric: str = 'euclidean',
                     empty_cluster: str = 'reseed',
                     balanced: bool = False,
                     anchor: bool = True,
                     feature_norm: str = 'l2',
                     threads: Optional[int] = 1) -> ClassMap:
    """Re-cluster the class features, starting from the previous map; prompt i stays prompt i.

    With ``anchor`` (the default), the starting centroids are the means of the current class
    features under the previous map (a prompt without a valid class keeps its centroid), then
    Lloyd iterations follow: scikit-learn's ``KMeans(init=..., n_init=1)`` for the Euclidean
    metric with re-seeding, otherwise :func:`warm_kmeans`; with ``balanced``, the balanced
    assignment of :func:`balanced_kmeans`. Afterwards (also after the final assignment, which
    can empty a cluster again) ``empty_cluster='reseed'`` gives every empty prompt a class
    (:func:`reseed_empty`) whenever there are at least as many valid classes as prompts.

    Args:
        features: (C, D) per-class mean features (normalized here).
        previous: (C,) the previous class-to-prompt map.
        centroids: (M, D) the previous centroids; cluster i is prompt i.
        valid: (C,) bool, classes that have a feature; the others keep their prompt and take
            no part. Defaults to None (all).
        keep: (C,) bool, classes that keep their previous prompt whatever the clustering says
            (classes unseen in the window: their feature is the previous one and still shapes
            the centroids). Defaults to None (none).
        max_iter: Maximum Lloyd iterations. Defaults to 300.
        tol: Relative tolerance, as scikit-learn's. Defaults to 1e-4.
        metric: ``'euclidean'`` or ``'cosine'``. Defaults to ``'euclidean'``.
        empty_cluster: ``'reseed'`` (every prompt keeps at least one class when C >= M) or
            ``'keep'`` (an empty prompt keeps its centroid and may stay empty: the authors'
            code). Defaults to ``'reseed'``.
        balanced: Give each prompt floor(C/M) or ceil(C/M) classes. Defaults to False (the
            paper's k-means).
        anchor: Start from the previous map's groups on the current features; False starts
            from the previous centroids (the authors' warm start). Defaults to True.
        feature_norm: ``'l2'`` or ``'layer'`` (:func:`normalize_features`); ``centroids``
            must come from features normalized the same way. Defaults to ``'l2'``.
        threads: BLAS threads while clustering; None leaves the library's own. Defaults to 1.

    Returns:
        ClassMap: The new map; the centroids are the means of the classes each prompt holds
        after ``keep`` is applied (an empty prompt keeps its centroid). With C <= M the map
        stays as it was and each prompt's centroid becomes its class's feature.
    """
    _check_metric(metric)
    _check_empty_cluster(empty_cluster)
    _check_feature_norm(feature_norm)
    start = time.perf_counter()
    features, valid = _check_features(features, valid)
    previous = np.asarray(previous, dtype=np.int64)
    centroids = np.asarray(centroids, dtype=np.float64)
    num_classes = len(features)
    num_prompts = len(centroids)
    if previous.shape != (num_classes, ):
        raise ValueError(f'previous map must be ({num_classes},), got {previous.shape}')
    if previous.size and (previous.min() < 0 or previous.max() >= num_prompts):
        raise ValueError(f'previous map names prompts outside [0, {num_prompts})')
    keep = np.zeros(num_classes, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    mapping = previous.copy()
    n_iter = 0
    rows = np.flatnonzero(valid)
    with limited_threads(threads):
        features = normalize_features(features, feature_norm)
        if num_classes <= num_prompts:
            new_centroids = centroids.copy()
            new_centroids[mapping[rows]] = features[rows]
        else:
            points = features[rows]
            kept = keep[rows]
            init = (anchored_centroids(points, previous[rows], centroids, metric)
                    if anchor else centroids)
            labels, new_centroids, n_iter = _cluster(points, init, previous[rows], kept,
                                                     max_iter, tol, metric, empty_cluster,
                                                     balanced)
            mapping[rows] = labels
    elapsed = (time.perf_counter() - start) * 1000.0
    return ClassMap(mapping, new_centroids, n_iter, elapsed)


def _check_empty_cluster(empty_cluster: str) -> None:
    if empty_cluster not in EMPTY_CLUSTER_MODES:
        raise ValueError(f'empty_cluster must be one of {EMPTY_CLUSTER_MODES}, '
                         f'got {empty_cluster!r}')


def _cluster(points: np.ndarray, init: np.ndarray, previous: np.ndarray, kept: np.ndarray,
             max_iter: int, tol: float, metric: str, empty_cluster: str,
             balanced: bool) -> Tuple[np.ndarray, np.ndarray, int]:
    """Lloyd iterations from ``init``, the kept points pinned to ``previous``, then re-seeding.

    Returns labels, the centroids of the final groups (an empty group keeps its centroid) and
    the iterations run.
    """
    spherical = metric == 'cosine'
    if balanced:
        pinned_to = np.where(kept, previous, -1)
        labels, centroids, n_iter = balanced_kmeans(points, init, max_iter, metric, pinned_to)
        return labels, centroids, n_iter
    if metric == 'euclidean' and empty_cluster == 'reseed' and len(points) >= len(init):
        labels, centroids, n_iter = _sklearn_warm_kmeans(points, init, max_iter, tol)
    else:
        labels, centroids, n_iter = warm_kmeans(points, init, max_iter, tol, metric)
    labels = np.where(kept, previous, labels)
    centroids = _centroid_update(points, labels, centroids, spherical)
    if empty_cluster == 'reseed':
        labels, centroids, _ = reseed_empty(points, labels, centroids, metric, pinned=kept)
    return labels, centroids, n_iter


def cluster_sizes(class_to_prompt: np.ndarray, num_prompts: int) -> np.ndarray:
    """Number of classes of every prompt, (M,)."""
    return np.bincount(np.asarray(class_to_prompt, dtype=np.int64), minlength=num_prompts)
