"""steps/train.py with a short process-group timeout and a deliberately slow evaluation (test_distributed.py).

Usage (under torchrun): tests/slow_eval_helper.py TIMEOUT_S SECONDS_PER_UTT TRAIN_ARGS...
After the process group is made, its timeout becomes TIMEOUT_S (what NCCL's 10 minutes are to a real
evaluation); embedding the evaluation data then sleeps SECONDS_PER_UTT per utterance in every process.
"""

from __future__ import annotations

import datetime
import runpy
import sys
import time
from pathlib import Path

import torch.distributed as torch_dist
import torch.distributed.distributed_c10d as c10d

import pyfunc.training.evaluation as evaluation

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    timeout, per_utt = float(sys.argv[1]), float(sys.argv[2])
    init, embed = torch_dist.init_process_group, evaluation.embed_data_dir

    def init_then_shorten(*args, **kwargs):
        init(*args, **kwargs)
        c10d._set_pg_timeout(datetime.timedelta(seconds=timeout))

    def slow_embed(model, data_dir, keys, *args, **kwargs):
        time.sleep(per_utt * len(keys))
        return embed(model, data_dir, keys, *args, **kwargs)

    torch_dist.init_process_group = init_then_shorten
    evaluation.embed_data_dir = slow_embed
    sys.argv = [str(REPO / "steps" / "train.py"), *sys.argv[3:]]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
