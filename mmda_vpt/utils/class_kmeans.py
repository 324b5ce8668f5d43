"""Clustering of per-class mean features into prompt groups: DA-VPT's class-to-prompt map.

Plain functions on arrays, with no runner: :class:`ClassPromptMappingHook` calls them, the tests
check them on synthetic features and the benchmark times them.

- :func:`initial_class_map` clusters the L2-normalized class features with scikit-learn's
  ``KMeans`` (k-means++ with a fixed seed) into M groups: class -> prompt.
- :func:`update_class_map` re-clusters them warm-started from the previous centroids with one
  initialization (Lloyd iterations as scikit-learn's ``KMeans(init=centroids, n_init=1)``), so
  cluster i stays prompt i; unlike scikit-learn, an empty cluster keeps its centroid instead of
  being moved to a far point, which would hand prompt i a different group.

Both take ``metric='euclidean'`` (plain k-means on the normalized features, the paper) or
``'cosine'`` (spherical k-means: centroids re-normalized after every update, the authors' code).
"""
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

__all__ = [
    'ClassMap', 'normalize_rows', 'initial_class_map', 'warm_kmeans', 'update_class_map',
    'cluster_sizes', 'time_class_clustering', 'KMEANS_METRICS'
]

KMEANS_METRICS = ('euclidean', 'cosine')


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


def _check_metric(metric: str) -> None:
    if metric not in KMEANS_METRICS:
        raise ValueError(f'metric must be one of {KMEANS_METRICS}, got {metric!r}')


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
        metric: ``'euclidean'`` or ``'cosine'`` (spherical: centroids re-normalized).
            Defaults to ``'euclidean'``.

    Returns:
        tuple: labels (n,) int64, centroids (M, D) float64, iterations run.
    """
    _check_metric(metric)
    points = np.asarray(points, dtype=np.float64)
    centroids = np.array(init, dtype=np.float64, copy=True)
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
                      threads: Optional[int] = 1) -> ClassMap:
    """The first class-to-prompt map: k-means of the normalized class features into M groups.

    Args:
        features: (C, D) per-class mean features (normalized here).
        num_prompts: M, the number of groups.
        valid: (C,) bool, the classes that have a feature. A class without one goes to prompt
            ``c mod M``. Defaults to None (all).
        seed: ``random_state`` of scikit-learn's ``KMeans``. Defaults to 0.
        n_init: k-means++ initializations; the best run is kept. Defaults to 10.
        max_iter: Maximum Lloyd iterations. Defaults to 300.
        tol: Relative tolerance, as scikit-learn's. Defaults to 1e-4.
        metric: ``'euclidean'`` (the paper) or ``'cosine'`` (spherical k-means refined from the
            scikit-learn result, the authors' code). Defaults to ``'euclidean'``.
        threads: BLAS / OpenMP threads while clustering; None leaves the libraries' own.
            Defaults to 1.

    Returns:
        ClassMap: With fewer valid classes than prompts, every valid class gets its own prompt
        (C <= M: class c -> prompt c) and the rest of the prompts are unused.
    """
    _check_metric(metric)
    if num_prompts < 1:
        raise ValueError(f'num_prompts must be >= 1, got {num_prompts}')
    features, valid = _check_features(features, valid)
    import sklearn.cluster  # noqa: F401  (imported before the clock starts)
    start = time.perf_counter()
    with limited_threads(threads):
        mapping, centroids, n_iter = _initial(features, valid, num_prompts, seed, n_init,
                                              max_iter, tol, metric)
    elapsed = (time.perf_counter() - start) * 1000.0
    return ClassMap(mapping, centroids, n_iter, elapsed)


def _initial(features: np.ndarray, valid: np.ndarray, num_prompts: int, seed: int, n_init: int,
             max_iter: int, tol: float, metric: str) -> Tuple[np.ndarray, np.ndarray, int]:
    """The body of :func:`initial_class_map`: map, centroids and iterations."""
    from sklearn.cluster import KMeans
    features = normalize_rows(features)
    num_classes = len(features)
    if num_classes <= num_prompts or int(valid.sum()) < num_prompts:
        mapping, centroids = _few_classes_map(features, valid, num_prompts)
        n_iter = 0
    else:
        points = features[valid]
        kmeans = KMeans(n_clusters=num_prompts, n_init=n_init, max_iter=max_iter, tol=tol,
                        random_state=seed).fit(points)
        labels = kmeans.labels_.astype(np.int64)
        centroids = kmeans.cluster_centers_.astype(np.float64)
        n_iter = int(kmeans.n_iter_)
        if metric == 'cosine':
            labels, centroids, extra = warm_kmeans(points, normalize_rows(centroids), max_iter,
                                                   tol, metric)
            n_iter += extra
        mapping = np.arange(num_classes, dtype=np.int64) % num_prompts
        mapping[valid] = labels
    return mapping, centroids, n_iter


def update_class_map(features: np.ndarray,
                     previous: np.ndarray,
                     centroids: np.ndarray,
                     valid: Optional[np.ndarray] = None,
                     keep: Optional[np.ndarray] = None,
                     max_iter: int = 300,
                     tol: float = 1e-4,
                     metric: str = 'euclidean',
                     threads: Optional[int] = 1) -> ClassMap:
    """Re-cluster the class features warm-started from the previous centroids.

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
        threads: BLAS threads while clustering; None leaves the library's own. Defaults to 1.

    Returns:
        ClassMap: The new map; the centroids are the means of the classes each prompt holds
        after ``keep`` is applied (an empty prompt keeps its centroid). With C <= M the map
        stays as it was and each prompt's centroid becomes its class's feature.
    """
    _check_metric(metric)
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
        features = normalize_rows(features)
        if num_classes <= num_prompts:
            new_centroids = centroids.copy()
            new_centroids[mapping[rows]] = features[rows]
        else:
            labels, _, n_iter = warm_kmeans(features[rows], centroids, max_iter, tol, metric)
            mapping[rows] = labels
            mapping[keep] = previous[keep]
            new_centroids = _centroid_update(features[rows], mapping[rows], centroids,
                                             metric == 'cosine')
    elapsed = (time.perf_counter() - start) * 1000.0
    return ClassMap(mapping, new_centroids, n_iter, elapsed)


def cluster_sizes(class_to_prompt: np.ndarray, num_prompts: int) -> np.ndarray:
    """Number of classes of every prompt, (M,)."""
    return np.bincount(np.asarray(class_to_prompt, dtype=np.int64), minlength=num_prompts)


def time_class_clustering(num_classes: int = 1000,
                          dim: int = 1024,
                          num_prompts: int = 20,
                          repeats: int = 5,
                          seed: int = 0,
                          metric: str = 'euclidean',
                          threads: Optional[int] = 1) -> Dict[str, float]:
    """Time the initial and the warm-started clustering of random grouped class features.

    The features are ``num_prompts`` Gaussian groups; the warm start re-clusters them after a
    small shift, as an epoch of training would. For the benchmark; nothing is asserted.

    Args:
        num_classes: C. Defaults to 1000.
        dim: D. Defaults to 1024.
        num_prompts: M. Defaults to 20.
        repeats: Timed repetitions; the median is reported. Defaults to 5.
        seed: Seed of the synthetic features and of k-means. Defaults to 0.
        metric: ``'euclidean'`` or ``'cosine'``. Defaults to ``'euclidean'``.
        threads: BLAS / OpenMP threads of the clustering (None: the libraries' own).
            Defaults to 1.

    Returns:
        dict: ``initial_ms`` and ``update_ms`` (medians), ``update_ms_min``, ``changed`` (classes
        that changed prompt in the last update).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_prompts, dim))
    groups = rng.integers(0, num_prompts, num_classes)
    features = centres[groups] + 0.3 * rng.normal(size=(num_classes, dim))
    shifted = features + 0.05 * rng.normal(size=features.shape)
    initial_ms, update_ms = [], []
    changed = 0
    for _ in range(repeats):
        first = initial_class_map(features, num_prompts, seed=seed, metric=metric,
                                  threads=threads)
        initial_ms.append(first.elapsed_ms)
        second = update_class_map(shifted, first.class_to_prompt, first.centroids,
                                  metric=metric, threads=threads)
        update_ms.append(second.elapsed_ms)
        changed = int((second.class_to_prompt != first.class_to_prompt).sum())
    return dict(initial_ms=float(np.median(initial_ms)), update_ms=float(np.median(update_ms)),
                update_ms_min=float(np.min(update_ms)), changed=float(changed))
