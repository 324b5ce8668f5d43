"""What PromptVisualizationHook costs per validation (issue 25), on the CPU.

One drawing is what the hook does after every validation: the class-to-prompt map's picture and,
for each of its images, one forward with the attention recorded and the attention picture; then
sending them to the visualizer (here LocalVisBackend and TensorboardVisBackend, PNG files and
events in a temporary folder). Beside it, in the same rounds, the eval forward of a validation
batch of the same model gives the cost of one validation image, so the drawing is also stated as
"worth N validation images". Two models: the demo's ViT (6 layers, 64 wide, 28x28 grey images,
10 classes, M = 5) and ViT-B/16 at 224 (M = 10, guided layers 10-11, a 200-class map as CUB's).
Weights are random: the cost does not depend on them.

    python -m benchmarks.visualization_cost            # both models, 5 rounds
    python -m benchmarks.visualization_cost --quick    # the demo's model, 1 round (smoke test)
"""
import argparse
import json
import os.path as osp
import statistics
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from mmengine.visualization import Visualizer
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmda_vpt  # noqa: F401  (registration)
from mmda_vpt.engine.hooks import PromptVisualizationHook
from mmda_vpt.mapping.class_prompt_map import ClassPromptMap
from mmda_vpt.visualization import capture_attention

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO, 'demo', 'configs', 'davpt_vit-demo-p4-fmnist_1xb25-10e_mnist5k-28.py')

#: name: how to build the model, its images and its map.
MODEL_SPECS = {
    'demo': dict(title="the demo's ViT (6 x 64, 28x28 grey)", size=28, channels=1,
                 classes=10, prompts=5, val_batch=25),
    'vit-b': dict(title='ViT-B/16 at 224', size=224, channels=3, classes=200, prompts=10,
                  val_batch=8),
}


def build_model(name: str) -> torch.nn.Module:
    """The classifier of ``name`` (random weights, eval mode)."""
    if name == 'demo':
        cfg = Config.fromfile(DEMO_CONFIG).model
        cfg.backbone.init_cfg = None
    else:
        cfg = Config(dict(
            type='ImageClassifier',
            data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3,
                                   std=[127.5] * 3, num_classes=200),
            backbone=dict(type='DAVPTViT', arch='b', img_size=224, patch_size=16,
                          out_type='cls_token', num_prompts=10, guided_layers=(10, 11)),
            neck=None,
            head=dict(type='LinearClsHead', num_classes=200, in_channels=768)))
    cfg.setdefault('_scope_', 'mmpretrain')
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def digit_items(count: int, size: int, channels: int) -> List[dict]:
    """scikit-learn's digits, upsampled to ``size`` and packed as a pipeline packs them."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    items = []
    for image, label in zip(digits.images[:count], digits.target[:count]):
        big = np.kron((image / 16 * 255).astype(np.uint8),
                      np.ones((size // 8 + 1, size // 8 + 1), np.uint8))[:size, :size]
        tensor = torch.from_numpy(np.repeat(big[None], channels, axis=0).copy())
        items.append(dict(inputs=tensor, data_samples=DataSample().set_gt_label(int(label))))
    return items


def random_map(classes: int, prompts: int, dim: int) -> ClassPromptMap:
    """A class-to-prompt map of ``classes`` classes spread over all prompts (seeded)."""
    class_map = ClassPromptMap(classes, prompts, dim)
    mapping = torch.from_numpy(np.random.default_rng(0).permutation(classes) % prompts)
    class_map.set_state(mapping, torch.zeros(prompts, dim), torch.zeros(classes, dim),
                        torch.ones(classes, dtype=torch.bool))
    return class_map


def measure(name: str, rounds: int, num_images: int, work_dir: str) -> Dict[str, object]:
    """The medians over ``rounds`` of one drawing and of one validation image, in ms."""
    spec = MODEL_SPECS[name]
    model = build_model(name)
    items = digit_items(max(num_images, spec['val_batch']), spec['size'], spec['channels'])
    hook = PromptVisualizationHook(num_images=num_images)
    hook.select_images(items)
    class_map = random_map(spec['classes'], spec['prompts'], model.backbone.embed_dims_)
    visualizer = Visualizer(name=f'visualization_cost_{name}', save_dir=osp.join(work_dir, name),
                            vis_backends=[dict(type='LocalVisBackend'),
                                          dict(type='TensorboardVisBackend')])
    val_batch = pseudo_collate(items[:spec['val_batch']])
    times: Dict[str, List[float]] = dict(forward=[], pictures=[], send=[], val_image=[])
    for step in range(rounds + 1):  # round 0 warms up
        start = time.perf_counter()
        for item in hook._items:
            capture_attention(model, pseudo_collate([item]))
        forward = time.perf_counter()
        pictures = hook.pictures(model, step, class_map)
        drawn = time.perf_counter()
        for key, image in pictures.items():
            visualizer.add_image(key, image, step=step)
        sent = time.perf_counter()
        with torch.no_grad():
            model.val_step(val_batch)
        validated = time.perf_counter()
        if step:
            times['forward'].append((forward - start) * 1e3)
            times['pictures'].append((drawn - forward) * 1e3)
            times['send'].append((sent - drawn) * 1e3)
            times['val_image'].append((validated - sent) * 1e3 / spec['val_batch'])
    medians = {key: statistics.median(values) for key, values in times.items()}
    medians['drawing'] = medians['pictures'] - medians['forward']  # pictures() forwards too
    medians['total'] = medians['pictures'] + medians['send']
    return dict(model=name, title=spec['title'], images=len(hook._items),
                classes=spec['classes'], prompts=spec['prompts'], rounds=rounds,
                threads=torch.get_num_threads(), ms=medians,
                val_images_worth=medians['total'] / medians['val_image'])


def table(results: List[dict]) -> str:
    """The Markdown table of :func:`measure`'s results."""
    lines = ['| model | images, map | per validation (ms) | of which: forwards | drawing | '
             'sending (Local + TensorBoard) | one validation image (ms) | worth |',
             '|---|---|---|---|---|---|---|---|']
    for r in results:
        ms = r['ms']
        lines.append(f"| {r['title']} | {r['images']}, {r['classes']} classes x "
                     f"{r['prompts']} prompts | {ms['total']:.0f} | {ms['forward']:.0f} | "
                     f"{ms['drawing']:.0f} | {ms['send']:.0f} | {ms['val_image']:.2f} | "
                     f"{r['val_images_worth']:.0f} validation images |")
    return '\n'.join(lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=list(MODEL_SPECS),
                        choices=list(MODEL_SPECS), help='Defaults to both')
    parser.add_argument('--rounds', type=int, default=5, help='Defaults to 5')
    parser.add_argument('--images', type=int, default=4,
                        help="the hook's num_images. Defaults to 4 (its default)")
    parser.add_argument('--threads', type=int, default=None, help='torch threads')
    parser.add_argument('--out', default=None, help='write <out>.json and <out>.md')
    parser.add_argument('--quick', action='store_true',
                        help="the demo's model, 1 round: a smoke test, not a measurement")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> List[dict]:
    """Measures and prints the table; returns the results."""
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    models, rounds = (['demo'], 1) if args.quick else (args.models, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(name, rounds, args.images, tmp) for name in models]
    text = table(results)
    print_log('PromptVisualizationHook per validation (medians of paired rounds):\n' + text,
              logger='current')
    if args.out:
        with open(args.out + '.json', 'w') as f:
            json.dump(results, f, indent=1)
        with open(args.out + '.md', 'w') as f:
            f.write(text + '\n')
    return results


if __name__ == '__main__':
    main()
