"""One module per DVC stage: ``python -m stages.<name>``.

Runs before the stage module's own imports: the CPU kernels (``base.cpu_kernels``) must be chosen
before torch loads (``bao.core.kernels``)."""

from bao.core.kernels import pin_from_params

pin_from_params()
