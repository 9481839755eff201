#!/usr/bin/env bash
# Mutation testing of the pure core (crates/wsd-core): every mutant must be caught.
#
#   scripts/mutants.sh                   every mutant of wsd-core; when all are caught, records
#                                        the fingerprint of what was tested in
#                                        .cargo/mutants-verified (commit it with the change)
#   scripts/mutants.sh --unless-verified the same, unless the fingerprint of the tree equals
#                                        the recorded one: then nothing it depends on changed
#                                        since a full run caught every mutant, and it says so
#   scripts/mutants.sh --in-diff F       only mutants on lines changed by the diff in F
#
# The fingerprint covers every input of a run: wsd-core's files (sources, tests, snapshots,
# the embedded registry), the two documents its tests read, Cargo.lock, the mutation
# configuration, this script, and the versions of rustc and cargo-mutants.
#
# Installs cargo-mutants when it is missing. Exits non-zero when a mutant survives.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=27.1.0
if ! command -v cargo-mutants >/dev/null 2>&1; then
    echo "mutants: installing cargo-mutants (once, about 4 minutes)"
    cargo install cargo-mutants --locked --version "$VERSION" --quiet
fi

RECORD=.cargo/mutants-verified
fingerprint() {
    {
        rustc -V
        cargo mutants --version
        git ls-files -z crates/wsd-core docs/error-codes.md docs/registry.md Cargo.lock .cargo/mutants.toml scripts/mutants.sh \
            | sort -z | xargs -0 sha256sum
    } | sha256sum | cut -d' ' -f1
}

# The configuration (files examined, test package) is .cargo/mutants.toml. The property tests
# run 200 cases per mutant instead of 2,000: every mutant is caught with them as well.
export PROPTEST_CASES="${PROPTEST_CASES:-200}"
run() { cargo mutants --package wsd-core --jobs 2 --no-shuffle "$@"; }

# Taken before the run: what is recorded is what was tested, whatever changes meanwhile.
case "${1:-}" in
    --in-diff) exec cargo mutants --package wsd-core --jobs 2 --no-shuffle "$@" ;;
    --unless-verified)
        current=$(fingerprint)
        if [ -f "$RECORD" ] && [ "$(cat "$RECORD")" = "$current" ]; then
            echo "mutants: nothing wsd-core's mutation testing depends on changed since a full run caught every mutant (fingerprint $current, $RECORD)"
            exit 0
        fi
        echo "mutants: wsd-core or what its tests depend on changed since the recorded full run: testing every mutant"
        run
        ;;
    "")
        current=$(fingerprint)
        run
        ;;
    *) echo "usage: scripts/mutants.sh [--unless-verified | --in-diff FILE]" >&2; exit 2 ;;
esac
echo "$current" > "$RECORD"
echo "mutants: every mutant caught; recorded fingerprint $current in $RECORD"
