# The DA-VPT / DA-VPT+ classification configs' model: davpt_vit-b16.py with the authors'
# initializations, where the paper is silent: torch's xavier_uniform_ on the stacked
# (depth, length, dim) prompt tensors, times prompt_init_scale (each config sets the authors'
# value: 1/8, or 1 in their MAE FGVC files), and the head's weight from a truncated normal of
# std 0.02 (their trunc_normal_; mmpretrain's LinearClsHead: a normal of std 0.01), bias 0.
# Images keep ImageNet's mean and std for every backbone, AugReg's included: the authors' data
# pipeline normalizes so (they never pass timm's pretrained_cfg).
_base_ = './davpt_vit-b16.py'

model = dict(
    backbone=dict(prompt_init='xavier_stacked', prompt_init_scale=0.125),
    head=dict(init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0)))
