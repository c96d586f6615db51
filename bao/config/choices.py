"""The choice lists of params.yaml, written once, torch-free: the schema checks values against them and
the code that implements each choice reads them. Seed readouts are registered where they are
implemented (``bao.method.readouts.READOUTS``)."""

# bao.update and Figure 4's curves (and their legend), one train_bao stage each: the three target updates of §3.4 and
# the TransCAM+AMN baseline (fixed labels, no target)
UPDATES = {
    "amn": "TransCAM+AMN",
    "share": "TransCAM+BAO (Share)",
    "ema": "TransCAM+BAO (EMA)",
    "share+ema": "TransCAM+BAO (Share+EMA)",
}  # name -> Figure 4's legend
HEADS = ("classifier_x", "amn_aspp")  # bao.head: the activation-map classifier (bao.method.bao.BAONet)
TARGET_MODES = ("train", "eval")  # bao.target_mode: the target's forward mode
PCL_GRADS = ("all", "head")  # bao.pcl_grad: where L_pcl's gradient goes
EMA_SPANS = ("epoch", "run")  # ema.span: the cosine over each epoch (restarting) or over the run
EMA_AVERAGES = ("params", "params+buffers")  # ema.averages: what EMA averages
DATA_SOURCES = ("mini", "voc", "folder", "coco")  # data.source
CRF_UNARIES = ("labels", "scores")  # masks.crf.unary
CRF_ABSENT = ("merged", "literal")  # masks.crf.absent: the labels absent from the seed as one, or each its own
PSA_CRF_LABELS = ("all", "present")  # psa.crf_labels
SEG_ARCHS = ("resnet38_seg", "deeplabv2", "deeplabv3plus")  # deeplab.arch
SCALE_PER = ("image", "batch")  # deeplab.scale_per
EVAL_COMBINES = ("max_softmax", "mean_logits")  # evaluate.combine
ENERGY_KERNELS = ("lattice", "exact")  # seco.energy.kernel: rloss's permutohedral lattice or the exact Gaussian sum
SECO_SEG_SIZES = ("crop", "image")  # seco.seg_size: inference input at crop_size x scale square, or the image x scale
