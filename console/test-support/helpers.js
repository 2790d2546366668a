// Shared by the tests in test/ (node only, kept outside test/ so that
// `node --test test/` does not run it as a test): the real binaries,
// temporary directories, child processes. Not loaded by the browser.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/**
 * The path of a built binary (`remod`, `remo`): `$REMOD` / `$REMO`, else
 * `$CARGO_TARGET_DIR/debug/NAME`, else `target/debug/NAME` in the
 * repository. A missing binary fails the test with how to build it —
 * never a skip.
 * @param {'remod'|'remo'} name
 */
export function binary(name) {
  const env = process.env[name.toUpperCase()];
  const tried = [];
  if (env) {
    if (existsSync(env)) return env;
    tried.push(`$${name.toUpperCase()}=${env}`);
  }
  const dirs = [];
  if (process.env.CARGO_TARGET_DIR) dirs.push(resolve(process.env.CARGO_TARGET_DIR));
  dirs.push(join(ROOT, 'target'));
  for (const d of dirs) {
    const p = join(d, 'debug', name);
    if (existsSync(p)) return p;
    tried.push(p);
  }
  throw new Error(
    `the ${name} binary is missing (tried ${tried.join(', ')}): build it with \`cargo build --bins\` ` +
      `(with CARGO_TARGET_DIR set as for the build), or set ${name.toUpperCase()}=/path/to/${name}`,
  );
}

/** A fresh temporary directory, removed by the returned `cleanup`. */
export function scratch(name) {
  const dir = mkdtempSync(join(tmpdir(), `remo-console-${name}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Runs a program to completion; throws with its output if it fails.
 * @param {string} file
 * @param {string[]} args
 * @param {{env?: object, input?: string|Buffer, cwd?: string}} [options]
 * @returns {string} its standard output
 */
export function run(file, args, { env, input, cwd } = {}) {
  try {
    return execFileSync(file, args, {
      env: { ...process.env, ...env },
      input,
      cwd,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  } catch (e) {
    throw new Error(`${file} ${args.join(' ')} failed (${e.status}):\nstdout: ${e.stdout}\nstderr: ${e.stderr}`);
  }
}

/** A deterministic PRNG (xorshift32), so fuzz failures reproduce. */
export function prng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}
