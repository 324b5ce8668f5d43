# The DA-VPT authors' training recipe where it applies to the demo's transfer (issue 22: what their
# released code does where the paper is silent), shared by VPT-Deep and DA-VPT so that the two
# differ only in the guidance: prompts initialised as theirs (xavier_uniform_ on the stacked
# (layers, prompts, dim) tensor, divided by 8), their head init (trunc normal, std 0.02), their
# decay groups (prompts and head weight decayed; biases and 1-D parameters not), timm's cosine over
# the whole run with a linear warm-up from an absolute 1e-8 (1 of 10 epochs, as their 10 of 100),
# stepped every iteration, down to 1e-9, and gradients clipped by value at 10. Their fp16 AMP is
# left out (the demo runs on the CPU). The batch is 24, a multiple of DA-VPT's 4 images per class.
_base_ = ['./transfer_mnist5k.py']

model = dict(
    backbone=dict(prompt_init='xavier_stacked', prompt_init_scale=0.125),
    head=dict(init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02)))

train_dataloader = dict(batch_size=24)

optim_wrapper = dict(
    clip_grad=dict(type='value', clip_value=10.0),
    paramwise_cfg=dict(bias_decay_mult=0.0, norm_decay_mult=0.0, flat_decay_mult=0.0))
param_scheduler = [
    dict(type='WarmupCosineLR', warmup_epochs=1, warmup_start_lr=1e-8, eta_min=1e-9,
         by_epoch=True, begin=0, end={{_base_.max_epochs}}, convert_to_iter_based=True),
]
