// A room too large for the server to list its members (`--presence-list-max`, here 3): the
// page shows how many are online, the first page of the member list, and pages the rest with
// "Show more"; when the room is small again it gets and shows the whole list.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, screenshot } from './harness.mjs';

const listed = (page) => page.$$eval('.members li .member-name', (names) => names.map((n) => n.textContent));

test('a large room shows its count and pages its members', async () => {
  const server = await startServer({ args: ['--presence-list-max', '3', '--members-page', '2'] });
  const browser = await launchBrowser();
  const errors = [];
  try {
    // Four members on protocol v3 sockets of their own, opened from a page of the server.
    const crowd = await newPage(browser, errors);
    await crowd.goto(`${server.url}/healthz`);
    await crowd.evaluate(async (base) => {
      window.members = {};
      await Promise.all(['bo', 'cy', 'di', 'ed'].map((name) => new Promise((resolve, reject) => {
        const ws = new WebSocket(`${base}/ws?name=${name}&feed=0`, 'switchboard.v3');
        ws.onmessage = (e) => {
          const frame = JSON.parse(e.data);
          if (frame.type === 'hello') ws.send(JSON.stringify({ type: 'join', room: 'big' }));
          if (frame.type === 'subscribed') resolve();
        };
        ws.onerror = () => reject(new Error(`${name}: socket error`));
        window.members[name] = ws;
      })));
    }, server.url.replace(/^http/, 'ws'));

    const page = await newPage(browser, errors);
    await page.goto(`${server.url}/?name=ada&room=big`);
    await page.waitForSelector('.room-item[data-room=big][data-status=joined]');
    await page.waitForFunction(() => document.querySelector('#members-title')?.textContent === '5 online');
    // The first page, and what is left to load.
    assert.deepEqual(await listed(page), ['ada', 'bo']);
    assert.equal(await page.textContent('.members-more'), 'Showing 2 of 5 Show more');
    await page.click('.members-more button');
    await page.waitForFunction(() => document.querySelectorAll('.members li').length === 4);
    assert.deepEqual(await listed(page), ['ada', 'bo', 'cy', 'di']);
    await screenshot(page, 'members-paged');
    await page.click('.members-more button');
    await page.waitForFunction(() => document.querySelectorAll('.members li').length === 5);
    assert.deepEqual(await listed(page), ['ada', 'bo', 'cy', 'di', 'ed']);
    assert.equal(await page.locator('.members-more').count(), 0, 'everyone is listed');

    // Two leave: the room is small enough to list again, and the page gets the whole list.
    await crowd.evaluate(() => { window.members.di.close(); window.members.ed.close(); });
    await page.waitForFunction(() => document.querySelector('#members-title')?.textContent === '3 online');
    await page.waitForFunction(() => document.querySelectorAll('.members li').length === 3);
    assert.deepEqual(await listed(page), ['ada', 'bo', 'cy']);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
