#!/usr/bin/env bash
# ECAPA-TDNN speaker verification, Kaldi-style stages (defaults: the built-in mini corpus).
#
#   bash run.sh                              # stages 0-6 on the espeak-ng mini corpus
#   bash run.sh --stage 4 --stop-stage 6     # rescore with earlier outputs
#   bash run.sh --stage 3 --model-dir DIR --test-data DIR --cohort-data DIR
#                                            # evaluate any model dir (e.g. an imported seed model)
#
# This recipe's data (stage 0, docs/mini-corpus.md): DATA/train_wide (training), the test sets DATA/test (clean),
# DATA/test_hard (1-3 s, noise, babble, rooms), DATA/test_unseen (held-out voices and texts) and DATA/test_enroll3
# (models of 3 enrolment utterances of DATA/test, steps/make_enroll_trials.py), DATA/dev
# (calibration in stage 6), DATA/cohort (for AS-norm: 2 utterances of each training speaker) and DATA/augment
# (noises, music, babble, rooms). Stage 1 makes the fbank of the test, dev and cohort sets whatever the front
# end, and of the training set when stage 2 reads feats.scp; stage 3 also computes the cohort's embedding mean.
# The stages themselves are listed below (steps/run_stages.py runs them).
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
#   --test-sets "SET ..."                    stages 1, 3-6: test sets under DATA
#                                            [test test_hard test_unseen test_enroll3]
#   --test-data DIR                          stages 1, 3-6: evaluate this one data dir (with trials) instead; stage 6
#                                            then writes EXP/results_<its name> only, leaving EXP/results as it is
#   --dev-set SET                            the development set under DATA for calibration; "" for none [dev]
#   --train-set SET                          the training set under DATA: train_wide, or train (the
#                                            100-speaker corpus of earlier versions) [train_wide]
#   --cohort-data DIR                        the AS-norm cohort (and embedding mean) [DATA/cohort: stage 0 makes
#                                            it, 2 utterances of each speaker of DATA/TRAIN_SET]
#   --untrained true|false                   stages 3-6 also for the untrained network [true]
#   --skip-bad-audio true|false              stages 1, 3: leave out bad audio (listed in skipped_utts) [false]
#   --vad true|false                         stage 1: energy VAD of every set trained on or evaluated
#                                            (steps/compute_vad.py); stage 2 trains (train.vad) and stage 3 embeds
#                                            only the voiced frames [false]
#   --vad-conf FILE                          the VAD options [conf/vad.conf]
#   --resample true|false                    stages 1, 3: resample audio at another sample rate (8 kHz telephone
#                                            speech) to the fbank conf's instead of refusing it [false]
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
help_more() { steps/run_stages.py --describe; }  # --help: the stage table after the options

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
test_sets="test test_hard test_unseen test_enroll3"
test_data=""
dev_set=dev
train_set=train_wide
cohort_data=""
untrained=true
top_n=""
skip_bad_audio=false
resample=false
vad=false
vad_conf=conf/vad.conf
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

# This recipe's data: the test sets (or --test-data, without the dev set), the cohort (stage 0 makes the default).
combined_results=true  # stage 6's EXP/results: the table of the recipe's own test sets
if [ -n "$test_data" ]; then test_dirs=("$test_data"); dev_set=""; combined_results=false; else
  read -r -a names <<< "$test_sets"; test_dirs=("${names[@]/#/$data/}"); fi
cohort_data=${cohort_data:-$data/cohort}
cohort_per_speaker=0
if [ "$cohort_data" = "$data/cohort" ]; then cohort_per_speaker=2; fi
if [ "$train_set" = train ]; then parts=(--parts train,test,test_hard,test_unseen,dev,augment); else
  parts=(--parts "test,$train_set,test_hard,test_unseen,dev,augment" --wide-name "$train_set"); fi

exec steps/run_stages.py --stage "$stage" --stop-stage "$stop_stage" --status "$status" \
  --data "$data" --exp "$exp" --config "$config" --lm-config "$lm_config" --overrides "$overrides" \
  --train-data "$data/$train_set" --test-data "${test_dirs[@]}" --dev-data "${dev_set:+$data/$dev_set}" \
  --cohort-data "$cohort_data" --cohort-per-speaker "$cohort_per_speaker" --model-dir "$model_dir" \
  --combined-results "$combined_results" --untrained "$untrained" --fbank-conf "$fbank_conf" --feat-dir "$exp/fbank" --compress "$compress" \
  --musan-dir "$data/augment" --rir-dir "$data/augment/rirs" --eval-features always --embedding-mean true \
  --nj "$nj" --cmd "$cmd" --device "$device" --nproc-per-node "$nproc_per_node" --nnodes "$nnodes" \
  --node-rank "$node_rank" --rdzv-endpoint "$rdzv_endpoint" --skip-bad-audio "$skip_bad_audio" --force "$force" \
  --resample "$resample" --vad "$vad" --vad-conf "$vad_conf" --allow-pipes "$allow_pipes" --top-n "$top_n" --stage0-check status \
  --enroll-set "$data/test" "$data/test_enroll3" 3 \
  --recipe-int "random-seed=$random_seed" --recipe-int "wide-speakers=$wide_speakers" \
  --recipe-int "wide-utts-per-speaker=$wide_utts_per_speaker" --recipe-int "train-speakers=$train_speakers" \
  --recipe-int "test-speakers=$test_speakers" --recipe-int "utts-per-speaker=$utts_per_speaker" \
  --recipe-int "unseen-speakers=$unseen_speakers" --recipe-int "dev-speakers=$dev_speakers" \
  -- local/make_mini_corpus.py --data-root "$data" --nj "$nj" --random-seed "$random_seed" "${parts[@]}" \
    --train-speakers "$train_speakers" --test-speakers "$test_speakers" --utts-per-speaker "$utts_per_speaker" \
    --wide-speakers "$wide_speakers" --wide-utts-per-speaker "$wide_utts_per_speaker" \
    --unseen-speakers "$unseen_speakers" --dev-speakers "$dev_speakers"
