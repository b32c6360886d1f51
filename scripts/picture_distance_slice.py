"""The viewer's SDF slice of a fitted model, before and after the far-field correction, as one PNG.

Left: the raw network (``SDFModel.network_sdf``); right: ``SDFModel.sdf``. Both use the viewer's own
slice and colours (``viewer.data.sdf_slice``: blue inside, red outside, a dark band every fifth of
the slice's scale, so evenly spaced bands mean a distance). The model comes from ``--model`` (for
example one kept by ``benchmark_distance.py --models``) or is fitted by default ``reconstruct``
from 100k points of a shared shape.

    python scripts/picture_distance_slice.py --model out/armadillo.nsdf -o data/pictures/sdf_slice.png
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from _shared import SHAPES_DIR

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import neural_sdf as ns  # noqa: E402
from viewer.data import sdf_slice  # noqa: E402


class _Network:
    """The raw network of a model, with the ``sdf`` interface the slice asks for."""

    def __init__(self, model: ns.SDFModel) -> None:
        self.model = model

    def sdf(self, points: np.ndarray) -> np.ndarray:
        return self.model.network_sdf(points)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="fitted model (default: fit --shape)")
    ap.add_argument("--shape", default="armadillo", help="shared shape fitted when no --model is given")
    ap.add_argument("--axis", default="z")
    ap.add_argument("--offset", type=float, default=0.0, help="plane position in [-1, 1] across the box")
    ap.add_argument("--resolution", type=int, default=384)
    ap.add_argument("-o", "--output", type=Path, default=REPO / "data" / "pictures" / "sdf_slice.png")
    args = ap.parse_args()
    if args.model is not None:
        model = ns.SDFModel.load(args.model)
    else:
        model = ns.reconstruct(ns.load_mesh(SHAPES_DIR / f"{args.shape}.obj").sample(100_000, seed=0)).model
    lo, hi = np.asarray(model.data_bounds).reshape(2, 3)
    pad = 0.1 * (hi - lo)
    box = np.stack([lo - pad, hi + pad])
    panels = []
    for field in (_Network(model), model):
        s = sdf_slice(field, box, args.axis, args.offset, args.resolution)
        panels.append((255 * s.colors.reshape(args.resolution, args.resolution, 3)).astype(np.uint8).transpose(1, 0, 2)[::-1])
    gap = np.full((args.resolution, 8, 3), 255, dtype=np.uint8)
    ns.save_image(np.concatenate([panels[0], gap, panels[1]], axis=1), args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
