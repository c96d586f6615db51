"""Studies and helpers beside the pipeline: ``python -m scripts.<name>`` from the project root."""
