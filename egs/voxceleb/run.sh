#!/usr/bin/env bash
# ECAPA-TDNN on VoxCeleb: train on VoxCeleb2 dev, evaluate on Vox1-O, Vox1-E and Vox1-H (see README.md).
#
#   bash run.sh --vox1-root /corpora/voxceleb1 --vox2-root /corpora/voxceleb2/dev/aac \
#       --musan-root /corpora/musan --rirs-root /corpora/RIRS_NOISES
#   bash run.sh --stage 4 --stop-stage 6                 # rescore with the embeddings of an earlier run
#   bash run.sh --stage 3 --model-dir exp/seed_import    # evaluate another model dir (e.g. an imported seed model)
#
# This recipe's data (stage 0, local/prepare_data.sh; data/ and exp/ relative to this folder): DATA/vox2_dev
# (training), DATA/vox1 (all of VoxCeleb1), the official lists converted to Kaldi trials in
# DATA/{vox1_o,vox1_e,vox1_h}/trials (with data dirs of their utterances), DATA/vox1_eval (the utterances of the
# --lists: the one embedding set every list is scored with), DATA/musan_{noise,music,speech} (5 s segments),
# DATA/rirs. Stage 1 works only for the fbank front end: Kaldi-style augmented copies of vox2_dev (--aug-kinds),
# fbank of vox2_dev, its copies, the cohort and vox1_eval; the seed front end reads wav.scp and augments on the
# fly. The AS-norm cohort is VoxCeleb2 dev (or DATA/vox2_cohort); stage 6 reports EER, minDCF, Cllr, min Cllr
# and actual DCF without calibration. The stages themselves are listed below (steps/run_stages.py runs them).
#
# Options (defaults in brackets; relative paths are relative to this folder, egs/voxceleb, as in Kaldi):
#   --stage N --stop-stage M                 stages to run [0, 6]
#   --vox1-root "DIR [DIR]"                  VoxCeleb1 wav folder(s) (wav/id10001/1zcIwhmdeo4/00001.wav; or
#                                            vox1_dev_wav and vox1_test_wav); none: skip it in stage 0 []
#   --vox2-root DIR                          VoxCeleb2 dev folder, m4a as released (dev/aac) or wav []
#   --vox2-audio auto|wav|m4a                which VoxCeleb2 files to use [auto: wav when complete, else m4a]
#   --vox2-wav-dir DIR                       stage 0 decodes VoxCeleb2's m4a once to 16 kHz wav here (ffmpeg,
#                                            --nj at a time, resumable); "": keep m4a as ffmpeg pipes, which
#                                            training refuses [vox2_wav]
#   --musan-root DIR --rirs-root DIR         MUSAN (openslr 17) and RIRS_NOISES (openslr 28) folders []
#   --trials-dir DIR                         folder holding veri_test2.txt list_test_all2.txt list_test_hard2.txt
#                                            [the first --vox1-root]
#   --lists L1,L2                            trial lists to make and evaluate [vox1_o,vox1_e,vox1_h]
#   --config FILE                            experiment YAML [conf/ecapa_c1024.yaml]
#   --lm-config FILE                         stage 2: also fine-tune with this YAML into EXP/lm, which stages 3-6
#                                            then evaluate (conf/ecapa_c1024_lm.yaml after ecapa_c1024_plus.yaml) []
#   --overrides "KEY=VALUE ..."              config overrides, e.g. "train.epochs=40 train.num_workers=12" []
#   --exp DIR                                experiment directory [exp/ecapa_c1024]
#   --data DIR                               data directories [data]
#   --feat-dir DIR                           fbank ark/scp files (fbank front end) [fbank]
#   --nj N                                   parallel jobs for stages 0, 1 and 3 [8]
#   --cmd LAUNCHER                           job launcher prefix, e.g. "srun -c 1" [local]
#   --fbank-conf FILE                        Kaldi fbank options [conf/fbank.conf]
#   --compress true|false                    stage 1: Kaldi-compressed fbank arks, about a quarter of the
#                                            float32 size (see README.md, disk) [true]
#   --aug-kinds K1,K2                        fbank front end: offline copies [reverb,noise,music,babble]; "" for none
#   --aug-subset N                           fbank front end: keep N random augmented utterances (0: all) [1000000]
#   --random-seed N                          random seed of the offline augmentation draws [0]
#   --cohort-per-spk N                       AS-norm cohort from N utterances per speaker (0: all of vox2_dev) [0]
#   --top-n N                                AS-norm top N [the model config's score.asnorm_top_n]
#   --device auto|cpu|cuda                   [auto]
#   --nproc-per-node N --nnodes N --node-rank R --rdzv-endpoint HOST:PORT   torchrun [1 1 0 localhost:29400]
#   --model-dir DIR                          stages 3-6: evaluate this model dir instead of EXP
#   --plots true|false                       stage 6: draw DET curves and score histograms [true]
#   --allow-pipes auto|true|false            run wav.scp pipe commands (ffmpeg for m4a) [auto: when there are any]
#   --vad true|false                         stage 1: energy VAD of every set trained on or evaluated
#                                            (steps/compute_vad.py); stage 2 trains (train.vad) and stage 3 embeds
#                                            only the voiced frames [false]
#   --vad-conf FILE                          the VAD options [conf/vad.conf]
#   --resample true|false                    stages 1, 3: resample audio at another sample rate (8 kHz telephone
#                                            speech) to the fbank conf's instead of refusing it [false]
#   --status true|false                      say what each stage would do now, and why; run nothing [false]
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"  # for --help after the cd
cd "$(dirname "$0")"
. ./path.sh
help_more() { steps/run_stages.py --describe; }  # --help: the stage table after the options

stage=0
stop_stage=6
vox1_root=""
vox2_root=""
vox2_audio=auto
vox2_wav_dir=vox2_wav
musan_root=""
rirs_root=""
trials_dir=""
lists=vox1_o,vox1_e,vox1_h
config=conf/ecapa_c1024.yaml
lm_config=""
overrides=""
exp=exp/ecapa_c1024
data=data
feat_dir=fbank
nj=8
cmd=""
fbank_conf=conf/fbank.conf
compress=true
aug_kinds=reverb,noise,music,babble
aug_subset=1000000
random_seed=0
aug_seed=""  # the former name of --random-seed, still accepted
cohort_per_spk=0
top_n=""
device=auto
nproc_per_node=1
nnodes=1
node_rank=0
rdzv_endpoint=localhost:29400
model_dir=""
plots=true
allow_pipes=auto
resample=false
vad=false
vad_conf=conf/vad.conf
status=false
. utils/parse_options.sh
random_seed=${aug_seed:-$random_seed}

# This recipe's data: the trial lists (scored with the embeddings of vox1_eval), the cohort, and what stage 0
# makes from the corpora given (for --status).
IFS=, read -r -a list_names <<< "$lists"
list_dirs=("${list_names[@]/#/$data/}")
cohort_data=$data/vox2_dev
if [ "$cohort_per_spk" != 0 ]; then cohort_data=$data/vox2_cohort; fi
made=()
if [ -n "$vox2_root" ]; then made+=("$data/vox2_dev"); fi
if [ -n "$vox2_root" ] && [ "$cohort_per_spk" != 0 ]; then made+=("$data/vox2_cohort"); fi
if [ -n "$vox1_root" ]; then made+=("$data/vox1" "$data/vox1_eval" "${list_dirs[@]}"); fi
if [ -n "$musan_root" ]; then made+=("$data"/musan_{noise,music,speech}); fi
if [ -n "$rirs_root" ]; then made+=("$data/rirs"); fi

exec steps/run_stages.py --stage "$stage" --stop-stage "$stop_stage" --status "$status" \
  --data "$data" --exp "$exp" --config "$config" --lm-config "$lm_config" --overrides "$overrides" \
  --train-data "$data/vox2_dev" --test-data "${list_dirs[@]}" --embedding-set "$data/vox1_eval" \
  --cohort-data "$cohort_data" --model-dir "$model_dir" --untrained false --fbank-conf "$fbank_conf" \
  --feat-dir "$feat_dir" --compress "$compress" --musan-dir "$data" --rir-dir "$data/rirs" \
  --eval-features frontend --embedding-mean false --aug-kinds "$aug_kinds" --aug-subset "$aug_subset" \
  --aug-seed "$random_seed" --nj "$nj" --cmd "$cmd" --device "$device" --nproc-per-node "$nproc_per_node" \
  --nnodes "$nnodes" --node-rank "$node_rank" --rdzv-endpoint "$rdzv_endpoint" --allow-pipes "$allow_pipes" \
  --resample "$resample" --vad "$vad" --vad-conf "$vad_conf" --pipe-note "note: VoxCeleb2 is decoded from m4a by ffmpeg every time it is read (training refuses that);\
 stage 0 with --vox2-wav-dir DIR converts once" \
  --top-n "$top_n" --plots "$plots" --recipe-int "cohort-per-spk=$cohort_per_spk" \
  --stage0-check dirs --stage0-makes "${made[@]}" \
  -- local/prepare_data.sh --data "$data" --nj "$nj" --vox1-root "$vox1_root" --trials-dir "$trials_dir" \
    --lists "$lists" --vox2-root "$vox2_root" --vox2-audio "$vox2_audio" --vox2-wav-dir "$vox2_wav_dir" \
    --cohort-per-spk "$cohort_per_spk" --musan-root "$musan_root" --rirs-root "$rirs_root"
