"""Turn the demo training runs into the bundled models: slim checkpoints, curves and measured results.

Reads RUNS/{snn,ann}-small/{best.pth,curve.csv} (written by ``snn-energy train``; see train_demo_models.sh),
writes esdnet/weights/demo_{snn,ann}_small.pth (best validation epoch, weights and architecture only),
demo_{snn,ann}_small_curve.csv and demo_results.json: PSNR/SSIM (Y channel, border 4, the authors' tiled
inference) of the rainy input, the SNN and the ANN on the synthetic test split and on real rain pairs.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import torch

import esdnet
from esdnet.data import PairedImageDataset
from esdnet.imageio import atomic_write_bytes
from esdnet.inference import derain_tensor
from esdnet.metrics import edge_error_ratio, evaluate_pair
from esdnet.train import TrainOptions
from esdnet.train_state import atomic_save

ARCHS = ("snn", "ann")
REPO_ROOT = Path(__file__).resolve().parents[1]


def train_command(options: dict) -> str:
    """Return the ``snn-energy train`` command line that reproduces a run from its options.json."""
    defaults = TrainOptions(data="", out="")
    words = ["snn-energy", "train", "--arch", options["arch"], "--preset", options["preset"], "--data", options["data"]]
    for name, value in options.items():
        if name in ("arch", "preset", "data", "out", "resume") or value == getattr(defaults, name):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        else:
            words += [flag, str(value)]
    return " ".join(words + ["--out", options["out"]])


def _scores(image, clean) -> tuple[float, float, float]:
    return (*evaluate_pair(image, clean), edge_error_ratio(image, clean))


def mean_scores(model, dataset: PairedImageDataset) -> dict[str, dict[str, float]]:
    """Return the mean PSNR (dB), SSIM and edge/interior error ratio (outermost pixel ring, unitless) of the rainy
    inputs and of ``model``'s outputs (tiled inference, if a model)."""
    rows = {"rainy": [], "derained": []}
    for rainy, clean in dataset:
        rows["rainy"].append(_scores(rainy, clean))
        if model is not None:
            with torch.no_grad():
                rows["derained"].append(_scores(derain_tensor(model, rainy), clean))
    return {name: {key: math.fsum(score[i] for score in values) / len(values)
                   for i, key in enumerate(("psnr_db", "ssim", "edge_error_ratio"))}
            for name, values in rows.items() if values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True, help="folder holding snn-small/ and ann-small/")
    parser.add_argument("--data", type=Path, required=True, help="the synthetic data set (its test split is scored)")
    parser.add_argument("--real", type=Path, required=True, help="folder of real pairs: input/ and target/")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "esdnet" / "weights")
    parser.add_argument("--note", default="", help="a remark stored in demo_results.json (e.g. how the runs went)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)

    sets = {"synthetic_test": PairedImageDataset(args.data, "test"), "rain100l_sample": PairedImageDataset(args.real, None)}
    results = {name: {"count": len(dataset), "rainy": mean_scores(None, dataset)["rainy"]}
               for name, dataset in sets.items()}
    training = {}
    for arch in ARCHS:
        run = args.runs / f"{arch}-small"
        best = torch.load(run / "best.pth", map_location="cpu", weights_only=True)
        last = torch.load(run / "last.pth", map_location="cpu", weights_only=True)
        target = args.out / f"demo_{arch}_small.pth"
        atomic_save({"state_dict": best["state_dict"], "arch": best["arch"], "config": best["config"],
                     "preset": best["preset"], "epoch": best["epoch"], "val_psnr_db": best["best_psnr"]}, target)
        shutil.copyfile(run / "curve.csv", args.out / f"demo_{arch}_small_curve.csv")
        model = esdnet.load_model(target, arch=arch)
        for name, dataset in sets.items():
            results[name][arch] = mean_scores(model, dataset)["derained"]
        options = json.loads((run / "options.json").read_text())
        training[arch] = {"command": train_command(options), "epochs": last["epoch"], "steps": last["global_step"],
                          "best_epoch": best["best_epoch"], "best_val_psnr_db": best["best_psnr"],
                          "training_seconds": last["seconds"], "file": target.name}
        print(f"{arch}: best epoch {best['best_epoch']} of {last['epoch']}, {last['seconds']:.0f} s -> {target}")
    for name, scores in results.items():
        scores["snn_gain_over_rainy_db"] = scores["snn"]["psnr_db"] - scores["rainy"]["psnr_db"]
        scores["snn_minus_ann_db"] = scores["snn"]["psnr_db"] - scores["ann"]["psnr_db"]
        print(f"{name} ({scores['count']} pairs): " + ", ".join(
            f"{key} {scores[key]['psnr_db']:.2f} dB / {scores[key]['ssim']:.4f} / edge ratio "
            f"{scores[key]['edge_error_ratio']:.2f}" for key in ("rainy", "snn", "ann")))
    synth = json.loads((args.data / "synth.json").read_text())
    record = {
        "metrics": "PSNR (dB) and SSIM on the Y channel (MATLAB rgb2ycbcr), 4-pixel border cut, tiled inference "
                   "(80 px tiles, 8 px overlap), mean over the images; edge_error_ratio: mean absolute RGB error of "
                   "the outermost 1-pixel ring over that of the pixels inside it (esdnet.metrics.edge_error_ratio), "
                   "no border cut, mean over the images",
        "data": {"synthetic": f"snn-energy data synth --out {args.data} --preset {synth['preset']} "
                              f"(seed {synth['seed']}, {synth['train']} train / {synth['test']} test pairs of "
                              f"{synth['size']}x{synth['size']})",
                 "real": str(args.real)},
        "machine": "CPU, 1 thread per run (OMP_NUM_THREADS=1), SNN and ANN trained at the same time on 2 shared cores",
        "training": training,
        "note": args.note,
        "results": results,
    }
    atomic_write_bytes(args.out / "demo_results.json", (json.dumps(record, indent=2) + "\n").encode())
    print(f"wrote {args.out / 'demo_results.json'}")


if __name__ == "__main__":
    main()
