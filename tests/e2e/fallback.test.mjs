// Where WebSockets do not get through: the stock client loaded through three middleboxes (an
// upgrade answered 403; an upgrade accepted and then cut; no WebSockets and every response held
// until complete) falls back to SSE or long-polling, joins, hears a WebSocket client in the
// same room and is heard by it, and after a network drop reconnects and recovers what it
// missed. Prints the time to fall back for each middlebox. Single node, and a cluster: two
// nodes on Redis behind the middlebox, which sends each request to the next node in turn (no
// sticky sessions), the WebSocket client on one of them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startMiddlebox, startRedis, launchBrowser, newPage, screenshot, send } from './harness.mjs';

const chatTexts = (page) => page.$$eval('.msg:not(.pending) .msg-text', (els) => els.map((e) => e.textContent));

const cases = [
  { mode: 'forbid', expect: 'SSE' },
  { mode: 'cut', expect: 'SSE' },
  { mode: 'buffer', expect: 'long-polling' },
];

for (const cluster of [false, true]) for (const { mode, expect } of cases) {
  const where = cluster ? 'two nodes, round-robin' : 'one node';
  test(`through a middlebox that ${mode}s WebSockets the page chats over ${expect} and recovers from a drop (${where})`, async () => {
    const redis = cluster ? await startRedis() : null;
    // The middlebox is a proxy the servers trust: pages it serves under its own name are the
    // servers' own.
    const args = ['--trusted-proxies', '127.0.0.1', ...(redis ? ['--redis-url', redis.url] : [])];
    const servers = [await startServer({ args })];
    if (cluster) servers.push(await startServer({ args }));
    const server = servers[0];
    const box = await startMiddlebox(servers.map((s) => s.port), mode);
    const browser = await launchBrowser();
    const errors = [];
    const room = `fallback-${mode}${cluster ? '-cluster' : ''}`;
    try {
      const ada = await newPage(browser, errors);
      const bob = await newPage(browser, errors);
      await bob.goto(`${server.url}/?name=Bob&room=${room}`);
      await bob.waitForSelector('.badge[data-state=open]');
      assert.equal(await bob.textContent('.transport'), 'WebSocket');

      const started = Date.now();
      await ada.goto(`${box.url}/?name=Ada&room=${room}`);
      await ada.waitForSelector(`.room-item[data-room=${room}][data-status=joined]`, { timeout: 30000 });
      const fallbackMs = Date.now() - started;
      console.log(`# fallback (${where}): ${mode} -> ${expect} in ${fallbackMs} ms (page load to room joined)`);
      assert.equal(await ada.textContent('.transport'), expect);
      assert.match(await ada.textContent('.badge'), new RegExp(`Connected via ${expect}`));

      await send(bob, `hello from a WebSocket (${mode})`);
      await ada.waitForFunction((t) => [...document.querySelectorAll('.msg:not(.pending) .msg-text')].some((e) => e.textContent === t), `hello from a WebSocket (${mode})`);
      await send(ada, `hello over ${expect}`);
      await bob.waitForFunction((t) => [...document.querySelectorAll('.msg:not(.pending) .msg-text')].some((e) => e.textContent === t), `hello over ${expect}`);
      await ada.waitForFunction(() => document.querySelectorAll('.msg.pending').length === 0);
      await screenshot(ada, `fallback-${mode}${cluster ? '-cluster' : ''}`);

      // The network drops; Bob writes meanwhile; Ada comes back on the same fallback and
      // recovers exactly what she missed.
      box.cut();
      await ada.waitForSelector('.badge[data-state=reconnecting]', { timeout: 30000 });
      const missed = ['missed 1', 'missed 2', 'missed 3'];
      for (const text of missed) await send(bob, text);
      box.restore();
      await ada.waitForSelector('.badge[data-state=open]', { timeout: 40000 });
      await ada.waitForFunction(() => /recovered 3 missed messages/.test(document.querySelector('.messages').textContent), null, { timeout: 20000 });
      const expected = [`hello from a WebSocket (${mode})`, `hello over ${expect}`, ...missed];
      await ada.waitForFunction((n) => document.querySelectorAll('.msg:not(.pending)').length === n, expected.length);
      assert.deepEqual(await chatTexts(ada), expected);
      assert.equal(await ada.textContent('.transport'), expect);
      // Only the browser's own reports of the refused or cut WebSocket and the dropped
      // requests are expected on the console.
      assert.deepEqual(errors.filter((e) => !/WebSocket connection to .* failed|Failed to load resource|net::ERR_|EventSource/.test(e)), []);
    } finally {
      await browser.close();
      box.close();
      for (const s of servers) await s.stop();
      if (redis) await redis.stop();
    }
  });
}

test('an event stream that goes silent mid-session moves the page to long-polling', async () => {
  // Heartbeats every second: a silent stream is noticed after two of them and a margin.
  const server = await startServer({ args: ['--trusted-proxies', '127.0.0.1', '--heartbeat-interval-secs', '1'] });
  const box = await startMiddlebox(server.port, 'forbid');
  const browser = await launchBrowser();
  const errors = [];
  try {
    const ada = await newPage(browser, errors);
    const bob = await newPage(browser, errors);
    await bob.goto(`${server.url}/?name=Bob&room=silent`);
    await bob.waitForSelector('.badge[data-state=open]');
    await ada.goto(`${box.url}/?name=Ada&room=silent`);
    await ada.waitForSelector('.room-item[data-room=silent][data-status=joined]');
    assert.equal(await ada.textContent('.transport'), 'SSE');

    // The middlebox starts buffering: the open stream goes quiet without closing.
    box.freeze();
    const frozen = Date.now();
    await send(bob, 'said while the stream was frozen');
    await ada.waitForFunction(() => document.querySelector('.transport')?.textContent === 'long-polling', null, { timeout: 40000 });
    await ada.waitForSelector('.room-item[data-room=silent][data-status=joined]');
    console.log(`# silent stream -> long-polling in ${Date.now() - frozen} ms`);
    await ada.waitForFunction((t) => [...document.querySelectorAll('.msg:not(.pending) .msg-text')].some((e) => e.textContent === t), 'said while the stream was frozen');
    await send(ada, 'back over long-polling');
    await bob.waitForFunction((t) => [...document.querySelectorAll('.msg:not(.pending) .msg-text')].some((e) => e.textContent === t), 'back over long-polling');
    assert.match(await ada.textContent('.event-log'), /the event stream went silent/);
    assert.deepEqual(errors.filter((e) => !/WebSocket connection to .* failed|Failed to load resource|net::ERR_|EventSource/.test(e)), []);
  } finally {
    await browser.close();
    box.close();
    await server.stop();
  }
});
