"""SeCo (Separate and Conquer, CVPR 2024) as zwyang6/SeCo releases it, one module per concern:
``losses`` (segmentation, patch contrast, LIL, LIG), ``schedule`` (learning rate, loss weights),
``cams`` (multi-scale CAM, seeds, pseudo-labels), ``par`` (pixel-adaptive refinement), ``crops``
(local-crop tags), ``energy`` (dense energy loss), ``infer`` (the trained network's inference)."""
