"""One module per DVC stage: ``python -m stages.<name>``."""
