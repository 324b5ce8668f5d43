# DA-VPT: VPT-Deep's 5 prompts per layer, the last two layers (4, 5) guided by the prompt
# Proxy-Anchor losses; the 10 digits map onto the M = 5 guided prompts by k-means over the
# pre-trained ViT's class features, refreshed after every epoch. The learning rate, beta, lambda
# and patch_topk (the 16 of 49 patches per image with the largest post-attention norm: most
# patches of a digit are blank) were chosen on the validation split
# (`python demo/run_demo.py --tune`).
_base_ = './_base_/transfer_mnist5k.py'

model = dict(backbone=dict(num_prompts=5, guided_layers=(4, 5), num_guided_prompts=5))
optim_wrapper = dict(optimizer=dict(lr=0.3))
custom_hooks = [
    dict(type='ClassPromptMappingHook', samples_per_class=10, interval=None),
    dict(type='PromptMetricLossHook', beta=0.1, lam=0.1, margin=0.1, alpha=32,
         pos_reduction='with_positives', prompt_tap='query', patch_tap='attn', patch_topk=16),
]
