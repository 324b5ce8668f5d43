"""Checks that segmentation label maps label something: refused for training, no nan IoU."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmda_vpt.datasets.labelled_pixels import (check_training_masks, describe_split,
                                            guard_iou_metric, is_iou_metric)
from mmda_vpt.utils.model_access import unwrap_model

__all__ = ['LabelledPixelCheckHook']


@HOOKS.register_module()
class LabelledPixelCheckHook(Hook):
    """Segmentation splits whose label maps hold only the ignore index.

    ``import mmda_vpt`` registers one in every runner (see
    :mod:`mmda_vpt.compat.runner_label_checks`); listing it in
    ``custom_hooks`` changes nothing. For a segmentor (a model with a ``decode_head``):

    - Before training (before every other hook's ``before_train``), a training set none of
      whose label maps holds a pixel other than the ignore index (``decode_head.ignore_index``)
      is refused with a ``ValueError`` naming the split and what was read
      (:func:`~mmda_vpt.datasets.labelled_pixels.check_training_masks`; a sound set costs one
      label map).
    - Every ``IoUMetric`` of the validation and test evaluators reports no metric, with a
      warning naming the split, for an evaluation that saw no labelled pixel (its IoUs and
      accuracies would be nan); training goes on, except where the config requires that metric
      every round (``EarlyStoppingHook(strict=True)``, a ``ReduceOnPlateau`` scheduler on it).
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        head = getattr(unwrap_model(runner.model), 'decode_head', None)
        if head is None:
            return
        check_training_masks(runner.train_dataloader.dataset,
                             int(getattr(head, 'ignore_index', 255)))

    def before_val(self, runner) -> None:
        self._guard(runner.val_loop, 'validation')

    def before_test(self, runner) -> None:
        self._guard(runner.test_loop, 'test')

    @staticmethod
    def _guard(loop, name: str) -> None:
        metrics = [m for m in getattr(getattr(loop, 'evaluator', None), 'metrics', [])
                   if is_iou_metric(m)]
        if not metrics:
            return
        split = describe_split(name, loop.dataloader.dataset)
        for metric in metrics:
            guard_iou_metric(metric, split)
