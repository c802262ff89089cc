#!/usr/bin/env bash
# ECAPA-TDNN speaker verification, Kaldi-style stages (defaults: the built-in mini corpus).
#
#   bash run.sh                              # stages 0-6 on the espeak-ng mini corpus
#   bash run.sh --stage 4 --stop-stage 6     # rescore with earlier outputs
#   bash run.sh --stage 3 --model-dir DIR --test-data DIR --cohort-data DIR
#                                            # evaluate any model dir (e.g. an imported seed model)
#
# Stages:
#   0  data preparation: data/mini/{train,test} (wav.scp utt2spk spk2utt utt2dur) and test/trials
#   1  Kaldi fbank features: feats.scp + ark, utt2num_frames (--nj jobs, --cmd launcher)
#   2  training through torchrun (--nproc-per-node, --nnodes, --node-rank, --rdzv-endpoint)
#   3  embeddings (xvector.scp/ark) of the test and cohort data, for the trained and untrained model
#   4  cosine scoring of the trials
#   5  AS-norm scoring (cohort: mean embeddings of the training speakers)
#   6  EER and minDCF of every score file: a table, written to EXP/results
#
# Options (defaults in brackets):
#   --stage N --stop-stage M                 stages to run [0, 6]
#   --config FILE                            experiment YAML [conf/ecapa_mini.yaml]
#   --exp DIR                                experiment directory [exp/ecapa_mini]
#   --data DIR                               mini corpus data root [data/mini]
#   --nj N                                   parallel jobs for stages 0, 1 and 3 [2]
#   --cmd LAUNCHER                           job launcher prefix, e.g. "srun -c 1" [local]
#   --fbank-conf FILE                        Kaldi fbank options [conf/fbank.conf]
#   --compress true|false                    stage 1: Kaldi-compressed fbank arks (a quarter of the size) [false]
#   --device auto|cpu|cuda                   [auto]
#   --nproc-per-node N --nnodes N --node-rank R --rdzv-endpoint HOST:PORT   torchrun [1 1 0 localhost:29400]
#   --model-dir DIR                          stages 3-6: evaluate this model dir only
#   --test-data DIR --cohort-data DIR        stages 3-6: data dirs [DATA/test, DATA/train]
#   --skip-bad-audio true|false              stages 1, 3: leave out bad audio (listed in skipped_utts) [false]
#   --allow-pipes true|false                 stages 1-3: run 'command |' entries of wav.scp/feats.scp [false]
#   --force true|false                       stages 1, 3: recompute even when the stamp says up to date [false]
#   --top-n N                                stage 5: AS-norm top N [the model config's score.asnorm_top_n]
#   --random-seed N                          random seed of the mini corpus [777]
#   --train-speakers N --test-speakers N --utts-per-speaker N   mini corpus size [100 20 20]
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"  # for --help after the cd
cd "$(dirname "$0")"
. ./path.sh

stage=0
stop_stage=6
config=conf/ecapa_mini.yaml
exp=exp/ecapa_mini
data=data/mini
nj=2
cmd=""
fbank_conf=conf/fbank.conf
compress=false
device=auto
nproc_per_node=1
nnodes=1
node_rank=0
rdzv_endpoint=localhost:29400
model_dir=""
test_data=""
cohort_data=""
top_n=""
skip_bad_audio=false
allow_pipes=false
force=false
random_seed=777
seed=""  # the former name of --random-seed, still accepted
train_speakers=100
test_speakers=20
utts_per_speaker=20
. utils/parse_options.sh
random_seed=${seed:-$random_seed}

test_data=${test_data:-$data/test}
flag() { if [ "$2" = true ]; then echo "$1"; fi; }  # a boolean option as a flag for the steps
pipes=$(flag --allow-pipes "$allow_pipes")
redo=($(flag --skip-bad-audio "$skip_bad_audio") $(flag --force "$force") $pipes)
cohort_data=${cohort_data:-$data/train}
log() { echo "$(date '+%F %T') run.sh: $*"; }

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "stage 0: data preparation ($data)"
  local/make_mini_corpus.py --data-root "$data" --nj "$nj" --random-seed "$random_seed" \
    --train-speakers "$train_speakers" --test-speakers "$test_speakers" --utts-per-speaker "$utts_per_speaker"
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: fbank features"
  for part in train test; do
    steps/make_fbank.py --nj "$nj" --cmd "$cmd" --conf "$fbank_conf" --compress "$compress" "${redo[@]}" \
      "$data/$part" "$exp/fbank/$part" "$exp/fbank/log"
  done
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: training ($nnodes node(s) x $nproc_per_node process(es)), log in $exp/log/train.log"
  steps/train.sh --nproc-per-node "$nproc_per_node" --nnodes "$nnodes" --node-rank "$node_rank" \
    --rdzv-endpoint "$rdzv_endpoint" -- --config "$config" --data "$data/train" --exp "$exp" --device "$device" \
    --fbank-conf "$fbank_conf" $pipes
fi

if [ -n "$model_dir" ]; then
  models=("$model_dir")
else
  models=("$exp" "$exp/untrained")
fi
test_name=$(basename "$test_data")

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  for m in "${models[@]}"; do
    log "stage 3: embeddings of $test_data and $cohort_data with $m"
    steps/extract.sh --nj "$nj" --cmd "$cmd" --device "$device" --opts "${redo[*]}" --cohort "$cohort_data" \
      "$m" "$test_data"
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  for m in "${models[@]}"; do
    log "stage 4: cosine scoring with $m"
    steps/score.sh "$m" "$test_data"
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  for m in "${models[@]}"; do
    log "stage 5: AS-norm scoring with $m (cohort: the $(basename "$cohort_data") speakers)"
    steps/score_norm.sh --cohort "$cohort_data" ${top_n:+--top-n "$top_n"} "$m" "$test_data"
  done
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "stage 6: EER and minDCF"
  scores=()
  for m in "${models[@]}"; do
    scores+=("$m/scores/${test_name}_cosine" "$m/scores/${test_name}_asnorm")
  done
  steps/compute_metrics.py --trials "$test_data/trials" --out "${models[0]}/results" "${scores[@]}"
fi
