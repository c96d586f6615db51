from bao.classes import CLASSES, IGNORE, NUM_CLASSES, NUM_FG  # noqa: F401
from bao.data.voc import VOCDataset, read_split  # noqa: F401
from bao.errors import DataError  # noqa: F401
