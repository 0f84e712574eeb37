// Durable webhook delivery: every event is written to disk (atomically) before any HTTP
// call, and removed only when Django answers 2xx. 5xx/408/429/network errors retry with
// exponential backoff (jittered, capped) for as long as it takes; other 4xx are poison and
// move to spool/rejected/ (kept for an operator, never retried in a loop).
import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { writeFileAtomic } from './fsutil.js';

export function signBody(secret, timestamp, rawBody) {
  return `sha256=${crypto.createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex')}`;
}

export function isRetryableStatus(status) {
  return status >= 500 || status === 408 || status === 429;
}

export class WebhookSpool {
  constructor({ dataDir, webhookBase, secret, logger, retryBaseMs = 1000, retryMaxMs = 60000, timeoutMs = 10000 }) {
    this.pendingDir = path.join(dataDir, 'spool', 'pending');
    this.rejectedDir = path.join(dataDir, 'spool', 'rejected');
    this.webhookBase = webhookBase;
    this.secret = secret;
    this.logger = logger;
    this.retryBaseMs = retryBaseMs;
    this.retryMaxMs = retryMaxMs;
    this.timeoutMs = timeoutMs;
    this.seq = 0;
    this.active = new Map(); // file name -> { timer, controller }
    this.closed = false;
    this.warnedNoWebhook = false;
  }

  urlFor(tenant, kind) {
    const base = `${this.webhookBase}/webhooks/baileys/${tenant}/`;
    return kind === 'status' ? `${base}status/` : base;
  }

  async enqueue(tenant, kind, payload) {
    const name = `${Date.now().toString().padStart(15, '0')}-${process.pid}-${String(this.seq++).padStart(6, '0')}-${kind}-${tenant}.json`;
    const item = { tenant, kind, body: JSON.stringify(payload), createdAt: new Date().toISOString() };
    await writeFileAtomic(path.join(this.pendingDir, name), JSON.stringify(item));
    this.logger.info({ tenant, kind, id: payload.id ?? payload.messageId, spool: name }, 'spooled');
    this._schedule(name, 0, 0);
    return name;
  }

  /** Re-deliver whatever a previous process left in the spool. */
  async resume() {
    await fs.mkdir(this.pendingDir, { recursive: true });
    await fs.mkdir(this.rejectedDir, { recursive: true });
    const names = (await fs.readdir(this.pendingDir)).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
    if (names.length) this.logger.info({ count: names.length }, 'spool_resume');
    for (const name of names) this._schedule(name, 0, 0);
    return names.length;
  }

  async pendingCount() {
    try {
      return (await fs.readdir(this.pendingDir)).filter((n) => n.endsWith('.json') && !n.startsWith('.')).length;
    } catch {
      return 0;
    }
  }

  _schedule(name, attempt, delayMs) {
    if (this.closed) return;
    const existing = this.active.get(name);
    if (existing && attempt === 0) return; // already being delivered
    const entry = existing || {};
    entry.timer = setTimeout(() => this._attempt(name, attempt), delayMs);
    this.active.set(name, entry);
  }

  _backoff(attempt) {
    const ceiling = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.min(attempt, 30));
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  async _attempt(name, attempt) {
    if (this.closed) return;
    const file = path.join(this.pendingDir, name);
    let item;
    try {
      item = JSON.parse(await fs.readFile(file, 'utf8'));
    } catch (err) {
      if (err.code === 'ENOENT') {
        this.active.delete(name);
        return;
      }
      this.logger.error({ spool: name, err: err.message }, 'spool_unreadable');
      await this._reject(name, 'unreadable spool file');
      return;
    }
    if (!this.webhookBase) {
      if (!this.warnedNoWebhook) this.logger.warn('SIDECAR_WEBHOOK_BASE not set: events stay in the spool until it is');
      this.warnedNoWebhook = true;
      this.active.delete(name);
      return;
    }
    const url = this.urlFor(item.tenant, item.kind);
    const timestamp = Math.floor(Date.now() / 1000).toString();
    const controller = new AbortController();
    const entry = this.active.get(name) || {};
    entry.controller = controller;
    this.active.set(name, entry);
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    let status = null;
    let error = null;
    try {
      const res = await fetch(url, {
        method: 'POST',
        redirect: 'manual',
        signal: controller.signal,
        headers: {
          'Content-Type': 'application/json',
          'X-Sidecar-Timestamp': timestamp,
          'X-Sidecar-Signature': signBody(this.secret, timestamp, item.body),
        },
        body: item.body,
      });
      status = res.status;
      await res.arrayBuffer().catch(() => {});
    } catch (err) {
      error = err.name === 'AbortError' ? 'timeout' : (err.cause?.code || err.message);
    } finally {
      clearTimeout(timer);
      entry.controller = null;
    }
    if (this.closed) return;
    const ctx = { tenant: item.tenant, kind: item.kind, spool: name, attempt: attempt + 1 };
    if (status !== null && status >= 200 && status < 300) {
      await fs.rm(file, { force: true });
      this.active.delete(name);
      this.logger.info({ ...ctx, status }, 'webhook_delivered');
      return;
    }
    if (status !== null && !isRetryableStatus(status)) {
      this.logger.error({ ...ctx, status }, 'webhook_rejected');
      await this._reject(name, `HTTP ${status}`);
      return;
    }
    const delay = this._backoff(attempt);
    this.logger.warn({ ...ctx, status, error, retryInMs: delay }, 'webhook_retry');
    this._schedule(name, attempt + 1, delay);
  }

  async _reject(name, reason) {
    this.active.delete(name);
    await fs.mkdir(this.rejectedDir, { recursive: true });
    try {
      await fs.rename(path.join(this.pendingDir, name), path.join(this.rejectedDir, name));
      this.logger.warn({ spool: name, reason }, 'spool_moved_to_rejected');
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
  }

  async close() {
    this.closed = true;
    for (const entry of this.active.values()) {
      clearTimeout(entry.timer);
      entry.controller?.abort();
    }
    this.active.clear();
  }
}
