// Signed user tokens in the browser: the app (a small HTTP server here, signing HS256 tokens
// that live 3 seconds) issues tokens at its token URL; the page served with
// --jwt-token-url opens the workspace at once under the token's name, refreshes its token in
// band through the token URL and keeps its one WebSocket session well past the first token's
// exp; when the app signs the user out and disconnects them through the server API, the page
// stops (4401) instead of looping with its old token.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHmac } from 'node:crypto';
import { startServer, launchBrowser, newPage, screenshot, send } from './harness.mjs';

const SECRET = 'e2e-secret-of-at-least-32-bytes-0123456789';
const API_KEY = 'e2e-api-key-0123456789abcdef';
const LIFETIME_SECS = 3;

const b64url = (data) => Buffer.from(data).toString('base64url');

function sign(claims) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const mac = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${mac}`;
}

/** The app's token endpoint: a token for Ada while she is signed in, 401 after. */
async function startTokenApp() {
  const state = { signedIn: true, issued: 0 };
  const server = http.createServer((req, res) => {
    const origin = req.headers.origin;
    if (origin) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    if (!state.signedIn) {
      res.writeHead(401, { 'Content-Type': 'text/plain' });
      return res.end('signed out');
    }
    state.issued += 1;
    const now = Math.floor(Date.now() / 1000);
    const token = sign({ sub: 'user-ada', name: 'Ada', iat: now, exp: now + LIFETIME_SECS });
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ token }));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { state, url: `http://127.0.0.1:${server.address().port}/token`, close: () => server.close() };
}

async function metric(server, name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

test('the page signs in through the token URL, refreshes in band past exp, and stops when signed out', async () => {
  const app = await startTokenApp();
  const server = await startServer({
    args: [
      '--jwt-hs256-secret', SECRET, '--jwt-token-url', app.url, '--api-key', API_KEY,
      '--jwt-leeway-secs', '0', '--jwt-refresh-window-secs', '2',
    ],
  });
  const browser = await launchBrowser();
  const errors = [];
  try {
    const page = await newPage(browser, errors);
    // No name in the URL and no join form: the token names the user.
    await page.goto(`${server.url}/?room=tokens`);
    await page.waitForSelector('.room-item[data-room=tokens][data-status=joined]');
    assert.equal(await page.textContent('.whoami'), 'Ada');
    await send(page, 'signed in');
    await page.waitForSelector('.msg:not(.pending) .msg-text');
    // The server's name for her messages is the token's, the page's own: shown as "me".
    assert.equal(await page.textContent('.msg:not(.pending) .msg-name'), 'me');

    // Three lifetimes of the first token: each refresh keeps the same session.
    await page.waitForTimeout(LIFETIME_SECS * 3 * 1000);
    assert.ok(await metric(server, 'switchboard_tokens_refreshed_total') >= 3, 'refreshed in band');
    assert.equal(await metric(server, 'switchboard_tokens_expired_total'), 0);
    assert.equal(await metric(server, 'switchboard_sessions_opened_total{kind="ws"}'), 1, 'one session throughout');
    assert.equal(await page.getAttribute('.badge', 'data-state'), 'open');
    await send(page, 'still here after three tokens');
    await page.waitForFunction(() => document.querySelectorAll('.msg:not(.pending)').length === 2);
    await screenshot(page, 'tokens-refreshed');

    // The app signs Ada out and disconnects her: the page asks the token URL, is refused,
    // and stops instead of reconnecting with the old token.
    app.state.signedIn = false;
    const issued = app.state.issued;
    const res = await fetch(`${server.url}/api/v1/users/user-ada/disconnect`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${API_KEY}` },
    });
    assert.deepEqual(await res.json(), { sub: 'user-ada', closed: 1 });
    await page.waitForSelector('.badge[data-state=closed]', { timeout: 15000 });
    assert.match(await page.textContent('.badge'), /sign in again/i);
    assert.equal(app.state.issued, issued, 'no token after sign-out');
    assert.equal(await metric(server, 'switchboard_sessions_opened_total{kind="ws"}'), 1, 'no reconnect');
    assert.deepEqual(errors.filter((e) => !/401|Failed to load resource/.test(e)), []);
  } finally {
    await browser.close();
    await server.stop();
    app.close();
  }
});
