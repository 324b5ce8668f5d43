"""A hook that prints one line of progress per stretch of training and records what the demo
draws (validation metrics, the class-to-prompt map after every epoch).

The runner's own logs go to a file in the run's folder; the console gets these short lines.
"""
import sys
import time
from typing import Dict, List, Optional

from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from mmda_vpt.engine.hooks import ClassPromptMappingHook

__all__ = ['DemoProgressHook', 'format_seconds']


def format_seconds(seconds: float) -> str:
    """``'42s'`` or ``'3m05s'``."""
    seconds = int(round(seconds))
    return f'{seconds // 60}m{seconds % 60:02d}s' if seconds >= 60 else f'{seconds}s'


class DemoProgressHook(Hook):
    """Print training progress and keep the run's validation metrics and class-to-prompt maps.

    Args:
        name: Label of the run in the printed lines.
        every (int, optional): Print every ``every`` iterations; None prints once per epoch.
            Defaults to None.
        stream: Where to print. Defaults to ``sys.stdout``.

    Attributes:
        val_metrics (dict): The metrics of the last validation.
        prompt_maps (list[tuple[int, list[int]]]): ``(epoch, class_to_prompt)`` before training
            (epoch 0) and after every epoch, when the runner has a ``ClassPromptMappingHook``
            with a map.
    """

    priority = 'LOWEST'  # after the mapping hook has updated its map

    def __init__(self, name: str, every: Optional[int] = None, stream=None) -> None:
        self.name = name
        self.every = every
        self.stream = stream if stream is not None else sys.stdout
        self.val_metrics: Dict[str, float] = {}
        self.prompt_maps: List[tuple] = []
        self._start = 0.0
        self._samples = 0
        self._mapping_hook = None

    def _print(self, message: str) -> None:
        self.stream.write(f'  [{self.name}] {message}\n')
        self.stream.flush()

    def _record_map(self, epoch: int) -> None:
        mapping = getattr(self._mapping_hook, 'class_to_prompt', None)
        if mapping is not None:
            self.prompt_maps.append((epoch, [int(v) for v in mapping.tolist()]))

    def before_train(self, runner) -> None:
        self._start = time.perf_counter()
        self._samples = 0
        self._mapping_hook = next(
            (h for h in runner.hooks if isinstance(h, ClassPromptMappingHook)), None)
        self._record_map(runner.epoch)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if data_batch is not None:
            self._samples += len(data_batch['data_samples'])
        if self.every is None or not self.every_n_train_iters(runner, self.every):
            return
        self._print(self._status(runner, runner.iter + 1))

    def after_train_epoch(self, runner) -> None:
        self._record_map(runner.epoch + 1)  # the loop counts the epoch after its hooks
        if self.every is None:
            self._print(self._status(runner, runner.iter))

    def _status(self, runner, done: int) -> str:
        elapsed = time.perf_counter() - self._start
        total = runner.max_iters
        scalars = runner.message_hub.log_scalars
        losses = []
        window = self.every or max(len(runner.train_dataloader), 1)
        for key in sorted(scalars):
            if key.startswith('train/') and 'loss' in key:
                losses.append(f'{key[len("train/"):]} {scalars[key].mean(window):.3f}')
        left = elapsed / max(done, 1) * (total - done)
        epoch = ''
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            epoch = f'epoch {runner.epoch + 1}/{runner.max_epochs}, '
        maps = ''
        if self.prompt_maps:
            maps = ', class->prompt ' + ''.join(str(p) for p in self.prompt_maps[-1][1])
        return (f'{epoch}iter {done}/{total}, ' + ', '.join(losses) +
                f', {self._samples / max(elapsed, 1e-9):.0f} img/s, '
                f'{format_seconds(elapsed)} elapsed, ~{format_seconds(left)} left{maps}')

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        self.val_metrics = dict(metrics or {})
