// Durable webhook delivery: every event is written to disk (atomically) before any HTTP
// call, and removed only when Django answers 2xx. 5xx/408/429/network errors retry with
// exponential backoff (jittered, capped) for as long as it takes; 401/403/404 can heal
// (clock skew, a rotated secret, a renamed tenant) and retry for a bounded time; other 4xx
// are poison and move to spool/rejected/ with Django's answer, where Django collects them
// as inbound dead letters (GET /inbound/rejected, then DELETE).
//
// Where items are kept is the storage's job (`storage`): files on this host by default
// (state/file-spool.js), or PostgreSQL rows of the shard (state/postgres.js).
import crypto from 'node:crypto';
import { FileSpoolStorage } from './state/file-spool.js';

// <ms since epoch, 15 digits>-<pid>-<seq>-<kind>-<tenant>.json
export const SPOOL_NAME_RE = /^\d{15}-\d{1,10}-\d{6,}-(inbound|status|owner)-[a-z0-9][a-z0-9_-]{0,62}\.json$/;
const ERROR_CHARS = 500;

export function signBody(secret, timestamp, rawBody) {
  return `sha256=${crypto.createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex')}`;
}

export function isRetryableStatus(status) {
  return status >= 500 || status === 408 || status === 429;
}

/** Refusals that a later attempt can overcome: signature (skew, rotation), unknown tenant (rename). */
export function mayHealLater(status) {
  return status === 401 || status === 403 || status === 404;
}

/** Django's `{"error", "detail"}` answer as one line, bounded. */
function describeRefusal(status, text) {
  let detail = text ? `HTTP ${status}: ${text}` : `HTTP ${status}`;
  try {
    const body = JSON.parse(text);
    if (body && typeof body === 'object') detail = body.error ? `${body.error}: ${body.detail ?? ''}` : `HTTP ${status}`;
  } catch {
    // not JSON: keep the text
  }
  return detail.slice(0, ERROR_CHARS);
}

export class WebhookSpool {
  constructor({ dataDir, storage = null, webhookBase, secret, logger, retryBaseMs = 1000, retryMaxMs = 60000, timeoutMs = 10000, authRetryMs = 15 * 60 * 1000 }) {
    this.authRetryMs = authRetryMs;
    this.storage = storage || new FileSpoolStorage(dataDir);
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
    if (kind === 'status') return `${base}status/`;
    return kind === 'owner' ? `${base}owner/` : base; // the owner's own phone messages
  }

  async enqueue(tenant, kind, payload) {
    const name = `${Date.now().toString().padStart(15, '0')}-${process.pid}-${String(this.seq++).padStart(6, '0')}-${kind}-${tenant}.json`;
    const item = { tenant, kind, body: JSON.stringify(payload), createdAt: new Date().toISOString() };
    await this.storage.put(name, item);
    this.logger.info({ tenant, kind, id: payload.id ?? payload.messageId, spool: name }, 'spooled');
    this._schedule(name, 0, 0);
    return name;
  }

  /** Re-deliver whatever a previous process left in the spool. */
  async resume() {
    await this.storage.init();
    const names = await this.storage.pendingNames();
    if (names.length) this.logger.info({ count: names.length }, 'spool_resume');
    for (const name of names) this._schedule(name, 0, 0);
    return names.length;
  }

  async pendingCount() {
    try {
      return (await this.storage.pendingNames()).length;
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
    let item;
    try {
      item = await this.storage.read(name);
    } catch (err) {
      if (this.closed) return;
      this.logger.error({ spool: name, err: err.message }, 'spool_unreadable');
      await this._reject(name, { httpStatus: null, error: 'unreadable spool file' }).catch((e) => this.logger.error({ spool: name, err: e.message }, 'spool_reject_failed'));
      return;
    }
    if (!item) {
      this.active.delete(name);
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
    let answer = '';
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
      answer = await res.text().catch(() => '');
    } catch (err) {
      error = err.name === 'AbortError' ? 'timeout' : (err.cause?.code || err.message);
    } finally {
      clearTimeout(timer);
      entry.controller = null;
    }
    if (this.closed) return;
    const ctx = { tenant: item.tenant, kind: item.kind, spool: name, attempt: attempt + 1 };
    if (status !== null && status >= 200 && status < 300) {
      this.active.delete(name);
      // Not removed (e.g. the sidecar was fenced): the next owner delivers it again, and
      // Django deduplicates inbound messages by their WhatsApp id.
      await this.storage.remove(name).catch((err) => this.logger.error({ ...ctx, err: err.message }, 'spool_remove_failed'));
      this.logger.info({ ...ctx, status }, 'webhook_delivered');
      return;
    }
    const ageMs = Date.now() - (Date.parse(item.createdAt) || Date.now());
    if (status !== null && !isRetryableStatus(status) && !(mayHealLater(status) && ageMs < this.authRetryMs)) {
      this.logger.error({ ...ctx, status }, 'webhook_rejected');
      await this._reject(name, { httpStatus: status, error: describeRefusal(status, answer) }, item).catch((err) => this.logger.error({ ...ctx, err: err.message }, 'spool_reject_failed'));
      return;
    }
    const delay = this._backoff(attempt);
    this.logger.warn({ ...ctx, status, error, retryInMs: delay }, 'webhook_retry');
    this._schedule(name, attempt + 1, delay);
  }

  // The rejected item is the spooled one plus why and when Django refused it; an
  // unreadable item is moved as it is.
  async _reject(name, { httpStatus, error }, item = null) {
    this.active.delete(name);
    await this.storage.reject(name, item, { httpStatus, error, rejectedAt: new Date().toISOString() });
    this.logger.warn({ spool: name, httpStatus, error }, 'spool_moved_to_rejected');
  }

  /** The oldest `limit` rejected items, in the shape GET /inbound/rejected answers. */
  async listRejected(limit) {
    const items = [];
    for (const { name, item } of await this.storage.listRejected(limit, (n) => SPOOL_NAME_RE.test(n))) {
      const [, kind, tenant] = /^(?:[^-]+-){3}(inbound|status|owner)-(.+)\.json$/.exec(name);
      let payload = null;
      try {
        payload = JSON.parse(item?.body);
      } catch {
        // unreadable: listed so staff see that something was lost
      }
      const rejection = item?.rejection || {};
      items.push({
        id: name,
        tenant: item?.tenant || tenant,
        kind: { status: 'status', owner: 'owner' }[item?.kind || kind] ?? 'message',
        httpStatus: rejection.httpStatus ?? null,
        error: String(rejection.error || 'unreadable spool file').slice(0, ERROR_CHARS),
        rejectedAt: rejection.rejectedAt || item?.createdAt || null,
        payload,
      });
    }
    return items;
  }

  /** Remove a collected rejected item; false if `id` is not a spool name. Idempotent. */
  async deleteRejected(id) {
    if (!SPOOL_NAME_RE.test(id)) return false;
    await this.storage.deleteRejected(id);
    return true;
  }

  /** Remove pending and rejected items of `tenant` for which `matches(item)` is true. Returns the count. */
  async erase(tenant, matches) {
    let n = 0;
    await this.storage.eachOfTenant(tenant, async ({ name, item, rejected }) => {
      if (!(await matches(item))) return;
      const entry = this.active.get(name);
      if (entry && !rejected) {
        clearTimeout(entry.timer);
        entry.controller?.abort();
        this.active.delete(name);
      }
      await this.storage.removeItem(name, rejected);
      n++;
    });
    return n;
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
