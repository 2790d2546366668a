#!/usr/bin/env bash
# Makes docs/console/*.png, the screenshots docs/console.md shows: the
# browser tests through nginx (tests/it/console_browser.rs, console_term.rs) with
# REMO_CONSOLE_SHOTS set, so they show the real pages against a real remod.
# Needs what tests/run installs (chromium, `npm ci` in console/).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p docs/console
REMO_CONSOLE_SHOTS="$PWD/docs/console" cargo test --test it console_in_chromium_through_nginx -- --exact console_browser::console_in_chromium_through_nginx
REMO_CONSOLE_SHOTS="$PWD/docs/console" cargo test --test it console_terminal_in_chromium_through_nginx -- --exact console_term::console_terminal_in_chromium_through_nginx
ls -l docs/console/*.png
