import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import crypto from 'node:crypto';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { createApp } from '../src/app.js';

export const TOKEN = 'test-token-123';
export const SECRET = 'test-webhook-secret';

export const tmpDataDir = () => fs.mkdtemp(path.join(os.tmpdir(), 'sidecar-test-'));
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts the real server in-process on port 0 (sandbox transport) with captured JSON logs. */
export async function startSidecar({ dataDir, env = {} } = {}) {
  dataDir = dataDir || (await tmpDataDir());
  const config = loadConfig({
    SIDECAR_TOKEN: TOKEN,
    SIDECAR_TRANSPORT: 'sandbox',
    SIDECAR_PORT: '0',
    SIDECAR_DATA_DIR: dataDir,
    SIDECAR_SEND_TIMEOUT_MS: '400',
    SIDECAR_ACK_TIMEOUT_MS: '300',
    SIDECAR_START_TIMEOUT_MS: '2000',
    SIDECAR_RETRY_BASE_MS: '50',
    SIDECAR_RETRY_MAX_MS: '200',
    SIDECAR_WEBHOOK_TIMEOUT_MS: '1000',
    ...env,
  });
  const logs = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line) => logs.push(JSON.parse(line)) } });
  const app = await createApp({ config, logger });
  const port = await app.listen();
  const base = `http://127.0.0.1:${port}`;
  async function api(method, urlPath, body, { token = TOKEN, raw, headers: extra = {} } = {}) {
    const headers = { 'Content-Type': 'application/json', ...extra };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(base + urlPath, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, body: json };
  }
  return { app, api, port, base, dataDir, logs, config, close: () => app.close() };
}

export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** A fake Django webhook: verifies the signature, answers `status()` (default 200). */
export async function startFakeWebhook({ secret = SECRET, status = () => 200 } = {}) {
  const received = [];
  const attempts = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const ts = req.headers['x-sidecar-timestamp'];
      const expected = `sha256=${crypto.createHmac('sha256', secret).update(`${ts}.${raw}`).digest('hex')}`;
      const sig = req.headers['x-sidecar-signature'] || '';
      const ok = sig.length === expected.length && crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(expected))
        && Math.abs(Date.now() / 1000 - Number(ts)) < 300 && req.headers['content-type'] === 'application/json';
      const code = ok ? status(req) : 403;
      attempts.push({ url: req.url, code, signatureOk: ok });
      if (code >= 200 && code < 300) received.push({ url: req.url, body: JSON.parse(raw) });
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    received,
    attempts,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}
