// User text is text: names and messages that look like markup render literally, create no
// elements and run no script.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, screenshot } from './harness.mjs';

const hostileName = '<img src=x onerror=window.__n=1>';
const hostileMessages = [
  '<script>window.__s = 1</script>',
  '<img src=x onerror="window.__i = 1">',
  '<a href="javascript:window.__j = 1">click me</a>',
  '<svg onload="window.__v = 1"></svg>',
  '"><b>bold?</b><iframe src="javascript:window.__f=1"></iframe>',
];

test('markup in names and messages renders as literal text and runs nothing', async () => {
  assert.ok([...hostileName].length <= 32);
  const server = await startServer();
  const browser = await launchBrowser();
  const errors = [];
  try {
    const victim = await newPage(browser, errors);
    const attacker = await newPage(browser, errors);
    await victim.goto(`${server.url}/?name=Victim&room=xss`);
    await victim.waitForSelector('.badge[data-state=open]');
    await attacker.goto(`${server.url}/?name=${encodeURIComponent(hostileName)}&room=xss`);
    await attacker.waitForSelector('.badge[data-state=open]');
    for (const text of hostileMessages) {
      await attacker.fill('#composer-text', text);
      await attacker.press('#composer-text', 'Enter');
    }
    await victim.waitForFunction((n) => document.querySelectorAll('.msg:not(.pending)').length === n, hostileMessages.length);
    // Clicking the would-be link does nothing either.
    await victim.click('.msg-text >> nth=2');

    const texts = await victim.$$eval('.msg-text', (els) => els.map((e) => e.textContent));
    assert.deepEqual(texts, hostileMessages);
    const names = await victim.$$eval('.member-name', (els) => els.map((e) => e.textContent).sort());
    assert.deepEqual(names, [hostileName, 'Victim'].sort());
    const injected = await victim.$$eval('.messages, .members',
      (roots) => roots.map((r) => r.querySelectorAll('script, img, a, svg, iframe, b').length).reduce((a, b) => a + b, 0));
    assert.equal(injected, 0, 'markup from user text became elements');
    const ran = await victim.evaluate(() => [window.__n, window.__s, window.__i, window.__j, window.__v, window.__f]);
    assert.deepEqual(ran, [undefined, undefined, undefined, undefined, undefined, undefined]);
    await screenshot(victim, 'xss-literal-text');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
