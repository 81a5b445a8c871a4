// A message the server refuses for good (here: an operator's policy trigger in the database)
// is shown as refused, leaves the outbox, and is not sent again after a reconnect.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer, launchBrowser, newPage, screenshot } from './harness.mjs';

function addPolicy(db) {
  // The server has created and migrated the database; the trigger joins its schema.
  execFileSync('python3', ['-c', `
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=10)
c.execute("""CREATE TRIGGER no_poison BEFORE INSERT ON messages WHEN NEW.text LIKE '%poison%'
             BEGIN SELECT RAISE(ABORT, 'poison is not allowed here'); END""")
c.commit()
`, db]);
}

test('a refused message is shown as refused and is not resent after a reconnect', async () => {
  const server = await startServer();
  addPolicy(server.db);
  const browser = await launchBrowser();
  const errors = [];
  try {
    const page = await newPage(browser, errors);
    await page.goto(`${server.url}/?name=Ada&room=policy`);
    await page.waitForSelector('.badge[data-state=open]');
    await page.fill('#composer-text', 'a poison pill');
    await page.press('#composer-text', 'Enter');
    await page.waitForSelector('.problem');
    const problem = await page.textContent('.problem');
    assert.match(problem, /Message refused/);
    assert.match(problem, /poison is not allowed here/);
    const notices = await page.$$eval('.notice', (els) => els.map((e) => e.textContent));
    assert.ok(notices.some((n) => n.includes('a poison pill') && n.includes('will not be resent')), notices.join(' | '));
    assert.equal(await page.locator('.msg.pending').count(), 0, 'nothing left pending');
    const outbox = await page.evaluate(() => localStorage.getItem('switchboard.outbox.policy.Ada'));
    assert.ok(outbox === null || JSON.parse(outbox).length === 0, `outbox still holds ${outbox}`);
    await screenshot(page, 'refused-message');

    // A good message still goes through, and a reload resends nothing.
    await page.fill('#composer-text', 'a fine message');
    await page.press('#composer-text', 'Enter');
    await page.waitForFunction(() => [...document.querySelectorAll('.msg:not(.pending) .msg-text')]
      .some((e) => e.textContent === 'a fine message'));
    await page.reload();
    await page.waitForSelector('.badge[data-state=open]');
    await page.waitForFunction(() => [...document.querySelectorAll('.msg-text')]
      .some((e) => e.textContent === 'a fine message'));
    assert.equal(await page.locator('.problem').count(), 0, 'no refusal after the reload');
    const history = await (await fetch(`${server.url}/api/rooms/policy/messages`)).json();
    assert.deepEqual(history.messages.map((m) => [m.seq, m.msg]), [[1, 'a fine message']]);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
