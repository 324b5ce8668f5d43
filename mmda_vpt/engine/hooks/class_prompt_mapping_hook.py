"""DA-VPT's dynamic class-to-prompt map: k-means of per-class features, updated in training."""
import copy
import logging
import math
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from mmengine import dist
from mmengine.dataset import DefaultSampler
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import DATASETS, HOOKS
from mmengine.runner.loops import IterBasedTrainLoop
from mmengine.utils import ProgressBar
from torch.utils.data import BatchSampler, Subset

from mmda_vpt.utils.class_kmeans import (KMEANS_METRICS, ClassMap, cluster_sizes,
                                         initial_class_map, normalize_rows, update_class_map)
from mmda_vpt.utils.labels import (check_label_range, image_labels, is_segmentation_batch,
                                   patch_labels)
from mmda_vpt.utils.model_access import (add_loss_callback, get_davpt_backbone,
                                         remove_loss_callback, unwrap_model)
from .prompt_metric_loss_hook import model_ignore_index, model_num_classes

__all__ = ['ClassPromptMappingHook', 'guided_prompt_count']

#: Top-level checkpoint key of the hook's state.
CHECKPOINT_KEY = 'class_prompt_mapping'
CALLBACK_NAME = 'class_prompt_mapping'
WHO = 'ClassPromptMappingHook'


def guided_prompt_count(backbone) -> int:
    """M: prompts in the guided layers, or ``num_prompts`` without guided layers."""
    if backbone.guided_layers:
        return int(backbone.prompt_counts[backbone.guided_layers[0]])
    return int(backbone.num_prompts)


def _find_pipeline(cfg) -> Optional[list]:
    """The ``pipeline`` of a dataset config, looking through dataset wrappers."""
    if not isinstance(cfg, dict):
        return None
    if cfg.get('pipeline') is not None:
        return cfg['pipeline']
    if isinstance(cfg.get('dataset'), dict):
        return _find_pipeline(cfg['dataset'])
    for sub in cfg.get('datasets') or []:
        found = _find_pipeline(sub)
        if found is not None:
            return found
    return None


def _replace_pipeline(cfg: dict, pipeline: list) -> bool:
    """Put ``pipeline`` into a dataset config (and every dataset it wraps)."""
    if 'pipeline' in cfg:
        cfg['pipeline'] = copy.deepcopy(pipeline)
        return True
    done = False
    if isinstance(cfg.get('dataset'), dict):
        done = _replace_pipeline(cfg['dataset'], pipeline)
    for sub in cfg.get('datasets') or []:
        if isinstance(sub, dict):
            done = _replace_pipeline(sub, pipeline) or done
    return done


def _dataset_labels(dataset) -> Optional[np.ndarray]:
    """Single-label classes of every sample without loading images, or None if unknown."""
    labels = None
    if hasattr(dataset, 'get_gt_labels'):
        labels = list(dataset.get_gt_labels())
    elif hasattr(dataset, 'get_data_info'):
        labels = []
        for idx in range(len(dataset)):
            info = dataset.get_data_info(idx)
            if not isinstance(info, dict) or info.get('gt_label') is None:
                return None
            labels.append(info['gt_label'])
    if labels is None:
        return None
    flat = []
    for label in labels:
        arr = np.asarray(label).reshape(-1)
        if arr.size != 1:
            raise ValueError(f'{WHO} supports single-label classification, but a sample has the '
                             f'label {label!r}')
        flat.append(int(arr[0]))
    return np.asarray(flat, dtype=np.int64)


def select_per_class(labels: np.ndarray, num_classes: int, samples_per_class: int,
                     seed: int) -> np.ndarray:
    """Sorted indices of at most ``samples_per_class`` random samples of every class."""
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in range(num_classes):
        idx = np.flatnonzero(labels == cls)
        if len(idx) > samples_per_class:
            idx = rng.choice(idx, samples_per_class, replace=False)
        chosen.append(idx)
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


class _SharedSubset(Subset):
    """A ``Subset`` that stays shared when ``Runner.build_dataloader`` deep-copies its config."""

    def __deepcopy__(self, memo: dict) -> '_SharedSubset':
        return self


@HOOKS.register_module()
class ClassPromptMappingHook(Hook):
    """Maps C classes to the M guided prompts by k-means over per-class features (DA-VPT 2.4).

    - Before training, one pass over the training set with the test pipeline (no augmentation)
      through the frozen pre-trained backbone with the prompts switched off: per class the mean
      final CLS feature (classification; the mean final patch feature without a CLS token) or
      the mean final feature of the patches of that class (segmentation, the class covering most
      of a patch's pixels). L2-normalized and clustered with scikit-learn's ``KMeans`` (seeded):
      ``class_to_prompt[c]`` is the cluster of class c.
    - During training, the detached final CLS (segmentation: patch) features of the training
      forwards are summed per class. At the end of every ``interval`` epochs (epoch-based loops)
      or ``interval`` iterations (iteration-based loops) the sums and counts are summed over all
      ranks and the normalized means re-clustered warm-started from the previous centroids with
      one initialization, so cluster i stays prompt i. A class unseen in the window keeps its
      prompt and its previous mean feature; an empty cluster keeps its centroid; with C < M
      class c gets prompt c and the other prompts are unused (one warning).
    - Rank 0 clusters and broadcasts, so every rank holds the same map. Samples the
      ``DefaultSampler`` repeats to make the dataset divisible by the world size are counted once.
    - The state is saved in every checkpoint (key ``'class_prompt_mapping'``) and restored on
      resume; loading a checkpoint for testing needs neither this hook nor the metric-loss hook.

    Read by :class:`PromptMetricLossHook`: ``class_to_prompt`` (C,) CPU LongTensor (None before
    the first map) and ``centroids`` (M, D) float tensor.

    Args:
        samples_per_class (int, optional): Images per class in the initial pass (chosen at
            random with ``seed``); None for the whole training set. For segmentation (and
            datasets whose labels cannot be read without loading images), images are taken in
            a seeded random order and an image counts for every class it contains until that
            class has had ``samples_per_class`` images (per rank: ``ceil(n / world_size)``);
            the pass stops when every class is served. Defaults to 10 (the authors).
        interval (int, optional): Re-cluster every ``interval`` epochs (epoch-based loops) or
            iterations (iteration-based loops). Defaults to None: every epoch, or every
            ``ceil(len(dataset) / (batch_size * world_size))`` iterations.
        seed (int): Seed of the per-class sample choice and of k-means. Defaults to 0.
        n_init (int): k-means++ initializations of the initial clustering. Defaults to 10.
        max_iter (int): Maximum Lloyd iterations. Defaults to 300.
        tol (float): k-means tolerance, as scikit-learn's. Defaults to 1e-4.
        metric (str): ``'euclidean'`` (k-means on the normalized features, the paper) or
            ``'cosine'`` (spherical k-means, the authors' code). Defaults to ``'euclidean'``.
        batch_size (int, optional): Batch size of the initial pass. Defaults to None (the
            training dataloader's).
        num_workers (int, optional): Workers of the initial pass. Defaults to None (the
            training dataloader's).
        pipeline (list[dict], optional): Pipeline of the initial pass. Defaults to None: the
            test dataloader's dataset pipeline, else the validation one.
    """

    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW): checkpoints hold the updated map

    def __init__(self,
                 samples_per_class: Optional[int] = 10,
                 interval: Optional[int] = None,
                 seed: int = 0,
                 n_init: int = 10,
                 max_iter: int = 300,
                 tol: float = 1e-4,
                 metric: str = 'euclidean',
                 batch_size: Optional[int] = None,
                 num_workers: Optional[int] = None,
                 pipeline: Optional[List[dict]] = None) -> None:
        for name, value in (('samples_per_class', samples_per_class), ('interval', interval),
                            ('batch_size', batch_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f'{name} must be None or an int >= 1, got {value!r}')
        if n_init < 1 or max_iter < 1:
            raise ValueError(f'n_init and max_iter must be >= 1, got {n_init} and {max_iter}')
        if metric not in KMEANS_METRICS:
            raise ValueError(f'metric must be one of {KMEANS_METRICS}, got {metric!r}')
        if num_workers is not None and num_workers < 0:
            raise ValueError(f'num_workers must be None or >= 0, got {num_workers}')
        self.samples_per_class = samples_per_class
        self.interval = interval
        self.seed = int(seed)
        self.n_init = int(n_init)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.metric = metric
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pipeline = pipeline

        #: (C,) CPU LongTensor, the prompt of every class; None before the first map.
        self.class_to_prompt: Optional[torch.Tensor] = None
        #: (M, D) float32 centroids; row i belongs to prompt i.
        self.centroids: Optional[torch.Tensor] = None
        #: (C, D) float32 normalized mean feature of every class, as last seen.
        self.class_features: Optional[torch.Tensor] = None
        #: (C,) bool, the classes that have had a feature.
        self.has_feature: Optional[torch.Tensor] = None
        #: Number of maps computed so far (the initial one included).
        self.num_updates = 0
        #: What the last clustering did: when, kmeans_ms, changed, cluster_sizes, class_counts
        #: (samples, or patches for segmentation, per class in the window), unseen.
        self.last_update: Dict = {}
        #: The initial pass on this rank: images used, images in its share, images per class.
        self.initial_pass: Dict = {}

        self.num_classes = 0
        self.num_prompts = 0
        self.ignore_index = 255
        self._sums: Optional[torch.Tensor] = None
        self._counts: Optional[torch.Tensor] = None
        self._epoch_start: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self._pending_window: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self._by_epoch = True
        self._every = 1
        self._in_epoch = False
        self._batch_idx = 0
        self._offset = 0
        self._dedupe = False
        self._rank, self._world_size = 0, 1
        self._dataset_len = 0
        self._loader_len = 1
        self._loader_batch = 1
        self._warned_few = False

    # ------------------------------------------------------------------ hook points
    def before_train(self, runner) -> None:
        backbone = get_davpt_backbone(runner.model, WHO)
        self.num_prompts = guided_prompt_count(backbone)
        if self.num_prompts < 1:
            raise ValueError(f'{WHO} needs prompts: the backbone has num_prompts=0')
        self.num_classes = model_num_classes(runner.model)
        self.ignore_index = model_ignore_index(runner.model)
        self._rank, self._world_size = dist.get_dist_info()
        self._setup_loop(runner)
        device = next(backbone.parameters()).device
        dim = int(backbone.embed_dims_)
        if self.class_to_prompt is None:
            self._initial_map(runner, device, dim)
        else:
            print_log(f'{WHO}: using the class-to-prompt map restored from the checkpoint '
                      f'({self.num_updates} updates so far)', logger='current')
            self._warn_few_classes()
        self._reset_window(device, dim)
        if self._pending_window is not None:
            if self._rank == 0:
                self._sums += self._pending_window[0].to(device)
                self._counts += self._pending_window[1].to(device)
            self._pending_window = None
        add_loss_callback(runner.model, CALLBACK_NAME, self._accumulate)

    def after_train(self, runner) -> None:
        remove_loss_callback(runner.model, CALLBACK_NAME)

    def before_train_epoch(self, runner) -> None:
        self._in_epoch = True
        if self._by_epoch and self._sums is not None:
            self._epoch_start = (self._sums.clone(), self._counts.clone())

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._batch_idx = batch_idx
        self._offset = 0

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._by_epoch and self.every_n_train_iters(runner, self._every):
            self._update(f'iter {runner.iter + 1}')

    def after_train_epoch(self, runner) -> None:
        self._in_epoch = False
        if self._by_epoch and self.every_n_epochs(runner, self._every):
            self._update(f'epoch {runner.epoch + 1}')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.class_to_prompt is None:
            return
        state = dict(class_to_prompt=self.class_to_prompt.clone(),
                     centroids=self.centroids.clone(),
                     class_features=self.class_features.clone(),
                     has_feature=self.has_feature.clone(),
                     num_updates=int(self.num_updates))
        window = self._window_to_save()
        if window is not None:
            state['window_sums'], state['window_counts'] = window
        checkpoint[CHECKPOINT_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        resuming = bool(getattr(runner, '_resume', False))
        if state is None:
            if resuming:
                print_log(f'{WHO}: the resumed checkpoint holds no class-to-prompt map; a new '
                          'one is computed before training', logger='current',
                          level=logging.WARNING)
            return
        backbone = get_davpt_backbone(runner.model, WHO)
        num_classes = model_num_classes(runner.model)
        num_prompts = guided_prompt_count(backbone)
        dim = int(backbone.embed_dims_)
        mapping = state['class_to_prompt']
        centroids = state['centroids']
        if (mapping.dim() != 1 or len(mapping) != num_classes or centroids.dim() != 2
                or tuple(centroids.shape) != (num_prompts, dim)
                or int(mapping.max()) >= num_prompts or int(mapping.min()) < 0):
            message = (f'{WHO}: the checkpoint maps {len(mapping)} classes to '
                       f'{centroids.shape[0]} prompts of dimension {centroids.shape[-1]}, but '
                       f'the model has {num_classes} classes and {num_prompts} guided prompts '
                       f'of dimension {dim}')
            if resuming:
                raise ValueError(message + '; resume with the same model config')
            print_log(message + '; a new map is computed before training', logger='current',
                      level=logging.WARNING)
            return
        self.class_to_prompt = mapping.detach().cpu().long().clone()
        self.centroids = centroids.detach().cpu().float().clone()
        self.class_features = state['class_features'].detach().cpu().float().clone()
        self.has_feature = state['has_feature'].detach().cpu().bool().clone()
        self.num_updates = int(state.get('num_updates', 1))
        self.num_classes, self.num_prompts = num_classes, num_prompts
        if resuming and 'window_sums' in state:
            self._pending_window = (state['window_sums'].detach().cpu().double(),
                                    state['window_counts'].detach().cpu().double())

    # ------------------------------------------------------------------ setup
    def _setup_loop(self, runner) -> None:
        loader = runner.train_dataloader
        self._by_epoch = not isinstance(runner.train_loop, IterBasedTrainLoop)
        sampler = getattr(loader, 'sampler', None)
        dataset = getattr(sampler, 'dataset', None)
        if dataset is None:
            dataset = loader.dataset
        self._dataset_len = len(dataset)
        self._loader_len = max(len(loader), 1)
        self._loader_batch = loader.batch_size or 1
        if self.interval is not None:
            self._every = self.interval
        elif self._by_epoch:
            self._every = 1
        else:
            self._every = max(1, math.ceil(self._dataset_len /
                                           (self._loader_batch * self._world_size)))
        pads = (isinstance(sampler, DefaultSampler) and sampler.round_up
                and self._world_size > 1 and sampler.total_size > self._dataset_len)
        self._dedupe = pads and type(loader.batch_sampler) is BatchSampler
        if pads and not self._dedupe:
            print_log(f'{WHO}: the training loader uses a custom batch sampler, so the samples '
                      'DefaultSampler repeats to fill the last batch cannot be told apart and '
                      'are counted twice', logger='current', level=logging.WARNING)
        unit = 'epoch(s)' if self._by_epoch else 'iterations'
        print_log(f'{WHO}: {self.num_classes} classes -> {self.num_prompts} prompts, '
                  f're-clustered every {self._every} {unit}', logger='current')

    def _reset_window(self, device: torch.device, dim: int) -> None:
        self._sums = torch.zeros(self.num_classes, dim, dtype=torch.float64, device=device)
        self._counts = torch.zeros(self.num_classes, dtype=torch.float64, device=device)
        self._epoch_start = None

    def _window_to_save(self) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """This rank's part of the current window, as a resumed run will replay it.

        An epoch-based loop re-runs an interrupted epoch from its start, so a checkpoint saved
        inside an epoch keeps the window as it was when the epoch began.
        """
        if self._sums is None:
            return None
        if self._by_epoch and self._in_epoch:
            if self._epoch_start is None:
                return None
            sums, counts = self._epoch_start
        else:
            sums, counts = self._sums, self._counts
        if not bool((counts > 0).any()):
            return None
        return sums.detach().cpu().clone(), counts.detach().cpu().clone()

    # ------------------------------------------------------------------ features
    def _features(self, taps, data_samples) -> Tuple[torch.Tensor, torch.Tensor]:
        """Final features and their class labels: (B, D), (B,) or (B, N, D), (B, N)."""
        if taps is None:
            raise RuntimeError(f'{WHO}: the backbone recorded no taps; it must run in training '
                               'mode with record_taps=True')
        if is_segmentation_batch(data_samples):
            labels = patch_labels(data_samples, taps.patch_resolution, self.num_classes,
                                  self.ignore_index)
            feats = taps.patch_final
        else:
            labels = image_labels(data_samples, self.num_classes, self.ignore_index)
            feats = taps.cls_final if taps.cls_final is not None else taps.patch_final.mean(1)
        return feats.detach(), labels.to(feats.device)

    @staticmethod
    def _add(sums: torch.Tensor, counts: torch.Tensor, feats: torch.Tensor,
             labels: torch.Tensor) -> None:
        # Unlabelled rows (-1) are added with weight 0: no boolean indexing, which would read
        # the mask on the host (a synchronization on an accelerator) at every step.
        labels = labels.reshape(-1).to(sums.device)
        keep = labels >= 0
        feats = feats.reshape(labels.numel(), -1).to(sums.device, torch.float64)
        feats = torch.where(keep[:, None], feats, 0.0)  # not 0 * x: x may be NaN
        sums.index_add_(0, labels.clamp(min=0), feats)
        counts.index_add_(0, labels.clamp(min=0), keep.to(torch.float64))

    def _accumulate(self, model, inputs, data_samples, losses: dict) -> None:
        """Loss callback: add the detached final features of one training forward."""
        feats, labels = self._features(model.backbone.taps, data_samples)
        batch = labels.shape[0]
        first = self._offset
        self._offset += batch
        if self._dedupe:
            position = ((self._batch_idx % self._loader_len) * self._loader_batch + first +
                        torch.arange(batch, device=labels.device))
            padded = self._rank + position * self._world_size >= self._dataset_len
            padded = padded.reshape(-1, *([1] * (labels.dim() - 1)))
            labels = torch.where(padded, torch.full_like(labels, -1), labels)
        self._add(self._sums, self._counts, feats, labels)

    # ------------------------------------------------------------------ initial pass
    def _loader_cfg(self, runner) -> Optional[dict]:
        cfg = runner.cfg.get('train_dataloader')
        if not isinstance(cfg, dict):
            cfg = getattr(runner, '_train_dataloader', None)
        return cfg if isinstance(cfg, dict) else None

    def _test_pipeline(self, runner) -> list:
        if self.pipeline is not None:
            return self.pipeline
        for name in ('test_dataloader', 'val_dataloader'):
            for cfg in (runner.cfg.get(name), getattr(runner, f'_{name}', None)):
                if isinstance(cfg, dict):
                    found = _find_pipeline(cfg.get('dataset'))
                    if found is not None:
                        return found
        raise ValueError(f'{WHO} passes the training set through the test pipeline (no '
                         'augmentation), but neither test_dataloader nor val_dataloader has a '
                         'dataset pipeline; pass pipeline=[...] to the hook')

    def _mapping_dataset(self, runner):
        """The training dataset with the test pipeline."""
        pipeline = self._test_pipeline(runner)
        loader_cfg = self._loader_cfg(runner)
        dataset_cfg = loader_cfg.get('dataset') if loader_cfg is not None else None
        if isinstance(dataset_cfg, dict):
            dataset_cfg = copy.deepcopy(dataset_cfg)
            if not _replace_pipeline(dataset_cfg, pipeline):
                raise ValueError(f'{WHO}: the training dataset config has no pipeline to '
                                 'replace with the test pipeline')
            dataset = DATASETS.build(dataset_cfg)
        else:
            from mmengine.dataset import Compose
            built = runner.train_dataloader.dataset
            if not hasattr(built, 'pipeline'):
                raise ValueError(f'{WHO}: the training dataset {type(built).__name__} was '
                                 'passed built and has no pipeline to replace; pass its config')
            dataset = copy.copy(built)
            dataset.pipeline = Compose(copy.deepcopy(pipeline))
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        return dataset

    def _mapping_loader(self, runner, segmentation: bool):
        """The loader of the initial pass and the per-rank image quota per class (or None)."""
        from mmengine.runner import Runner
        dataset = self._mapping_dataset(runner)
        quota = None
        indices = np.arange(len(dataset))
        if self.samples_per_class is not None:
            labels = None if segmentation else _dataset_labels(dataset)
            if labels is not None:
                check_label_range(torch.from_numpy(labels), self.num_classes, 'training-set')
                indices = select_per_class(labels, self.num_classes, self.samples_per_class,
                                           self.seed)
            else:
                indices = np.random.default_rng(self.seed).permutation(len(dataset))
                quota = math.ceil(self.samples_per_class / self._world_size)
        dataset = _SharedSubset(dataset, indices.tolist())
        train_cfg = self._loader_cfg(runner) or {}
        batch_size = self.batch_size or train_cfg.get('batch_size') or \
            runner.train_dataloader.batch_size or 1
        num_workers = self.num_workers
        if num_workers is None:
            num_workers = train_cfg.get('num_workers', 0)
        cfg = dict(dataset=dataset,
                   sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
                   batch_size=batch_size, num_workers=num_workers, persistent_workers=False)
        if train_cfg.get('collate_fn') is not None:
            cfg['collate_fn'] = copy.deepcopy(train_cfg['collate_fn'])
        return Runner.build_dataloader(cfg, seed=self.seed), quota

    @staticmethod
    def _chunks(data_batch: dict, segmentation: bool) -> Iterator[dict]:
        """The batch, or one sample at a time when segmentation images differ in size."""
        inputs = data_batch['inputs']
        sizes = {tuple(x.shape[-2:]) for x in inputs} if isinstance(inputs, list) else {0}
        if not segmentation or len(sizes) <= 1:
            yield data_batch
            return
        for i in range(len(inputs)):
            yield {key: value[i:i + 1] for key, value in data_batch.items()}

    @staticmethod
    def _apply_quota(labels: torch.Tensor, served: torch.Tensor,
                     quota: Optional[int]) -> torch.Tensor:
        """Count the images of every class in ``served``; with a quota, keep per image only the
        classes that have had fewer than ``quota`` images (the others become -1)."""
        labels = labels.reshape(labels.shape[0], -1)
        if quota is None:
            rows, cols = torch.nonzero(labels >= 0, as_tuple=True)
            hits = torch.zeros(labels.shape[0], len(served), dtype=torch.bool,
                               device=labels.device)
            hits[rows, labels[rows, cols]] = True
            served += hits.sum(0).cpu()
            return labels
        labels = labels.clone()
        for row in labels:
            present = row[row >= 0].unique()
            if present.numel() == 0:
                continue
            open_ = (served[present.cpu()] < quota).to(present.device)
            row[~torch.isin(row, present[open_])] = -1
            served[present[open_].cpu()] += 1
        return labels

    def _pass(self, runner, device: torch.device, dim: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-class feature sums and counts of this rank's part of the initial pass."""
        inner = unwrap_model(runner.model)
        backbone = inner.backbone
        segmentation = hasattr(inner, 'decode_head')
        loader, quota = self._mapping_loader(runner, segmentation)
        sums = torch.zeros(self.num_classes, dim, dtype=torch.float64, device=device)
        counts = torch.zeros(self.num_classes, dtype=torch.float64, device=device)
        served = torch.zeros(self.num_classes, dtype=torch.long)
        total = len(loader.sampler)
        bar = ProgressBar(total) if self._rank == 0 and total > 0 else None
        done = 0
        was_training = inner.training
        inner.eval()
        try:
            with torch.no_grad(), backbone.prompts_disabled():
                for data_batch in loader:
                    for chunk in self._chunks(data_batch, segmentation):
                        data = inner.data_preprocessor(chunk, False)
                        backbone(data['inputs'])
                        feats, labels = self._features(backbone.taps, data['data_samples'])
                        labels = self._apply_quota(labels, served, quota)
                        self._add(sums, counts, feats, labels)
                    size = len(data_batch['data_samples'])
                    done += size
                    if bar is not None:
                        bar.update(size)
                    if quota is not None and bool((served >= quota).all()):
                        break
        finally:
            inner.train(was_training)
        if bar is not None:
            bar.file.write('\n')
            bar.file.flush()
        self.initial_pass = dict(images=done, total=total, images_per_class=served)
        print_log(f'{WHO}: initial pass used {done} of {total} images on rank {self._rank}',
                  logger='current')
        return sums, counts

    def _initial_map(self, runner, device: torch.device, dim: int) -> None:
        sums, counts = self._pass(runner, device, dim)
        dist.all_reduce(sums, op='sum')
        dist.all_reduce(counts, op='sum')
        result = None
        if self._rank == 0:
            counts_cpu = counts.cpu()
            valid = counts_cpu > 0
            means = sums.cpu() / counts_cpu.clamp(min=1)[:, None]
            features = torch.from_numpy(normalize_rows(means.numpy()))
            result = initial_class_map(features.numpy(), self.num_prompts, valid=valid.numpy(),
                                       seed=self.seed, n_init=self.n_init,
                                       max_iter=self.max_iter, tol=self.tol,
                                       metric=self.metric)
            self.class_features = features.float()
            self.has_feature = valid
            unseen = torch.nonzero(~valid).flatten().tolist()
            if unseen:
                print_log(f'{WHO}: classes {unseen} have no sample in the training set; they '
                          'keep a fixed prompt until they are seen', logger='current',
                          level=logging.WARNING)
        self._share(result, dim)
        self._warn_few_classes()
        self._log('initial', result, None, counts.cpu())

    # ------------------------------------------------------------------ updates
    def _update(self, when: str) -> None:
        """All-reduce the window, re-cluster on rank 0 warm-started, broadcast, log."""
        dim = self._sums.shape[1]
        dist.all_reduce(self._sums, op='sum')
        dist.all_reduce(self._counts, op='sum')
        counts = self._counts.cpu()
        previous = self.class_to_prompt.clone()
        result = None
        if self._rank == 0:
            seen = counts > 0
            features = self.class_features.double().clone()
            means = self._sums.cpu()[seen] / counts[seen, None]
            features[seen] = torch.from_numpy(normalize_rows(means.numpy()))
            has_feature = self.has_feature | seen
            result = update_class_map(features.numpy(), previous.numpy(),
                                      self.centroids.double().numpy(),
                                      valid=has_feature.numpy(), keep=(~seen).numpy(),
                                      max_iter=self.max_iter, tol=self.tol, metric=self.metric)
            self.class_features = features.float()
            self.has_feature = has_feature
        self._share(result, dim)
        self._log(when, result, previous, counts)
        self._reset_window(self._sums.device, dim)

    def _share(self, result: Optional[ClassMap], dim: int) -> None:
        """Rank 0's map, centroids and class features, on every rank (CPU tensors)."""
        if self._rank == 0:
            mapping = torch.from_numpy(result.class_to_prompt).long()
            centroids = torch.from_numpy(result.centroids).float()
            features = self.class_features.float()
            has_feature = self.has_feature.long()
        else:
            mapping = torch.zeros(self.num_classes, dtype=torch.long)
            centroids = torch.zeros(self.num_prompts, dim, dtype=torch.float32)
            features = torch.zeros(self.num_classes, dim, dtype=torch.float32)
            has_feature = torch.zeros(self.num_classes, dtype=torch.long)
        for tensor in (mapping, centroids, features, has_feature):
            dist.broadcast(tensor, src=0)
        self.class_to_prompt = mapping
        self.centroids = centroids
        self.class_features = features
        self.has_feature = has_feature.bool()
        self.num_updates += 1

    def _warn_few_classes(self) -> None:
        if self.num_classes < self.num_prompts and not self._warned_few:
            print_log(f'{WHO}: {self.num_classes} classes for {self.num_prompts} prompts: class '
                      f'c uses prompt c and prompts {self.num_classes}..{self.num_prompts - 1} '
                      'are unused', logger='current', level=logging.WARNING)
            self._warned_few = True

    def _log(self, when: str, result: Optional[ClassMap], previous: Optional[torch.Tensor],
             counts: torch.Tensor) -> None:
        sizes = cluster_sizes(self.class_to_prompt.numpy(), self.num_prompts).tolist()
        changed = (int((self.class_to_prompt != previous).sum())
                   if previous is not None else self.num_classes)
        kmeans_ms = result.elapsed_ms if result is not None else float('nan')
        unseen = int((counts == 0).sum())
        self.last_update = dict(when=when, kmeans_ms=kmeans_ms, changed=changed,
                                cluster_sizes=sizes, class_counts=counts.clone(),
                                unseen=unseen)
        print_log(f'{WHO} [{when}]: k-means {kmeans_ms:.1f} ms, {changed} of '
                  f'{self.num_classes} classes changed prompt, {unseen} classes without a '
                  f'sample in the window; classes per prompt {sizes}', logger='current')
