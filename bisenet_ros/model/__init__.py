"""BiSeNet V2 network, named variants and checkpoint I/O (imports torch)."""

from .bisenetv2 import BiSeNetV2, BiSeNetV2Config, SizePolicy
from .checkpoint import (CheckpointError, CheckpointInfo, CheckpointNotFoundError, load_model,
                         read_checkpoint, save_checkpoint)
from .factory import build_model, VARIANTS

__all__ = ['BiSeNetV2', 'BiSeNetV2Config', 'SizePolicy', 'CheckpointError', 'CheckpointInfo',
           'CheckpointNotFoundError', 'load_model', 'read_checkpoint', 'save_checkpoint',
           'build_model', 'VARIANTS']
