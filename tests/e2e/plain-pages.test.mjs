// The tutorial pages Switchboard replaces (shared/seeds/), written from their articles with the
// real jQuery from npm and unchanged but for their URL, chatting through Switchboard next to the
// stock client. A page that prints `data.name + ': ' + data.msg` never shows `undefined`: a
// connection without a subprotocol gets only frames it can display.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, launchBrowser, newPage, screenshot } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const jquery = readFileSync(path.join(here, 'node_modules', 'jquery', 'dist', 'jquery.min.js'));

/** Serves the pages from another origin (as their own site would), pointed at `wsUrl`. */
async function servePages(getWsUrl) {
  const server = http.createServer((req, res) => {
    const name = req.url.split('?')[0];
    if (name === '/jquery.min.js') {
      res.writeHead(200, { 'content-type': 'application/javascript' });
      return res.end(jquery);
    }
    if (name === '/favicon.ico') { res.writeHead(204); return res.end(); }
    const page = { '/fleck.html': 'fleck.html', '/webapi.html': 'webapi.html' }[name];
    if (!page) { res.writeHead(404); return res.end(); }
    const html = readFileSync(path.join(here, 'plain-pages', page), 'utf8').replace('SWITCHBOARD_WS', getWsUrl());
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

async function lines(page, selector) {
  return page.$$eval(selector, (els) => els.map((e) => e.textContent));
}

/** What a Fleck page user does: type a name and a message, click Send. The page disables its
 *  own inputs on open (`attr('disabled', '')` disables with every jQuery since 1.6), so the
 *  values are set and the click is triggered through jQuery, as the page's handler reads them. */
async function fleckSend(page, name, msg) {
  await page.evaluate(([n, m]) => { $('#name').val(n); $('#msg').val(m); $('#btn').trigger('click'); }, [name, msg]);
}

test('the Fleck and WebAPI tutorial pages chat through Switchboard and show nothing they cannot read', async () => {
  let server;
  const pages = await servePages(() => `ws://${new URL(server.url).host}/ws`);
  server = await startServer({ args: ['--allowed-origins', '*'] });
  const browser = await launchBrowser();
  const errors = [];
  try {
    // Two Fleck pages and the stock client in one room.
    const ada = await newPage(browser, errors);
    const bob = await newPage(browser, errors);
    const stock = await newPage(browser, errors);
    await stock.goto(`${server.url}/?name=Cy&room=fleck`);
    await stock.waitForSelector('.badge[data-state=open]');
    for (const page of [ada, bob]) {
      await page.goto(`${pages.origin}/fleck.html`);
      await page.waitForFunction(() => window.myWebSocket && myWebSocket.readyState === 1);
    }
    await fleckSend(ada, 'Ada', 'hello from a 2012 page');
    await bob.waitForFunction(() => document.querySelectorAll('#messages .line').length === 1);
    await fleckSend(bob, 'Bob', 'hi Ada');
    await stock.waitForFunction(() => [...document.querySelectorAll('.msg-text')].some((e) => e.textContent === 'hi Ada'));
    await stock.fill('#composer-text', 'and hello from the stock client');
    await stock.press('#composer-text', 'Enter');
    for (const page of [ada, bob]) {
      await page.waitForFunction(() => document.querySelectorAll('#messages .line').length === 3);
    }
    // Presence (the stock client joined), typing (it typed) and acks flow in the room, and none
    // of it reaches a page: the lines are exactly the three messages.
    await ada.waitForTimeout(500);
    assert.deepEqual(await lines(ada, '#messages .line'), [
      '(me): hello from a 2012 page', 'Bob: hi Ada', 'Cy: and hello from the stock client',
    ]);
    assert.deepEqual(await lines(bob, '#messages .line'), [
      'Ada: hello from a 2012 page', '(me): hi Ada', 'Cy: and hello from the stock client',
    ]);
    const stockTexts = await lines(stock, '.msg-text');
    assert.ok(stockTexts.includes('hello from a 2012 page'), stockTexts.join(' | '));
    await screenshot(ada, 'plain-fleck-page');

    // The WebAPI page: names itself in the query (?username=), sends plain text, prints the raw
    // frame.
    const dee = await newPage(browser, errors);
    dee.on('dialog', (dialog) => dialog.accept('Dee'));
    const cy = await newPage(browser, errors);
    await cy.goto(`${server.url}/?name=Cy&room=webapi`);
    await cy.waitForSelector('.badge[data-state=open]');
    await dee.goto(`${pages.origin}/webapi.html`);
    await dee.waitForFunction(() => document.querySelector('#messages').textContent.includes('Connected.'));
    await dee.fill('#inputbox', 'plain text from the WebAPI page');
    await dee.press('#inputbox', 'Enter');
    await cy.waitForFunction(() => [...document.querySelectorAll('.msg-text')].some((e) => e.textContent === 'plain text from the WebAPI page'));
    await cy.fill('#composer-text', 'got it, Dee');
    await cy.press('#composer-text', 'Enter');
    await dee.waitForFunction(() => document.querySelector('#messages').textContent.includes('got it, Dee'));
    await dee.waitForTimeout(500);
    const raw = (await lines(dee, '#messages div')).reverse();
    assert.equal(raw[0], 'Connected.');
    const frames = raw.slice(1).map((line) => JSON.parse(line));
    assert.deepEqual(frames.map((f) => [f.name, f.msg]), [
      ['Dee', 'plain text from the WebAPI page'], ['Cy', 'got it, Dee'],
    ]);
    await screenshot(dee, 'plain-webapi-page');

    for (const page of [ada, bob, dee]) {
      const text = await page.textContent('#messages');
      assert.ok(!text.includes('undefined'), text);
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
    pages.close();
  }
});
