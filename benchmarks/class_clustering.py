"""Time the class-to-prompt clustering on synthetic class features (a benchmark helper).

:func:`time_class_clustering` times ``mmda_vpt.mapping.class_kmeans``'s initial fit and its
warm-started update once per repetition; ``step_cost.py --tasks kmeans`` (``bench_kmeans``) is
the full sweep over class counts, dimensions and group counts.
"""
from typing import Dict, Optional

import numpy as np

from mmda_vpt.mapping.class_kmeans import initial_class_map, update_class_map

__all__ = ['time_class_clustering']


def time_class_clustering(num_classes: int = 1000,
                          dim: int = 1024,
                          num_prompts: int = 20,
                          repeats: int = 5,
                          seed: int = 0,
                          metric: str = 'euclidean',
                          threads: Optional[int] = 1) -> Dict[str, float]:
    """Time the initial and the warm-started clustering of random grouped class features.

    The features are ``num_prompts`` Gaussian groups; the warm start re-clusters them after a
    small shift, as an epoch of training would. Nothing is asserted.

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
