"""Convert a downloaded ViT checkpoint to mmpretrain's or mmsegmentation's ViT keys.

Examples::

    # timm's AugReg ImageNet-21k ViT-B/16 (hub file of vit_base_patch16_224.augreg_in21k)
    python tools/model_converters/convert_vit.py model.safetensors \\
        checkpoints/vit-b16_in21k-augreg.pth --src-format safetensors --dst mmpretrain
    # SETR's ViT-L/16 (jx_vit_large_p16_384) for mmsegmentation (built with final_norm=False)
    python tools/model_converters/convert_vit.py jx_vit_large_p16_384-b3be5167.pth \\
        checkpoints/vit-l16_jx384_mmseg.pth --src-format timm --dst mmseg --drop-final-norm
    # Google's original ImageNet-21k ViT-B/16 (VPT's weights; no config here names it)
    python tools/model_converters/convert_vit.py imagenet21k_ViT-B_16.npz \\
        checkpoints/vit-b16_in21k-npz.pth --src-format npz --dst mmpretrain

The result is ``{'state_dict': backbone weights, 'meta': ...}`` for
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` of ``DAVPTViT`` (or the host's own
``VisionTransformer``). Unknown keys make the conversion fail with their list; the dropped ones
(heads, MAE decoder, MoCo momentum encoder / predictor) are listed.
"""
import argparse
from typing import Optional, Sequence

from mmda_vpt.checkpoints.vit_checkpoint import (DST_FORMATS, SRC_FORMATS,
                                                 convert_vit_checkpoint,
                                                 save_converted_checkpoint)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses the command line of convert_vit.py.

    Args:
        argv (Sequence[str], optional): Arguments; the process's when None. Defaults to None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Convert Google .npz / timm / safetensors / MAE / MoCo v3 ViT checkpoints '
        "to mmpretrain's or mmsegmentation's ViT keys.")
    parser.add_argument('src', help='source checkpoint file')
    parser.add_argument('dst', help='output .pth file')
    parser.add_argument('--src-format', required=True, choices=SRC_FORMATS,
                        help='layout of the source checkpoint')
    parser.add_argument('--dst', dest='dst_format', required=True, choices=DST_FORMATS,
                        help='host whose ViT keys to write')
    parser.add_argument('--allow-pickle', action='store_true',
                        help='unpickle non-tensor objects (e.g. the args of MAE / DeiT training '
                        'checkpoints); only for files you trust')
    parser.add_argument('--drop-final-norm', action='store_true',
                        help='drop the final norm, for a backbone with final_norm=False (e.g. '
                        "mmseg's SETR configs)")
    parser.add_argument('--drop-patch-bias', action='store_true',
                        help="drop the patch-embedding bias, for mmseg's backbone with "
                        'patch_bias=False (its default, which mmseg\'s SETR configs keep)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Converts the checkpoint named on the command line and saves it.

    Args:
        argv (Sequence[str], optional): Arguments; the process's when None. Defaults to None.
    """
    args = parse_args(argv)
    state_dict, report = convert_vit_checkpoint(args.src, args.src_format, args.dst_format,
                                                allow_pickle=args.allow_pickle,
                                                drop_final_norm=args.drop_final_norm,
                                                drop_patch_bias=args.drop_patch_bias)
    save_converted_checkpoint(state_dict, args.dst, report, source=args.src)
    print(f'saved {len(state_dict)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
