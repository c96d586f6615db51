from bao.data.voc import CLASSES, NUM_CLASSES, DataError, VOCDataset, read_split  # noqa: F401
