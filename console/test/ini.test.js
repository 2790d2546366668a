// The Config page's reading of ini and env files (src/ui/ini.js): the
// server's line grammar (src/cfgedit), the addresses it sends, and the
// lines it shows in a change's diff.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { parseConfig, withValue, newEntry, splitLines } from '../src/ui/ini.js';

const WG = `# wg0
[Interface]
Address = 10.0.0.1/24
ListenPort=51820

# alice
[Peer]
PublicKey = ALICE=
AllowedIPs = 10.0.0.2/32

[Peer] ; bob
PublicKey = BOB=
AllowedIPs   =  10.0.0.3/32\t\r
not an entry
AllowedIPs = twice
[odd[name]
k = v
`;

test('sections, addresses and labels of a WireGuard file', () => {
  const { sections, lines, first } = parseConfig(WG, 'ini');
  assert.equal(lines.join(''), WG);
  assert.deepEqual(
    sections.map((s) => [s.name, s.address, s.label]),
    [
      ['Interface', 'Interface', '[Interface]'],
      ['Peer', 'Peer[0]', '[Peer] PublicKey = ALICE='],
      ['Peer', 'Peer[1]', '[Peer] PublicKey = BOB='],
      ['odd[name', null, '[odd[name]'],
    ],
  );
  assert.equal(first.key, 'Address');
  const bob = sections[2];
  assert.deepEqual(
    bob.entries.map((e) => [e.key, e.value, e.dup]),
    [
      ['PublicKey', 'BOB=', false],
      ['AllowedIPs', '10.0.0.3/32', true],
      ['AllowedIPs', 'twice', true],
    ],
  );
  // Only the value's bytes change: spacing, the tab and CRLF stay.
  assert.equal(withValue(bob.entries[1], '10.0.0.9/32'), 'AllowedIPs   =  10.0.0.9/32\t\r\n');
});

test('the global part and env files', () => {
  const env = parseConfig('# app\nexport DB_HOST=db1\nDB_PORT = 5432\n\nno equals\n', 'env');
  assert.equal(env.sections.length, 1);
  assert.equal(env.sections[0].address, '');
  assert.deepEqual(
    env.sections[0].entries.map((e) => [e.key, e.value]),
    [
      ['DB_HOST', 'db1'],
      ['DB_PORT', '5432'],
    ],
  );
  const php = parseConfig('top = 1\n[PHP]\nmemory_limit = 128M\n', 'ini');
  assert.deepEqual(
    php.sections.map((s) => s.address),
    ['', 'PHP'],
  );
  // No global part shown when it has no entries and there are headers.
  assert.deepEqual(
    parseConfig('# c\n[A]\nx=1\n', 'ini').sections.map((s) => s.address),
    ['A'],
  );
});

test('new entries follow the file', () => {
  assert.equal(newEntry('K', 'v', 'ini', { raw: 'a = b\n', eq: 2 }), 'K = v');
  assert.equal(newEntry('K', 'v', 'ini', { raw: 'a=b\n', eq: 1 }), 'K=v');
  assert.equal(newEntry('K', 'v', 'env', { raw: 'a = b\n', eq: 2 }), 'K=v');
  assert.deepEqual(splitLines('a\nb'), ['a\n', 'b']);
});
