# DA-VPT: VPT-Deep's 5 prompts per layer, the last two layers (4, 5) guided by the prompt
# Proxy-Anchor losses; the 10 digits map onto the M = 5 guided prompts by k-means over the
# pre-trained ViT's class features, re-clustered after every epoch from the current features
# (no prompt can empty). The learning rate, beta = lambda and the learning-rate multiplier of the
# guided prompts were chosen on the validation split (`python -m demo.run_demo --tune`, the same
# number of trials as VPT-Deep); everything else is VPT-Deep's (data, schedule, seeds).
_base_ = './_base_/transfer_mnist5k.py'

model = dict(backbone=dict(num_prompts=5, guided_layers=(4, 5), num_guided_prompts=5,
                           frozen_drop_path_rate=0.0))
optim_wrapper = dict(
    optimizer=dict(lr=0.3),
    # The guided prompts' own learning rate (a tenth): the metric terms pull them harder than
    # the cross-entropy does (log_grad_norms below shows by how much).
    paramwise_cfg=dict(custom_keys={
        'backbone.prompts.4': dict(lr_mult=0.1),
        'backbone.prompts.5': dict(lr_mult=0.1),
    }))
custom_hooks = [
    dict(type='ClassPromptMappingHook', samples_per_class=10, interval=None, first_update=1,
         empty_cluster='reseed', balanced=False, warm_start='anchored', metric='euclidean'),
    dict(type='PromptMetricLossHook', beta=0.003, lam=0.003, margin=0.1, alpha=32,
         proxy_scale=1.0, pos_reduction='with_positives', prompt_tap='query', patch_tap='attn',
         patch_topk=16, log_grad_norms=40),
    # The map and the CLS token's and prompts' attention on 4 validation
    # (else test) images, in TensorBoard.
    dict(type='PromptVisualizationHook', num_images=4),
]
