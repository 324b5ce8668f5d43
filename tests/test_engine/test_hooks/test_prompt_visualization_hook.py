"""Tests of PromptVisualizationHook: real runner.train() runs on tiny models, read back from
mmengine's LocalVisBackend files and from TensorBoard's event files with tensorboard's reader."""
import glob
import itertools
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
from unittest import TestCase, mock

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

import mmda_vpt  # noqa: F401
from mmda_vpt.engine.hooks import ClassPromptMappingHook, PromptVisualizationHook
from mmda_vpt.engine.hooks.prompt_visualization_hook import MAP_SCALARS
from tests.toy_datasets import tiny_classifier_cfg, tiny_segmentor_cfg
from tests.utils import REPO, attention_figure_shape, free_port

pytestmark = pytest.mark.slow  # runners

_names = itertools.count()
LOCAL = dict(type='LocalVisBackend')
TENSORBOARD = dict(type='TensorboardVisBackend')


@HOOKS.register_module(force=True)
class VisRecorderHook(Hook):
    """What the visualization hook sent, by step: its scalars and the mapping hook's numbers."""

    priority = 'LOWEST'  # after PromptVisualizationHook (LOW)

    def before_train(self, runner):
        self.vis = next(h for h in runner.hooks if isinstance(h, PromptVisualizationHook))
        self.mapping = next((h for h in runner.hooks if isinstance(h, ClassPromptMappingHook)),
                            None)
        self.sent = {}
        self._last = None
        self._record(runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._record(runner.iter + 1)  # the loop counts the iteration after its hooks

    def after_train_epoch(self, runner):
        self._record(runner.iter)

    def _record(self, step):
        if self.vis.last_scalars and self.vis.last_scalars is not self._last:
            self._last = self.vis.last_scalars
            self.sent[step] = (dict(self.vis.last_scalars), dict(self.mapping.last_update))


def digits(indices, pipeline=None):
    return dict(type='DigitsDataset', indices=indices, pipeline=pipeline or [dict(type='PackInputs')])


def loader(dataset, shuffle=False, batch_size=16):
    return dict(dataset=dataset, batch_size=batch_size, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=shuffle))


def cls_runner(work_dir, visualize=True, mapping=True, val=True, test=False, backends=(LOCAL, ),
               vis=None, epochs=2, resume_from=None, hooks_first=()):
    hooks = list(hooks_first)
    if mapping:
        hooks += [dict(type='ClassPromptMappingHook', first_update=1),
                  dict(type='PromptMetricLossHook')]
    if visualize:
        hooks += [dict(type='PromptVisualizationHook', num_images=2, **(vis or {})),
                  dict(type='VisRecorderHook')]
    extra = {}
    if val:
        extra.update(val_dataloader=loader(digits((200, 240))), val_cfg=dict(),
                     val_evaluator=dict(type='Accuracy'))
    if test:
        extra.update(test_dataloader=loader(digits((240, 280))), test_cfg=dict(),
                     test_evaluator=dict(type='Accuracy'))
    return Runner(
        model=tiny_classifier_cfg(),
        work_dir=work_dir,
        experiment_name=f'vis_{next(_names)}',
        train_dataloader=loader(digits((0, 96)), shuffle=True),
        train_cfg=dict(by_epoch=True, max_epochs=epochs, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=5e-3)),
        custom_hooks=hooks,
        default_hooks=dict(logger=dict(type='LoggerHook', interval=100),
                           checkpoint=dict(type='CheckpointHook', interval=1)),
        visualizer=dict(type='Visualizer', vis_backends=[dict(b) for b in backends],  # filled in
                        name=f'vis_{next(_names)}'),
        load_from=resume_from,
        resume=resume_from is not None,
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        log_level='WARNING',
        **extra)


def seg_runner(work_dir):
    dataset = dict(type='ToySegDataset', num_samples=8,
                   pipeline=[dict(type='PackSegInputs')])
    return Runner(
        model=ConfigDict(tiny_segmentor_cfg()),  # mmseg reads test_cfg.mode
        work_dir=work_dir,
        experiment_name=f'vis_seg_{next(_names)}',
        train_dataloader=dict(dataset=dataset, batch_size=4, num_workers=0,
                              sampler=dict(type='InfiniteSampler', shuffle=True)),
        val_dataloader=dict(dataset=dict(dataset, num_samples=3), batch_size=1, num_workers=0,
                            sampler=dict(type='DefaultSampler', shuffle=False)),
        val_cfg=dict(), val_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=4, val_interval=2),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=5e-3)),
        custom_hooks=[dict(type='ClassPromptMappingHook', interval=2, samples_per_class=2),
                      dict(type='PromptMetricLossHook'),
                      dict(type='PromptVisualizationHook', num_images=3),
                      dict(type='VisRecorderHook')],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=100),
                           checkpoint=dict(type='CheckpointHook', interval=10**6)),
        visualizer=dict(type='Visualizer', vis_backends=[dict(LOCAL)], name=f'vis_{next(_names)}'),
        default_scope='mmseg',
        randomness=dict(seed=0),
        log_level='WARNING')


def local_images(runner):
    """{(name, step): RGB array} of the LocalVisBackend's files."""
    found = {}
    for path in glob.glob(osp.join(runner.log_dir, 'vis_data', 'vis_image', '*.png')):
        name, step = osp.splitext(osp.basename(path))[0].rsplit('_', 1)
        found[(name, int(step))] = cv2.imread(path)[..., ::-1]
    return found


def local_scalars(runner):
    """{step: record} of the scalars.json records holding the map's scalars."""
    path = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return {r['step']: r for r in records if MAP_SCALARS[0] in r}


def read_events(runner):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    folder = osp.join(runner.log_dir, 'vis_data')
    accumulator = EventAccumulator(folder, size_guidance={'images': 0, 'scalars': 0})
    accumulator.Reload()
    return accumulator


def vis_hook(runner):
    return next(h for h in runner.hooks if isinstance(h, PromptVisualizationHook))


def recorder(runner):
    return next(h for h in runner.hooks if isinstance(h, VisRecorderHook))


class TestPromptVisualizationHook(TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_init(self):
        for kwargs, message in ((dict(num_images=0), 'num_images must be an int >= 1'),
                                (dict(prompts=-1), 'prompts must be None or an int >= 0'),
                                (dict(max_class_names=-2), 'max_class_names must be'),
                                (dict(max_class_names=True), 'max_class_names must be'),
                                (dict(image_indices=[]), 'image_indices must be None or '
                                 r'distinct indices, got \[\]'),
                                (dict(image_indices=[1, 1]), 'distinct indices, got')):
            with self.subTest(**kwargs), self.assertRaisesRegex(ValueError, message):
                PromptVisualizationHook(**kwargs)

    def test_tensorboard_and_local(self):
        runner = cls_runner(self.tmp.name, backends=(LOCAL, TENSORBOARD))
        runner.train()
        iters_per_epoch = 6  # 96 images, batch 16
        steps = [0, iters_per_epoch, 2 * iters_per_epoch]
        hook = vis_hook(runner)
        self.assertEqual(hook._indices, [0, 39])  # 2 of the 40 validation images, spread
        names = ['class_to_prompt_map', 'prompt_attention_0', 'prompt_attention_39']
        local = local_images(runner)
        self.assertEqual(sorted(local), sorted((n, s) for n in names for s in steps))
        events = read_events(runner)
        self.assertEqual(sorted(events.Tags()['images']), sorted(names))
        for name in names:
            stored = events.Images(name)
            self.assertEqual([e.step for e in stored], steps)
            for event in stored:
                picture = cv2.imdecode(np.frombuffer(event.encoded_image_string, np.uint8),
                                       cv2.IMREAD_COLOR)[..., ::-1]
                self.assertEqual((event.height, event.width), picture.shape[:2])
                # The same picture in both backends, pixel for pixel.
                np.testing.assert_array_equal(picture, local[(name, event.step)])
        # 10 classes named on 10 rows, 4 prompts; the attention: the image, CLS + 4 prompts.
        self.assertEqual(local[('class_to_prompt_map', 0)].shape, (330, 608, 3))
        self.assertEqual(local[('prompt_attention_0', 0)].shape,
                         attention_figure_shape(1 + 1 + 4, title=True))
        # The scalars of every map update (the initial map at step 0, one per epoch).
        sent = recorder(runner).sent
        self.assertEqual(sorted(sent), steps)
        scalars = local_scalars(runner)
        self.assertEqual(sorted(scalars), steps)
        for step, (values, last) in sent.items():
            expected = {MAP_SCALARS[0]: last['changed'],
                        MAP_SCALARS[1]: min(last['cluster_sizes']),
                        MAP_SCALARS[2]: max(last['cluster_sizes']),
                        MAP_SCALARS[3]: last['kmeans_ms']}
            self.assertEqual(values, {k: float(v) for k, v in expected.items()})
            for key, value in expected.items():
                self.assertEqual(scalars[step][key], float(value))
                stored = {e.step: e.value for e in events.Scalars(key)}
                self.assertEqual(stored[step], np.float32(value))  # TensorBoard keeps float32
        self.assertEqual(sent[0][1]['changed'], 10)  # the initial map places every class
        self.assertGreater(hook.last_draw_ms, 0)

    def test_resume(self):
        cls_runner(self.tmp.name).train()
        runner = cls_runner(self.tmp.name, epochs=3,
                            resume_from=osp.join(self.tmp.name, 'epoch_2.pth'))
        runner.train()
        # The restored map is not re-sent as an update; pictures from the resumed step on.
        self.assertEqual(sorted(local_scalars(runner)), [18])
        self.assertEqual(sorted({step for _, step in local_images(runner)}), [12, 18])

    def test_after_the_mapping_hook_only(self):
        vis = dict(type='PromptVisualizationHook', priority='HIGH')
        runner = cls_runner(self.tmp.name, visualize=False, hooks_first=[vis])
        with self.assertRaisesRegex(ValueError, 'PromptVisualizationHook must come after '
                                    'ClassPromptMappingHook'):
            runner.train()

    def test_identical_parameters(self):
        trained = []
        for visualize in (False, True):
            runner = cls_runner(osp.join(self.tmp.name, str(visualize)), visualize=visualize)
            runner.train()
            trained.append({k: v.clone() for k, v in runner.model.state_dict().items()})
            if visualize:
                self.assertTrue(local_images(runner))
        self.assertEqual(sorted(trained[0]), sorted(trained[1]))
        for key, value in trained[0].items():
            self.assertTrue(torch.equal(value, trained[1][key]), key)

    def test_segmentation(self):
        runner = seg_runner(self.tmp.name)
        runner.train()
        local = local_images(runner)
        names = ['class_to_prompt_map'] + [f'prompt_attention_{i}' for i in range(3)]
        self.assertEqual(sorted(local), sorted((n, s) for n in names for s in (0, 2, 4)))
        self.assertEqual(sorted(local_scalars(runner)), [0, 2, 4])
        # 32x32 images, 8x8 patches of 4: the image, then CLS + 4 prompts of the guided layer.
        self.assertEqual(local[('prompt_attention_0', 2)].shape,
                         attention_figure_shape(1 + 1 + 4, title=True))

    def test_test_set_without_validation(self):
        runner = cls_runner(self.tmp.name, val=False, test=True, epochs=1)
        runner.train()
        # No validation: pictures of the test set before training and at its end.
        self.assertEqual(sorted(local_images(runner)),
                         sorted((n, s) for n in ('class_to_prompt_map', 'prompt_attention_0',
                                                 'prompt_attention_39') for s in (0, 6)))

    def test_without_mapping_hook(self):
        runner = cls_runner(self.tmp.name, mapping=False, epochs=1,
                            vis=dict(image_indices=[3], layers=[0, 1], prompts=2))
        runner.train()
        # VPT-Deep: the attention only; two layers of CLS + 2 prompts.
        local = local_images(runner)
        self.assertEqual(sorted(local), [('prompt_attention_3', 0), ('prompt_attention_3', 6)])
        self.assertEqual(local[('prompt_attention_3', 0)].shape,
                         attention_figure_shape(1 + 2 * (1 + 2), title=True))
        self.assertFalse(osp.isfile(osp.join(runner.log_dir, 'vis_data', 'scalars.json'))
                         and local_scalars(runner))

    def test_bad_settings_fail_before_training(self):
        for vis, message in ((dict(image_indices=[1, 40]), r'image_indices \[40\] are outside '
                              r'the 40 images'),
                             (dict(layers=[2]), r'attention layer 2 is outside the depth of this ViT \(2 layers')):
            for rank_zero in (True, False):  # every rank stops alike
                with self.subTest(rank_zero=rank_zero, **vis), mock.patch(
                        'mmda_vpt.engine.hooks.prompt_visualization_hook.is_main_process',
                        return_value=rank_zero):
                    runner = cls_runner(osp.join(self.tmp.name, f'{vis}{rank_zero}'), vis=vis)
                    with self.assertRaisesRegex(ValueError, message):
                        runner.train()
                    self.assertEqual(runner.iter, 0)

    def test_two_processes(self):
        # torchrun, 2 CPU processes: rank 0 draws alone (no forward through the DDP wrapper,
        # no collective), the run neither hangs nor trains differently from one without it.
        states = {}
        for visualize in (False, True):
            work_dir = osp.join(self.tmp.name, str(visualize))
            env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
            proc = subprocess.run(
                [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                 '--master_port', str(free_port()),
                 osp.join(REPO, 'tests', 'data', 'mapping', 'dist_mapping.py'), work_dir] +
                (['--visualize'] if visualize else []),
                cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
            self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
            states[visualize] = [torch.load(osp.join(work_dir, f'rank{r}.pth'),
                                            weights_only=True) for r in range(2)]
            if visualize:
                images = glob.glob(osp.join(work_dir, '*', 'vis_data', 'vis_image', '*.png'))
                # 2 test images and the map, before training and after it (7 iterations).
                self.assertEqual(sorted(osp.basename(p) for p in images),
                                 sorted(f'{n}_{s}.png' for s in (0, 14) for n in (
                                     'class_to_prompt_map', 'prompt_attention_0',
                                     'prompt_attention_19')))
        for rank in range(2):
            for plain, drawn in zip(states[False][rank], states[True][rank]):
                self.assertEqual(sorted(plain), sorted(drawn))
                for key, value in plain.items():
                    self.assertTrue(torch.equal(value, drawn[key]), f'rank {rank}: {key}')

    def test_rank_zero_only(self):
        runner = cls_runner(self.tmp.name, epochs=1)
        with mock.patch('mmda_vpt.engine.hooks.prompt_visualization_hook.is_main_process',
                        return_value=False):
            runner.train()
        self.assertEqual(local_images(runner), {})
