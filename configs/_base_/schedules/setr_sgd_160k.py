# SETR-PUP's optimizer (mmseg's setr_vit-l_pup_8xb2-160k_ade20k-512x512.py): SGD, lr 1e-3,
# momentum 0.9, no weight decay, 10x learning rate for the decode and auxiliary heads, with
# mmseg's poly schedule over 160k iterations.
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'

optimizer = dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=0.0)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=optimizer,
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)}),
    clip_grad=None)
