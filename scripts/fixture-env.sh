#!/usr/bin/env bash
# Source me. Points Hugging Face at the offline fixture model in ../shared, when it is there.
_shared="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/shared"
if [ -d "$_shared/models/hf/hub" ]; then
    export HF_HOME="$_shared/models/hf" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
    export MMSEARCH_SHARED="$_shared"
fi
unset _shared
