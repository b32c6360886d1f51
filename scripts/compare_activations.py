"""Reproduce the SIREN paper's activation comparison on images (Table 1 / Fig. 1, Sec. 4.1).

Fits scikit-image's ``camera`` and ``astronaut`` (and any image files given) with SIREN, ReLU,
ReLU with positional encoding and tanh networks of the same width and depth, for the same number
of full-batch Adam steps; then fits ``camera`` from its gradient and from its Laplacian only
(Poisson reconstruction). Writes ``activations.md`` (table), ``activations.json``,
``activations.csv`` + ``activations_psnr.png`` (PSNR over steps) and ``activations_images.png``
(the reconstructions) into ``--out``.

    python scripts/compare_activations.py --out data/pictures --size 64 --steps 300 --hidden-dim 64
"""

import argparse
import json
import logging
from pathlib import Path

import neural_sdf as ns
from neural_sdf.io.image import resize_max_side, sample_image

ACTIVATIONS = ("sine", "relu", "relu-pe", "tanh")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path, help="extra image files to compare on")
    parser.add_argument("--out", type=Path, default=Path("out/activations"))
    parser.add_argument("--size", type=int, default=64, help="longer side after downscaling (paper: 256)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps (paper: 10000)")
    parser.add_argument("--hidden-dim", type=int, default=64, help="width (paper: 256)")
    parser.add_argument("--num-hidden-layers", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--no-poisson", action="store_true", help="skip the gradient / Laplacian fits")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    sources = {name: sample_image(name) for name in ("camera", "astronaut")}
    sources.update({p.stem: ns.load_image(p) for p in args.images})
    siren = ns.SirenConfig(hidden_dim=args.hidden_dim, num_hidden_layers=args.num_hidden_layers)
    train = ns.TrainConfig(steps=args.steps, lr=args.lr, checkpoint_every=0)
    eval_every = max(args.steps // 20, 1)
    runs = []
    for name, image in sources.items():
        image = resize_max_side(image, args.size)
        jobs = [(act, "values") for act in ACTIVATIONS]
        if name == "camera" and not args.no_poisson:
            jobs += [("sine", "gradient"), ("sine", "laplacian")]
        for act, sup in jobs:
            r = ns.fit_image(image, config=ns.ImageConfig(activation=act, supervise=sup, eval_every=eval_every), siren=siren, train=train)
            runs.append({"image": name, "activation": act, "supervise": sup, "psnr": r.psnr, "seconds": r.seconds,
                         "curve": r.curve, "size": list(image.shape[:2]), "reconstruction": r.reconstruction})
            print(f"{name:10s} {act:8s} {sup:9s} {r.psnr:6.2f} dB  ({r.seconds:.0f} s)", flush=True)
    _write(runs, args)


def _write(runs: list, args: argparse.Namespace) -> None:
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(r["image"] for r in runs))
    head = "| image | " + " | ".join(ACTIVATIONS) + " | SIREN from gradient | SIREN from Laplacian |"
    lines = [head, "|" + "---|" * (len(ACTIVATIONS) + 3)]
    for name in names:
        cells = []
        for act, sup in [(a, "values") for a in ACTIVATIONS] + [("sine", "gradient"), ("sine", "laplacian")]:
            hit = [r for r in runs if r["image"] == name and r["activation"] == act and r["supervise"] == sup]
            cells.append(f"{hit[0]['psnr']:.2f}" if hit else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    size = runs[0]["size"]
    note = (f"PSNR in dB after {args.steps} full-batch Adam steps (lr {args.lr:g}), {size[0]}x{size[1]} pixels, "
            f"{args.num_hidden_layers} hidden layers of {args.hidden_dim}; gradient/Laplacian fits measured up to a constant.")
    (args.out / "activations.md").write_text("\n".join(lines) + "\n\n" + note + "\n")
    print("\n".join(lines) + "\n\n" + note)
    (args.out / "activations.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "reconstruction"} for r in runs], indent=1))
    with open(args.out / "activations.csv", "w") as fh:
        fh.write("image,activation,supervise,step,psnr_db\n")
        for r in runs:
            for s, v in r["curve"]:
                fh.write(f"{r['image']},{r['activation']},{r['supervise']},{s},{v:.4f}\n")
    fig = Figure(figsize=(6 * len(names), 4.2), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for r in runs:
            if r["image"] == name:
                ax.plot([s for s, _ in r["curve"]], [v for _, v in r["curve"]], label=f"{r['activation']} ({r['supervise']})")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(args.out / "activations_psnr.png")
    cols = max(sum(1 for r in runs if r["image"] == n) for n in names)
    fig = Figure(figsize=(2.4 * cols, 2.6 * len(names)), dpi=100, layout="constrained")
    axes = fig.subplots(len(names), cols, squeeze=False)
    for row, name in enumerate(names):
        mine = [r for r in runs if r["image"] == name]
        for col in range(cols):
            ax = axes[row][col]
            ax.axis("off")
            if col < len(mine):
                img = mine[col]["reconstruction"]
                ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"{mine[col]['activation']}/{mine[col]['supervise']}\n{mine[col]['psnr']:.1f} dB", fontsize=8)
    fig.savefig(args.out / "activations_images.png")


if __name__ == "__main__":
    main()
