"""Training, evaluation and checkpoint export for BiSeNet V2 (pure PyTorch, no ROS imports).

Modules: ``config`` (YAML + overrides), ``datasets`` (CamVid, Cityscapes, generic folders),
``transforms`` (augmentation), ``loss`` (OHEM cross-entropy), ``schedule`` (parameter groups and
the warm-up + poly learning rate), ``sampler`` (deterministic, resumable data order),
``trainer`` (the loop, checkpoints, resume, DDP), ``evaluate`` (single/multi-scale evaluation),
``export`` (training state -> project checkpoint).
"""
