"""Scoring, apart from the methods: the streaming confusion matrix (``metrics``), scoring label and
CAM folders (``labels``), Table 1 and the figures (``report``)."""
