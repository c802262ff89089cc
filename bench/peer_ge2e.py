#!/usr/bin/env python3
"""A peer on our trials: Resemblyzer's GE2E speaker encoder (pretrained on real speech, never on espeak).

Usage: bash bench/install_peers.sh        # once: the peer and its dependencies into bench/.peers
       .venv/bin/python bench/peer_ge2e.py --out exp/peer_ge2e data/mini/test data/mini/test_unseen ...

Each DATA_DIR needs wav.scp and a labelled trials file. Every utterance goes through Resemblyzer's
own pipeline (preprocess_wav: resampling, loudness normalisation, voice-activity trimming; then
embed_utterance), trials are scored by the cosine of the two embeddings, and stage 6 of our recipe
(the same EER/minDCF code) writes OUT/results_<name> and OUT/scores/<name>_cosine, so
`python -m pyfunc results exp` lists the peer beside our systems.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PEERS = REPO / "bench" / ".peers"

from pyfunc.cli.runner import run_main  # noqa: E402
from pyfunc.data.audio import read_samples  # noqa: E402
from pyfunc.data.tables import read_scp  # noqa: E402
from pyfunc.data.trials import read_trial_list  # noqa: E402
from pyfunc.errors import PyfuncError  # noqa: E402
from pyfunc.pipeline.metrics_stage import evaluate_stage  # noqa: E402
from pyfunc.scoring.metrics import format_results_table  # noqa: E402
from pyfunc.scoring.score_files import write_scores  # noqa: E402


def load_encoder():
    """Resemblyzer's VoiceEncoder and preprocess_wav, from bench/.peers."""
    sys.path.insert(0, str(PEERS))
    try:
        from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError as err:
        raise PyfuncError(f"Resemblyzer is not installed ({err}); run: bash bench/install_peers.sh") from None
    return VoiceEncoder("cpu", verbose=False), preprocess_wav


def embed_data_dir(data_dir: Path, keys: list[str], encoder, preprocess) -> np.ndarray:
    """Unit-length GE2E embeddings of ``keys`` (rows in order)."""
    table = read_scp(data_dir / "wav.scp")
    rows = []
    for key in tqdm(keys, desc=f"GE2E {data_dir.name}", unit="utt"):
        samples, rate = read_samples(table[key], f"{data_dir / 'wav.scp'}: {key}")
        rows.append(encoder.embed_utterance(preprocess(samples.mean(axis=1), source_sr=rate)))
    emb = np.stack(rows).astype(np.float64)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="where scores/ and results_<name> go, e.g. exp/peer_ge2e")
    parser.add_argument("data_dirs", nargs="+", metavar="DATA_DIR", help="data dirs with wav.scp and trials")
    args = parser.parse_args()
    encoder, preprocess = load_encoder()
    out = Path(args.out)
    for data_dir in map(Path, args.data_dirs):
        trials = read_trial_list(data_dir / "trials")
        keys = trials.utterances
        start = time.perf_counter()
        emb = embed_data_dir(data_dir, keys, encoder, preprocess)
        row = {key: i for i, key in enumerate(keys)}
        scores = np.einsum("ij,ij->i", emb[[row[k] for k in trials.enrolls]], emb[[row[k] for k in trials.tests]])
        score_file = out / "scores" / f"{data_dir.name}_cosine"
        write_scores(score_file, trials, scores)
        rows = evaluate_stage(data_dir / "trials", [score_file], out / f"results_{data_dir.name}")
        print(format_results_table(rows), end="")
        print(f"# {len(keys)} utterances embedded in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    run_main(main)
