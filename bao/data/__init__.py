"""Datasets: VOC layout reader, mini-VOC generator, preparation, crops, the pretraining shapes."""
