#!/usr/bin/env bash
# ECAPA-TDNN on VoxCeleb: train on VoxCeleb2 dev, evaluate on Vox1-O, Vox1-E and Vox1-H (see README.md).
#
#   bash run.sh --vox1-root /corpora/voxceleb1 --vox2-root /corpora/voxceleb2/dev/aac \
#       --musan-root /corpora/musan --rirs-root /corpora/RIRS_NOISES
#   bash run.sh --stage 4 --stop-stage 6                 # rescore with the embeddings of an earlier run
#   bash run.sh --stage 3 --model-dir exp/seed_import    # evaluate another model dir (e.g. an imported seed model)
#
# Stages (the same steps/*.py as the top-level recipe; data/ and exp/ relative to this folder):
#   0  data: DATA/vox2_dev (training), DATA/vox1 (all of VoxCeleb1), the official lists converted to Kaldi
#      trials in DATA/{vox1_o,vox1_e,vox1_h}/trials (with data dirs of their utterances), DATA/vox1_eval
#      (the utterances of the --lists), DATA/musan_{noise,music,speech} (5 s segments), DATA/rirs
#   1  fbank front end only: Kaldi-style augmented copies of vox2_dev (steps/augment_data_dir.py,
#      steps/combine_data_dirs.py), fbank of vox2_dev, its copies and vox1_eval; the seed front end needs none
#   2  training through torchrun (on-the-fly waveform augmentation with the seed front end)
#   3  embeddings of DATA/vox1_eval, and of the AS-norm cohort (VoxCeleb2 dev, or DATA/vox2_cohort) with the
#      full-utterance protocol only, then the cohort's speaker means once (spk_xvector.scp)
#   4  cosine scoring of every trial list
#   5  AS-norm scoring (cohort: mean embeddings of the VoxCeleb2 training speakers)
#   6  EER, minDCF, Cllr, min Cllr, actual DCF (p_target 0.01, 0.05) of every list and scoring:
#      EXP/results (one table), EXP/results_LIST, DET and score plots in EXP/plots
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
#   --status true|false                      say what each stage would do now, and why; run nothing [false]
set -euo pipefail
script_path="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"  # for --help after the cd
cd "$(dirname "$0")"
. ./path.sh

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
status=false
. utils/parse_options.sh
random_seed=${aug_seed:-$random_seed}

log() { echo "$(date '+%F %T') run.sh: $*"; }
die() { echo "$(date '+%F %T') run.sh: error: $*" >&2; exit 1; }

# Option values as lists (no work is done before the stages).
read -r -a vox1_roots <<< "$vox1_root"
IFS=, read -r -a list_names <<< "$lists"
IFS=, read -r -a kinds <<< "$aug_kinds"
[ ${#list_names[@]} -gt 0 ] || die "--lists is empty"
list_dirs=("${list_names[@]/#/$data/}")
train_config=$exp/conf/train.yaml  # the effective config: the base YAML, the augmentation sources, --overrides
final=$exp
[ -n "$lm_config" ] && final=$exp/lm
m=${model_dir:-$final}
if [ "$cohort_per_spk" -gt 0 ]; then cohort_data=$data/vox2_cohort; else cohort_data=$data/vox2_dev; fi

if [ "$status" = true ]; then  # what each stage would do now, and why (pyfunc/pipeline/recipe_status.py)
  exec steps/recipe_status.py voxceleb --stage "$stage" --stop-stage "$stop_stage" --data "$data" --exp "$exp" \
    --config "$config" --lm-config "$lm_config" --overrides "$overrides" --feat-dir "$feat_dir" \
    --fbank-conf "$fbank_conf" --compress "$compress" --lists "$lists" \
    --aug-kinds "$aug_kinds" --cohort-per-spk "$cohort_per_spk" --model-dir "$model_dir" --vox1-root "$vox1_root" \
    --vox2-root "${vox2_wav_dir:-$vox2_root}" --musan-root "$musan_root" --rirs-root "$rirs_root"
fi

# VoxCeleb2 as m4a: wav.scp holds ffmpeg pipe commands, which stages 1-3 run only with --allow-pipes.
set_pipe_opts() {
  pipe_opts=()
  if [ -f "$data/vox2_dev/wav.scp" ] && grep -q '|[[:space:]]*$' "$data/vox2_dev/wav.scp"; then
    case "$allow_pipes" in
      auto|true)
        pipe_opts=(--allow-pipes)
        command -v ffmpeg >/dev/null || die "$data/vox2_dev/wav.scp decodes m4a with ffmpeg, which is not \
installed; install it (apt-get install ffmpeg) or convert first (--vox2-wav-dir DIR)"
        [ -n "${pipe_note:-}" ] || log "note: VoxCeleb2 is decoded from m4a by ffmpeg every time it is read" \
          "(training refuses that); stage 0 with --vox2-wav-dir DIR converts once"
        pipe_note=done ;;
      false) ;;
      *) die "--allow-pipes must be auto, true or false, got $allow_pipes" ;;
    esac
  elif [ "$allow_pipes" = true ]; then
    pipe_opts=(--allow-pipes)
  fi
}

# The front end of the effective config (stage 1 makes features only for fbank) and the training data.
set_frontend() {
  [ -f "$train_config" ] || die "$train_config not found; run stage 1 or 2 first (they write it)"
  frontend=$(steps/make_config.py --get model.frontend "$train_config")
  if [ "$frontend" = fbank ] && [ ${#kinds[@]} -gt 0 ]; then
    train_data=$data/vox2_dev_combined
  else
    train_data=$data/vox2_dev
  fi
}

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "stage 0: data preparation ($data)"
  [ -n "$vox1_root$vox2_root$musan_root$rirs_root" ] || \
    die "stage 0 needs the corpora: give --vox1-root, --vox2-root, --musan-root and --rirs-root (see --help)"
  mkdir -p "$data"
  if [ -n "$vox1_root$vox2_root" ]; then
    args=(--data "$data" --nj "$nj" --vox2-audio "$vox2_audio" --vox2-wav-dir "$vox2_wav_dir" \
      --trial-subsets "$lists" --cohort-per-spk "$cohort_per_spk")
    [ -n "$vox2_root" ] && args+=(--vox2-root "$vox2_root")
    if [ ${#vox1_roots[@]} -gt 0 ]; then
      trials_dir=${trials_dir:-${vox1_roots[0]}}
      [ -d "$trials_dir" ] || die "--trials-dir $trials_dir: folder not found (it holds veri_test2.txt etc.)"
      args+=(--vox1-root "${vox1_roots[@]}" --meta-dir "$trials_dir" --lists "$lists")
    fi
    local/prepare_voxceleb.py "${args[@]}"
  fi
  if [ -n "$musan_root" ]; then
    local/prepare_musan.py --nj "$nj" "$musan_root" "$data"
  fi
  if [ -n "$rirs_root" ]; then
    local/prepare_rirs.py --nj "$nj" "$rirs_root" "$data/rirs"
  fi
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 1 ]; then
  log "writing the effective config $train_config"
  mkdir -p "$data" "$exp"
  data_abs=$(cd "$data" && pwd)
  sets=(--set "train.augment.musan_dir=$data_abs" --set "train.augment.rir_dir=$data_abs/rirs")
  for o in $overrides; do sets+=(--set "$o"); done
  steps/make_config.py "${sets[@]}" "$config" "$train_config"
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  set_pipe_opts
  set_frontend
  if [ "$frontend" = fbank ]; then
    fbank() {
      steps/make_fbank.py --nj "$nj" --cmd "$cmd" --conf "$fbank_conf" --compress "$compress" "${pipe_opts[@]}" \
        "$1" "$feat_dir/$(basename "$1")" "$feat_dir/log"
    }
    log "stage 1: fbank of $data/vox2_dev"
    fbank "$data/vox2_dev"
    if [ ${#kinds[@]} -gt 0 ]; then
      log "stage 1: augmented copies of $data/vox2_dev (${kinds[*]}), $aug_subset kept (0: all)"
      steps/augment_data_dir.py --config "$train_config" --kinds "$aug_kinds" --random-seed "$random_seed" \
        "$data/vox2_dev" "$data"
      steps/combine_data_dirs.py --subset "$aug_subset" --random-seed "$random_seed" "$data/vox2_dev_aug" \
        "${kinds[@]/#/$data/vox2_dev_}"
      log "stage 1: fbank of the augmented audio of $data/vox2_dev_aug"
      fbank "$data/vox2_dev_aug"
      steps/combine_data_dirs.py "$data/vox2_dev_combined" "$data/vox2_dev" "$data/vox2_dev_aug"
    fi
    if [ "$cohort_per_spk" -gt 0 ]; then
      log "stage 1: fbank of $data/vox2_cohort"
      fbank "$data/vox2_cohort"
    fi
    log "stage 1: fbank of $data/vox1_eval"
    fbank "$data/vox1_eval"
  else
    log "stage 1: nothing to do (the $frontend front end reads wav.scp; augmentation is on the fly)"
  fi
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  set_pipe_opts
  set_frontend
  log "stage 2: training on $train_data ($nnodes node(s) x $nproc_per_node process(es)), log in $exp/log/train.log"
  launch=(--nproc-per-node "$nproc_per_node" --nnodes "$nnodes" --node-rank "$node_rank"
    --rdzv-endpoint "$rdzv_endpoint")
  steps/train.sh "${launch[@]}" -- --config "$train_config" --data "$train_data" --exp "$exp" \
    --device "$device" --fbank-conf "$fbank_conf" "${pipe_opts[@]}"
  if [ -n "$lm_config" ]; then
    data_abs=$(cd "$data" && pwd)
    sets=(--set "train.augment.musan_dir=$data_abs" --set "train.augment.rir_dir=$data_abs/rirs"
      --set "train.init_model=$(cd "$exp" && pwd)")
    for o in $overrides; do sets+=(--set "$o"); done
    steps/make_config.py "${sets[@]}" "$lm_config" "$final/conf/train.yaml"
    log "stage 2: large-margin fine-tuning of $exp into $final, log in $final/log/train.log"
    steps/train.sh "${launch[@]}" -- --config "$final/conf/train.yaml" --data "$train_data" --exp "$final" \
      --device "$device" --fbank-conf "$fbank_conf" "${pipe_opts[@]}"
  fi
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  set_pipe_opts
  log "stage 3: embeddings of $data/vox1_eval and the cohort $cohort_data with $m"
  steps/extract.sh --nj "$nj" --cmd "$cmd" --device "$device" --opts "${pipe_opts[*]}" --cohort "$cohort_data" \
    "$m" "$data/vox1_eval"
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "stage 4: cosine scoring of ${list_names[*]} with $m"
  steps/score.sh --embeddings vox1_eval "$m" "${list_dirs[@]}"
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "stage 5: AS-norm scoring of ${list_names[*]} with $m (cohort: the $(basename "$cohort_data") speakers)"
  steps/score_norm.sh --cohort "$cohort_data" --embeddings vox1_eval ${top_n:+--top-n "$top_n"} "$m" "${list_dirs[@]}"
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "stage 6: EER and minDCF of ${list_names[*]}"
  # One table of every list and scoring (and one per list, EXP/results_LIST), with each list's plots.
  steps/results_table.py --data "$data" --lists "$lists" --scorings cosine,asnorm \
    $([ "$plots" = true ] && echo --plot-dir "$m/plots") --out "$m/results" "$m"
fi
