// Older history loads when the reader scrolls to the top, in order and without duplicates.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, screenshot } from './harness.mjs';

const chatTexts = (page) => page.$$eval('.msg:not(.pending) .msg-text', (els) => els.map((e) => e.textContent));

test('scrolling to the top loads older messages', async () => {
  const server = await startServer({ args: ['--history-on-join', '5', '--rate-per-sec', '1000', '--rate-burst', '1000'] });
  const browser = await launchBrowser();
  const errors = [];
  try {
    const writer = await newPage(browser, errors);
    await writer.goto(`${server.url}/?name=Writer&room=history`);
    await writer.waitForSelector('.badge[data-state=open]');
    const all = Array.from({ length: 60 }, (_, i) => `message ${i + 1}`);
    for (const text of all) {
      await writer.fill('#composer-text', text);
      await writer.press('#composer-text', 'Enter');
    }
    await writer.waitForFunction((n) => document.querySelectorAll('.msg:not(.pending)').length === n, all.length);

    const reader = await newPage(browser, errors, { width: 1280, height: 700 });
    await reader.goto(`${server.url}/?name=Reader&room=history`);
    await reader.waitForSelector('.badge[data-state=open]');
    await reader.waitForFunction(() => document.querySelectorAll('.msg').length === 5);
    assert.deepEqual(await chatTexts(reader), all.slice(-5));
    // The message list scrolls inside the page: the page itself does not grow with history.
    const fits = () => reader.evaluate(() => document.documentElement.scrollHeight <= window.innerHeight + 1);
    // Scroll to the top until everything is there (pages of 50).
    for (let i = 0; i < 5 && (await chatTexts(reader)).length < all.length; i++) {
      await reader.$eval('.messages', (el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
      await reader.waitForTimeout(400);
    }
    assert.deepEqual(await chatTexts(reader), all);
    assert.equal(await reader.isVisible('.older'), false, 'no more history to load');
    assert.ok(await fits(), 'the page grew instead of the message list scrolling');
    await screenshot(reader, 'history-loaded');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
