// Two real browser pages on the real server serving the trunk-built bundle.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, screenshot, send } from './harness.mjs';

async function join(page, url, name, room) {
  await page.goto(url);
  await page.fill('#join-name', name);
  await page.fill('#join-room', room);
  await page.click('button[type=submit]');
  await page.waitForSelector('.badge[data-state=open]');
}

const messageTexts = (page) => page.$$eval('.msg:not(.pending)', (els) => els.map((e) => ({
  name: e.querySelector('.msg-name').textContent,
  text: e.querySelector('.msg-text').textContent,
  mine: e.classList.contains('mine'),
})));

const memberNames = (page) => page.$$eval('.member-name', (els) => els.map((e) => e.textContent).sort());

test('two pages chat in one room and see each other online', async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  const errors = [];
  try {
    const ada = await newPage(browser, errors);
    const bob = await newPage(browser, errors);
    await join(ada, server.url, 'Ada', 'e2e');
    await join(bob, server.url, 'Bob', 'e2e');
    await ada.waitForFunction(() => document.querySelectorAll('.member-name').length === 2);
    assert.deepEqual(await memberNames(ada), ['Ada', 'Bob']);
    assert.deepEqual(await memberNames(bob), ['Ada', 'Bob']);

    await send(ada, 'Hello Bob');
    await send(bob, 'Hi Ada <img src=x onerror="window.__pwned=1">');
    for (const page of [ada, bob]) {
      await page.waitForFunction(() => document.querySelectorAll('.msg:not(.pending)').length === 2);
    }
    const seenByAda = await messageTexts(ada);
    assert.deepEqual(seenByAda, [
      { name: 'me', text: 'Hello Bob', mine: true },
      { name: 'Bob', text: 'Hi Ada <img src=x onerror="window.__pwned=1">', mine: false },
    ]);
    const seenByBob = await messageTexts(bob);
    assert.deepEqual(seenByBob.map((m) => [m.name, m.mine]), [['Ada', false], ['me', true]]);
    // User text is text: no element was created from it and no script ran.
    assert.equal(await ada.$$eval('.msg-text img', (els) => els.length), 0);
    assert.equal(await ada.evaluate(() => window.__pwned), undefined);

    // The live feed reaches the page once a second.
    await ada.waitForFunction(() => document.querySelector('.fig-conns')?.textContent === '2', null, { timeout: 5000 });
    await ada.click('text=Measure echo round trip');
    await ada.waitForFunction(() => /median/.test(document.querySelector('.rtt-result').textContent));
    await screenshot(ada, 'two-pages-ada');
    await screenshot(bob, 'two-pages-bob');

    // Signing out closes the connection on purpose: Bob leaves at once, not after a grace period.
    await bob.click('button.sign-out');
    await bob.waitForSelector('#join-name');
    await ada.waitForFunction(() => document.querySelectorAll('.member-name').length === 1);
    assert.ok((await ada.textContent('.messages')).includes('Bob left'));
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});

test('pages show reconnecting while the server restarts, then reconnect by themselves', async () => {
  let server = await startServer();
  const port = server.port;
  const browser = await launchBrowser();
  const errors = [];
  try {
    const ada = await newPage(browser, errors);
    const bob = await newPage(browser, errors);
    await join(ada, server.url, 'Ada', 'restart');
    await join(bob, server.url, 'Bob', 'restart');

    await server.stop();
    for (const page of [ada, bob]) {
      await page.waitForSelector('.badge[data-state=reconnecting]', { timeout: 10000 });
      assert.match(await page.textContent('.badge'), /Reconnecting in \d+ s/);
      // Sending is refused by the socket; what is typed now waits in the outbox.
      assert.equal(await page.textContent('.composer button[type=submit]'), 'Queue');
    }
    await send(ada, 'typed while the server was down');
    await ada.waitForSelector('.msg.pending[data-status=pending]');
    await screenshot(ada, 'restart-reconnecting');

    server = await startServer({ bind: `127.0.0.1:${port}`, db: server.db });
    for (const page of [ada, bob]) {
      await page.waitForSelector('.badge[data-state=open]', { timeout: 40000 });
      await page.waitForFunction(() => /Reconnected/.test(document.querySelector('.messages').textContent));
    }
    await ada.waitForFunction(() => document.querySelectorAll('.member-name').length === 2);
    // The queued message is delivered once, to both pages.
    for (const page of [ada, bob]) {
      await page.waitForFunction(() => [...document.querySelectorAll('.msg:not(.pending) .msg-text')]
        .filter((e) => e.textContent === 'typed while the server was down').length === 1);
    }
    assert.equal(await ada.$$eval('.msg.pending', (els) => els.length), 0);
    await send(bob, 'back online');
    await ada.waitForFunction(() => [...document.querySelectorAll('.msg-text')].some((e) => e.textContent === 'back online'));
    await screenshot(ada, 'restart-reconnected');
    const log = await ada.$$eval('.ev-kind', (els) => els.map((e) => e.textContent));
    for (const kind of ['open', 'message', 'close']) assert.ok(log.includes(kind), `event log lacks ${kind}: ${log}`);
    assert.deepEqual(errors.filter((e) => !/WebSocket connection to .* failed/.test(e)), []);
  } finally {
    await browser.close();
    await server.stop();
  }
});

test('a name taken in one room refuses that room only; the connection and other rooms go on', async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  const errors = [];
  try {
    const first = await newPage(browser, errors);
    // Another browser (its own token): another person asking for the same name.
    const second = await newPage(browser, errors, { width: 390, height: 844 });
    await join(first, server.url, 'Sam', 'names');
    await second.goto(`${server.url}/?name=Sam&room=names,elsewhere`);
    await second.waitForSelector('.problem');
    assert.match(await second.textContent('.problem'), /That name is taken in #names/);
    await second.waitForSelector('.room-item[data-room=names][data-status=refused]');
    assert.match(await second.textContent('.room-refused'), /already in use in room "names"/);
    await second.waitForSelector('.room-item[data-room=elsewhere][data-status=joined]');
    assert.equal(await second.getAttribute('.badge', 'data-state'), 'open');
    await screenshot(second, 'name-taken-phone');
    // Once the holder has gone, "Try again" joins.
    await first.click('button.sign-out');
    await second.click('.room-refused button.secondary');
    await second.waitForSelector('.room-item[data-room=names][data-status=joined]');
    assert.equal(await second.locator('.room-refused').count(), 0);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
