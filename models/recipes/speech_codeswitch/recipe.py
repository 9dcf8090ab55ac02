"""Speech code-switching recipe: synthesize data, train, export, verify, write references.

    /usr/bin/python3 models/recipes/speech_codeswitch/recipe.py --out models/speech-codeswitch

(from the repo root). Scratch data goes to --work (default /tmp/speech).
"""
import argparse
import json
import math
import os
import pickle
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import common  # noqa: E402
import synth  # noqa: E402
from common import (VOCAB, edit_distance, features, greedy_ctc, n_out_frames, quantize,  # noqa: E402
                    read_wav, resample, write_wav)
from export import (LANGS, ROUTING, clean_package, export_graphs, manifest, package_size,  # noqa: E402
                    piecewise, verify, OPSET)
from model import CodeSwitchModel, count_params  # noqa: E402
from train import (BOUNDARY_FRAMES, BOUNDARY_WEIGHT, LID_WEIGHT, SILENCE_WEIGHT, Data,
                   evaluate, train)  # noqa: E402


def sig(a, digits=7):
    """Round to `digits` significant digits (for JSON references)."""
    a = np.asarray(a, dtype=np.float64)
    return json.loads(json.dumps(np.vectorize(lambda v: float(f"{v:.{digits}g}"))(a).tolist())) \
        if a.size else a.tolist()


def log(msg):
    print(msg, flush=True)


def mer_of(pairs):
    e = sum(edit_distance(r, h) for r, h in pairs)
    n = sum(len(r) for r, _ in pairs)
    return e / max(1, n)


def decode_file(model, path, std):
    x, sr = read_wav(path)
    f = features(x, sr, std)
    with torch.no_grad():
        lp, _ = model(torch.from_numpy(f)[None])
    return greedy_ctc(lp[0].numpy())


def eval_tsv(model, tsv, std, fast=True):
    """MER of a test.tsv (WAV files read back through the front end). `fast` uses the polyphase
    resampler (equal to the spec one within 1e-10) for speed; the references use the spec one."""
    folder = os.path.dirname(tsv)
    res = {}
    per = {}
    pairs = []
    for line in open(tsv, encoding="utf-8"):
        if not line.strip():
            continue
        wav, ref = line.rstrip("\n").split("\t")
        x, sr = read_wav(os.path.join(folder, wav))
        if fast:
            fu, _ = common.features_unscaled(x, sr, fast=True)
            f = (fu / std[None, :].astype(np.float64)).astype(np.float32)
        else:
            f = features(x, sr, std)
        with torch.no_grad():
            lp, _ = model(torch.from_numpy(f)[None])
        hyp = [VOCAB[i] for i in greedy_ctc(lp[0].numpy())]
        cond = os.path.splitext(os.path.basename(wav))[0].split("_")[1]
        pairs.append((ref.split(), hyp))
        per.setdefault("all", []).append((ref.split(), hyp))
        per.setdefault(cond, []).append((ref.split(), hyp))
    for k, v in per.items():
        res[k] = {"mer": round(mer_of(v), 5), "utterances": len(v),
                  "units": sum(len(r) for r, _ in v)}
    return res, pairs


def measure_rtf(model, utts, std, threads, n=200):
    """Seconds of compute per second of audio, batch 1, model forward only and with the front end."""
    torch.set_num_threads(threads)
    sel = utts[:n]
    audio = sum(u["seconds"] for u in sel)
    t_fe = t_model = 0.0
    with torch.no_grad():
        for u in sel:
            t0 = time.perf_counter()
            f = features(common.dequantize(u["q"]), u["rate"], std)
            t1 = time.perf_counter()
            model(torch.from_numpy(f)[None])
            t2 = time.perf_counter()
            t_fe += t1 - t0
            t_model += t2 - t1
    return {"audio_seconds": round(audio, 1), "model_rtf": round(t_model / audio, 5),
            "frontend_rtf_spec_resampler_numpy": round(t_fe / audio, 5), "threads": threads,
            "utterances": len(sel)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/speech-codeswitch")
    ap.add_argument("--work", default="/tmp/speech")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: with other work on the 2 cores, 2 OpenMP threads "
                         "spin against each other and ran 10x slower)")
    ap.add_argument("--data-workers", type=int, default=2, help="synthesis processes")
    ap.add_argument("--train", type=int, default=12000)
    ap.add_argument("--dev", type=int, default=400)
    ap.add_argument("--test", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--train-minutes", type=float, default=0,
                    help="if > 0: fewer epochs (shorter cosine) when they would not fit")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--max-frames", type=int, default=4000, help="10 ms frames per batch")
    ap.add_argument("--dim", type=int, default=144)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=576)
    ap.add_argument("--adapter", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reuse-data", action="store_true", help="reuse the synthesized corpus in --work")
    ap.add_argument("--testset-size", type=int, default=60)
    ap.add_argument("--reuse-model", action="store_true",
                    help="skip training: load --work/model.pt (written right after training)")
    args = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.work, exist_ok=True)
    timings = {}

    # 1. data ------------------------------------------------------------------------------
    cache = os.path.join(args.work, f"corpus_{args.seed}_{args.train}_{args.dev}_{args.test}.pkl")
    t0 = time.time()
    if args.reuse_data and os.path.exists(cache):
        with open(cache, "rb") as f:
            ptr, pdv, test_utts = pickle.load(f)
        log(f"[data] reused {cache}")
    else:
        tr = synth.build_split("train", args.train, args.seed, args.data_workers, log)
        ptr = synth.pack(tr)
        train_hours = sum(u["seconds"] for u in tr) / 3600
        ptr["hours"] = train_hours
        del tr
        dv = synth.build_split("dev", args.dev, args.seed, args.data_workers, log)
        pdv = synth.pack(dv)
        pdv["hours"] = sum(u["seconds"] for u in dv) / 3600
        del dv
        test_utts = synth.build_split("test", args.test, args.seed, args.data_workers, log)
        for u in test_utts:
            u.pop("feats")
            u.pop("lab10")
        with open(cache, "wb") as f:
            pickle.dump((ptr, pdv, test_utts), f, protocol=4)
    test_dir = os.path.join(args.work, "test")
    synth.write_test_files(test_utts, test_dir)
    timings["data_seconds"] = round(time.time() - t0, 1)

    # global per-bin std of the mean-subtracted log mel over the training set
    std = np.sqrt(np.mean(ptr["feats"].astype(np.float64) ** 2, axis=0))
    std32 = std.astype(np.float32)
    train_data, dev_data = Data(ptr, std32), Data(pdv, std32)

    # 2. train -----------------------------------------------------------------------------
    model = CodeSwitchModel(len(VOCAB), dim=args.dim, layers=args.layers, ffn=args.ffn,
                            adapter=args.adapter)
    nparams = count_params(model)
    log(f"[model] {nparams} parameters, vocabulary {len(VOCAB)}")
    t0 = time.time()
    model_pt = os.path.join(args.work, "model.pt")
    if args.reuse_model and os.path.exists(model_pt):
        ck = torch.load(model_pt)
        model.load_state_dict(ck["state_dict"])
        hist = ck.get("history", [])
        timings["train_seconds"] = ck.get("train_seconds")
        log(f"[train] reused {model_pt}")
    else:
        hist = train(model, train_data, dev_data, args.epochs, lr=args.lr,
                     max_frames=args.max_frames, seed=args.seed, log=log,
                     budget_seconds=args.train_minutes * 60 or None)
        timings["train_seconds"] = round(time.time() - t0, 1)
        torch.save({"state_dict": model.state_dict(), "config": model.config, "std": std32,
                    "history": hist, "train_seconds": timings["train_seconds"]}, model_pt)
    model.eval()

    # 3. evaluate --------------------------------------------------------------------------
    t0 = time.time()
    dev = evaluate(model, dev_data)
    test, test_pairs = eval_tsv(model, os.path.join(test_dir, "test.tsv"), std)
    log(f"[eval] dev MER {dev['all']:.4f}; test MER {test['all']['mer']:.4f} "
        + " ".join(f"{k} {v['mer']:.4f}" for k, v in sorted(test.items()) if k != "all"))
    # per voice / held-out sentence / held-out speed-pitch breakdown on the test split
    by = {}
    for u, pair in zip(test_utts, test_pairs):
        held = common.is_heldout_sentence(" ".join(u["units"])) and \
            u["shape"] in common.heldout_shapes()
        sp_held = not (synth.TRAIN_SPEED[0] <= u["speed"] <= synth.TRAIN_SPEED[1])
        pi_held = not (synth.TRAIN_PITCH[0] <= u["pitch"] <= synth.TRAIN_PITCH[1])
        for key in ("voice:" + u["variant"], "sentence:" + ("unseen" if held else "train-pool"),
                    "speed:" + ("held-out" if sp_held else "train-range"),
                    "pitch:" + ("held-out" if pi_held else "train-range")):
            by.setdefault(key, []).append(pair)
    test_breakdown = {k: {"mer": round(mer_of(v), 5), "utterances": len(v)}
                      for k, v in sorted(by.items())}
    # the same test split with hard top-1 routing instead of dense (for the README's choice)
    top1 = {}
    for mode in ("top1", "top1_p"):
        for layer in model.layers:
            layer.moe.routing = mode
        r, _ = eval_tsv(model, os.path.join(test_dir, "test.tsv"), std)
        top1[mode] = {k: v["mer"] for k, v in r.items()}
    for layer in model.layers:
        layer.moe.routing = "dense"
    log(f"[eval] test MER with top-1 routing: {top1['top1']['all']:.4f} (weight 1), "
        f"{top1['top1_p']['all']:.4f} (weight p_max)")
    timings["eval_seconds"] = round(time.time() - t0, 1)
    rtf = measure_rtf(model, test_utts, std, args.threads)
    log(f"[eval] RTF model {rtf['model_rtf']:.4f} (front end {rtf['frontend_rtf_spec_resampler_numpy']:.4f})")

    # 4. export ----------------------------------------------------------------------------
    t0 = time.time()
    out = args.out
    clean_package(out, args.layers)
    export_graphs(model, out)
    ref_dir = os.path.join(out, "reference")
    os.makedirs(os.path.join(ref_dir, "testset"), exist_ok=True)

    # reference WAVs: two at 16 kHz, one at 22050 Hz, one at 8 kHz (16-bit PCM)
    picks = {}
    wanted = {"clean16": ("clean", 16000), "noisy16": ("noisy", 16000),
              "clean22": ("clean", synth.ESPEAK_RATE), "tel8k": ("tel8k", 8000)}
    for strict in (True, False):  # prefer code-switched utterances with >= 5 units
        for u in test_utts:
            for key, (cond, rate) in wanted.items():
                if key in picks or u["cond"] != cond or u["rate"] != rate:
                    continue
                langs = {l for l, _, _ in u["segments"]}
                if strict and (len(u["units"]) < 5 or len(langs) < 2):
                    continue
                if u in picks.values():
                    continue
                picks[key] = u
    ref_files = []
    feats_for_verify = []
    for key in ("clean16", "noisy16", "clean22", "tel8k"):
        u = picks[key]
        name = f"ref_{key}_{u['rate']}hz.wav"
        path = os.path.join(ref_dir, name)
        write_wav(path, u["q"], u["rate"])
        x, sr = read_wav(path)
        y16 = resample(x, sr)
        f = features(x, sr, std)
        feats_for_verify.append(f)
        with torch.no_grad():
            lp, gates = model(torch.from_numpy(f)[None])
            _, w = piecewise(model, torch.from_numpy(f)[None])
        ids = greedy_ctc(lp[0].numpy())
        fast_f = (common.features_unscaled(x, sr, fast=True)[0] / std[None, :]).astype(np.float32)
        ref_files.append({
            "file": name, "sample_rate": sr, "samples": int(len(x)), "bits": 16, "channels": 1,
            "resampled_samples": int(len(y16)), "frames": int(f.shape[0]),
            "out_frames": int(lp.shape[1]),
            "reference_units": u["units"],
            "language_segments_seconds": [[l, a, b] for l, a, b in u["segments"]],
            "voice": u["variant"], "condition": u["cond"],
            "features": sig(f),
            "logits": sig(lp[0].numpy()),
            "greedy_ids": ids, "greedy_units": [VOCAB[i] for i in ids],
            "gate_weights": {f"moe{n}": sig(w[n][0].numpy()) for n in range(args.layers)},
            "max_abs_diff_fast_vs_spec_resampler_features": float(np.max(np.abs(fast_f - f))),
        })
        log(f"[ref] {name}: ref {' '.join(u['units'])} | hyp {' '.join(VOCAB[i] for i in ids)}")
    checks = verify(model, out, feats_for_verify + [feats_for_verify[0][:1]])
    for k, v in checks.items():
        log(f"[verify] {k}: max abs err {v:.2e}")

    # committed small test set: 16 kHz 16-bit copies of the first test utterances
    lines = []
    tot_bytes = 0
    for u in test_utts:
        if len(lines) >= args.testset_size:
            break
        if u["seconds"] > 3.2:
            continue
        sig16 = resample(common.dequantize(u["q"]), u["rate"])
        q = quantize(sig16, 16)
        name = f"testset/t{u['idx']:04d}_{u['cond']}.wav"
        write_wav(os.path.join(ref_dir, name), q, 16000)
        tot_bytes += os.path.getsize(os.path.join(ref_dir, name))
        lines.append(name + "\t" + " ".join(u["units"]))
    with open(os.path.join(ref_dir, "test.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    committed, _ = eval_tsv(model, os.path.join(ref_dir, "test.tsv"), std, fast=False)
    log(f"[eval] committed testset ({len(lines)} files, {tot_bytes / 1e6:.1f} MB) MER "
        f"{committed['all']['mer']:.4f}")

    ref = {
        "description": "Speech code-switching references: WAV -> features (spec front end, "
                       "float64 inside, float32 out, 7 significant digits here) -> logits "
                       "(log-probabilities [T',V] of the full model in torch float32) -> greedy "
                       "CTC. gate_weights: softmax of each moe step's gate logits per 40 ms "
                       "frame, [zh, en]. Expected tolerances: features 1e-4 abs, logits 1e-3 abs.",
        "vocabulary_size": len(VOCAB),
        "frame_seconds": 0.04,
        "files": ref_files,
    }
    with open(os.path.join(ref_dir, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, separators=(",", ":"))
    timings["export_seconds"] = round(time.time() - t0, 1)
    timings["total_seconds"] = round(time.time() - t_start, 1)

    n_layers = args.layers
    per_expert = count_params(model.layers[0].moe.experts[0])
    gate_p = count_params(model.layers[0].moe.gate)
    training = {
        "test_mer": test["all"]["mer"],
        "dev_mer": round(dev["all"], 5),
        "test_subsets": test,
        "test_breakdown": test_breakdown,
        "test_mer_top1_routing": top1,
        "dev_by_condition": {k[5:]: round(v, 5) for k, v in dev.items() if k.startswith("cond:")},
        "dev_gate_lid_accuracy": round(dev["gate_lid_acc"], 4),
        "dev_gate_lid_accuracy_per_layer": dev["gate_lid_acc_per_layer"],
        "dev_gate_silence_mean_max_weight": dev["gate_silence_mean_max_weight"],
        "committed_testset": committed,
        "epochs": len(hist),
        "history": hist,
        "timings_seconds": timings,
        "threads": args.threads,
        "rtf": rtf,
        "data": {
            "train_utterances": int(len(ptr["lens"])), "train_hours": round(ptr["hours"], 3),
            "dev_utterances": int(len(pdv["lens"])), "dev_hours": round(pdv["hours"], 3),
            "test_utterances": len(test_utts),
            "test_hours": round(sum(u["seconds"] for u in test_utts) / 3600, 3),
            "train_voice_variants": synth.TRAIN_VARIANTS, "test_voice_variants": synth.TEST_VARIANTS,
            "english_voices": synth.EN_VOICES, "mandarin_voice": synth.ZH_VOICE,
            "train_speed_wpm": synth.TRAIN_SPEED, "train_pitch": synth.TRAIN_PITCH,
            "test_speed_wpm": "half in " + str(synth.TEST_SPEED_HELD) + ", half in train range",
            "test_pitch": "half in " + str(synth.TEST_PITCH_HELD) + ", half in train range",
            "test_conditions": "clean (16k or 22.05k, 16-bit) / tel8k (8 kHz 16-bit) / noisy "
                               "(SNR 10-30 dB white or pink) / 8bit (unsigned 8-bit PCM), "
                               "a quarter each; half the test sentences are held out of "
                               "train/dev",
        },
        "params": nparams,
        "params_per_expert": per_expert,
        "params_gate": gate_p,
        "config": {k: v for k, v in model.config.items()},
        "loss": {"ctc": 1.0, "gate_lid": LID_WEIGHT, "boundary_weight": BOUNDARY_WEIGHT,
                 "boundary_frames": BOUNDARY_FRAMES, "silence_weight": SILENCE_WEIGHT},
        "optimizer": {"name": "AdamW", "lr": args.lr, "weight_decay": 0.01,
                      "max_frames_per_batch": args.max_frames},
        "seed": args.seed, "torch": torch.__version__, "onnx_opset": OPSET,
        "verify_max_abs_err": checks,
    }
    with open(os.path.join(ref_dir, "training.json"), "w", encoding="utf-8") as f:
        json.dump(training, f, indent=1, ensure_ascii=False)

    meta = {
        "vocabulary": VOCAB,
        "blank": 0,
        "expert_languages": LANGS,
        "frame_seconds": 0.04,
        "logits": "log_probabilities",
        "decoding": "greedy_ctc",
        "subsampling": {"factor": 4, "out_frames": "ceil(ceil(T/2)/2)",
                        "out_frame_centre_seconds": "0.04*j + 0.0125"},
        "batching": "no padding mask: items of one batch must have the same T (run one utterance "
                    "per call, or equal lengths)",
        "features": {
            "sample_rate": common.SAMPLE_RATE, "frame_length": common.FRAME_LENGTH,
            "hop": common.HOP, "n_fft": common.N_FFT, "n_mels": common.N_MELS,
            "fmin": common.FMIN, "fmax": common.FMAX, "mel_scale": "htk",
            "window": "hann_periodic", "power": 2, "log_offset": common.LOG_OFFSET,
            "mel_norm": "none", "pre_emphasis": 0.0, "dither": 0.0,
            "rel_floor": common.REL_FLOOR, "active_db": common.ACTIVE_DB,
            "normalize": "log(mel + max(log_offset, rel_floor * max(mel))); subtract the per-bin "
                         "mean over active frames (total mel energy within active_db of the "
                         "loudest frame); divide by std",
            "resampler": dict(common.RESAMPLER),
            "std": [float(f"{v:.9g}") for v in std32.tolist()],
        },
        "training": {"test_mer": test["all"]["mer"], "dev_mer": round(dev["all"], 5),
                     "test_mer_clean": test.get("clean", {}).get("mer"),
                     "test_mer_tel8k": test.get("tel8k", {}).get("mer"),
                     "test_mer_noisy": test.get("noisy", {}).get("mer"),
                     "test_mer_8bit": test.get("8bit", {}).get("mer"),
                     "epochs": len(hist), "params": nparams,
                     "seconds": timings["total_seconds"]},
    }
    with open(os.path.join(out, "moemodal.json"), "w", encoding="utf-8") as f:
        json.dump(manifest(model, meta), f, indent=2, ensure_ascii=False)
        f.write("\n")
    log(f"[done] package {out}: {package_size(out) / 1e6:.1f} MB; timings {timings}")


if __name__ == "__main__":
    main()
