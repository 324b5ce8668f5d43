"""DA-VPT's dynamic class-to-prompt map: k-means of per-class features, updated in training.

The hook wires :mod:`mmda_vpt.mapping` (the map, its k-means, its feature passes and their data)
to a runner: when to cluster, the window a checkpoint keeps, the ranks. The file is above 400
lines because the class docstring documents every option the configs set (about 100 lines);
what is not runner wiring lives in :mod:`mmda_vpt.mapping`.
"""
import logging
import math
from dataclasses import asdict
from types import MappingProxyType
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine import dist
from mmengine.dataset import DefaultSampler
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner.loops import IterBasedTrainLoop
from torch.utils.data import BatchSampler

from mmda_vpt.datasets.class_list import apply_run_classes
from mmda_vpt.mapping.class_features import initial_pass_sums, tap_features
from mmda_vpt.mapping.class_kmeans import ClassMap
from mmda_vpt.mapping.class_prompt_map import UNSEEN_CLASSES, ClassPromptMap, MapOptions
from mmda_vpt.mapping.initial_pass_loader import build_initial_pass_loader
from mmda_vpt.utils.model_access import (add_loss_callback, get_davpt_backbone,
                                         model_ignore_index, model_num_classes,
                                         remove_loss_callback, set_class_prompt_map,
                                         unwrap_model)

__all__ = ['ClassPromptMappingHook', 'guided_prompt_count']

#: Top-level checkpoint key of the hook's state.
CHECKPOINT_KEY = 'class_prompt_mapping'
CALLBACK_NAME = 'class_prompt_mapping'
WHO = 'ClassPromptMappingHook'
#: Which training features an update clusters: all since the last update, or the last epoch's.
FEATURE_WINDOWS = ('since_update', 'last_epoch')


def guided_prompt_count(backbone) -> int:
    """M: prompts in the guided layers, or ``num_prompts`` without guided layers."""
    if backbone.guided_layers:
        return int(backbone.prompt_counts[backbone.guided_layers[0]])
    return int(backbone.num_prompts)


def _map_state(name: str, doc: str, empty=None) -> property:
    """A read-only view of the hook's map's attribute ``name`` (``empty`` before the map)."""
    return property(lambda self: empty if self.map is None else getattr(self.map, name),
                     doc=doc)


@HOOKS.register_module()
class ClassPromptMappingHook(Hook):
    """Maps C classes to the M guided prompts by k-means over per-class features (DA-VPT 2.4).

    The map itself (its state, its feature window and its k-means updates) is a
    :class:`~mmda_vpt.mapping.ClassPromptMap`; this hook wires it to the runner:

    - Before training, one pass over the training set with the test pipeline (no augmentation;
      ``pipeline='train'``: the training pipeline) through the frozen pre-trained backbone with the
      prompts switched off: per class the mean final CLS feature (classification; the mean final
      patch feature without a CLS token) or the mean final feature of the patches of that class
      (segmentation, the class covering most of a patch's pixels). Normalized (``feature_norm``) and
      clustered with scikit-learn's ``KMeans`` (seeded; ``init='random'``: from random classes):
      ``class_to_prompt[c]`` is the cluster of class c. The pass's loader comes from
      :func:`~mmda_vpt.mapping.initial_pass_loader.build_initial_pass_loader`, which also
      documents how images are chosen. A label map the pass reads that holds
      a value which is neither a class nor ``ignore_index`` stops the run before its first
      training step, naming the file and the value.
    - During training, the detached final CLS (segmentation: patch) features of the training
      forwards are summed per class. The first re-clustering happens at the end of epoch (or
      iteration, for iteration-based loops) ``max(first_update, interval)``, later ones every
      ``interval`` epochs (iterations). An update clusters the features summed since the last
      update (``feature_window='since_update'``) or those of the last epoch only
      (``'last_epoch'``: the sums restart at the start of every epoch; for iteration-based
      loops, at every multiple of the training loader's length). The sums and counts are summed
      over all ranks and the normalized means re-clustered from the previous map: centroids
      re-computed as the means of the current class features under the previous map, then
      Lloyd iterations, so prompt i stays prompt i; an empty prompt is re-seeded
      (``empty_cluster``). A class unseen in the window keeps its prompt and its previous mean
      feature (``unseen_classes='keep'``) or gets a random prompt (``'random'``); with C < M
      class c gets prompt c and the other prompts are unused (one warning).
    - Rank 0 clusters and broadcasts, so every rank holds the same map. Samples the
      ``DefaultSampler`` repeats to make the dataset divisible by the world size are counted once.
    - The state is saved in every checkpoint (key ``'class_prompt_mapping'``) and restored on
      resume; loading a checkpoint for testing needs neither this hook nor the metric-loss hook.

    While it trains, the map is kept on the model
    (:func:`~mmda_vpt.utils.model_access.set_class_prompt_map`), where
    :class:`PromptMetricLossHook` reads its ``class_to_prompt``, a (C,) CPU LongTensor (None
    before the first map); the hook shows it too, with the ``centroids`` (M, D).

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
        first_update (int, optional): The epoch (iteration, for iteration-based loops) at
            whose end the first re-clustering happens, counted from 1, at the earliest after
            one full ``interval``; None never re-clusters (the initial map is kept: the authors'
            ``dynamic_kmeans: 0``). The authors' ``dynamic_kmeans: d >= 1`` re-clusters at the
            end of their 0-based epoch d, so it is ``first_update=d + 1`` (their
            ``dynamic_kmeans: 1`` is ``first_update=2``; they cluster the last epoch's features
            only: ``feature_window='last_epoch'``). Defaults to 1.
        batch_size (int, optional): Batch size of the initial pass. Defaults to None (the
            training dataloader's).
        num_workers (int, optional): Workers of the initial pass. Defaults to None (the
            training dataloader's).
        pipeline (list[dict] | str, optional): Pipeline of the initial pass: a list of
            transforms, or ``'train'``: the training dataset as it is, with its own (augmenting)
            pipeline (the authors' code). Defaults to None: the test dataloader's dataset
            pipeline, else the validation one.
        feature_window (str): The features an update clusters: ``'since_update'`` (all those
            of the training forwards since the last update) or ``'last_epoch'`` (those of the
            last epoch only, the authors' code). Defaults to ``'since_update'``.
        unseen_classes (str): A class without a feature in the window: ``'keep'`` (it keeps
            its prompt) or ``'random'`` (it gets a random prompt at every update, the authors'
            code); see :meth:`~mmda_vpt.mapping.ClassPromptMap.update`. Defaults to ``'keep'``.
        **map_options: How the map clusters: ``metric``, ``empty_cluster``, ``balanced``,
            ``warm_start``, ``seed`` (also the seed of the per-class sample choice),
            ``n_init``, ``max_iter``, ``tol``, ``feature_norm``, ``init``, documented with
            their defaults in
            :class:`~mmda_vpt.mapping.class_prompt_map.MapOptions` (``empty_cluster='reseed'``
            and ``warm_start='anchored'`` keep every prompt holding a class; ``'keep'`` and
            ``'centroids'`` are the authors' code).
    """

    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW): checkpoints hold the updated map

    def __init__(self,
                 samples_per_class: Optional[int] = 10,
                 interval: Optional[int] = None,
                 first_update: Optional[int] = 1,
                 batch_size: Optional[int] = None,
                 num_workers: Optional[int] = None,
                 pipeline: Union[None, str, List[dict]] = None,
                 feature_window: str = 'since_update',
                 unseen_classes: str = 'keep',
                 **map_options) -> None:
        for name, value in (('samples_per_class', samples_per_class), ('interval', interval),
                            ('first_update', first_update), ('batch_size', batch_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f'{name} must be None or an int >= 1, got {value!r}')
        if num_workers is not None and num_workers < 0:
            raise ValueError(f'num_workers must be None or >= 0, got {num_workers}')
        if isinstance(pipeline, str) and pipeline != 'train':
            raise ValueError(f"pipeline must be None, a list of transforms or 'train', got "
                             f'{pipeline!r}')
        for name, value, choices in (('feature_window', feature_window, FEATURE_WINDOWS),
                                     ('unseen_classes', unseen_classes, UNSEEN_CLASSES)):
            if value not in choices:
                raise ValueError(f'{name} must be one of {choices}, got {value!r}')
        #: How the map clusters (:class:`~mmda_vpt.mapping.class_prompt_map.MapOptions`).
        self.map_options = MapOptions.build(type(self).__name__, map_options)
        self.samples_per_class = samples_per_class
        self.interval = interval
        self.first_update = first_update
        self.seed = self.map_options.seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pipeline = pipeline
        self.feature_window = feature_window
        self.unseen_classes = unseen_classes

        #: The class-to-prompt map; None until the model is known.
        self.map: Optional[ClassPromptMap] = None
        #: The initial pass on this rank: images used, images in its share, images per class.
        self.initial_pass: Dict = {}

        self.num_classes = 0
        self.num_prompts = 0
        self.ignore_index = 255
        self._epoch_start: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self._pending_window: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self._by_epoch = True
        self._every = 1
        self._first = 1
        self._in_epoch = False
        self._batch_idx = 0
        self._offset = 0
        self._dedupe = False
        self._rank, self._world_size = 0, 1
        self._dataset_len = 0
        self._loader_len = 1
        self._rank_epoch_len = 1
        self._loader_batch = 1
        self._warned_few = False

    # ------------------------------------------------------------------ the map's state
    class_to_prompt = _map_state('class_to_prompt',
                                 '(C,) CPU LongTensor, the prompt of every class; None before '
                                 'the first map.')
    centroids = _map_state('centroids', '(M, D) float32 centroids; row i belongs to prompt i.')
    class_features = _map_state('class_features',
                                '(C, D) float32 normalized mean feature of every class, as '
                                'last seen.')
    has_feature = _map_state('has_feature', '(C,) bool, the classes that have had a feature.')
    num_updates = _map_state('num_updates', 'Maps computed so far, the initial one included.',
                             empty=0)
    last_update = _map_state('last_update',
                             'What the last clustering of this run did: when, kmeans_ms, changed, '
                             'cluster_sizes, class_counts (samples, or patches for segmentation, '
                             'per class in the window), unseen; empty before one.',
                             empty=MappingProxyType({}))

    def _new_map(self, runner) -> ClassPromptMap:
        backbone = get_davpt_backbone(runner.model, WHO)
        num_prompts = guided_prompt_count(backbone)
        if num_prompts < 1:
            raise ValueError(f'{WHO} needs prompts: the backbone has num_prompts=0')
        return ClassPromptMap(model_num_classes(runner.model), num_prompts,
                              int(backbone.embed_dims_), **asdict(self.map_options))

    def attach(self, model, class_map: ClassPromptMap) -> None:
        """Accumulate the training forwards' features of ``model`` into ``class_map``'s window.

        ``before_train`` calls it with the initial (or restored) map; a caller without a runner
        (the benchmark) can call it with a map of its own. The map is kept on the model for the
        other hooks (:func:`~mmda_vpt.utils.model_access.get_class_prompt_map`).
        """
        self.map = class_map
        self.num_classes, self.num_prompts = class_map.num_classes, class_map.num_prompts
        self.ignore_index = model_ignore_index(model)
        device = next(get_davpt_backbone(model, WHO).parameters()).device
        class_map.reset_window(device)
        self._epoch_start = None
        set_class_prompt_map(model, class_map)
        add_loss_callback(model, CALLBACK_NAME, self._accumulate)

    def detach(self, model) -> None:
        """Stop accumulating the features of ``model``; the model no longer holds the map."""
        remove_loss_callback(model, CALLBACK_NAME)
        set_class_prompt_map(model, None)

    # ------------------------------------------------------------------ hook points
    def before_run(self, runner) -> None:
        apply_run_classes(runner)  # one class list for every split, before any label is read

    def before_train(self, runner) -> None:
        if self.map is None:
            self.map = self._new_map(runner)
        self.num_classes, self.num_prompts = self.map.num_classes, self.map.num_prompts
        self.ignore_index = model_ignore_index(runner.model)
        self._rank, self._world_size = dist.get_dist_info()
        self._setup_loop(runner)
        if self.class_to_prompt is None:
            self._initial_map(runner)
        else:
            print_log(f'{WHO}: using the class-to-prompt map restored from the checkpoint '
                      f'({self.num_updates} updates so far)', logger='current')
            self._warn_few_classes()
        self.attach(runner.model, self.map)
        if self._pending_window is not None:
            if self._rank == 0:
                self.map.sums += self._pending_window[0].to(self.map.sums.device)
                self.map.counts += self._pending_window[1].to(self.map.counts.device)
            self._pending_window = None

    def after_train(self, runner) -> None:
        self.detach(runner.model)

    def before_train_epoch(self, runner) -> None:
        self._in_epoch = True
        if self._by_epoch and self.map is not None and self.map.sums is not None:
            if self.feature_window == 'last_epoch':
                self.map.reset_window(self.map.sums.device)
            self._epoch_start = (self.map.sums.clone(), self.map.counts.clone())

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._batch_idx = batch_idx
        self._offset = 0
        if (self.feature_window == 'last_epoch' and not self._by_epoch and self.map is not None
                and self.map.sums is not None and runner.iter % self._rank_epoch_len == 0):
            self.map.reset_window(self.map.sums.device)

    def _due(self, tick: int) -> bool:
        """Whether the map is re-clustered at the end of epoch (iteration) ``tick`` (1-based)."""
        if self.first_update is None or tick < self._first:
            return False
        return (tick - self._first) % self._every == 0

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._by_epoch and self._due(runner.iter + 1):
            self._update(f'iter {runner.iter + 1}')

    def after_train_epoch(self, runner) -> None:
        self._in_epoch = False
        if self._by_epoch and self._due(runner.epoch + 1):
            self._update(f'epoch {runner.epoch + 1}')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = self.map.state_dict() if self.map is not None else {}
        if not state:
            return
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
        class_map = self._new_map(runner)
        problem = class_map.check_state(state)
        if problem is not None:
            if resuming:
                raise ValueError(f'{WHO}: {problem}; resume with the same model config')
            print_log(f'{WHO}: {problem}; a new map is computed before training',
                      logger='current', level=logging.WARNING)
            return
        class_map.load_state_dict(state)
        self.map = class_map
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
        # One epoch of this rank's share (an InfiniteSampler's length is the whole dataset's).
        self._rank_epoch_len = max(1, math.ceil(self._dataset_len /
                                                (self._loader_batch * self._world_size)))
        if self.interval is not None:
            self._every = self.interval
        elif self._by_epoch:
            self._every = 1
        else:
            self._every = self._rank_epoch_len
        self._first = max(self.first_update or 1, self._every)
        pads = (isinstance(sampler, DefaultSampler) and sampler.round_up
                and self._world_size > 1 and sampler.total_size > self._dataset_len)
        self._dedupe = pads and type(loader.batch_sampler) is BatchSampler
        if pads and not self._dedupe:
            print_log(f'{WHO}: the training loader uses a custom batch sampler, so the samples '
                      'DefaultSampler repeats to fill the last batch cannot be told apart and '
                      'are counted twice', logger='current', level=logging.WARNING)
        unit = 'epoch' if self._by_epoch else 'iteration'
        window = ("the last epoch's features" if self.feature_window == 'last_epoch' else
                  'the features since the last update')
        when = ('never re-clustered' if self.first_update is None else
                f're-clustered after {unit} {self._first}, then every {self._every} {unit}(s), '
                f'on {window}')
        print_log(f'{WHO}: {self.num_classes} classes -> {self.num_prompts} prompts, {when}',
                  logger='current')

    def _window_to_save(self) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """This rank's part of the current window, as a resumed run will replay it.

        An epoch-based loop re-runs an interrupted epoch from its start, so a checkpoint saved
        inside an epoch keeps the window as it was when the epoch began.
        """
        if self.map.sums is None:
            return None
        if self._by_epoch and self._in_epoch:
            if self._epoch_start is None:
                return None
            sums, counts = self._epoch_start
        else:
            sums, counts = self.map.sums, self.map.counts
        if not bool((counts > 0).any()):
            return None
        return sums.detach().cpu().clone(), counts.detach().cpu().clone()

    # ------------------------------------------------------------------ features
    def _accumulate(self, model, inputs, data_samples, losses: dict) -> None:
        """Loss callback: add the detached final features of one training forward."""
        feats, labels = tap_features(model.backbone.taps, data_samples, self.num_classes,
                                     self.ignore_index)
        batch = labels.shape[0]
        first = self._offset
        self._offset += batch
        if self._dedupe:
            position = ((self._batch_idx % self._loader_len) * self._loader_batch + first +
                        torch.arange(batch, device=labels.device))
            padded = self._rank + position * self._world_size >= self._dataset_len
            padded = padded.reshape(-1, *([1] * (labels.dim() - 1)))
            labels = torch.where(padded, torch.full_like(labels, -1), labels)
        self.map.add(feats, labels)

    # ------------------------------------------------------------------ initial pass
    def _pass(self, runner, device: torch.device, dim: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-class feature sums and counts of this rank's part of the initial pass."""
        inner = unwrap_model(runner.model)
        loader, quota = build_initial_pass_loader(
            runner, self.num_classes, self.samples_per_class, self.seed,
            hasattr(inner, 'decode_head'), world_size=self._world_size,
            batch_size=self.batch_size, num_workers=self.num_workers, pipeline=self.pipeline)
        sums, counts, served, done, total = initial_pass_sums(
            inner, loader, quota, self.num_classes, self.ignore_index, dim, device,
            progress=self._rank == 0)
        self.initial_pass = dict(images=done, total=total, images_per_class=served)
        print_log(f'{WHO}: initial pass used {done} of {total} images on rank {self._rank}',
                  logger='current')
        return sums, counts

    def _initial_map(self, runner) -> None:
        device = next(unwrap_model(runner.model).backbone.parameters()).device
        sums, counts = self._pass(runner, device, self.map.dim)
        dist.all_reduce(sums, op='sum')
        dist.all_reduce(counts, op='sum')
        result = None
        if self._rank == 0:
            result = self.map.initialize(sums, counts)
            unseen = torch.nonzero(counts.cpu() == 0).flatten().tolist()
            if unseen:
                fate = ('get a random prompt at every update' if self.unseen_classes == 'random'
                        else 'keep a fixed prompt')
                print_log(f'{WHO}: classes {unseen} have no sample in the training set; they '
                          f'{fate} until they are seen', logger='current',
                          level=logging.WARNING)
        self._share()
        self._warn_few_classes()
        self._log('initial', result, None, counts.cpu())

    # ------------------------------------------------------------------ updates
    def _update(self, when: str) -> None:
        """All-reduce the window, re-cluster on rank 0, broadcast, log, start a new window."""
        class_map = self.map
        dist.all_reduce(class_map.sums, op='sum')
        dist.all_reduce(class_map.counts, op='sum')
        counts = class_map.counts.cpu()
        previous = class_map.class_to_prompt.clone()
        result = class_map.update(self.unseen_classes) if self._rank == 0 else None
        self._share()
        self._log(when, result, previous, counts)
        class_map.reset_window(class_map.sums.device)
        self._epoch_start = None

    def _share(self) -> None:
        """Rank 0's map, centroids and class features, on every rank (CPU tensors)."""
        if self._world_size == 1:
            return
        class_map = self.map
        if self._rank == 0:
            tensors = (class_map.class_to_prompt.clone(), class_map.centroids.clone(),
                       class_map.class_features.clone(), class_map.has_feature.long())
        else:
            tensors = (torch.zeros(class_map.num_classes, dtype=torch.long),
                       torch.zeros(class_map.num_prompts, class_map.dim, dtype=torch.float32),
                       torch.zeros(class_map.num_classes, class_map.dim, dtype=torch.float32),
                       torch.zeros(class_map.num_classes, dtype=torch.long))
        for tensor in tensors:
            dist.broadcast(tensor, src=0)
        if self._rank != 0:
            class_map.set_state(*tensors)

    def _warn_few_classes(self) -> None:
        if self.num_classes < self.num_prompts and not self._warned_few:
            print_log(f'{WHO}: {self.num_classes} classes for {self.num_prompts} prompts: class '
                      f'c uses prompt c and prompts {self.num_classes}..{self.num_prompts - 1} '
                      'are unused', logger='current', level=logging.WARNING)
            self._warned_few = True

    def _log(self, when: str, result: Optional[ClassMap], previous: Optional[torch.Tensor],
             counts: torch.Tensor) -> None:
        sizes = self.map.cluster_sizes()
        changed = (int((self.class_to_prompt != previous).sum())
                   if previous is not None else self.num_classes)
        kmeans_ms = result.elapsed_ms if result is not None else float('nan')
        unseen = int((counts == 0).sum())
        self.map.last_update = dict(when=when, kmeans_ms=kmeans_ms, changed=changed,
                                    cluster_sizes=sizes, class_counts=counts.clone(),
                                    unseen=unseen)
        print_log(f'{WHO} [{when}]: k-means {kmeans_ms:.1f} ms, {changed} of '
                  f'{self.num_classes} classes changed prompt, {unseen} classes without a '
                  f'sample in the window; classes per prompt {sizes}', logger='current')
