"""The small, stable core every stage depends on: the stage entry (``stage``), params loading and
checking (``params``), dvc.yaml's paths and resume keys (``pipeline``), atomic I/O (``io``), errors,
class names, image helpers, the runtime (device, seeding, AMP, DDP, checkpoints), the training loop
and the per-image worker pool. An edit here re-runs every stage: keep it small."""
