#!/usr/bin/env bash
# Makes docs/console/*.png, the screenshots docs/console.md shows: the
# browser tests (tests/it/console_browser.rs and console_term.rs through
# nginx, console_config.rs, console_doors.rs and console_admin.rs) with
# REMO_CONSOLE_SHOTS set, so they show the real pages against a real remod.
# Needs what tests/run installs (chromium, `npm ci` in console/).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p docs/console
REMO_CONSOLE_SHOTS="$PWD/docs/console" cargo test --test it console_in_chromium_through_nginx -- --exact console_browser::console_in_chromium_through_nginx
# config.png and doors.png (the Doors test needs root for its network namespaces)
REMO_CONSOLE_SHOTS="$PWD/docs/console" cargo test --test it -- console_config_edits_wireguard_in_chromium console_doors_open_and_close_in_chromium
# The Admin page (admin.png), from its own browser test.
REMO_CONSOLE_SHOTS="$PWD/docs/console" cargo test --test it console_admin -- --exact console_admin::console_admin_disables_a_user_and_ends_their_session_in_chromium
REMO_CONSOLE_SHOTS="$PWD/docs/console" cargo test --test it console_terminal_in_chromium_through_nginx -- --exact console_term::console_terminal_in_chromium_through_nginx
ls -l docs/console/*.png
