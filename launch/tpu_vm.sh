#!/usr/bin/env bash
# Run jaxbench on a Cloud TPU VM or pod slice: create, install, run on every worker,
# collect the workdir, delete.
#
#   launch/tpu_vm.sh --name=jb --zone=us-central2-b --type=v4-32 \
#       --version=tpu-ubuntu2204-base --bucket=gs://my-bucket/runs/adv -- \
#       --config=configs/adv.py
#
# Every worker runs the same command; JAX detects the pod topology itself
# (jax.distributed.initialize() without arguments). The workdir must be shared
# between workers: point --workdir at a gcsfuse mount of --bucket (done here).
# --dry_run prints the gcloud commands instead of running them. --spot asks for a
# preemptible slice: SIGTERM makes jaxbench checkpoint and exit 75; rerun this
# script (same --name) to resume.
set -euo pipefail
NAME=jaxbench; ZONE=us-central2-b; TYPE=v4-8; VERSION=tpu-ubuntu2204-base
BUCKET=""; REPO_URL="."; DRY_RUN=0; SPOT=0; KEEP=0; MAIN_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name=*) NAME="${1#*=}";;
    --zone=*) ZONE="${1#*=}";;
    --type=*) TYPE="${1#*=}";;
    --version=*) VERSION="${1#*=}";;
    --bucket=*) BUCKET="${1#*=}";;
    --repo=*) REPO_URL="${1#*=}";;
    --spot) SPOT=1;;
    --keep) KEEP=1;;
    --dry_run) DRY_RUN=1;;
    --) shift; MAIN_ARGS=("$@"); break;;
    *) echo "unknown flag $1 (see the header of $0)" >&2; exit 2;;
  esac
  shift
done
[[ -n "$BUCKET" ]] || { echo "--bucket=gs://... is required (the shared workdir)" >&2; exit 2; }
run() { if [[ $DRY_RUN == 1 ]]; then printf '%q ' "$@"; echo; else "$@"; fi; }
MOUNT=/mnt/jaxbench_workdir
BUCKET_NAME="${BUCKET#gs://}"; BUCKET_NAME="${BUCKET_NAME%%/*}"
SUBDIR="${BUCKET#gs://$BUCKET_NAME}"; SUBDIR="${SUBDIR#/}"
WORKDIR="$MOUNT/${SUBDIR}"
SPOT_FLAG=(); [[ $SPOT == 1 ]] && SPOT_FLAG=(--spot)
SSH=(gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all)

run gcloud compute tpus tpu-vm create "$NAME" --zone="$ZONE" --accelerator-type="$TYPE" \
    --version="$VERSION" "${SPOT_FLAG[@]}"
run gcloud compute tpus tpu-vm scp --recurse "$REPO_URL" "$NAME":~/jaxbench --zone="$ZONE" \
    --worker=all
run "${SSH[@]}" --command="cd ~/jaxbench && python3 -m pip install -q -e . 'jax[tpu]' && sudo mkdir -p $MOUNT && sudo gcsfuse --implicit-dirs $BUCKET_NAME $MOUNT"
run "${SSH[@]}" --command="cd ~/jaxbench && python3 -m jaxbench.main --workdir=$WORKDIR ${MAIN_ARGS[*]}"
run gsutil -m rsync -r "$BUCKET" "runs/$NAME"
if [[ $KEEP == 0 ]]; then
  run gcloud compute tpus tpu-vm delete "$NAME" --zone="$ZONE" --quiet
fi
