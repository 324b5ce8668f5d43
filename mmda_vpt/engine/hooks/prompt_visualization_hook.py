"""DA-VPT's moving parts in any mmengine visualizer backend: the class-to-prompt map, the CLS
token's and prompts' attention, and the map updates' numbers."""
import logging
import math
import os.path as osp
import random
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import DATASETS, HOOKS
from torch.utils.data import DataLoader

from mmda_vpt.mapping.class_prompt_map import ClassPromptMap
from mmda_vpt.utils.model_access import (get_class_prompt_map, get_davpt_backbone,
                                         model_num_classes, unwrap_model)
from mmda_vpt.visualization import (attention_rows, capture_attention, draw_attention,
                                    draw_class_prompt_map)
from mmda_vpt.visualization.attention_capture import resolve_layers
from .class_prompt_mapping_hook import ClassPromptMappingHook

__all__ = ['PromptVisualizationHook']

WHO = 'PromptVisualizationHook'
#: The image names the hook sends (``ATTENTION_IMAGE`` is formatted with the dataset index).
MAP_IMAGE = 'class_to_prompt_map'
ATTENTION_IMAGE = 'prompt_attention_{index}'
#: The scalars sent at every map update (the initial map included).
MAP_SCALARS = ('prompt_map/classes_moved', 'prompt_map/smallest_prompt',
               'prompt_map/largest_prompt', 'prompt_map/kmeans_ms')


@contextmanager
def _rng_kept() -> Iterator[None]:
    """Every random state (Python, NumPy, torch CPU and CUDA) as it was before the block."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])


@HOOKS.register_module()
class PromptVisualizationHook(Hook):
    """Sends the class-to-prompt map and the prompts' attention to the runner's visualizer.

    Whatever backends the config's ``visualizer.vis_backends`` names (``LocalVisBackend``:
    ``vis_data/vis_image/<name>_<step>.png`` and ``scalars.json``; ``TensorboardVisBackend``,
    ``WandbVisBackend``, ``MLflowVisBackend``, ...) receive, with the step the iterations
    trained so far:

    - at every map update of the :class:`ClassPromptMappingHook` (the initial map included),
      the scalars ``prompt_map/classes_moved`` (classes whose prompt changed; all C at the
      initial map), ``prompt_map/smallest_prompt`` and ``prompt_map/largest_prompt`` (classes
      of the smallest and largest prompt) and ``prompt_map/kmeans_ms`` (the clustering's time;
      left out where no k-means ran, with C <= M);
    - before training (once the initial map is there), after every validation and, when the
      last picture is older, at the end of training, the pictures ``class_to_prompt_map``
      (:func:`~mmda_vpt.visualization.draw_class_prompt_map`; with the training set's class
      names) and ``prompt_attention_<index>`` for each of a fixed handful of images (index: the
      image's index in its dataset): the image, then the CLS token's and the prompts' attention
      over it in the chosen layers
      (:func:`~mmda_vpt.visualization.draw_attention`, the picture
      ``tools/analysis/show_attention.py`` and the demo draw), for classifiers and segmentors.

    The images are the validation set's (else the test set's), chosen once before training:
    ``image_indices``, or ``num_images`` spread evenly over the set. Without a
    ``ClassPromptMappingHook`` (VPT-Deep) only the attention is sent.

    Only rank 0 draws, on the unwrapped model, in eval mode without gradients, and every random
    state is restored afterwards, so the trained parameters are the same with and without the
    hook. The time of every drawing is kept in ``last_draw_ms`` (and logged at DEBUG level). The
    hook draws the weights the model holds after validation (with mmengine's ``EMAHook``, the
    raw weights, not the averaged ones that were validated). The gradient norms of
    ``PromptMetricLossHook(log_grad_norms=N)`` reach the same backends through mmengine's log
    processor as ``train/grad_norm/<term>/layer<i>`` and ``train/grad_norm/ce/head``.

    Args:
        num_images (int): Images whose attention is drawn, when ``image_indices`` is None.
            Defaults to 4.
        image_indices (Sequence[int], optional): Their indices in the validation (else test)
            set, distinct. Defaults to None (spread evenly).
        layers (Sequence[int], optional): 0-based layers drawn, negative from the end.
            Defaults to None: the guided layers, or the last layer.
        prompts (int, optional): Prompts drawn per layer (the first ones). Defaults to 4;
            None for all.
        max_class_names (int): The map names every class up to this many classes, and labels
            the prompts' blocks beyond. Defaults to 60.
        draw_map (bool): Send the map's picture and scalars. Defaults to True.
        draw_attention (bool): Send the attention pictures. Defaults to True.
    """

    priority = 'LOW'  # after ClassPromptMappingHook (NORMAL): the map is up to date

    def __init__(self,
                 num_images: int = 4,
                 image_indices: Optional[Sequence[int]] = None,
                 layers: Optional[Sequence[int]] = None,
                 prompts: Optional[int] = 4,
                 max_class_names: int = 60,
                 draw_map: bool = True,
                 draw_attention: bool = True) -> None:
        if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
            raise ValueError(f'num_images must be an int >= 1, got {num_images!r}')
        if prompts is not None and (not isinstance(prompts, int) or prompts < 0):
            raise ValueError(f'prompts must be None or an int >= 0, got {prompts!r}')
        if (isinstance(max_class_names, bool) or not isinstance(max_class_names, int)
                or max_class_names < 0):
            raise ValueError(f'max_class_names must be an int >= 0, got {max_class_names!r}')
        if image_indices is not None and (len(image_indices) == 0
                                          or len(set(image_indices)) != len(image_indices)):
            raise ValueError('image_indices must be None or distinct indices, got '
                             f'{list(image_indices)!r}')
        self.num_images = num_images
        self.image_indices = None if image_indices is None else [int(i) for i in image_indices]
        self.layers = None if layers is None else [int(layer) for layer in layers]
        self.prompts = prompts
        self.max_class_names = max_class_names
        self.draw_map = draw_map
        self.draw_attention = draw_attention
        #: The map update numbers last sent, by scalar name.
        self.last_scalars: Dict[str, float] = {}
        #: Milliseconds the last drawing took (map and attention pictures).
        self.last_draw_ms = float('nan')
        self._ready = False
        self._class_map: Optional[ClassPromptMap] = None
        self._items: List[dict] = []
        self._indices: List[int] = []
        self._titles: List[str] = []
        self._labels: List[Optional[int]] = []
        self._class_names: Optional[List[str]] = None
        self._seen_updates = 0
        self._last_step: Optional[int] = None

    # ------------------------------------------------------------------ hook points
    def before_train(self, runner) -> None:
        # Settings are checked on every rank, so that a bad one stops all of them alike.
        backbone = get_davpt_backbone(runner.model, WHO)
        resolve_layers(backbone, self.layers)  # an out-of-range layer fails before training
        dataset = self._image_dataset(runner) if self.draw_attention else None
        if dataset is not None and len(dataset):
            indices = self._choose_indices(len(dataset))
        mapping = next((h for h in runner.hooks if isinstance(h, ClassPromptMappingHook)), None)
        if mapping is not None and runner.hooks.index(mapping) > runner.hooks.index(self):
            raise ValueError(f'{WHO} must come after ClassPromptMappingHook (whose priority is '
                             f"NORMAL, this hook's LOW): it draws the map that hook has just "
                             'made; give it a lower priority than the mapping hook')
        if not is_main_process():
            return
        self._class_names = self._train_classes(runner)
        # The map the mapping hook keeps on the model (its clusterings update it in place, with
        # their numbers in ``last_update``); kept here, as the mapping hook lets go of it in
        # after_train.
        self._class_map = get_class_prompt_map(runner.model)
        if dataset is not None and len(dataset):
            self.select_images(dataset, indices)
        elif self.draw_attention:
            what = ('neither a validation nor a test set' if dataset is None else
                    'an empty validation (else test) set')
            print_log(f'{WHO}: the run has {what}; no attention pictures', logger='current',
                      level=logging.WARNING)
        self._ready = True
        self._seen_updates = 0
        self._send_update(runner, runner.iter)
        self._draw(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._ready:  # the loop counts this iteration after its hooks
            self._send_update(runner, runner.iter + 1)

    def after_train_epoch(self, runner) -> None:
        if self._ready:
            self._send_update(runner, runner.iter)

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if self._ready:
            self._draw(runner)

    def after_train(self, runner) -> None:
        if self._ready and self._last_step != runner.iter:
            self._draw(runner)
        self._ready = False

    # ------------------------------------------------------------------ setup
    def _train_classes(self, runner) -> Optional[List[str]]:
        try:
            classes = runner.train_dataloader.dataset.metainfo.get('classes')
        except (AttributeError, RuntimeError):
            classes = None
        if classes is None or len(classes) != model_num_classes(runner.model):
            return None
        return [str(name) for name in classes]

    def _image_dataset(self, runner):
        """The validation set of the run, else its test set (built here from the config)."""
        if runner._val_loop is not None:
            return runner.val_dataloader.dataset
        loader = getattr(runner, '_test_dataloader', None)
        if loader is None:
            return None
        if isinstance(loader, DataLoader):
            return loader.dataset
        dataset = loader.get('dataset')
        if dataset is None:
            return None
        with _rng_kept():  # whatever its loading draws, training draws the same
            dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
            if hasattr(dataset, 'full_init'):
                dataset.full_init()
        return dataset

    def _choose_indices(self, size: int) -> List[int]:
        """``image_indices``, or ``num_images`` indices spread evenly over ``size`` images."""
        if self.image_indices is not None:
            bad = [i for i in self.image_indices if not 0 <= i < size]
            if bad:
                raise ValueError(f'{WHO}: image_indices {bad} are outside the {size} images '
                                 'of the validation (else test) set')
            return list(self.image_indices)
        return sorted(set(np.linspace(0, size - 1, min(self.num_images, size))
                          .round().astype(int).tolist()))

    def select_images(self, dataset: Sequence[dict],
                      indices: Optional[Sequence[int]] = None) -> None:
        """Choose the images whose attention is drawn, once, each through its pipeline.

        Args:
            dataset: The validation (else test) dataset, or any sequence of pipeline outputs
                (``inputs``, ``data_samples``).
            indices (Sequence[int], optional): Their indices. Defaults to None:
                ``image_indices``, or ``num_images`` spread evenly over ``dataset``.

        Raises:
            ValueError: If an index of ``image_indices`` is outside the dataset.
        """
        indices = list(indices) if indices is not None else self._choose_indices(len(dataset))
        names = list(getattr(dataset, 'metainfo', {}).get('classes') or [])
        with _rng_kept():
            items = [dataset[i] for i in indices]
        self._items, self._indices, self._titles, self._labels = items, indices, [], []
        for index, item in zip(indices, items):
            sample = item['data_samples']
            label = None
            if 'gt_label' in sample:
                label = int(sample.gt_label[0])
                name = names[label] if label < len(names) else str(label)
                title = f'#{index}: {name}'
            else:
                title = f'#{index}: {osp.basename(str(sample.metainfo.get("img_path", "")))}'
            self._titles.append(title)
            self._labels.append(label)

    # ------------------------------------------------------------------ sending
    def _send_update(self, runner, step: int) -> None:
        """The scalars of the map update made since the last call, at ``step``."""
        class_map = self._class_map
        if not self.draw_map or class_map is None or class_map.num_updates == self._seen_updates:
            return
        self._seen_updates = class_map.num_updates
        last = class_map.last_update
        if not last:  # a map restored from a checkpoint: nothing was clustered here
            return
        sizes = last['cluster_sizes']
        self.last_scalars = {
            MAP_SCALARS[0]: float(last['changed']),
            MAP_SCALARS[1]: float(min(sizes)),
            MAP_SCALARS[2]: float(max(sizes)),
        }
        if math.isfinite(last['kmeans_ms']):  # nan where no k-means ran (C <= M)
            self.last_scalars[MAP_SCALARS[3]] = float(last['kmeans_ms'])
        runner.visualizer.add_scalars(self.last_scalars, step=step)

    def _draw(self, runner) -> None:
        """The map's and the attention pictures at the current step, to the visualizer."""
        start = time.perf_counter()
        step = runner.iter
        for name, image in self.pictures(runner.model, step, self._class_map).items():
            runner.visualizer.add_image(name, image, step=step)
        self._last_step = step
        self.last_draw_ms = (time.perf_counter() - start) * 1e3
        print_log(f'{WHO}: pictures of iteration {step} drawn in {self.last_draw_ms:.0f} ms',
                  logger='current', level=logging.DEBUG)

    def pictures(self, model: torch.nn.Module, step: int,
                 class_map: Optional[ClassPromptMap] = None) -> Dict[str, np.ndarray]:
        """The pictures of one drawing, by the name they are sent under.

        Args:
            model (nn.Module): The model, wrapped or not (it is unwrapped).
            step (int): The iteration, shown in the titles.
            class_map (ClassPromptMap, optional): The map drawn and whose prompt of each
                image's class is marked. Defaults to None (no map).

        Returns:
            dict: ``class_to_prompt_map`` (with a map and ``draw_map``) and
            ``prompt_attention_<index>`` for each image of :meth:`select_images`, (H, W, 3)
            uint8 RGB each.
        """
        mapping = None if class_map is None else class_map.class_to_prompt
        out = {}
        with _rng_kept():
            if self.draw_map and mapping is not None:
                out[MAP_IMAGE] = draw_class_prompt_map(
                    mapping.numpy(), class_map.num_prompts, self._class_names,
                    self.max_class_names, title=f'Class-to-prompt map at iteration {step}')
            model = unwrap_model(model)
            guided = tuple(get_davpt_backbone(model, WHO).guided_layers or ())
            for index, item, title, label in zip(self._indices, self._items, self._titles,
                                                  self._labels):
                captured = capture_attention(model, pseudo_collate([item]), self.layers)
                if captured['preds'] is not None:
                    title = f'{title}, pred {int(captured["preds"][0])}'
                highlight = None
                if mapping is not None and label is not None and label < len(mapping):
                    highlight = [int(mapping[label])]
                out[ATTENTION_IMAGE.format(index=index)] = draw_attention(
                    attention_rows(captured, [title], highlight, guided=guided),
                    prompts=self.prompts,
                    title=f'Attention over the patches, iteration {step}')
        return out
