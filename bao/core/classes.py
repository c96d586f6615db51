"""The PASCAL VOC label space: 20 foreground classes + background, 255 = ignore."""

CLASSES = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]
NUM_CLASSES = len(CLASSES)  # S = 21, background included
NUM_FG = NUM_CLASSES - 1
IGNORE = 255  # VOC's boundary band; also crop padding and AMN's uncertain band
