# The demo's small ViT: patch 4 on 28x28 grey images (7x7 patches + CLS), 6 layers of 64 dims
# with 2 heads. It is sized for 2 CPU cores: pre-training on Fashion-MNIST takes minutes.
vit_arch = dict(embed_dims=64, num_layers=6, num_heads=2, feedforward_channels=256)
# Fashion-MNIST's pixel mean and standard deviation; the transfer runs reuse them, as transfer
# learning reuses the pre-training's normalization.
data_preprocessor = dict(type='ClsDataPreprocessor', num_classes=10, mean=[72.94], std=[90.02])
