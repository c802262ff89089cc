#!/usr/bin/env bash
# ECAPA-TDNN on recorded human speech: Kaldi-style stages on small public corpora (see README.md).
#
#   bash run.sh                                   # stages 0-6: clone the corpora, train (real + synthetic
#                                                 # speakers, conf/ecapa_real_mixed.yaml), evaluate
#   bash run.sh --mirror /path/to/mirrors         # stage 0 from local git mirrors (offline)
#   bash run.sh --config conf/ecapa_real.yaml --train-set train_all --exp exp/ecapa_real --stage 2
#                                                 # another way of training (docs/real-speech.md)
#   bash run.sh --stage 3 --model-dir DIR --test-data DIR   # evaluate any model dir on any data dir with trials
#
# This recipe's data (stage 0, local/prepare_data.sh; README.md): DATA/train_all (DSPSpeech-20 and Arabic
# speech commands speakers, words joined into 2-6 s examples, and 251 LibriSpeech speakers) and DATA/train_mixed
# (the same and the mini corpus's 300 espeak-ng voices: the default training set), the test
# sets DATA/test_dsp, DATA/test_arabic (other speakers, text-independent trials) and DATA/test_libri (read
# sentences of 10 LibriSpeech test-other speakers), DATA/dev (calibration in stage 6), DATA/cohort (AS-norm:
# 2 utterances of each training speaker) and DATA/augment (real noises, LibriSpeech babble, synthetic music,
# measured and simulated rooms). The stages themselves are listed below (steps/run_stages.py runs them).
#
# Options (defaults in brackets; relative paths are relative to this folder, egs/real_speech):
#   --stage N --stop-stage M                 stages to run [0, 6]
#   --mirror DIR                             stage 0: local git mirrors of the corpora (DIR/<owner>+<name>/repo,
#                                            DIR/<name>.git, ...) instead of cloning from GitHub []
#   --sources "NAME=PATH_OR_URL ..."         stage 0: where single corpora come from (dsp, arabic,
#                                            librispeech, esc10, irs) []
#   --download-dir DIR                       stage 0: where the corpus checkouts go [downloads]
#   --mini-data DIR                          stage 0: also DATA/train_mixed = DATA/train_all + DIR/train_wide
#                                            (the mini corpus, for conf/ecapa_real_mixed.yaml; its train_wide and
#                                            test_unseen are synthesised there when absent; DATA/test_unseen
#                                            lists the latter); "" for none
#                                            [../../data/mini]
#   --config FILE                            experiment YAML [conf/ecapa_real_mixed.yaml]
#   --lm-config FILE                         stage 2: also fine-tune with this YAML into EXP/lm []
#   --overrides "KEY=VALUE ..."              config overrides, e.g. "train.random_seed=2" []
#   --exp DIR                                experiment directory [exp/ecapa_real_mixed]
#   --data DIR                               data root [data]
#   --train-set SET                          the training set under DATA: train_mixed (with --mini-data),
#                                            train_all (the real speakers) or train (the word speakers only)
#                                            [train_mixed]
#   --test-sets "SET ..."                    stages 1, 3-6: test sets under DATA (test_unseen: the mini corpus's
#                                            held-out espeak-ng voices, made by stage 0 with --mini-data)
#                                            [test_dsp test_arabic test_libri test_unseen]
#   --extra-test-data "DIR ..."              stages 1, 3-6: more data dirs with trials []
#   --test-data DIR                          stages 1, 3-6: evaluate this one data dir (with trials) instead; stage 6
#                                            then writes EXP/results_<its name> only, leaving EXP/results as it is
#   --dev-set SET                            the development set under DATA for calibration; "" for none [dev]
#   --nj N                                   parallel jobs for stages 0, 1 and 3 [2]
#   --cmd LAUNCHER                           job launcher prefix, e.g. "srun -c 1" [local]
#   --fbank-conf FILE                        Kaldi fbank options [conf/fbank.conf]
#   --device auto|cpu|cuda                   [auto]
#   --nproc-per-node N --nnodes N --node-rank R --rdzv-endpoint HOST:PORT   torchrun [1 1 0 localhost:29400]
#   --model-dir DIR                          stages 3-6: evaluate this model dir only
#   --untrained true|false                   stages 3-6 also for the untrained network [true]
#   --skip-bad-audio true|false              stages 1, 3: leave out bad audio (listed in skipped_utts) [false]
#   --vad true|false                         stage 1: energy VAD of every set trained on or evaluated
#                                            (steps/compute_vad.py); stage 2 trains (train.vad) and stage 3 embeds
#                                            only the voiced frames [false]
#   --vad-conf FILE                          the VAD options [conf/vad.conf]
#   --resample true|false                    stages 1, 3: resample audio at another sample rate (8 kHz telephone
#                                            speech) to the fbank conf's instead of refusing it [false]
#   --force true|false                       stages 1, 3: recompute even when the stamp says up to date [false]
#   --status true|false                      say what each stage would do now, and why; run nothing [false]
#   --top-n N                                stage 5: AS-norm top N [the model config's score.asnorm_top_n]
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"  # for --help after the cd
cd "$(dirname "$0")"
. ./path.sh
help_more() { steps/run_stages.py --describe; }  # --help: the stage table after the options

stage=0
stop_stage=6
mirror=""
sources=""
download_dir=downloads
mini_data=../../data/mini
config=conf/ecapa_real_mixed.yaml
lm_config=""
overrides=""
exp=exp/ecapa_real_mixed
data=data
train_set=train_mixed
test_sets="test_dsp test_arabic test_libri test_unseen"
extra_test_data=""
test_data=""
dev_set=dev
nj=2
cmd=""
fbank_conf=conf/fbank.conf
device=auto
nproc_per_node=1
nnodes=1
node_rank=0
rdzv_endpoint=localhost:29400
model_dir=""
untrained=true
skip_bad_audio=false
resample=false
vad=false
vad_conf=conf/vad.conf
force=false
status=false
top_n=""
. utils/parse_options.sh

# This recipe's data: the test sets (or --test-data, without the dev set) and the extra ones; the cohort.
combined_results=true  # stage 6's EXP/results: the table of the recipe's own test sets
if [ -n "$test_data" ]; then test_dirs=("$test_data"); dev_set=""; combined_results=false; else
  read -r -a names <<< "$test_sets"; test_dirs=("${names[@]/#/$data/}"); fi
read -r -a extra <<< "$extra_test_data"
test_dirs+=("${extra[@]}")

exec steps/run_stages.py --stage "$stage" --stop-stage "$stop_stage" --status "$status" \
  --data "$data" --exp "$exp" --config "$config" --lm-config "$lm_config" --overrides "$overrides" \
  --train-data "$data/$train_set" --test-data "${test_dirs[@]}" --dev-data "${dev_set:+$data/$dev_set}" \
  --cohort-data "$data/cohort" --model-dir "$model_dir" --untrained "$untrained" \
  --combined-results "$combined_results" \
  --fbank-conf "$fbank_conf" --feat-dir "$exp/fbank" --musan-dir "$data/augment" --rir-dir "$data/augment/rirs" \
  --eval-features always --embedding-mean true \
  --nj "$nj" --cmd "$cmd" --device "$device" --nproc-per-node "$nproc_per_node" --nnodes "$nnodes" \
  --node-rank "$node_rank" --rdzv-endpoint "$rdzv_endpoint" --skip-bad-audio "$skip_bad_audio" --force "$force" \
  --resample "$resample" --vad "$vad" --vad-conf "$vad_conf" --top-n "$top_n" --stage0-check status \
  -- local/prepare_data.sh --data "$data" --nj "$nj" --mirror "$mirror" --sources "$sources" \
    --download-dir "$download_dir" --mini-data "$mini_data"
