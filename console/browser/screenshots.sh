#!/usr/bin/env bash
# Makes docs/console/*.png, the screenshots docs/console.md shows: the
# browser test through nginx (tests/it/console_browser.rs) with
# REMO_CONSOLE_SHOTS set, so they show the real pages against a real remod.
# Needs what tests/run installs (chromium, `npm ci` in console/).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p docs/console
REMO_CONSOLE_SHOTS="$PWD/docs/console" cargo test --test it console_in_chromium_through_nginx -- --exact console_browser::console_in_chromium_through_nginx
# config.png and doors.png (the Doors test needs root for its network namespaces)
REMO_CONSOLE_SHOTS="$PWD/docs/console" cargo test --test it -- console_config_edits_wireguard_in_chromium console_doors_open_and_close_in_chromium
ls -l docs/console/*.png
