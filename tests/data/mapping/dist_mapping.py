"""Two-process (torchrun, gloo, CPU) run of ClassPromptMappingHook for its tests.

Run as ``PYTHONPATH=. torchrun --nproc_per_node 2 tests/data/mapping/dist_mapping.py WORK_DIR``
from the repository root. Every rank
trains a tiny DAVPTViT classifier for two epochs on 101 of scikit-learn's digits (so the
DefaultSampler pads one sample) and writes ``WORK_DIR/rank{r}.pth``: per epoch the hook's map,
centroids and class features, and the detached final CLS features, labels and ``sample_idx`` of
every training sample this rank saw, so that the test can redo the clustering on the union.
With ``--visualize`` a PromptVisualizationHook draws 2 test images too (rank 0 only).
"""
import argparse
import os
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

import mmda_vpt  # noqa: F401
from mmda_vpt.engine.hooks import ClassPromptMappingHook
from mmda_vpt.utils.model_access import add_loss_callback
from tests.toy_datasets import tiny_classifier_cfg

NUM_SAMPLES = 101


@HOOKS.register_module(force=True)
class DistMappingRecorderHook(Hook):
    """Records, after the mapping hook, its state and this rank's training features."""

    priority = 'LOW'

    def __init__(self, out: str) -> None:
        self.out = out
        self.states = []
        self.feats, self.labels, self.sample_idx = [], [], []

    def before_train(self, runner) -> None:
        self.mapping = next(h for h in runner.hooks if isinstance(h, ClassPromptMappingHook))
        self.states.append(self._state())
        add_loss_callback(runner.model, 'dist_recorder', self._record)

    def _record(self, model, inputs, data_samples, losses) -> None:
        self.feats.append(model.backbone.taps.cls_final.detach().clone())
        self.labels.extend(int(s.gt_label[0]) for s in data_samples)
        self.sample_idx.extend(int(s.sample_idx) for s in data_samples)

    def _state(self) -> dict:
        hook = self.mapping
        return dict(class_to_prompt=hook.class_to_prompt.clone(),
                    centroids=hook.centroids.clone(),
                    class_features=hook.class_features.clone(),
                    has_feature=hook.has_feature.clone(),
                    class_counts=hook.last_update['class_counts'].clone())

    def after_train_epoch(self, runner) -> None:
        state = self._state()
        state.update(feats=torch.cat(self.feats), labels=torch.tensor(self.labels),
                     sample_idx=torch.tensor(self.sample_idx))
        self.states.append(state)
        self.feats, self.labels, self.sample_idx = [], [], []

    def after_train(self, runner) -> None:
        torch.save(self.states, osp.join(self.out, f'rank{get_rank()}.pth'))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('work_dir')
    parser.add_argument('--visualize', action='store_true',
                        help='add PromptVisualizationHook (pictures of 2 test images)')
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = dict(type='DigitsDataset', indices=(0, NUM_SAMPLES),
                   pipeline=[dict(type='PackInputs')])
    extra = {}
    if args.visualize:  # the test set only serves the pictures: the training stays the same
        extra = dict(test_dataloader=dict(
            dataset=dict(dataset, indices=(NUM_SAMPLES, NUM_SAMPLES + 20)), batch_size=8,
            num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False)),
            test_cfg=dict(), test_evaluator=dict(type='Accuracy'))
    runner = Runner(
        model=tiny_classifier_cfg(num_prompts=2, num_guided_prompts=3),
        work_dir=args.work_dir,
        train_dataloader=dict(dataset=dataset, batch_size=8, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=5e-3)),
        custom_hooks=[
            dict(type='ClassPromptMappingHook', samples_per_class=5,
                 pipeline=[dict(type='PackInputs')]),
            dict(type='PromptMetricLossHook'),
            dict(type='DistMappingRecorderHook', out=args.work_dir),
        ] + ([dict(type='PromptVisualizationHook', num_images=2)] if args.visualize else []),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=10**6)),
        launcher='pytorch',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        log_level='WARNING',
        **extra)
    runner.train()


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    main()
