// The release bundle's size: the wasm and the JS glue, gzipped at level 9 (a browser that
// accepts brotli gets less). Printed on every run; the test fails over the ceiling, so the
// bundle cannot grow unnoticed.
//
// The goal is 150 KB (issue "One connection, many rooms"); the ceiling is today's size plus a
// little headroom, lowered as the bundle shrinks. It was 157 KB before the fallback transports
// (SSE with POSTs, long-polling, the ladder and the WebSocket probe), which added 11.6 KB, and
// 167.7 KB before signed user tokens (token URL, refresh, the sign-in screen) and the room data
// panel, which added 10.3 KB together (after cutting 3.5 KB they had brought in: a string
// slice's panic formatting, a lossy UTF-8 decoder, Rust's UTF-8 check for the token payload).
// Batched presence and large rooms (issue "Fast where users are": `presence_batch` and
// `members` decoded, the member count, the paged list with "Show more", re-paging when a
// room becomes too large to list) took it from 178.7 to 181.2 KB.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { repo } from './harness.mjs';

const GOAL_KB = 150;
const CEILING_KB = 182;

test(`the release bundle (wasm + JS, gzip) stays under ${CEILING_KB} KB`, () => {
  const dist = process.env.SWITCHBOARD_DIST ?? path.join(repo, 'dist');
  const files = readdirSync(dist).filter((f) => /\.(wasm|js)$/.test(f));
  assert.ok(files.some((f) => f.endsWith('.wasm')), `no .wasm in ${dist}`);
  assert.ok(files.some((f) => f.endsWith('.js')), `no .js in ${dist}`);
  let total = 0;
  for (const f of files) {
    const raw = readFileSync(path.join(dist, f));
    const gz = gzipSync(raw, { level: 9 }).length;
    total += gz;
    console.log(`bundle: ${f} ${(raw.length / 1000).toFixed(1)} KB raw, ${(gz / 1000).toFixed(1)} KB gzip`);
  }
  const kb = total / 1000;
  console.log(`bundle: ${kb.toFixed(1)} KB gzip in all (goal ${GOAL_KB} KB, ceiling ${CEILING_KB} KB)`);
  assert.ok(kb <= CEILING_KB, `the bundle is ${kb.toFixed(1)} KB gzip, over the ${CEILING_KB} KB ceiling`);
});
