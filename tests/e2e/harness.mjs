// Shared helpers for the end-to-end tests: start the real server binary on an OS-picked port,
// launch Debian's Chromium headless through playwright-core, save screenshots as artifacts.

import { spawn } from 'node:child_process';
import net from 'node:net';
import { mkdirSync, mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '..', '..');
export const artifacts = path.join(here, 'artifacts');
mkdirSync(artifacts, { recursive: true });

const serverBin = process.env.SWITCHBOARD_SERVER_BIN ?? path.join(repo, 'target', 'debug', 'server');
const distDir = process.env.SWITCHBOARD_DIST ?? path.join(repo, 'dist');

/** Starts the server; `bind` defaults to 127.0.0.1:0. Resolves once it prints its address. */
export function tempDb() {
  return path.join(mkdtempSync(path.join(tmpdir(), 'switchboard-e2e-')), 'switchboard.db');
}

export async function startServer({ bind = '127.0.0.1:0', db = tempDb(), args = [] } = {}) {
  if (!existsSync(serverBin)) throw new Error(`no server binary at ${serverBin}: run cargo build -p server`);
  if (!existsSync(path.join(distDir, 'index.html'))) throw new Error(`no bundle in ${distDir}: run trunk build --release`);
  const proc = spawn(serverBin, ['--bind', bind, '--static-dir', distDir, '--db', db, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  proc.stderr.on('data', (d) => process.stderr.write(d));
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 15000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}: ${out}`)); });
  });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  return {
    url,
    db,
    port: Number(new URL(url).port),
    /** SIGTERM, then wait for the process to end. */
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/** A page that fails the test on any uncaught error. */
export async function newPage(browser, errors, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  return page;
}

/** Types `text` into the stock client's composer and sends it (Enter). */
export async function send(page, text) {
  await page.fill('#composer-text', text);
  await page.press('#composer-text', 'Enter');
}

export async function screenshot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

/**
 * A TCP proxy in front of the server, standing for a network that can drop: `cut()` kills every
 * connection through it and refuses new ones until `restore()`.
 */
export async function startProxy(targetPort) {
  let down = false;
  const sockets = new Set();
  const server = net.createServer((client) => {
    if (down) { client.destroy(); return; }
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() { down = true; for (const s of sockets) s.destroy(); },
    restore() { down = false; },
    close() { for (const s of sockets) s.destroy(); server.close(); },
  };
}
