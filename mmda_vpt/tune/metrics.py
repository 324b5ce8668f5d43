"""Name the metrics a config's validation evaluator produces, to check ``--metric`` early."""
from typing import List, Optional

from mmengine.config import Config

__all__ = ['evaluator_metrics']

#: mmsegmentation's ``IoUMetric``: the metrics each of its ``iou_metrics`` adds to ``aAcc``.
_IOU_PRODUCES = {'mIoU': ('mIoU', 'mAcc'), 'mDice': ('mDice', 'mAcc'),
                 'mFscore': ('mFscore', 'mPrecision', 'mRecall')}
_IOU_ORDER = ('aAcc', 'mIoU', 'mAcc', 'mDice', 'mFscore', 'mPrecision', 'mRecall')


def _accuracy_names(metric: dict) -> List[str]:
    prefix = metric.get('prefix') or 'accuracy'
    topk = metric.get('topk', (1, ))
    topk = (topk, ) if isinstance(topk, int) else tuple(topk)
    thrs = metric.get('thrs', 0.)
    thrs = (thrs, ) if thrs is None or isinstance(thrs, (int, float)) else tuple(thrs)
    names = []
    for k in topk:
        for thr in thrs:
            name = f'top{k}'
            if len(thrs) > 1:
                name += '_no-thr' if thr is None else f'_thr-{thr:.2f}'
            names.append(f'{prefix}/{name}')
    return names


def _iou_names(metric: dict) -> List[str]:
    prefix = metric.get('prefix')
    iou = metric.get('iou_metrics', ['mIoU'])
    iou = [iou] if isinstance(iou, str) else list(iou)
    produced = {'aAcc'}
    for m in iou:
        produced.update(_IOU_PRODUCES.get(m, ()))
    # The first configured one first: the default metric.
    found = [iou[0]] + [m for m in _IOU_ORDER if m != iou[0] and m in produced]
    return [f'{prefix}/{m}' if prefix else m for m in found]


def evaluator_metrics(cfg: Config) -> Optional[List[str]]:
    """The metric names the validation evaluator produces, in order, where known.

    Known: mmpretrain's ``Accuracy`` and mmsegmentation's ``IoUMetric``; None for any other
    evaluator (its metric is then checked at the first validation).

    Args:
        cfg (Config): The config.

    Returns:
        list[str] | None: The names, or None when an evaluator is not one of those.
    """
    evaluator = cfg.get('val_evaluator')
    if isinstance(evaluator, dict) and 'metrics' in evaluator and 'type' not in evaluator:
        evaluator = evaluator['metrics']
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    names: List[str] = []
    for metric in metrics:
        if not isinstance(metric, dict):
            return None
        kind = str(metric.get('type', '')).split('.')[-1]
        if kind == 'Accuracy':
            names += _accuracy_names(metric)
        elif kind == 'IoUMetric':
            names += _iou_names(metric)
        else:
            return None
    return names
