#!/usr/bin/env bash
# ECAPA-TDNN speaker verification, Kaldi-style stages (defaults: the built-in mini corpus).
#
#   bash run.sh                              # stages 0-6 on the espeak-ng mini corpus
#   bash run.sh --stage 4 --stop-stage 6     # rescore with earlier outputs
#   bash run.sh --stage 3 --model-dir DIR --test-data DIR --cohort-data DIR
#                                            # evaluate any model dir (e.g. an imported seed model)
#
# Stages:
#   0  data preparation (docs/mini-corpus.md): DATA/train_wide (training), the test sets DATA/test (clean),
#      DATA/test_hard (1-3 s, noise, babble, rooms) and DATA/test_unseen (held-out voices and texts),
#      DATA/dev (calibration), DATA/cohort (for AS-norm) and DATA/augment (noises, music, babble, rooms)
#   1  Kaldi fbank features: feats.scp + ark, utt2num_frames (--nj jobs, --cmd launcher) of the test, dev and
#      cohort sets, and of the training set when stage 2 reads feats.scp (not train.on_the_fly_features)
#   2  training through torchrun (--nproc-per-node, --nnodes, --node-rank, --rdzv-endpoint); with
#      --lm-config, large-margin fine-tuning of the trained model into EXP/lm
#   3  embeddings (xvector.scp/ark) of the test, dev and cohort data, for the trained and untrained model;
#      the mean of the cohort's embeddings (MODEL_DIR/embedding_mean.vec, used with score.subtract_mean)
#   4  cosine scoring of the trials
#   5  AS-norm scoring (cohort: mean embeddings of the training speakers)
#   6  calibration on the dev set (the operating point `python -m pyfunc verify` decides with; and
#      AS-norm + quality measures), then EER, minDCF, Cllr and actual DCF of every test set and scoring:
#      one table (EXP/results, one per set EXP/results_SET), DET plots in EXP/plots
#
# Options (defaults in brackets):
#   --stage N --stop-stage M                 stages to run [0, 6]
#   --config FILE                            experiment YAML [conf/ecapa_mini.yaml]
#   --lm-config FILE                         stage 2: also fine-tune with this YAML (e.g. conf/ecapa_mini_lm.yaml)
#                                            into EXP/lm, which stages 3-6 then evaluate []
#   --overrides "KEY=VALUE ..."              config overrides, e.g. "train.epochs=5 train.random_seed=2" []
#   --exp DIR                                experiment directory [exp/ecapa_mini]
#   --data DIR                               mini corpus data root [data/mini]
#   --nj N                                   parallel jobs for stages 0, 1 and 3 [2]
#   --cmd LAUNCHER                           job launcher prefix, e.g. "srun -c 1" [local]
#   --fbank-conf FILE                        Kaldi fbank options [conf/fbank.conf]
#   --compress true|false                    stage 1: Kaldi-compressed fbank arks (a quarter of the size) [false]
#   --device auto|cpu|cuda                   [auto]
#   --nproc-per-node N --nnodes N --node-rank R --rdzv-endpoint HOST:PORT   torchrun [1 1 0 localhost:29400]
#   --model-dir DIR                          stages 3-6: evaluate this model dir only
#   --test-sets "SET ..."                    stages 1, 3-6: test sets under DATA [test test_hard test_unseen]
#   --test-data DIR                          stages 1, 3-6: evaluate this one data dir (with trials) instead
#   --dev-set SET                            the development set under DATA for calibration; "" for none [dev]
#   --train-set SET                          the training set under DATA: train_wide, or train (the
#                                            100-speaker corpus of earlier versions) [train_wide]
#   --cohort-data DIR                        the AS-norm cohort (and embedding mean) [DATA/cohort: stage 0 makes
#                                            it, 2 utterances of each speaker of DATA/TRAIN_SET]
#   --untrained true|false                   stages 3-6 also for the untrained network [true]
#   --skip-bad-audio true|false              stages 1, 3: leave out bad audio (listed in skipped_utts) [false]
#   --allow-pipes true|false                 stages 1-3: run 'command |' entries of wav.scp/feats.scp [false]
#   --force true|false                       stages 1, 3: recompute even when the stamp says up to date [false]
#   --status true|false                      say what each stage would do now, and why; run nothing [false]
#   --top-n N                                stage 5: AS-norm top N [the model config's score.asnorm_top_n]
#   --random-seed N                          random seed of the mini corpus [777]
#   --wide-speakers N --wide-utts-per-speaker N   training set size (train_wide) [300 6]
#   --train-speakers N --test-speakers N --utts-per-speaker N   the speakers of DATA/test (and DATA/train) [100 20 20]
#   --unseen-speakers N --dev-speakers N     test_unseen and dev sizes [24 16]
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"  # for --help after the cd
cd "$(dirname "$0")"
. ./path.sh

stage=0
stop_stage=6
config=conf/ecapa_mini.yaml
lm_config=""
overrides=""
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
test_sets="test test_hard test_unseen"
test_data=""
dev_set=dev
train_set=train_wide
cohort_data=""
untrained=true
top_n=""
skip_bad_audio=false
allow_pipes=false
force=false
status=false
random_seed=777
seed=""  # the former name of --random-seed, still accepted
wide_speakers=300
wide_utts_per_speaker=6
train_speakers=100
test_speakers=20
utts_per_speaker=20
unseen_speakers=24
dev_speakers=16
. utils/parse_options.sh
random_seed=${seed:-$random_seed}

flag() { if [ "$2" = true ]; then echo "$1"; fi; }  # a boolean option as a flag for the steps
pipes=$(flag --allow-pipes "$allow_pipes")
redo=($(flag --skip-bad-audio "$skip_bad_audio") $(flag --force "$force") $pipes)
log() { echo "$(date '+%F %T') run.sh: $*"; }

# The data dirs each stage works on: the test sets (or --test-data), the dev set, the cohort.
if [ -n "$test_data" ]; then
  test_dirs=("$test_data")
else
  read -r -a names <<< "$test_sets"
  test_dirs=("${names[@]/#/$data/}")
fi
eval_dirs=("${test_dirs[@]}")
[ -n "$dev_set" ] && [ -z "$test_data" ] && eval_dirs+=("$data/$dev_set")
cohort_data=${cohort_data:-$data/cohort}
lists=$(for d in "${test_dirs[@]}"; do basename "$d"; done | paste -sd, -)
final=$exp
[ -n "$lm_config" ] && final=$exp/lm
if [ -n "$model_dir" ]; then
  models=("$model_dir")
elif [ "$untrained" = true ]; then
  models=("$final" "$exp/untrained")
else
  models=("$final")
fi

if [ "$status" = true ]; then  # what each stage would do now, and why (pyfunc/pipeline/recipe_status.py)
  exec steps/recipe_status.py mini --stage "$stage" --stop-stage "$stop_stage" --data "$data" --exp "$exp" \
    --config "$config" --lm-config "$lm_config" --overrides "$overrides" --fbank-conf "$fbank_conf" \
    --train-set "$train_set" --models "${models[@]}" --test-data "${test_dirs[@]}" \
    --dev-data "$([ -z "$test_data" ] && [ -n "$dev_set" ] && echo "$data/$dev_set")" --cohort-data "$cohort_data" \
    --skip-bad-audio "$skip_bad_audio" --force "$force" --compress "$compress" --random-seed "$random_seed" \
    --train-speakers "$train_speakers" --test-speakers "$test_speakers" --utts-per-speaker "$utts_per_speaker" \
    --wide-speakers "$wide_speakers" --wide-utts-per-speaker "$wide_utts_per_speaker" \
    --unseen-speakers "$unseen_speakers" --dev-speakers "$dev_speakers"
fi

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "stage 0: data preparation ($data)"
  if [ "$train_set" = train ]; then train_part=(--parts train,test,test_hard,test_unseen,dev,augment); else
    train_part=(--parts "test,$train_set,test_hard,test_unseen,dev,augment" --wide-name "$train_set"); fi
  local/make_mini_corpus.py --data-root "$data" --nj "$nj" --random-seed "$random_seed" "${train_part[@]}" \
    --train-speakers "$train_speakers" --test-speakers "$test_speakers" --utts-per-speaker "$utts_per_speaker" \
    --wide-speakers "$wide_speakers" --wide-utts-per-speaker "$wide_utts_per_speaker" \
    --unseen-speakers "$unseen_speakers" --dev-speakers "$dev_speakers"
  if [ "$cohort_data" = "$data/cohort" ]; then
    steps/subset_data_dir.py --per-speaker 2 "$data/$train_set" "$data/cohort"
  fi
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: fbank features"
  fbank_dirs=("${eval_dirs[@]}" "$cohort_data")
  # The training set's fbank only when stage 2 reads feats.scp (not with train.on_the_fly_features).
  sets=(); for o in $overrides; do sets+=(--set "$o"); done
  for c in "$config" $lm_config; do
    if [ "$(steps/make_config.py --training-table "${sets[@]}" "$c")" = feats.scp ]; then
      fbank_dirs=("$data/$train_set" "${fbank_dirs[@]}")
      break
    fi
  done
  for d in "${fbank_dirs[@]}"; do
    steps/make_fbank.py --nj "$nj" --cmd "$cmd" --conf "$fbank_conf" --compress "$compress" "${redo[@]}" \
      "$d" "$exp/fbank/$(basename "$d")" "$exp/fbank/log"
  done
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  # The effective configs: the YAML, the augmentation sources of stage 0 and --overrides.
  data_abs=$(cd "$data" && pwd)
  sets=(--set "train.augment.musan_dir=$data_abs/augment" --set "train.augment.rir_dir=$data_abs/augment/rirs")
  for o in $overrides; do sets+=(--set "$o"); done
  steps/make_config.py "${sets[@]}" "$config" "$exp/conf/train.yaml"
  log "stage 2: training ($nnodes node(s) x $nproc_per_node process(es)), log in $exp/log/train.log"
  launch=(--nproc-per-node "$nproc_per_node" --nnodes "$nnodes" --node-rank "$node_rank"
    --rdzv-endpoint "$rdzv_endpoint")
  steps/train.sh "${launch[@]}" -- --config "$exp/conf/train.yaml" --data "$data/$train_set" --exp "$exp" \
    --device "$device" --fbank-conf "$fbank_conf" $pipes
  if [ -n "$lm_config" ]; then
    steps/make_config.py "${sets[@]}" --set "train.init_model=$(cd "$exp" && pwd)" "$lm_config" \
      "$final/conf/train.yaml"
    log "stage 2: large-margin fine-tuning of $exp into $final, log in $final/log/train.log"
    steps/train.sh "${launch[@]}" -- --config "$final/conf/train.yaml" --data "$data/$train_set" --exp "$final" \
      --device "$device" --fbank-conf "$fbank_conf" $pipes
  fi
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  for m in "${models[@]}"; do
    log "stage 3: embeddings of ${eval_dirs[*]} and $cohort_data with $m"
    steps/extract.sh --nj "$nj" --cmd "$cmd" --device "$device" --opts "${redo[*]}" --cohort "$cohort_data" \
      "$m" "${eval_dirs[@]}"
    steps/compute_embedding_mean.py --model-dir "$m" --embeddings "$m/embeddings/$(basename "$cohort_data")"
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  for m in "${models[@]}"; do
    log "stage 4: cosine scoring with $m"
    steps/score.sh "$m" "${eval_dirs[@]}"
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  for m in "${models[@]}"; do
    log "stage 5: AS-norm scoring with $m (cohort: the $(basename "$cohort_data") speakers)"
    steps/score_norm.sh --cohort "$cohort_data" ${top_n:+--top-n "$top_n"} "$m" "${eval_dirs[@]}"
  done
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  scorings=cosine,asnorm
  if [ -n "$dev_set" ] && [ -z "$test_data" ]; then
    scorings=cosine,cosine-cal,asnorm,asnorm-qmf
    for m in "${models[@]}"; do
      log "stage 6: calibration of $m on $data/$dev_set"
      steps/calibrate.sh --operating-point true "$m" "$data/$dev_set" "${test_dirs[@]}"
      steps/calibrate.sh --scoring asnorm --quality duration,magnitude,cohort_mean --cohort "$cohort_data" \
        "$m" "$data/$dev_set" "${test_dirs[@]}"
    done
  fi
  log "stage 6: EER, minDCF, Cllr and actual DCF of $lists"
  steps/results_table.py --data "$(dirname "${test_dirs[0]}")" --lists "$lists" --scorings "$scorings" \
    --plot-dir "${models[0]}/plots" --out "${models[0]}/results" "${models[@]}"
fi
