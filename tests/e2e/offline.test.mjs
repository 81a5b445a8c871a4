// Nothing lost while a page is offline: it shows every missed message once, in order, with the
// recovery notice, and a message typed while offline is delivered once after reconnecting.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startProxy, launchBrowser, newPage, screenshot, send } from './harness.mjs';

const chatTexts = (page) => page.$$eval('.msg:not(.pending) .msg-text', (els) => els.map((e) => e.textContent));

test('a page that was offline recovers exactly what it missed and delivers its outbox', async () => {
  const server = await startServer();
  const proxy = await startProxy(server.port);
  const browser = await launchBrowser();
  const errors = [];
  try {
    const ada = await newPage(browser, errors);
    const bob = await newPage(browser, errors);
    // Ada reaches the server through the proxy (her network); Bob directly.
    await ada.goto(`${server.url}/?name=Ada&room=offline&server=${encodeURIComponent(proxy.url)}`);
    await bob.goto(`${server.url}/?name=Bob&room=offline`);
    for (const page of [ada, bob]) await page.waitForSelector('.badge[data-state=open]');

    await send(bob, 'before the drop');
    await ada.waitForFunction(() => document.querySelectorAll('.msg:not(.pending)').length === 1);

    proxy.cut();
    await ada.waitForSelector('.badge[data-state=reconnecting]', { timeout: 10000 });
    await send(ada, 'written while offline');
    await ada.waitForSelector('.msg.pending[data-status=pending]');
    const missed = ['missed 1', 'missed 2', 'missed 3', 'missed 4', 'missed 5'];
    for (const text of missed) {
      await send(bob, text);
    }
    await bob.waitForFunction((n) => document.querySelectorAll('.msg:not(.pending)').length === n, 6);
    await screenshot(ada, 'offline-pending');

    proxy.restore();
    await ada.waitForSelector('.badge[data-state=open]', { timeout: 40000 });
    await ada.waitForFunction(() => /recovered 5 missed messages/.test(document.querySelector('.messages').textContent));
    await ada.waitForFunction(() => document.querySelectorAll('.msg.pending').length === 0);
    await ada.waitForFunction(() => document.querySelectorAll('.msg:not(.pending)').length === 7);
    assert.deepEqual(await chatTexts(ada), ['before the drop', ...missed, 'written while offline']);
    await bob.waitForFunction(() => document.querySelectorAll('.msg:not(.pending)').length === 7);
    assert.deepEqual(await chatTexts(bob), ['before the drop', ...missed, 'written while offline']);
    // Still exactly once a moment later (no late duplicate from the resend).
    await ada.waitForTimeout(500);
    assert.equal((await chatTexts(bob)).filter((t) => t === 'written while offline').length, 1);
    await screenshot(ada, 'offline-recovered');
    assert.deepEqual(errors.filter((e) => !/WebSocket connection to .* failed/.test(e)), []);
  } finally {
    await browser.close();
    proxy.close();
    await server.stop();
  }
});
