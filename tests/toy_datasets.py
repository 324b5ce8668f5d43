"""Small in-memory datasets and configs for runner-level tests.

``DigitsDataset`` serves scikit-learn's digits (real 8x8 handwritten images, 10 classes) as RGB
images; ``ToySegDataset`` draws rectangles of a few classes over a background, with pixel labels
and an ``ignore_index`` border.
"""
from typing import List, Optional, Tuple

import numpy as np
from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS as PRETRAIN_DATASETS
from mmseg.registry import DATASETS as SEG_DATASETS

__all__ = ['DigitsDataset', 'ToySegDataset', 'digits_train_loader', 'tiny_classifier_cfg',
           'tiny_segmentor_cfg']


@PRETRAIN_DATASETS.register_module(force=True)
class DigitsDataset(BaseDataset):
    """scikit-learn's digits as ``size`` x ``size`` RGB images.

    Args:
        size (int): Output side length (nearest upsampling of the 8x8 digits). Defaults to 16.
        indices (tuple, optional): ``(start, stop)`` slice of the 1797 digits. Defaults to None.
        classes (int): Keep only labels below this. Defaults to 10.
    """
    METAINFO = dict(classes=tuple(str(i) for i in range(10)))

    def __init__(self, size: int = 16, indices: Optional[tuple] = None, classes: int = 10,
                 **kwargs) -> None:
        self.size = size
        self.indices = indices
        self.num_keep = classes
        kwargs.setdefault('serialize_data', False)
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        from sklearn.datasets import load_digits
        digits = load_digits()
        images = (digits.images / 16.0 * 255).astype(np.uint8)
        labels = digits.target
        if self.indices is not None:
            images = images[slice(*self.indices)]
            labels = labels[slice(*self.indices)]
        scale = self.size // 8
        data = []
        for image, label in zip(images, labels):
            if label >= self.num_keep:
                continue
            big = np.kron(image, np.ones((scale, scale), dtype=np.uint8))
            rgb = np.repeat(big[..., None], 3, axis=-1)
            data.append(dict(img=rgb, gt_label=int(label), img_shape=rgb.shape[:2],
                             ori_shape=rgb.shape[:2]))
        return data


@SEG_DATASETS.register_module(force=True)
class ToySegDataset(BaseDataset):
    """Rectangles of ``num_classes - 1`` classes on class 0, with an ignore border.

    Args:
        num_samples (int): Number of images. Defaults to 8.
        size (int): Image side. Defaults to 32.
        num_classes (int): Classes including the background. Defaults to 4.
        all_ignored (bool): Label every pixel ``ignore_index``. Defaults to False.
    """
    METAINFO = dict(classes=('bg', 'a', 'b', 'c'), palette=[[0, 0, 0], [255, 0, 0],
                                                         [0, 255, 0], [0, 0, 255]])

    def __init__(self, num_samples: int = 8, size: int = 32, num_classes: int = 4,
                 all_ignored: bool = False, **kwargs) -> None:
        self.num_samples = num_samples
        self.size = size
        self.num_seg_classes = num_classes
        self.all_ignored = all_ignored
        kwargs.setdefault('serialize_data', False)
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        rng = np.random.default_rng(0)
        colours = rng.integers(0, 255, (self.num_seg_classes, 3))
        data = []
        for _ in range(self.num_samples):
            label = np.zeros((self.size, self.size), dtype=np.uint8)
            for cls in range(1, self.num_seg_classes):
                y, x = rng.integers(0, self.size // 2, 2)
                h, w = rng.integers(self.size // 4, self.size // 2, 2)
                label[y:y + h, x:x + w] = cls
            label[:2] = 255
            if self.all_ignored:
                label[:] = 255
            img = colours[np.minimum(label, self.num_seg_classes - 1)].astype(np.uint8)
            img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
            data.append(dict(img=img, gt_seg_map=label, img_shape=label.shape,
                             ori_shape=label.shape, reduce_zero_label=False, seg_fields=[]))
        return data


def digits_train_loader(indices: Tuple[int, int] = (0, 48), batch_size: int = 16) -> dict:
    """A shuffled training loader over ``DigitsDataset`` images ``indices`` (no workers).

    Args:
        indices (tuple): The range of digits. Defaults to (0, 48).
        batch_size (int): The batch size. Defaults to 16.

    Returns:
        dict: The ``train_dataloader`` config.
    """
    return dict(dataset=dict(type='DigitsDataset', indices=indices,
                             pipeline=[dict(type='PackInputs')]),
                batch_size=batch_size, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=True))


def tiny_classifier_cfg(num_classes: int = 10, **backbone) -> dict:
    """A stock mmpretrain ``ImageClassifier`` with a tiny ``DAVPTViT`` on 16x16 inputs."""
    cfg = dict(type='DAVPTViT', arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                          feedforward_channels=64),
               img_size=16, patch_size=4, num_prompts=4, guided_layers=(-1, ),
               norm_cfg=dict(type='LN', eps=1e-6))
    cfg.update(backbone)
    return dict(
        type='ImageClassifier',
        _scope_='mmpretrain',
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3,
                               num_classes=num_classes),
        backbone=cfg,
        neck=None,
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=32,
                  loss=dict(type='CrossEntropyLoss')))


def tiny_segmentor_cfg(num_classes: int = 4, **backbone) -> dict:
    """A stock mmseg ``EncoderDecoder`` with a tiny ``DAVPTViT`` and a SETR-PUP head."""
    cfg = dict(type='DAVPTViT', embed_dims=32, num_layers=2, num_heads=2, mlp_ratio=2,
               img_size=(32, 32), patch_size=4, out_indices=(1, ), num_prompts=4,
               guided_layers=(-1, ), final_norm=False, norm_cfg=dict(type='LN', eps=1e-6))
    cfg.update(backbone)
    return dict(
        type='EncoderDecoder',
        _scope_='mmseg',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[127.5] * 3, std=[127.5] * 3,
                               size=(32, 32), pad_val=0, seg_pad_val=255),
        backbone=cfg,
        decode_head=dict(
            type='SETRUPHead', in_channels=32, channels=16, in_index=0, num_classes=num_classes,
            dropout_ratio=0, norm_cfg=dict(type='BN', requires_grad=True), num_convs=2,
            up_scale=2, kernel_size=3, align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))
