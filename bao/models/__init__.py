"""Models built by name (``bao.models.factory``), one file per network."""
