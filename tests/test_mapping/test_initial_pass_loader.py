"""Tests of the class-to-prompt map's initial-pass data (mmda_vpt.mapping.initial_pass_loader)."""
from types import SimpleNamespace
from unittest import TestCase

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DATASETS, DefaultScope

import mmda_vpt  # noqa: F401
from mmda_vpt.mapping.initial_pass_loader import (apply_quota, build_initial_pass_loader,
                                                   dataset_labels, find_pipeline,
                                                   select_per_class, split_batch)

from tests.toy_datasets import DigitsDataset  # noqa: F401  (registers DigitsDataset)

TRAIN_PIPELINE = [dict(type='RandomFlip', prob=1.0, direction='horizontal'),
                  dict(type='PackInputs')]
TEST_PIPELINE = [dict(type='PackInputs')]


def fake_runner(train_dataset: dict, test_pipeline=TEST_PIPELINE, batch_size: int = 8):
    """What the loader reads of a runner: its config's data loaders."""
    cfg = Config(dict(
        train_dataloader=dict(batch_size=batch_size, num_workers=0, dataset=train_dataset,
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        test_dataloader=dict(dataset=dict(type='DigitsDataset', pipeline=test_pipeline))
        if test_pipeline is not None else None))
    return SimpleNamespace(cfg=cfg, train_dataloader=SimpleNamespace(batch_size=batch_size))


class TestSelection(TestCase):

    def test_select_per_class(self):
        labels = np.array([0, 1, 0, 2, 0, 1, 0])
        chosen = select_per_class(labels, 4, 2, seed=0)
        self.assertEqual(np.bincount(labels[chosen], minlength=4).tolist(), [2, 2, 1, 0])
        self.assertEqual(chosen.tolist(), sorted(chosen.tolist()))
        self.assertEqual(select_per_class(labels, 4, 2, seed=0).tolist(), chosen.tolist())

    def test_image_quota(self):
        labels = torch.tensor([[0, 0, 1, -1], [1, 2, 2, 0], [2, 2, 2, 2]])
        served = torch.zeros(3, dtype=torch.long)
        kept = apply_quota(labels, served, 1)
        # Image 0 serves classes 0 and 1, image 1 only class 2, image 2 nothing.
        self.assertEqual(kept.tolist(), [[0, 0, 1, -1], [-1, 2, 2, -1], [-1, -1, -1, -1]])
        self.assertEqual(served.tolist(), [1, 1, 1])
        served = torch.zeros(3, dtype=torch.long)
        kept = apply_quota(labels, served, None)
        self.assertTrue(torch.equal(kept, labels))
        self.assertEqual(served.tolist(), [2, 2, 2])

    def test_dataset_labels(self):
        self.assertEqual(dataset_labels(SimpleNamespace(get_gt_labels=lambda: [3, 1])).tolist(),
                         [3, 1])
        infos = [dict(gt_label=np.array([2])), dict(gt_label=0)]
        dataset = type('Infos', (), dict(get_data_info=lambda self, i: infos[i],
                                         __len__=lambda self: 2))()
        self.assertEqual(dataset_labels(dataset).tolist(), [2, 0])
        self.assertIsNone(dataset_labels(object()))
        with self.assertRaisesRegex(ValueError, 'supports single-label classification, but a '
                                    r'sample has the label \[1, 2\]'):
            dataset_labels(SimpleNamespace(get_gt_labels=lambda: [[1, 2]]))

    def test_split_batch(self):
        same = dict(inputs=[torch.zeros(3, 8, 8)] * 2, data_samples=['a', 'b'])
        self.assertEqual(list(split_batch(same, segmentation=True)), [same])
        mixed = dict(inputs=[torch.zeros(3, 8, 8), torch.zeros(3, 8, 12)],
                     data_samples=['a', 'b'])
        self.assertEqual(list(split_batch(mixed, segmentation=False)), [mixed])
        parts = list(split_batch(mixed, segmentation=True))
        self.assertEqual([p['data_samples'] for p in parts], [['a'], ['b']])
        self.assertEqual([tuple(p['inputs'][0].shape) for p in parts], [(3, 8, 8), (3, 8, 12)])

    def test_find_pipeline_through_wrappers(self):
        inner = dict(type='DigitsDataset', pipeline=TEST_PIPELINE)
        self.assertIs(find_pipeline(dict(type='RepeatDataset', times=2, dataset=inner)),
                      TEST_PIPELINE)
        self.assertIs(find_pipeline(dict(type='ConcatDataset',
                                         datasets=[dict(type='X'), inner])), TEST_PIPELINE)
        self.assertIsNone(find_pipeline(dict(type='X')))
        self.assertIsNone(find_pipeline(None))


class TestBuildInitialPassLoader(TestCase):

    def build(self, runner, **kwargs):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            return build_initial_pass_loader(runner, **dict(
                dict(num_classes=10, samples_per_class=3, seed=0, segmentation=False), **kwargs))

    def test_test_pipeline_and_per_class_choice(self):
        runner = fake_runner(dict(type='DigitsDataset', indices=(0, 200),
                                  pipeline=TRAIN_PIPELINE))
        loader, quota = self.build(runner)
        self.assertIsNone(quota)
        self.assertEqual(loader.batch_size, 8)
        dataset = loader.dataset
        # The test pipeline replaced the training one: no flip.
        self.assertEqual([type(t).__name__ for t in dataset.dataset.pipeline.transforms],
                         ['PackInputs'])
        labels = dataset_labels(dataset.dataset)[dataset.indices]
        self.assertEqual(np.bincount(labels, minlength=10).tolist(), [3] * 10)
        seen = sum(len(batch['data_samples']) for batch in loader)
        self.assertEqual(seen, 30)
        # The whole training set without samples_per_class, in order; own batch size.
        loader, _ = self.build(runner, samples_per_class=None, batch_size=50)
        self.assertEqual(loader.dataset.indices, list(range(200)))
        self.assertEqual(loader.batch_size, 50)

    def test_training_pipeline(self):
        """pipeline='train': the built training dataset, its own (augmenting) pipeline."""
        train_set = dict(type='DigitsDataset', indices=(0, 60), pipeline=TRAIN_PIPELINE)
        runner = fake_runner(train_set)
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            runner.train_dataloader.dataset = DATASETS.build(train_set)
        loader, _ = self.build(runner, pipeline='train')
        self.assertIs(loader.dataset.dataset, runner.train_dataloader.dataset)
        test_loader, _ = self.build(runner)
        self.assertEqual(loader.dataset.indices, test_loader.dataset.indices)  # same choice
        flipped = next(iter(loader))['inputs'][0]
        plain = next(iter(test_loader))['inputs'][0]
        self.assertTrue(torch.equal(flipped, plain.flip(-1)))
        self.assertFalse(torch.equal(flipped, plain))

    def test_segmentation_gets_a_quota(self):
        runner = fake_runner(dict(type='DigitsDataset', indices=(0, 40), pipeline=TRAIN_PIPELINE))
        loader, quota = self.build(runner, segmentation=True, samples_per_class=5, world_size=2)
        self.assertEqual(quota, 3)
        self.assertEqual(sorted(loader.dataset.indices), list(range(40)))
        self.assertNotEqual(loader.dataset.indices, list(range(40)))  # a seeded random order

    def test_errors(self):
        runner = fake_runner(dict(type='DigitsDataset', pipeline=TRAIN_PIPELINE),
                             test_pipeline=None)
        with self.assertRaisesRegex(ValueError, 'neither test_dataloader nor val_dataloader has '
                                    r'a dataset pipeline; pass pipeline=\[...\] to the hook'):
            self.build(runner)
        loader, _ = self.build(runner, pipeline=TEST_PIPELINE)  # an explicit one serves
        self.assertEqual(len(loader.dataset), 30)
        runner = fake_runner(dict(type='DigitsDataset'))
        with self.assertRaisesRegex(ValueError, 'the training dataset config has no pipeline'):
            self.build(runner)
        runner = fake_runner(dict(type='DigitsDataset', pipeline=TRAIN_PIPELINE, classes=10))
        with self.assertRaisesRegex(ValueError, r'training-set labels must be in \[0, 5\), got '
                                    'values from 0 to 9'):
            self.build(runner, num_classes=5)
