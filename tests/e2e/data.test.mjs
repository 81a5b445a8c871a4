// The app's own live data in the browser: scripts/publish-demo.sh (curl through the server
// API) publishes this machine's load and memory into a room every second; the page in that
// room shows the latest value per key with a chart of the last minutes, a page that joins
// later gets the current values at once, and a durable point appears with its place in the
// history (a reload resumes without showing it twice).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startServer, launchBrowser, newPage, screenshot, send, repo } from './harness.mjs';

const API_KEY = 'e2e-data-key-0123456789abcdef';
const KEYS = ['load.1m', 'load.5m', 'mem.used_pct', 'mem.available_mib'];

function publishDemo(server, rounds) {
  return new Promise((resolve, reject) => {
    const proc = spawn('bash', [path.join(repo, 'scripts/publish-demo.sh'), 'ops', server.url], {
      env: { ...process.env, SWITCHBOARD_API_KEY: API_KEY, COUNT: String(rounds) },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    proc.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`publish-demo.sh exited ${code}`))));
  });
}

const values = (page) => page.$$eval('.data-item', (items) => Object.fromEntries(items.map((i) => [
  i.dataset.key, i.querySelector('.data-value').textContent,
])));

test('the data panel shows what publish-demo.sh publishes, live and on join', async () => {
  const server = await startServer({ args: ['--api-key', API_KEY] });
  const browser = await launchBrowser();
  const errors = [];
  try {
    const page = await newPage(browser, errors);
    await page.goto(`${server.url}/?name=Ada&room=ops,lobby`);
    await page.waitForSelector('.room-item[data-room=ops][data-status=joined]');
    assert.equal(await page.textContent('.data-empty'), 'No live data in this room yet.');
    await send(page, 'watching the box');

    await publishDemo(server, 3);
    // Every key, with a numeric value and a chart of its three points.
    await page.waitForFunction((n) => document.querySelectorAll('.data-item .spark').length === n, KEYS.length);
    const shown = await values(page);
    assert.deepEqual(Object.keys(shown).sort(), [...KEYS].sort());
    for (const key of KEYS) assert.ok(Number.isFinite(Number(shown[key])), `${key}: ${shown[key]}`);
    assert.equal(
      await page.$eval('.data-item[data-key="mem.used_pct"] polyline', (p) => p.getAttribute('points').split(' ').length),
      3,
    );
    // Another room's data is its own: the lobby has none.
    await page.click('.room-item[data-room=lobby] .room-open');
    await page.waitForSelector('.data-empty');
    await page.click('.room-item[data-room=ops] .room-open');
    await page.waitForSelector('.data-item');

    // A durable point: it shows in the panel and takes a place in the room's history.
    const res = await fetch(`${server.url}/api/v1/rooms/ops/data`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ key: 'deploy', data: { version: '1.2' }, delivery: 'durable' }),
    });
    assert.equal(res.status, 201);
    assert.equal((await res.json()).seq, 2);
    await page.waitForSelector('.data-item[data-key=deploy]');
    assert.equal(await page.textContent('.data-item[data-key=deploy] .data-value'), '{"version":"1.2"}');
    await screenshot(page, 'data-panel');

    // A page that joins later gets the latest values at once (and the durable point from the
    // history), and a chat after them lands after it.
    const bob = await newPage(browser, errors, { width: 390, height: 844 });
    await bob.goto(`${server.url}/?name=Bob&room=ops`);
    await bob.waitForFunction((n) => document.querySelectorAll('.data-item').length === n, KEYS.length + 1);
    const later = await values(bob);
    for (const key of KEYS) assert.equal(later[key], shown[key], key);
    await send(bob, 'after the deploy');
    await page.waitForFunction(() => [...document.querySelectorAll('.msg-text')].some((e) => e.textContent === 'after the deploy'));
    assert.equal(await page.$$eval('.msg:not(.pending)', (m) => m.length), 2, 'data points are not chat lines');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
