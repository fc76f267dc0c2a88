#!/bin/sh
# Fills fuzz/corpus/ (git-ignored) from the seed jobs and the malformed corpus.
set -eu
cd "$(dirname "$0")"
mkdir -p corpus/parse_hcl corpus/parse_yaml
for f in ../tests/fixtures/seed/*.nomad ../tests/fixtures/seed/*.hcl ../tests/fixtures/seed/*/*.nomad \
         ../controller/tests/malformed/*.nomad ../controller/tests/malformed/*.hcl \
         ../controller/benches/fixtures/*.nomad; do
    [ -f "$f" ] && cp "$f" "corpus/parse_hcl/$(basename "$f")"
done
for f in ../controller/tests/malformed/*.yaml ../controller/tests/malformed/*.yml ../fuzz/seeds/*.yaml; do
    [ -f "$f" ] && cp "$f" "corpus/parse_yaml/$(basename "$f")"
done
ls corpus/parse_hcl | wc -l
ls corpus/parse_yaml | wc -l
