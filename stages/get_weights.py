"""Stage get_weights: fetch the ImageNet Conformer checkpoint named by ``model.pretrained`` once,
so training runs offline. Output ``<paths.pretrained>/`` (``weights.pth`` when a source is set, and
``source.json`` either way)."""
from bao.io import atomic_dir, write_json
from bao.models import create_model
from bao.models.weights import fetch_weights, load_pretrained
from bao.pipeline import paths
from bao.stage import main


def run(params):
    m = params.model
    with atomic_dir(paths().pretrained) as out:
        if m.pretrained:
            path = fetch_weights(m.pretrained, out / "weights.pth", m.pretrained_md5)
            load_pretrained(create_model(m.arch), path)  # fail here, naming keys, not mid-training
        write_json(out / "source.json", {"arch": m.arch, "pretrained": m.pretrained})


if __name__ == "__main__":
    main(run, "get_weights")
