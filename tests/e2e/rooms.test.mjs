// Many rooms on one connection, in the browser: a deep link joins several, switching shows
// another room without reconnecting, unread counts, leaving and joining, and a reconnect that
// resumes every room from its own position. Saves the README's screenshots (two rooms, desktop
// and phone width).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startProxy, launchBrowser, newPage, screenshot, send } from './harness.mjs';

const chatTexts = (page) => page.$$eval('.msg:not(.pending) .msg-text', (els) => els.map((e) => e.textContent));
const roomNames = (page) => page.$$eval('.room-item', (els) => els.map((e) => e.dataset.room));
const unread = (page, room) => page.$eval(`.room-item[data-room="${room}"]`, (e) => e.querySelector('.unread')?.textContent ?? '');
const opens = (page) => page.$$eval('.ev-kind', (els) => els.filter((e) => e.textContent === 'open').length);

async function show(page, room) {
  await page.click(`.room-item[data-room="${room}"] .room-open`);
  await page.waitForSelector(`.room-item.active[data-room="${room}"]`);
}

test('a deep link joins two rooms on one connection; switching, unread counts, leave and join', async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  const errors = [];
  try {
    const ada = await newPage(browser, errors);
    const bob = await newPage(browser, errors);
    await ada.goto(`${server.url}/?name=Ada&room=design,random`);
    await bob.goto(`${server.url}/?name=Bob&room=random,design`);
    for (const page of [ada, bob]) {
      await page.waitForSelector('.room-item[data-room=design][data-status=joined]');
      await page.waitForSelector('.room-item[data-room=random][data-status=joined]');
    }
    assert.deepEqual(await roomNames(ada), ['design', 'random']);
    assert.equal(await ada.textContent('.room-title'), '#design');
    assert.equal(await bob.textContent('.room-title'), '#random');

    // Bob writes in #random, which Ada is not looking at: two unread there, none in #design.
    await send(bob, 'Lunch at noon?');
    await send(bob, 'The usual place');
    await ada.waitForFunction(() => document.querySelector('.room-item[data-room=random] .unread')?.textContent === '2');
    assert.equal(await unread(ada, 'design'), '');
    assert.deepEqual(await chatTexts(ada), []);
    assert.equal(await ada.title(), '(2) Switchboard');

    // Switching shows #random's messages at once, over the same connection.
    await show(ada, 'random');
    assert.deepEqual(await chatTexts(ada), ['Lunch at noon?', 'The usual place']);
    assert.equal(await unread(ada, 'random'), '');
    assert.equal(await ada.title(), 'Switchboard');
    await send(ada, 'Count me in');
    await bob.waitForFunction(() => [...document.querySelectorAll('.msg-text')].some((e) => e.textContent === 'Count me in'));

    // Ada writes in #design; Bob (in #random) sees one unread there.
    await show(ada, 'design');
    await send(ada, 'New mockups are up');
    await bob.waitForFunction(() => document.querySelector('.room-item[data-room=design] .unread')?.textContent === '1');
    await ada.waitForFunction(() => document.querySelectorAll('.msg:not(.pending)').length === 1);
    await bob.waitForFunction(() => document.querySelector('.fig-conns')?.textContent === '2', null, { timeout: 5000 });
    await screenshot(bob, 'rooms-desktop');

    const phone = await newPage(browser, errors, { width: 390, height: 844 });
    await phone.goto(`${server.url}/?name=Cy&room=random,design`);
    await phone.waitForSelector('.room-item[data-room=design][data-status=joined]');
    await phone.waitForFunction(() => document.querySelectorAll('.msg:not(.pending)').length === 3);
    // A first join's history is not unread news.
    assert.equal(await unread(phone, 'design'), '');
    await send(bob, 'Welcome Cy');
    await phone.waitForFunction(() => document.querySelectorAll('.msg:not(.pending)').length === 4);
    await screenshot(phone, 'rooms-phone');

    // Leave #design: the server drops Ada from it at once, #random is shown.
    await show(bob, 'design');
    await ada.click('.room-item[data-room=design] .room-leave');
    await ada.waitForSelector('.room-item.active[data-room=random]');
    assert.deepEqual(await roomNames(ada), ['random']);
    await bob.waitForFunction(() => /Ada left/.test(document.querySelector('.messages').textContent));

    // Join a third room from the list.
    await ada.fill('#room-add', 'ops');
    await ada.press('#room-add', 'Enter');
    await ada.waitForSelector('.room-item.active[data-room=ops][data-status=joined]');
    assert.deepEqual(await roomNames(ada), ['random', 'ops']);
    // An invalid name is refused with a reason, nothing joined.
    await ada.fill('#room-add', 'no spaces allowed');
    await ada.press('#room-add', 'Enter');
    await ada.waitForFunction(() => /Room/.test(document.querySelector('.rooms .form-error').textContent));
    assert.deepEqual(await roomNames(ada), ['random', 'ops']);

    // All of it over one connection.
    assert.equal(await opens(ada), 1);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});

test('after a network drop every room resumes from its own position, nothing lost or doubled', async () => {
  const server = await startServer();
  const proxy = await startProxy(server.port);
  const browser = await launchBrowser();
  const errors = [];
  try {
    const ada = await newPage(browser, errors);
    const bob = await newPage(browser, errors);
    await ada.goto(`${server.url}/?name=Ada&room=north,south&server=${encodeURIComponent(proxy.url)}`);
    await bob.goto(`${server.url}/?name=Bob&room=north,south`);
    for (const page of [ada, bob]) await page.waitForSelector('.room-item[data-room=south][data-status=joined]');
    await send(bob, 'north before');
    await ada.waitForFunction(() => document.querySelectorAll('.msg:not(.pending)').length === 1);

    proxy.cut();
    await ada.waitForSelector('.badge[data-state=reconnecting]', { timeout: 10000 });
    await send(ada, 'north, written offline');
    await send(bob, 'north missed');
    await show(bob, 'south');
    await send(bob, 'south missed 1');
    await send(bob, 'south missed 2');
    await bob.waitForFunction(() => document.querySelectorAll('.msg:not(.pending)').length === 2);

    proxy.restore();
    await ada.waitForSelector('.badge[data-state=open]', { timeout: 40000 });
    await ada.waitForFunction(() => document.querySelectorAll('.msg.pending').length === 0);
    await ada.waitForFunction(() => document.querySelectorAll('.msg:not(.pending)').length === 3);
    assert.deepEqual(await chatTexts(ada), ['north before', 'north missed', 'north, written offline']);
    assert.match(await ada.textContent('.messages'), /recovered 1 missed message/);
    await ada.waitForFunction(() => document.querySelector('.room-item[data-room=south] .unread')?.textContent === '2');
    await show(ada, 'south');
    assert.deepEqual(await chatTexts(ada), ['south missed 1', 'south missed 2']);
    assert.match(await ada.textContent('.messages'), /recovered 2 missed messages/);
    await show(bob, 'north');
    await bob.waitForFunction(() => document.querySelectorAll('.msg:not(.pending)').length === 3);
    assert.deepEqual(await chatTexts(bob), ['north before', 'north missed', 'north, written offline']);
    assert.deepEqual(errors.filter((e) => !/WebSocket connection to .* failed/.test(e)), []);
  } finally {
    await browser.close();
    proxy.close();
    await server.stop();
  }
});
