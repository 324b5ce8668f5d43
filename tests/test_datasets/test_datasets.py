"""Tests of FGVCDataset, VTABDataset and ClassBalancedSampler."""
import json
import os
import os.path as osp
import tempfile
from collections import Counter
from unittest import TestCase, mock

import cv2
import numpy as np
from mmengine.dataset import BaseDataset as EngineBaseDataset
from mmengine.logging import MMLogger
from mmengine.registry import DATA_SAMPLERS as ENGINE_SAMPLERS
from mmpretrain.registry import DATA_SAMPLERS as PRETRAIN_SAMPLERS
from mmpretrain.registry import DATASETS as PRETRAIN_DATASETS
from mmseg.registry import DATA_SAMPLERS as SEG_SAMPLERS

import mmda_vpt  # noqa: F401
from mmda_vpt.datasets import ClassBalancedSampler, FGVCDataset, SplitFileError, VTABDataset

from tests.reference_code import reference_module, requires_reference


def write_image(path: str, seed: int = 0) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    cv2.imwrite(path, image)


def write_json(path: str, entries: dict, indent=1) -> None:
    with open(path, 'w') as f:
        json.dump(entries, f, indent=indent)


class TestFGVCDataset(TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = osp.join(self.tmp.name, 'cub')
        # NABirds-like non-contiguous class ids 4, 17, 30.
        self.train = {'a/0.jpg': 17, 'b/1.jpg': 4, 'c/2.jpg': 30, 'a/3.jpg': 17}
        self.val = {'b/4.jpg': 4}
        self.test = {'c/5.jpg': 30, 'a/6.jpg': 17}
        for split, entries in (('train', self.train), ('val', self.val), ('test', self.test)):
            for i, rel in enumerate(entries):
                write_image(osp.join(self.root, 'images', rel), seed=i)
            write_json(osp.join(self.root, f'{split}.json'), entries)

    def tearDown(self):
        self.tmp.cleanup()

    def build(self, **kwargs):
        kwargs.setdefault('num_classes', 3)
        return FGVCDataset(data_root=self.root, **kwargs)

    def test_registered(self):
        self.assertIs(PRETRAIN_DATASETS.get('FGVCDataset'), FGVCDataset)
        dataset = PRETRAIN_DATASETS.build(
            dict(type='FGVCDataset', data_root=self.root, num_classes=3, split='test'))
        self.assertEqual(len(dataset), 2)

    def test_splits_and_sorted_labels(self):
        train = self.build(split='train')
        self.assertEqual(len(train), 4)
        # VPT's mapping: the sorted distinct labels of train.json -> 0..C-1.
        self.assertEqual(list(train.get_gt_labels()), [1, 0, 2, 1])
        self.assertEqual(train.metainfo['classes'], ('4', '17', '30'))
        self.assertEqual(train.get_data_info(0)['img_path'],
                         osp.join(self.root, 'images', 'a/0.jpg'))
        self.assertEqual(list(self.build(split='val').get_gt_labels()), [0])
        self.assertEqual(list(self.build(split='test').get_gt_labels()), [2, 1])
        trainval = self.build(split='trainval')
        self.assertEqual(len(trainval), 5)
        self.assertEqual(list(trainval.get_gt_labels()), [1, 0, 2, 1, 0])

    def test_pipeline(self):
        pipeline = [dict(type='LoadImageFromFile'), dict(type='RandomResizedCrop', scale=32),
                    dict(type='PackInputs')]
        sample = self.build(split='train', pipeline=pipeline)[2]
        self.assertEqual(tuple(sample['inputs'].shape), (3, 32, 32))
        self.assertEqual(int(sample['data_samples'].gt_label), 2)

    def test_image_dir_and_ann_dir(self):
        # Flowers / Cars keep the images next to the JSON files (image_dir='').
        root = osp.join(self.tmp.name, 'cars')
        write_image(osp.join(root, 'cars_train', '0.jpg'))
        os.makedirs(osp.join(root, 'splits'))
        write_json(osp.join(root, 'splits', 'train.json'), {'cars_train/0.jpg': 0})
        dataset = FGVCDataset(num_classes=1, data_root=root, image_dir='', ann_dir='splits')
        self.assertEqual(dataset.get_data_info(0)['img_path'],
                         osp.join(root, 'cars_train', '0.jpg'))

    def test_identity_labels(self):
        root = osp.join(self.tmp.name, 'flowers')
        for i in range(3):
            write_image(osp.join(root, 'images', f'{i}.jpg'))
        write_json(osp.join(root, 'train.json'), {'0.jpg': 2, '1.jpg': 0, '2.jpg': 1})
        dataset = FGVCDataset(num_classes=3, data_root=root, label_mapping='identity')
        self.assertEqual(list(dataset.get_gt_labels()), [2, 0, 1])
        dataset = FGVCDataset(num_classes=5, data_root=root, label_mapping='identity')
        self.assertEqual(len(dataset.metainfo['classes']), 5)

    def test_missing_image(self):
        entries = dict(self.test)
        entries['a/missing.jpg'] = 17
        write_json(osp.join(self.root, 'test.json'), entries)
        path = osp.join(self.root, 'test.json')
        # indent=1: the third entry is on line 4.
        with self.assertRaisesRegex(SplitFileError,
                                    rf"{path}, line 4: image 'a/missing.jpg' does not exist"):
            self.build(split='test')
        # Not checked on request (for slow file systems).
        self.assertEqual(len(self.build(split='test', check_files=False)), 3)

    def test_label_not_a_class(self):
        write_json(osp.join(self.root, 'val.json'), {'b/4.jpg': 4, 'a/0.jpg': 99})
        path = osp.join(self.root, 'val.json')
        train = osp.join(self.root, 'train.json')
        with self.assertRaisesRegex(
                SplitFileError,
                rf'{path}, line 3: label 99 is not one of the 3 classes that {train} defines'):
            self.build(split='val')

    def test_label_out_of_range_identity(self):
        write_json(osp.join(self.root, 'test.json'), {'c/5.jpg': 1, 'a/6.jpg': 3}, indent=None)
        path = osp.join(self.root, 'test.json')
        with self.assertRaisesRegex(SplitFileError,
                                    rf'{path}, line 1: label 3 is outside \[0, 3\)'):
            self.build(split='test', label_mapping='identity')

    def test_wrong_class_count(self):
        train = osp.join(self.root, 'train.json')
        with self.assertRaisesRegex(
                SplitFileError,
                rf'{train}, line 4 \(label 30 is the first beyond 2 classes\): the file holds '
                '3 distinct labels but num_classes is 2'):
            self.build(split='test', num_classes=2)
        with self.assertRaisesRegex(SplitFileError, 'holds 3 distinct labels but num_classes '
                                    'is 4'):
            self.build(split='test', num_classes=4)

    def test_malformed_files(self):
        path = osp.join(self.root, 'val.json')
        with open(path, 'w') as f:
            f.write('{\n "b/4.jpg": 4,\n "a/0.jpg" 17\n}\n')
        with self.assertRaisesRegex(SplitFileError, rf'{path}, line 3: not valid JSON'):
            self.build(split='val')
        write_json(path, {'b/4.jpg': 'four'})
        with self.assertRaisesRegex(SplitFileError,
                                    rf"{path}, line 2: label of 'b/4.jpg' must be an integer"):
            self.build(split='val')
        write_json(path, ['b/4.jpg', 4])
        with self.assertRaisesRegex(SplitFileError, 'expected a JSON object'):
            self.build(split='val')
        write_json(path, {})
        with self.assertRaisesRegex(SplitFileError, f'{path}: the split file lists no images'):
            self.build(split='val')

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "split must be one of .*got 'validation'"):
            self.build(split='validation')
        with self.assertRaisesRegex(ValueError, 'num_classes must be a positive int'):
            self.build(num_classes=0)
        with self.assertRaisesRegex(ValueError, "label_mapping must be one of"):
            self.build(label_mapping='dense')
        os.remove(osp.join(self.root, 'test.json'))
        with self.assertRaisesRegex(FileNotFoundError, 'test.json of split .test. does not '
                                    'exist'):
            self.build(split='test')
        with self.assertRaisesRegex(ValueError, '2 class names given for num_classes=3'):
            self.build(split='train', classes=['a', 'b'])


class TestVTABDataset(TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = osp.join(self.tmp.name, 'vtab-1k', 'eurosat')
        self.lists = {
            'train800': [('images/train800/0.jpg', 0), ('images/train800/1.jpg', 3)],
            'val200': [('images/val200/0.jpg', 2)],
            'train800val200': [('images/train800val200/0.jpg', 1),
                               ('images/train800val200/a b.jpg', 9)],
            'test': [('images/test/0.jpg', 5)],
        }
        for split, items in self.lists.items():
            for rel, _ in items:
                write_image(osp.join(self.root, rel))
            self.write_list(split, [f'{rel} {label}' for rel, label in items])

    def tearDown(self):
        self.tmp.cleanup()

    def write_list(self, split, lines):
        with open(osp.join(self.root, f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')

    def test_splits(self):
        for split, items in self.lists.items():
            dataset = VTABDataset(num_classes=10, data_root=self.root, split=split)
            self.assertEqual(list(dataset.get_gt_labels()), [label for _, label in items])
            self.assertEqual(dataset.get_data_info(0)['img_path'],
                             osp.join(self.root, items[0][0]))
        # A path with a space: the label is the last field.
        dataset = VTABDataset(num_classes=10, data_root=self.root)
        self.assertEqual(dataset.split, 'train800val200')
        self.assertTrue(dataset.get_data_info(1)['img_path'].endswith('a b.jpg'))
        self.assertEqual(dataset.metainfo['classes'], tuple(str(i) for i in range(10)))

    def test_registered_with_pipeline(self):
        dataset = PRETRAIN_DATASETS.build(
            dict(type='VTABDataset', data_root=self.root, num_classes=10, split='test',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='Resize', scale=(24, 24)),
                           dict(type='PackInputs')]))
        sample = dataset[0]
        self.assertEqual(tuple(sample['inputs'].shape), (3, 24, 24))
        self.assertEqual(int(sample['data_samples'].gt_label), 5)

    def test_ann_file_and_prefix(self):
        os.makedirs(osp.join(self.root, 'lists'))
        with open(osp.join(self.root, 'lists', 'mine.txt'), 'w') as f:
            f.write('train800/0.jpg 4\n')
        dataset = VTABDataset(num_classes=10, data_root=self.root, split='train800',
                              ann_file='lists/mine.txt', data_prefix='images')
        self.assertEqual(dataset.get_data_info(0)['img_path'],
                         osp.join(self.root, 'images', 'train800/0.jpg'))

    def test_missing_image(self):
        self.write_list('test', ['images/test/0.jpg 5', '', 'images/test/gone.jpg 1'])
        path = osp.join(self.root, 'test.txt')
        with self.assertRaisesRegex(
                SplitFileError, rf"{path}, line 3: image 'images/test/gone.jpg' does not exist"):
            VTABDataset(num_classes=10, data_root=self.root, split='test')

    def test_label_out_of_range(self):
        self.write_list('val200', ['images/val200/0.jpg 2', 'images/val200/0.jpg 10'])
        path = osp.join(self.root, 'val200.txt')
        with self.assertRaisesRegex(SplitFileError,
                                    rf'{path}, line 2: label 10 is outside \[0, 10\)'):
            VTABDataset(num_classes=10, data_root=self.root, split='val200')
        self.write_list('val200', ['images/val200/0.jpg -1'])
        with self.assertRaisesRegex(SplitFileError,
                                    rf'{path}, line 1: label -1 is outside \[0, 10\)'):
            VTABDataset(num_classes=10, data_root=self.root, split='val200')

    def test_malformed_lines(self):
        path = osp.join(self.root, 'test.txt')
        self.write_list('test', ['images/test/0.jpg 5', 'images/test/0.jpg'])
        with self.assertRaisesRegex(SplitFileError,
                                    rf'{path}, line 2: expected "<image path> <label>"'):
            VTABDataset(num_classes=10, data_root=self.root, split='test')
        self.write_list('test', ['images/test/0.jpg five'])
        with self.assertRaisesRegex(SplitFileError,
                                    rf"{path}, line 1: label 'five' is not an integer"):
            VTABDataset(num_classes=10, data_root=self.root, split='test')

    def test_bad_split(self):
        with self.assertRaisesRegex(ValueError, "split must be one of .*got 'train'"):
            VTABDataset(num_classes=10, data_root=self.root, split='train')


class LabelledDataset(EngineBaseDataset):
    """An mmengine dataset of given labels (no images), answering get_cat_ids."""

    def __init__(self, labels):
        self.labels = list(labels)
        super().__init__(serialize_data=False)

    def load_data_list(self):
        return [dict(gt_label=int(label)) for label in self.labels]

    def get_cat_ids(self, idx):
        return [self.get_data_info(idx)['gt_label']]


class TestClassBalancedSampler(TestCase):

    def setUp(self):
        # Imbalanced: class 0 has 40 samples, class 1 has 8, class 2 has 2.
        self.labels = np.array([0] * 40 + [1] * 8 + [2] * 2)
        self.dataset = LabelledDataset(self.labels)

    def test_registered_everywhere(self):
        for registry in (ENGINE_SAMPLERS, PRETRAIN_SAMPLERS, SEG_SAMPLERS):
            sampler = registry.build(
                dict(type='ClassBalancedSampler', samples_per_class=2, shuffle=True),
                default_args=dict(dataset=self.dataset, seed=0))
            self.assertIsInstance(sampler, ClassBalancedSampler)

    def test_balanced_runs(self):
        sampler = ClassBalancedSampler(self.dataset, samples_per_class=4, seed=0)
        indices = list(sampler)
        self.assertEqual(len(indices), len(sampler))
        self.assertEqual(len(indices), 52)  # 50 rounded up to a multiple of 4
        labels = self.labels[indices]
        # Runs of 4 samples of one class.
        for start in range(0, len(labels), 4):
            self.assertEqual(len(set(labels[start:start + 4])), 1)
        # Every class equally often (up to one run at the cut).
        counts = Counter(labels.tolist())
        self.assertEqual(set(counts), {0, 1, 2})
        self.assertLessEqual(max(counts.values()) - min(counts.values()), 4)
        # A small class repeats, but a run only repeats a sample when the class is used up.
        self.assertEqual(set(np.array(indices)[labels == 2].tolist()), {48, 49})
        run = [i for i in indices if self.labels[i] == 1][:8]
        self.assertEqual(sorted(run), list(range(40, 48)))

    def test_epochs_and_seed(self):
        sampler = ClassBalancedSampler(self.dataset, samples_per_class=2, seed=3)
        first = list(sampler)
        self.assertEqual(first, list(sampler))
        sampler.set_epoch(1)
        self.assertNotEqual(first, list(sampler))
        other = ClassBalancedSampler(self.dataset, samples_per_class=2, seed=3)
        other.set_epoch(1)
        self.assertEqual(list(sampler), list(other))

    def test_no_shuffle(self):
        sampler = ClassBalancedSampler(self.dataset, samples_per_class=3, shuffle=False, seed=0)
        self.assertEqual(list(sampler)[:9], [0, 1, 2, 40, 41, 42, 48, 49, 48])

    def test_distributed_chunks(self):
        chunks = []
        for rank in range(3):
            with mock.patch('mmda_vpt.datasets.class_balanced_sampler.get_dist_info',
                            return_value=(rank, 3)):
                sampler = ClassBalancedSampler(self.dataset, samples_per_class=4, seed=5)
            chunks.append(list(sampler))
        # ceil(50 / 3) = 17 per rank, rounded up to 20 to keep runs of 4 whole.
        self.assertEqual([len(c) for c in chunks], [20, 20, 20])
        self.assertEqual(sum(chunks, []), sampler.global_indices())
        for chunk in chunks:
            labels = self.labels[chunk]
            for start in range(0, 20, 4):
                self.assertEqual(len(set(labels[start:start + 4])), 1)

    def test_mmpretrain_dataset(self):
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(6):
                write_image(osp.join(tmp, f'{i}.jpg'))
            with open(osp.join(tmp, 'train800.txt'), 'w') as f:
                f.write(''.join(f'{i}.jpg {int(i >= 4)}\n' for i in range(6)))
            dataset = VTABDataset(num_classes=2, data_root=tmp, split='train800')
            sampler = ClassBalancedSampler(dataset, samples_per_class=2, seed=0)
            self.assertEqual(len(sampler), 6)
            counts = Counter(dataset.get_gt_labels()[list(sampler)].tolist())
            # Three runs of 2: one round over both classes, then one more run.
            self.assertEqual(sorted(counts.values()), [2, 4])

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, 'samples_per_class must be a positive int'):
            ClassBalancedSampler(self.dataset, samples_per_class=0)
        with self.assertRaisesRegex(TypeError, 'needs a dataset with get_gt_labels'):
            ClassBalancedSampler(list(range(4)), samples_per_class=2)
        with self.assertRaisesRegex(ValueError, 'the dataset is empty'):
            ClassBalancedSampler(LabelledDataset([]), samples_per_class=2)


def imbalanced_labels(num_classes, low, high, seed=0):
    """Labels of ``num_classes`` classes of ``low``..``high`` samples each, shuffled."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), rng.integers(low, high + 1, num_classes))
    return labels[rng.permutation(len(labels))]


def slot_statistics(batches, labels, samples_per_class):
    """What the authors' sampler promises, measured on the batches of some epochs.

    Returns a dict: batches per epoch, the distinct classes in a batch, the images a class has
    in a batch, whether every slot holds one class with as many distinct images as the class
    has (up to ``samples_per_class``), and the mean fraction of the images an epoch covers.
    """
    sizes = np.bincount(labels)
    distinct, per_class, slots_ok, coverage = set(), set(), True, []
    for epoch in batches:
        for batch in epoch:
            classes = labels[batch]
            counts = Counter(classes.tolist())
            distinct.add(len(counts))
            per_class.update(counts.values())
            for start in range(0, len(batch), samples_per_class):
                slot = batch[start:start + samples_per_class]
                cls = labels[slot]
                slots_ok &= len(set(cls.tolist())) == 1 and len(set(slot)) == min(
                    samples_per_class, sizes[cls[0]])
        coverage.append(len({i for batch in epoch for i in batch}) / len(labels))
    return dict(batches=sorted({len(epoch) for epoch in batches}), distinct=sorted(distinct),
                per_class=sorted(per_class), slots_ok=slots_ok,
                coverage=float(np.mean(coverage)))


def expected_coverage(labels, batch_size, samples_per_class):
    """The expected fraction of the images an epoch of independent class-slot batches covers
    (more classes than slots)."""
    sizes = np.bincount(labels)
    slots = batch_size // samples_per_class
    batches = len(labels) // batch_size
    # An image is taken by a batch when its class fills a slot and the slot picks the image.
    hit = slots / len(sizes) * np.minimum(samples_per_class, sizes) / sizes
    return float((sizes * (1 - (1 - hit)**batches)).sum() / len(labels))


class TestClassSlots(TestCase):
    """mode='class_slots': the batches of the authors' Dataset/class_sampler.py."""

    def ours(self, labels, batch_size, samples_per_class, epochs=20, seed=0):
        sampler = ClassBalancedSampler(LabelledDataset(labels), samples_per_class,
                                       mode='class_slots', batch_size=batch_size, seed=seed)
        batches = []
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            indices = list(sampler)
            self.assertEqual(len(indices), len(sampler))
            batches.append([indices[i:i + batch_size]
                            for i in range(0, len(indices), batch_size)])
        return batches

    def test_more_classes_than_slots(self):
        # 40 classes of 1 to 12 images, 16 slots of 2: a class with 1 image repeats it.
        labels = imbalanced_labels(40, 1, 12)
        stats = slot_statistics(self.ours(labels, 32, 2), labels, 2)
        self.assertEqual(stats['batches'], [len(labels) // 32])
        self.assertEqual(stats['distinct'], [16])
        self.assertEqual(stats['per_class'], [2])
        self.assertTrue(stats['slots_ok'])
        self.assertLess(abs(stats['coverage'] - expected_coverage(labels, 32, 2)), 0.03)
        # Batch 64 with 4 per class (the authors' vitb_dogs).
        stats = slot_statistics(self.ours(labels, 64, 4), labels, 4)
        self.assertEqual((stats['batches'], stats['distinct'], stats['per_class']),
                         ([len(labels) // 64], [16], [4]))
        self.assertTrue(stats['slots_ok'])

    def test_fewer_classes_than_slots(self):
        # 5 classes (Retinopathy) for 16 slots: 3 slots each and one class a fourth.
        labels = imbalanced_labels(5, 20, 300)
        stats = slot_statistics(self.ours(labels, 32, 2), labels, 2)
        self.assertEqual(stats['batches'], [len(labels) // 32])
        self.assertEqual(stats['distinct'], [5])
        self.assertEqual(stats['per_class'], [6, 8])
        self.assertTrue(stats['slots_ok'])
        # 2 classes (Camelyon): 8 slots, 16 images each.
        labels = imbalanced_labels(2, 100, 300)
        stats = slot_statistics(self.ours(labels, 32, 2), labels, 2)
        self.assertEqual((stats['distinct'], stats['per_class']), ([2], [16]))
        # The classes are drawn uniformly, whatever their size.
        counts = Counter(labels[i] for epoch in self.ours(labels, 32, 2)
                         for batch in epoch for i in batch)
        self.assertEqual(counts[0], counts[1])

    def test_class_frequencies_are_uniform(self):
        labels = imbalanced_labels(40, 1, 30)
        counts = np.bincount(labels[[i for epoch in self.ours(labels, 32, 2, epochs=30)
                                     for batch in epoch for i in batch]], minlength=40)
        # Every class fills about as many slots (binomial spread: 6 standard deviations).
        slots = counts / 2
        mean = slots.mean()
        self.assertLess(np.abs(slots - mean).max(), 6 * np.sqrt(mean))
        self.assertGreater(np.abs(slots - mean).max(), 0)

    def test_epochs_seed_and_processes(self):
        labels = imbalanced_labels(12, 3, 9)
        dataset = LabelledDataset(labels)
        sampler = ClassBalancedSampler(dataset, 2, mode='class_slots', batch_size=8, seed=4)
        first = list(sampler)
        self.assertEqual(first, list(sampler))
        sampler.set_epoch(1)
        self.assertNotEqual(first, list(sampler))
        again = ClassBalancedSampler(dataset, 2, mode='class_slots', batch_size=8, seed=4)
        again.set_epoch(1)
        self.assertEqual(list(sampler), list(again))
        # 3 processes: len(dataset) // (8 * 3) batches each, contiguous chunks of whole batches
        # of the one global list.
        chunks = []
        for rank in range(3):
            with mock.patch('mmda_vpt.datasets.class_balanced_sampler.get_dist_info',
                            return_value=(rank, 3)):
                ranked = ClassBalancedSampler(dataset, 2, mode='class_slots', batch_size=8,
                                              seed=4)
            self.assertEqual(ranked.num_batches, len(labels) // 24)
            chunks.append(list(ranked))
        self.assertEqual([len(c) for c in chunks], [len(labels) // 24 * 8] * 3)
        self.assertEqual(sum(chunks, []), ranked.global_indices())
        for chunk in chunks:
            stats = slot_statistics([[chunk[i:i + 8] for i in range(0, len(chunk), 8)]],
                                    labels, 2)
            self.assertEqual((stats['distinct'], stats['per_class']), ([4], [2]))
            self.assertTrue(stats['slots_ok'])
        # A dataset smaller than a batch still gives one batch.
        tiny = ClassBalancedSampler(LabelledDataset([0, 1, 1]), 2, mode='class_slots',
                                    batch_size=8, seed=0)
        self.assertEqual((tiny.num_batches, len(list(tiny))), (1, 8))

    def test_rounds_stay_the_default(self):
        dataset = LabelledDataset(imbalanced_labels(5, 2, 9))
        default = ClassBalancedSampler(dataset, 2, seed=1)
        rounds = ClassBalancedSampler(dataset, 2, seed=1, mode='rounds')
        self.assertEqual(default.mode, 'rounds')
        self.assertEqual(list(default), list(rounds))
        self.assertEqual(len(default), len(dataset) + len(dataset) % 2)

    def test_errors(self):
        dataset = LabelledDataset([0, 1, 2, 3])
        with self.assertRaisesRegex(ValueError, r"mode must be one of \('rounds', "
                                    r"'class_slots'\), got 'slots'"):
            ClassBalancedSampler(dataset, 2, mode='slots')
        with self.assertRaisesRegex(ValueError, "mode='class_slots' needs batch_size"):
            ClassBalancedSampler(dataset, 2, mode='class_slots')
        with self.assertRaisesRegex(ValueError, 'batch_size must be a positive multiple of '
                                    'samples_per_class=4, got 6'):
            ClassBalancedSampler(dataset, 4, mode='class_slots', batch_size=6)
        with self.assertRaisesRegex(ValueError, 'shuffle=False is not supported'):
            ClassBalancedSampler(dataset, 2, mode='class_slots', batch_size=4, shuffle=False)
        with self.assertLogs(MMLogger.get_current_instance(), level='WARNING') as logs:
            ClassBalancedSampler(dataset, 2, batch_size=4, seed=0)
        self.assertIn("mode='rounds' ignores it", '\n'.join(logs.output))


@requires_reference
class TestClassSlotsAgainstTheAuthors(TestCase):
    """The statistics of our class slots and of the authors' ClassSampler on the same labels."""

    @classmethod
    def setUpClass(cls):
        cls.module = reference_module('Dataset/class_sampler.py')

    def theirs(self, labels, batch_size, samples_per_class, epochs=20):
        import random
        random.seed(0)
        image_dict = {int(c): np.flatnonzero(labels == c).tolist() for c in np.unique(labels)}
        opt = type('Opt', (), dict(batch_size=batch_size, samples_per_class=samples_per_class))
        sampler = self.module.ClassSampler(opt, image_dict, len(labels), has_path=False)
        return [list(sampler) for _ in range(epochs)]

    def test_same_statistics(self):
        for classes, low, high, batch_size, per_class in ((40, 1, 12, 32, 2),
                                                          (200, 20, 40, 32, 2),
                                                          (40, 2, 30, 64, 4), (5, 20, 300, 32, 2),
                                                          (2, 100, 300, 32, 2)):
            with self.subTest(classes=classes, batch_size=batch_size):
                labels = imbalanced_labels(classes, low, high)
                theirs = slot_statistics(self.theirs(labels, batch_size, per_class), labels,
                                         per_class)
                ours = slot_statistics(TestClassSlots.ours(self, labels, batch_size, per_class),
                                       labels, per_class)
                self.assertTrue(theirs['slots_ok'] and ours['slots_ok'])
                for key in ('batches', 'distinct', 'per_class'):
                    self.assertEqual(ours[key], theirs[key], key)
                self.assertLess(abs(ours['coverage'] - theirs['coverage']), 0.03)
