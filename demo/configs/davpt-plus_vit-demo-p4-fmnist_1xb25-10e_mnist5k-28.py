# DA-VPT+: DA-VPT with the K and V biases of attention tuned as well (bias_tune='kv'). The biases
# are pre-trained values, not new parameters: no weight decay pulls them to 0 (as the authors
# exempt biases), and their learning-rate multiplier was chosen on the validation split
# (`python -m demo.run_demo --tune`) at DA-VPT's chosen setting.
_base_ = './davpt_vit-demo-p4-fmnist_1xb25-10e_mnist5k-28.py'

model = dict(backbone=dict(bias_tune='kv'))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone.kv_bias': dict(decay_mult=0.0, lr_mult=0.1)}))
