"""Inputs shared by the benchmark cases, written once per run under the work directory."""

from __future__ import annotations

import json
from pathlib import Path

import soundfile
import torch

from bench.common import FBANK_CONF
from bench.data import make_augment_sources, make_wav_data_dir

PREPARED = "prepared.json"


def _audio_seconds(data_dir: Path) -> float:
    from pyfunc.data.tables import read_scp

    return sum(soundfile.info(path).duration for path in read_scp(data_dir / "wav.scp").values())


def prepare(size: dict, work: Path) -> dict:
    """Write every case's inputs under ``work``; returns (and stores in prepared.json) where they are."""
    from pyfunc.config import Config
    from pyfunc.models.aam_softmax import AAMSoftmax
    from pyfunc.models.model_dir import build_encoder, save_model_dir
    from pyfunc.pipeline.fbank_stage import make_fbank_job

    info: dict = {}
    fbank_dir = make_wav_data_dir(work, "fbank", size["fbank_seconds"], size["fbank_utt_seconds"], random_seed=1)
    info["fbank_data"] = str(fbank_dir)
    info["fbank_audio_seconds"] = _audio_seconds(fbank_dir)
    if size.get("fbank_big_seconds"):
        big = make_wav_data_dir(work, "fbank_big", size["fbank_big_seconds"], size["fbank_utt_seconds"], random_seed=8)
        info["fbank_big_data"], info["fbank_big_audio_seconds"] = str(big), _audio_seconds(big)
    else:
        info["fbank_big_data"], info["fbank_big_audio_seconds"] = info["fbank_data"], info["fbank_audio_seconds"]
    one = make_wav_data_dir(work, "fbank_one", None, (1.0, 1.0), random_seed=7, num_utts=2)  # the stage's fixed cost
    info["fbank_one_data"], info["fbank_one_audio_seconds"] = str(one), _audio_seconds(one)

    train_dir = make_wav_data_dir(work, "train", None, size["train_utt_seconds"], random_seed=2,
                                  num_utts=size["train_utts"])
    (work / "feats").mkdir(exist_ok=True)  # features of the training set for the fbank loader, in this process
    make_fbank_job(train_dir, FBANK_CONF, work / "feats" / "train.ark", train_dir / "feats.scp")
    info["train_data"] = str(train_dir)
    musan_dir, rir_dir = make_augment_sources(work / "augment", random_seed=3,
                                              scale=1.0 if size["train_utts"] > 16 else 0.2)
    info["musan_dir"], info["rir_dir"] = musan_dir, rir_dir

    extract_dir = make_wav_data_dir(work, "extract", None, size["extract_utt_seconds"], random_seed=4,
                                    num_utts=size["extract_utts"])
    info["extract_data"] = str(extract_dir)
    info["extract_audio_seconds"] = _audio_seconds(extract_dir)
    config = Config()
    config.model.frontend = "seed"
    config.model.channels = size["extract_channels"]
    torch.manual_seed(5)
    encoder = build_encoder(config.model)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as a trained model has
        gen = torch.Generator().manual_seed(6)
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
    save_model_dir(work / "model", config, encoder, AAMSoftmax(config.model.embed_dim, 10))
    info["model_dir"] = str(work / "model")
    (work / PREPARED).write_text(json.dumps(info, indent=1))
    return {"figures": {"fbank_audio_seconds": info["fbank_audio_seconds"],
                        "extract_audio_seconds": info["extract_audio_seconds"]}}


def load_prepared(work: Path) -> dict:
    return json.loads((work / PREPARED).read_text())
