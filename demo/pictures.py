"""The demo's pictures (PNG, matplotlib): attention maps, class-to-prompt maps, loss curves and
a segmentation overlay. Every function draws what the run recorded; nothing is computed here.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = [
    'read_scalars', 'plot_attention', 'plot_prompt_maps', 'plot_loss_curves',
    'plot_seg_overlay', 'plot_pretrain_curve'
]


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def read_scalars(path: str) -> List[dict]:
    """The records of an mmengine ``vis_data/scalars.json`` (one JSON object per line)."""
    records = []
    if path and osp.isfile(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    records.append(json.loads(line))
    return records


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Nearest upsampling of an (h, w) map to (size, size)."""
    h, w = grid.shape
    return np.kron(grid, np.ones((size // h, size // w)))


def plot_attention(out: str, captures: Dict[str, dict], methods: Sequence[str],
                   titles: Dict[str, str]) -> None:
    """The paper's Fig. 3 on the demo: attention of the CLS token and of every prompt over the
    patches, in a shallow and a guided layer, one row per image and method.

    Args:
        out: PNG path.
        captures: Per method, what ``capture_attention`` returned: ``images`` (B, H, W),
            ``labels``, ``preds``, ``layers`` (shallow, guided), ``maps_<layer>``
            (B, 1 + M, h, w) and optionally ``class_to_prompt``.
        methods: Methods to draw, in order (e.g. VPT-Deep then DA-VPT).
        titles: Display name of every method.
    """
    plt = _pyplot()
    first = captures[methods[0]]
    layers = [int(v) for v in first['layers']]
    num_images = len(first['labels'])
    rows_per_image = len(methods)
    counts = [captures[methods[0]][f'maps_{layer}'].shape[1] for layer in layers]
    columns = 1 + sum(counts)
    fig, axes = plt.subplots(num_images * rows_per_image, columns,
                             figsize=(1.15 * columns, 1.3 * num_images * rows_per_image),
                             squeeze=False)
    for i in range(num_images):
        for j, method in enumerate(methods):
            cap = captures[method]
            row = axes[i * rows_per_image + j]
            image = cap['images'][i]
            size = image.shape[-1]
            label, pred = int(cap['labels'][i]), int(cap['preds'][i])
            row[0].imshow(image, cmap='gray')
            row[0].set_title(f'{titles[method]}\nlabel {label}, pred {pred}', fontsize=6)
            positive = None
            if cap.get('class_to_prompt') is not None:
                positive = int(cap['class_to_prompt'][label])
            col = 1
            for layer, count in zip(layers, counts):
                maps = cap[f'maps_{layer}'][i]
                for k in range(count):
                    ax = row[col]
                    ax.imshow(image, cmap='gray')
                    grid = maps[k] / max(float(maps[k].max()), 1e-12)
                    ax.imshow(_upsample(grid, size), cmap='jet', alpha=0.55, vmin=0, vmax=1)
                    name = 'CLS' if k == 0 else f'p{k - 1}'
                    if k > 0 and positive == k - 1 and layer == layers[-1]:
                        name = f'*p{k - 1}'
                    ax.set_title(f'L{layer} {name}', fontsize=6)
                    col += 1
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle('Attention of the CLS token and of the prompts over the patches '
                 f'(layer {layers[0]}: shallow, layer {layers[-1]}: guided; *p: the prompt of '
                 "the image's class)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)


def plot_prompt_maps(out: str, maps_by_run: Dict[str, List[tuple]], num_prompts: int,
                     class_names: Optional[Sequence[str]] = None) -> None:
    """Class-to-prompt maps over the epochs, one panel per run.

    Args:
        out: PNG path.
        maps_by_run: Per run, ``[(epoch, class_to_prompt list), ...]``; epoch 0 is the map
            before training.
        num_prompts: M, for the colour scale.
        class_names: The row labels. Defaults to None (the class indices).
    """
    plt = _pyplot()
    runs = [name for name, maps in maps_by_run.items() if maps]
    if not runs:
        return
    cols = min(len(runs), 3)
    rows = -(-len(runs) // cols)
    num_classes = len(next(iter(maps_by_run[runs[0]]))[1])
    height = 3.0 * max(1.0, num_classes / 10)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, height * rows), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.axis('off')
    for ax, name in zip(axes.flat, runs):
        maps = maps_by_run[name]
        grid = np.array([m for _, m in maps]).T  # classes x epochs
        ax.imshow(grid, cmap='tab10', vmin=0, vmax=9, aspect='auto', interpolation='nearest')
        for (c, e), value in np.ndenumerate(grid):
            ax.text(e, c, str(value), ha='center', va='center', fontsize=7, color='white')
        ax.set_xticks(range(len(maps)))
        ax.set_xticklabels([str(epoch) for epoch, _ in maps], fontsize=7)
        ax.set_yticks(range(grid.shape[0]))
        if class_names is not None:
            ax.set_yticklabels(class_names, fontsize=6)
        ax.set_xlabel('after epoch (0: initial k-means)', fontsize=8)
        ax.set_ylabel('class', fontsize=8)
        ax.set_title(name, fontsize=9)
    inches = height * rows  # the title's room at the top, whatever the figure's height
    fig.suptitle(f'Class-to-prompt map (prompt index of every class, M = {num_prompts})',
                 fontsize=9, y=1 - 0.08 / inches, va='top')
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.28 / inches))
    fig.savefig(out, dpi=130)
    plt.close(fig)


def _train_series(records: List[dict], key: str):
    steps = [r['step'] for r in records if key in r and 'lr' in r]
    values = [r[key] for r in records if key in r and 'lr' in r]
    return np.array(steps), np.array(values)


def plot_loss_curves(out: str, scalars_by_run: Dict[str, str]) -> None:
    """Training curves of the loss terms, from each run's ``scalars.json``.

    The cross-entropy is logged as ``loss_cls`` where ``PromptMetricLossHook`` trains (``loss``
    is then the total) and as ``loss`` without it; the metric terms are logged as
    ``loss_ml_patch`` and ``loss_ml_cls`` (already weighted by beta and lambda).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    for name, path in scalars_by_run.items():
        records = read_scalars(path)
        ce_key = 'loss_cls' if any('loss_cls' in r for r in records) else 'loss'
        for ax, key in zip(axes, (ce_key, 'loss_ml_patch', 'loss_ml_cls')):
            steps, values = _train_series(records, key)
            if len(steps):
                ax.plot(steps, values, label=name, linewidth=1.2)
    titles = ('cross-entropy', 'beta * L_ML(x, p)  (loss_ml_patch)',
              'lambda * L_ML(p, x_cls)  (loss_ml_cls)')
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel('iteration', fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)


def plot_pretrain_curve(out: str, scalars_path: str) -> None:
    """The pre-training loss on Fashion-MNIST."""
    plt = _pyplot()
    steps, values = _train_series(read_scalars(scalars_path), 'loss')
    if not len(steps):
        return
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.plot(steps, values, linewidth=1.2)
    ax.set_xlabel('iteration', fontsize=8)
    ax.set_title('Pre-training on Fashion-MNIST: loss', fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)


def plot_seg_overlay(out: str, samples: List[dict], classes: Sequence[str],
                     palette: Sequence[Sequence[int]], title: Optional[str] = None) -> None:
    """Image, ground truth and prediction overlays of the held-out segmentation images
    (class 0, the background, and unlabelled pixels are left uncoloured).

    Args:
        out: PNG path.
        samples: ``dict(name, image (H, W, 3) uint8 RGB, gt (H, W), pred (H, W))`` each.
        classes: Class names.
        palette: RGB colour of every class.
        title: Figure title.
    """
    plt = _pyplot()
    from matplotlib.patches import Patch
    colours = np.array(palette, dtype=np.float32)
    ratios = [s['image'].shape[0] / s['image'].shape[1] for s in samples]
    fig, axes = plt.subplots(len(samples), 3, figsize=(10, 3.3 * sum(ratios) + 1.5),
                             squeeze=False, layout='constrained',
                             gridspec_kw=dict(height_ratios=ratios))
    for row, sample in zip(axes, samples):
        image = sample['image'].astype(np.float32)
        for ax, key, name in zip(row, (None, 'gt', 'pred'),
                                 ('image', 'ground truth', 'prediction')):
            if key is None:
                shown = image
            else:
                labels = sample[key]
                overlay = colours[np.clip(labels, 0, len(colours) - 1)]
                valid = ((labels != 255) & (labels != 0))[..., None]  # 0: background
                shown = np.where(valid, 0.45 * image + 0.55 * overlay, image)
            ax.imshow(shown.clip(0, 255).astype(np.uint8))
            ax.set_title(f'{sample["name"]}: {name}', fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    handles = [Patch(color=np.array(c) / 255.0, label=n) for n, c in zip(classes, palette)]
    fig.legend(handles=handles, loc='outside lower center', ncol=len(classes), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(out, dpi=110)
    plt.close(fig)
