"""Redline's trainer: distil feedback on a local model's code into a per-repo LoRA adapter (see docs/trainer.md).

Public entry points live in `redline.trainer.api`; importing this package loads nothing heavy."""
