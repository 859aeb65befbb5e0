"""lightning_mbrl: model-based RL as PyTorch Lightning modules on TorchRL and TensorDict."""

__version__ = "0.1.0"
