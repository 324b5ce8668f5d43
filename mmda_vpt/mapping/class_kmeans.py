"""Clustering of per-class mean features into prompt groups: DA-VPT's class-to-prompt map.

Plain functions on arrays, with no runner, built on the k-means steps of :mod:`.kmeans`:
:class:`~mmda_vpt.mapping.ClassPromptMap` calls them, the tests check them on synthetic features
and the benchmarks (``benchmarks/``) time them.

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
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .kmeans import (anchored_centroids, balanced_kmeans, centroid_update, check_metric,
                     limited_threads, normalize_rows, random_init_kmeans, reseed_empty,
                     sklearn_warm_kmeans, warm_kmeans)

__all__ = [
    'ClassMap', 'normalize_features', 'initial_class_map', 'update_class_map', 'cluster_sizes',
    'EMPTY_CLUSTER_MODES', 'FEATURE_NORMS', 'KMEANS_INITS'
]

#: What an update does with an empty prompt: give it a class, or keep its centroid (authors).
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


def _check_feature_norm(feature_norm: str) -> None:
    if feature_norm not in FEATURE_NORMS:
        raise ValueError(f'feature_norm must be one of {FEATURE_NORMS}, got {feature_norm!r}')


def _check_init(init: str) -> None:
    if init not in KMEANS_INITS:
        raise ValueError(f'init must be one of {KMEANS_INITS}, got {init!r}')


def _check_empty_cluster(empty_cluster: str) -> None:
    if empty_cluster not in EMPTY_CLUSTER_MODES:
        raise ValueError(f'empty_cluster must be one of {EMPTY_CLUSTER_MODES}, '
                         f'got {empty_cluster!r}')


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
    check_metric(metric)
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
    check_metric(metric)
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
        labels, centroids, n_iter = sklearn_warm_kmeans(points, init, max_iter, tol)
    else:
        labels, centroids, n_iter = warm_kmeans(points, init, max_iter, tol, metric)
    labels = np.where(kept, previous, labels)
    centroids = centroid_update(points, labels, centroids, spherical)
    if empty_cluster == 'reseed':
        labels, centroids, _ = reseed_empty(points, labels, centroids, metric, pinned=kept)
    return labels, centroids, n_iter


def cluster_sizes(class_to_prompt: np.ndarray, num_prompts: int) -> np.ndarray:
    """Number of classes of every prompt, (M,)."""
    return np.bincount(np.asarray(class_to_prompt, dtype=np.int64), minlength=num_prompts)
