#!/usr/bin/env bash
# Mutation testing of the pure core (crates/wsd-core): every mutant must be caught.
#
#   scripts/mutants.sh              every mutant of wsd-core
#   scripts/mutants.sh --in-diff F  only mutants on lines changed by the diff in F
#
# Installs cargo-mutants when it is missing. Exits non-zero when a mutant survives.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null 2>&1; then
    echo "mutants: installing cargo-mutants (once, about 4 minutes)"
    cargo install cargo-mutants --locked --version 27.1.0 --quiet
fi

# The configuration (files examined, test package) is .cargo/mutants.toml. The property tests
# run 200 cases per mutant instead of 2,000: every mutant is caught with them as well.
export PROPTEST_CASES="${PROPTEST_CASES:-200}"
exec cargo mutants --package wsd-core --jobs 2 --no-shuffle "$@"
