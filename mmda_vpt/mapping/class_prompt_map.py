"""The class-to-prompt map of DA-VPT: its state, its feature window and its k-means updates.

:class:`ClassPromptMap` holds what the map is at any time (the prompt of every class, the
centroids, the last mean feature of every class) and the window of features summed since the
last update, and computes the initial map and every update with the functions of
:mod:`mmda_vpt.mapping.class_kmeans`. It knows no runner and no ranks:
:class:`~mmda_vpt.engine.hooks.ClassPromptMappingHook` feeds it features, sums its window over
the ranks and shares rank 0's result.
"""
from dataclasses import dataclass, fields
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .class_kmeans import (EMPTY_CLUSTER_MODES, FEATURE_NORMS, KMEANS_INITS, ClassMap,
                           cluster_sizes, initial_class_map, normalize_features,
                           update_class_map)
from .kmeans import KMEANS_METRICS

__all__ = ['ClassPromptMap', 'MapOptions', 'WARM_STARTS', 'UNSEEN_CLASSES', 'check_options']

#: How an update starts: from the previous groups on the current features, or from the
#: previous centroids (the authors' code).
WARM_STARTS = ('anchored', 'centroids')
#: What an update does with a class that has no feature in the window: it keeps its prompt,
#: or it gets a random one (the authors' code).
UNSEEN_CLASSES = ('keep', 'random')


@dataclass
class MapOptions:
    """How the class-to-prompt map clusters (stated and checked once, for the map and the hook).

    Args:
        metric (str): ``'euclidean'`` (k-means on the normalized features, the paper) or
            ``'cosine'`` (spherical k-means, the authors' code). Defaults to ``'euclidean'``.
        empty_cluster (str): ``'reseed'``: after every clustering an empty prompt takes the
            class farthest from its centroid in the largest group, so with C >= M every prompt
            holds a class; ``'keep'``: an empty prompt keeps its centroid and may stay empty
            (the authors' code). Defaults to ``'reseed'``.
        balanced (bool): Every prompt holds floor(C/M) or ceil(C/M) classes (a minimum-cost
            assignment of classes to prompt slots). Defaults to False (the paper's k-means).
        warm_start (str): ``'anchored'``: an update starts from the means of the current class
            features under the previous map; ``'centroids'``: from the previous centroids (the
            authors' code). Defaults to ``'anchored'``.
        seed (int): Seed of the initial k-means (and of the hook's per-class sample choice and
            of the random prompts of unseen classes). Defaults to 0.
        n_init (int): Initializations of the initial map's k-means. Defaults to 10.
        max_iter (int): Maximum Lloyd iterations. Defaults to 300.
        tol (float): k-means tolerance, as scikit-learn's. Defaults to 1e-4.
        feature_norm (str): How the class features are normalized before every clustering:
            ``'l2'`` (on the unit sphere, the paper's) or ``'layer'`` (centred first: the
            authors' row-wise LayerNorm without affine before their cosine k-means, their
            ``kmeans_norm: layer``); see :func:`~mmda_vpt.mapping.class_kmeans.
            normalize_features`. Defaults to ``'l2'``.
        init (str): How the initial map's k-means starts: ``'k-means++'`` (scikit-learn's) or
            ``'random'`` (random classes as the first centroids, the authors' code; theirs is
            ``n_init=1``, ``max_iter=20`` with ``metric='cosine'``). Defaults to
            ``'k-means++'``.
    """

    metric: str = 'euclidean'
    empty_cluster: str = 'reseed'
    balanced: bool = False
    warm_start: str = 'anchored'
    seed: int = 0
    n_init: int = 10
    max_iter: int = 300
    tol: float = 1e-4
    feature_norm: str = 'l2'
    init: str = 'k-means++'

    def __post_init__(self) -> None:
        check_options(self.metric, self.empty_cluster, self.warm_start, self.feature_norm,
                      self.init)
        if self.n_init < 1 or self.max_iter < 1:
            raise ValueError(f'n_init and max_iter must be >= 1, got {self.n_init} and '
                             f'{self.max_iter}')
        self.balanced = bool(self.balanced)
        self.seed, self.n_init, self.max_iter = int(self.seed), int(self.n_init), int(
            self.max_iter)
        self.tol = float(self.tol)

    @classmethod
    def build(cls, owner: str, options: dict) -> 'MapOptions':
        """The options from keyword arguments, naming ``owner`` on an unknown one."""
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f'{owner} got unknown argument(s) {unknown}; the map options are '
                            f'{[f.name for f in fields(cls)]}')
        return cls(**options)


class ClassPromptMap:
    """C classes grouped onto M prompts by k-means of their mean features.

    Args:
        num_classes (int): C.
        num_prompts (int): M, the prompts of the guided layers.
        dim (int): Feature dimension D.
        **options: How it clusters: the fields of :class:`MapOptions` (``metric``,
            ``empty_cluster``, ``balanced``, ``warm_start``, ``seed``, ``n_init``,
            ``max_iter``, ``tol``, ``feature_norm``, ``init``), each with its default there.
    """

    def __init__(self, num_classes: int, num_prompts: int, dim: int, **options) -> None:
        self.options = MapOptions.build(type(self).__name__, options)
        self.num_classes = int(num_classes)
        self.num_prompts = int(num_prompts)
        self.dim = int(dim)
        #: (C,) CPU LongTensor, the prompt of every class; None before the first map.
        self.class_to_prompt: Optional[torch.Tensor] = None
        #: (M, D) float32 centroids; row i belongs to prompt i.
        self.centroids: Optional[torch.Tensor] = None
        #: (C, D) float32 normalized (``feature_norm``) mean feature of every class, as last
        #: seen.
        self.class_features: Optional[torch.Tensor] = None
        #: (C,) bool, the classes that have had a feature.
        self.has_feature: Optional[torch.Tensor] = None
        #: Number of maps computed so far (the initial one included).
        self.num_updates = 0
        #: What the last clustering of this run did, as ``ClassPromptMappingHook`` logs it
        #: (``when``, ``kmeans_ms``, ``changed``, ``cluster_sizes``, ``class_counts``,
        #: ``unseen``); empty for a map restored from a checkpoint until it is re-clustered.
        self.last_update: Dict = {}
        #: The window: per-class feature sums (C, D) and counts (C,), float64.
        self.sums: Optional[torch.Tensor] = None
        self.counts: Optional[torch.Tensor] = None

    # ------------------------------------------------------------------ the window
    def reset_window(self, device: torch.device = torch.device('cpu')) -> None:
        """Start an empty window on ``device``."""
        self.sums = torch.zeros(self.num_classes, self.dim, dtype=torch.float64, device=device)
        self.counts = torch.zeros(self.num_classes, dtype=torch.float64, device=device)

    @staticmethod
    def add_to(sums: torch.Tensor, counts: torch.Tensor, feats: torch.Tensor,
               labels: torch.Tensor) -> None:
        """Add features (n, D) of classes ``labels`` (n,) to per-class sums; -1 rows are left out.

        Unlabelled rows are added with weight 0: no boolean indexing, which would read the mask
        on the host (a synchronization on an accelerator) at every step.
        """
        labels = labels.reshape(-1).to(sums.device)
        keep = labels >= 0
        feats = feats.reshape(labels.numel(), -1).to(sums.device, torch.float64)
        feats = torch.where(keep[:, None], feats, 0.0)  # not 0 * x: x may be NaN
        sums.index_add_(0, labels.clamp(min=0), feats)
        counts.index_add_(0, labels.clamp(min=0), keep.to(torch.float64))

    def add(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """Add detached features of a training forward to the window."""
        self.add_to(self.sums, self.counts, feats.detach(), labels)

    # ------------------------------------------------------------------ clustering
    def _options(self) -> dict:
        o = self.options
        return dict(max_iter=o.max_iter, tol=o.tol, metric=o.metric,
                    empty_cluster=o.empty_cluster, balanced=o.balanced,
                    feature_norm=o.feature_norm)

    def initialize(self, sums: torch.Tensor, counts: torch.Tensor) -> ClassMap:
        """The first map from per-class feature sums and counts (classes without one: c mod M)."""
        counts = counts.detach().cpu().double()
        valid = counts > 0
        means = sums.detach().cpu().double() / counts.clamp(min=1)[:, None]
        features = normalize_features(means.numpy(), self.options.feature_norm)
        result = initial_class_map(features, self.num_prompts, valid=valid.numpy(),
                                   seed=self.options.seed, n_init=self.options.n_init,
                                   init=self.options.init, **self._options())
        self.class_features = torch.from_numpy(features).float()
        self.has_feature = valid
        self._take(result)
        return result

    def update(self, unseen_classes: str = 'keep') -> ClassMap:
        """Re-cluster with the window's mean features. The window is not cleared
        (:meth:`reset_window`).

        Args:
            unseen_classes (str): A class without a feature in the window: ``'keep'``: it keeps
                its prompt, and its last feature still shapes the centroids; ``'random'``: it
                takes no part in the clustering and gets a prompt drawn uniformly at random
                (the authors' code; seeded by ``seed`` and the number of maps so far, so a
                resumed run draws the same). With C <= M every class keeps its own prompt
                either way. Defaults to ``'keep'``.
        """
        _check_choice('unseen_classes', unseen_classes, UNSEEN_CLASSES)
        counts = self.counts.detach().cpu()
        seen = counts > 0
        features = self.class_features.double().clone()
        means = self.sums.detach().cpu()[seen] / counts[seen, None]
        features[seen] = torch.from_numpy(normalize_features(means.numpy(),
                                                             self.options.feature_norm))
        has_feature = self.has_feature | seen
        draw = unseen_classes == 'random' and self.num_classes > self.num_prompts
        result = update_class_map(features.numpy(), self.class_to_prompt.numpy(),
                                  self.centroids.double().numpy(),
                                  valid=(seen if draw else has_feature).numpy(),
                                  keep=None if draw else (~seen).numpy(),
                                  anchor=self.options.warm_start == 'anchored',
                                  **self._options())
        if draw and not bool(seen.all()):
            rng = np.random.default_rng([self.options.seed, self.num_updates])
            unseen = np.flatnonzero(~seen.numpy())
            result.class_to_prompt[unseen] = rng.integers(0, self.num_prompts, len(unseen))
        self.class_features = features.float()
        self.has_feature = has_feature
        self._take(result)
        return result

    def _take(self, result: ClassMap) -> None:
        self.class_to_prompt = torch.from_numpy(result.class_to_prompt).long()
        self.centroids = torch.from_numpy(result.centroids).float()
        self.num_updates += 1

    def set_state(self, class_to_prompt: torch.Tensor, centroids: torch.Tensor,
                  class_features: torch.Tensor, has_feature: torch.Tensor,
                  num_updates: Optional[int] = None) -> None:
        """Take a map computed elsewhere (rank 0's, broadcast); counts as one more map unless
        ``num_updates`` is given."""
        self.class_to_prompt = class_to_prompt.detach().cpu().long().clone()
        self.centroids = centroids.detach().cpu().float().clone()
        self.class_features = class_features.detach().cpu().float().clone()
        self.has_feature = has_feature.detach().cpu().bool().clone()
        self.num_updates = self.num_updates + 1 if num_updates is None else int(num_updates)

    def cluster_sizes(self) -> list:
        """Classes of every prompt, as a list of M ints."""
        return cluster_sizes(self.class_to_prompt.numpy(), self.num_prompts).tolist()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, torch.Tensor]:
        """The map (no window) as CPU tensors; empty before the first map."""
        if self.class_to_prompt is None:
            return {}
        return dict(class_to_prompt=self.class_to_prompt.clone(),
                    centroids=self.centroids.clone(),
                    class_features=self.class_features.clone(),
                    has_feature=self.has_feature.clone(),
                    num_updates=int(self.num_updates))

    def check_state(self, state: dict) -> Optional[str]:
        """Why ``state`` does not fit this map (a sentence), or None when it fits."""
        mapping, centroids = state['class_to_prompt'], state['centroids']
        if (mapping.dim() == 1 and len(mapping) == self.num_classes and centroids.dim() == 2
                and tuple(centroids.shape) == (self.num_prompts, self.dim)
                and int(mapping.min()) >= 0 and int(mapping.max()) < self.num_prompts):
            return None
        return (f'the checkpoint maps {len(mapping)} classes to {centroids.shape[0]} prompts '
                f'of dimension {centroids.shape[-1]}, but the model has {self.num_classes} '
                f'classes and {self.num_prompts} guided prompts of dimension {self.dim}')

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (checkpoints of earlier versions included)."""
        problem = self.check_state(state)
        if problem is not None:
            raise ValueError(problem)
        self.set_state(state['class_to_prompt'], state['centroids'], state['class_features'],
                       state['has_feature'], num_updates=int(state.get('num_updates', 1)))

    def window(self) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """A CPU copy of the window, or None when it is empty."""
        if self.sums is None or not bool((self.counts > 0).any()):
            return None
        return self.sums.detach().cpu().clone(), self.counts.detach().cpu().clone()


def check_options(metric: str, empty_cluster: str, warm_start: str, feature_norm: str = 'l2',
                  init: str = 'k-means++') -> None:
    """Raise a ValueError naming the first option outside its choices."""
    for name, value, choices in (('metric', metric, KMEANS_METRICS),
                                 ('empty_cluster', empty_cluster, EMPTY_CLUSTER_MODES),
                                 ('warm_start', warm_start, WARM_STARTS),
                                 ('feature_norm', feature_norm, FEATURE_NORMS),
                                 ('init', init, KMEANS_INITS)):
        _check_choice(name, value, choices)


def _check_choice(name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')
