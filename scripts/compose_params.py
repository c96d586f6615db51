"""Write params.yaml exactly as `dvc exp run` composes it from conf/ (Hydra), so that a `-S` run
changes only the keys it sets. Run after editing conf/config.yaml (tests/test_config.py checks it).

    python -m scripts.compose_params
"""

from pathlib import Path

from dvc.utils.hydra import compose_and_dump

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    compose_and_dump(ROOT / "params.yaml", str(ROOT / "conf"), None, "config", str(ROOT), [])
