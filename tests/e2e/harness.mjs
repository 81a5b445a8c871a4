// Shared helpers for the end-to-end tests: start the real server binary on an OS-picked port,
// launch Debian's Chromium headless through playwright-core, save screenshots as artifacts.

import { spawn } from 'node:child_process';
import net from 'node:net';
import http from 'node:http';
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

/**
 * An HTTP proxy standing for a middlebox between the browser and the server. Everything the
 * page loads goes through it. `mode`:
 * - `forbid`: answers every WebSocket upgrade with 403; forwards other requests.
 * - `cut`: forwards the upgrade, passes the server's answer (101) on, then cuts both
 *   connections.
 * - `buffer`: answers upgrades with 403, and holds every response until it is complete (an
 *   event stream never completes, so nothing of it arrives).
 * `cut()` kills every connection through it and refuses new ones until `restore()`.
 * `targetPorts`: one server's port, or several: each request (and each upgrade) then goes to
 * the next one in turn (round-robin, no stickiness).
 */
export async function startMiddlebox(targetPorts, initialMode) {
  let mode = initialMode;
  const ports = [targetPorts].flat();
  const streaming = new Set();
  let turn = 0;
  const nextPort = () => ports[turn++ % ports.length];
  let down = false;
  const sockets = new Set();
  const track = (s) => {
    if (!s || sockets.has(s)) return;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  };
  const server = http.createServer((req, res) => {
    if (down) { req.socket.destroy(); return; }
    const upstream = http.request({
      host: '127.0.0.1', port: nextPort(), method: req.method, path: req.url, headers: req.headers,
      agent: false,
    }, (up) => {
      if (mode !== 'buffer') {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
        streaming.add(up);
        up.on('close', () => streaming.delete(up));
        return;
      }
      const chunks = [];
      up.on('data', (c) => chunks.push(c));
      up.on('end', () => {
        const body = Buffer.concat(chunks);
        const headers = { ...up.headers, 'content-length': body.length };
        delete headers['transfer-encoding'];
        res.writeHead(up.statusCode, headers);
        res.end(body);
      });
    });
    upstream.on('error', () => req.socket.destroy());
    upstream.on('socket', track);
    req.pipe(upstream);
  });
  server.on('connection', track);
  server.on('upgrade', (req, socket, head) => {
    if (down || mode !== 'cut') {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const upstream = net.connect(nextPort(), '127.0.0.1', () => {
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      upstream.write(raw + '\r\n');
      if (head.length) upstream.write(head);
    });
    track(upstream);
    let answer = Buffer.alloc(0);
    upstream.on('data', (chunk) => {
      answer = Buffer.concat([answer, chunk]);
      const end = answer.indexOf('\r\n\r\n');
      if (end < 0) return;
      // The server's answer goes through; then the middlebox drops the connection.
      socket.write(answer.subarray(0, end + 4), () => { socket.destroy(); upstream.destroy(); });
    });
    upstream.on('error', () => socket.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() { down = true; for (const s of sockets) s.destroy(); },
    restore() { down = false; },
    /** From now on the middlebox buffers: responses in flight stop flowing (their
     * connections stay open), new ones are held until complete, upgrades get 403. */
    freeze() {
      mode = 'buffer';
      for (const up of streaming) { up.unpipe(); up.pause(); }
    },
    close() { for (const s of sockets) s.destroy(); server.close(); },
  };
}

/** A throwaway `redis-server` on a free port (no persistence). */
export async function startRedis() {
  const port = await new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'switchboard-redis-'));
  const proc = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir,
    '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  return {
    url: `redis://127.0.0.1:${port}/`,
    async stop() { if (proc.exitCode === null) proc.kill('SIGKILL'); return exited; },
  };
}
