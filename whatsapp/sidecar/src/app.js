// HTTP API (node:http, JSON only). Everything except GET /healthz needs the bearer token.
import http from 'node:http';
import crypto from 'node:crypto';
import { SessionManager } from './session-manager.js';
import { WebhookSpool } from './spool.js';
import { toJid } from './whatsapp.js';
import { createStateStore } from './state/index.js';
import { contactJids, eraseContact } from './privacy.js';
import { MAX_MEDIA_REQUEST_BYTES, parseMedia, parsePresence } from './outgoing.js';
import { InboundMedia, MEDIA_ID_RE } from './media.js';

export const TENANT_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
// Room for the longest WhatsApp text (65,536 characters) as JSON, in the sandbox's inbound control too.
const MAX_BODY = 512 * 1024;
// The sandbox's inbound control carries the media bytes as base64.
const MAX_SANDBOX_BODY = 48 * 1024 * 1024;
const MAX_TEXT = 4096;
const MAX_KEY = 200;

const FENCED = () => new HttpError(409, 'fenced', 'this sidecar does not hold the shard with that fencing token');

class HttpError extends Error {
  constructor(status, error, detail, extra = {}) {
    super(detail || error);
    this.status = status;
    this.error = error;
    this.detail = detail;
    this.extra = extra;
  }
}

function send(res, status, body) {
  if (status === 204) {
    res.writeHead(204, { 'Cache-Control': 'no-store' });
    res.end();
    return;
  }
  const raw = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(raw), 'Cache-Control': 'no-store' });
  res.end(raw);
}

function tokenMatches(header, token) {
  const m = /^Bearer (.+)$/.exec(header || '');
  if (!m) return false;
  // Compare fixed-length digests so neither content nor length leaks through timing.
  const a = crypto.createHash('sha256').update(m[1]).digest();
  const b = crypto.createHash('sha256').update(token).digest();
  return crypto.timingSafeEqual(a, b);
}

async function readJson(req, maxBody = MAX_BODY) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > maxBody) throw new HttpError(413, 'body_too_large', `body exceeds ${maxBody} bytes`);
    chunks.push(chunk);
  }
  const raw = Buffer.concat(chunks).toString('utf8');
  if (!raw.trim()) return {};
  let body;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new HttpError(400, 'invalid_json', 'the body is not valid JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'invalid_json', 'the body must be a JSON object');
  return body;
}

function validateMessage(body) {
  const { to, text, idempotencyKey } = body;
  if (typeof to !== 'string' || !to) throw new HttpError(400, 'invalid_request', '"to" is required');
  const jid = toJid(to);
  if (!jid) throw new HttpError(400, 'invalid_request', '"to" must be E.164 digits (optional +) or a user JID');
  // With media, the text is its caption and may be empty (src/outgoing.js).
  let extras;
  try {
    extras = { media: parseMedia(body.media), presence: parsePresence(body.presence) };
  } catch (err) {
    throw new HttpError(400, 'invalid_request', err.message);
  }
  if (typeof text !== 'string' || (!text.trim() && !extras.media)) throw new HttpError(400, 'invalid_request', '"text" is required');
  if (text.length > MAX_TEXT) throw new HttpError(400, 'invalid_request', `"text" exceeds ${MAX_TEXT} characters`);
  if (typeof idempotencyKey !== 'string' || !idempotencyKey) throw new HttpError(400, 'invalid_request', '"idempotencyKey" is required');
  if (idempotencyKey.length > MAX_KEY) throw new HttpError(400, 'invalid_request', `"idempotencyKey" exceeds ${MAX_KEY} characters`);
  return { jid, text, idempotencyKey, ...extras };
}

/**
 * Builds the service. Returns { server, manager, spool, world, listen(), close() }.
 * `world` is the SandboxWorld when the sandbox transport is active (else null).
 */
export async function createApp({ config, logger }) {
  let transportFactory;
  let world = null;
  let downloadMedia;
  // Asking the phone to upload expired media again needs the tenant's live socket.
  const reuploadMedia = (tenant, msg) => {
    const t = manager.session(tenant).transport;
    if (!t?.reuploadMedia) throw new Error('no live socket to ask the phone for a re-upload');
    return t.reuploadMedia(msg);
  };
  if (config.transport === 'sandbox') {
    const { SandboxWorld } = await import('./transports/sandbox.js');
    world = new SandboxWorld({ pairing: config.sandboxPairing, dataDir: config.dataDir });
    transportFactory = world.factory;
    downloadMedia = (tenant, msg) => world.downloadMedia(tenant, msg);
  } else {
    // Loaded only here, so sandbox runs never import baileys.
    const { baileysTransportFactory, downloadMediaStream } = await import('./transports/baileys.js');
    transportFactory = baileysTransportFactory;
    downloadMedia = (tenant, msg) => downloadMediaStream(msg, {
      logger: logger.child({ tenant, lib: 'baileys' }, { level: 'warn' }),
      reuploadRequest: (m) => reuploadMedia(tenant, m),
    });
  }

  const state = await createStateStore({ config, logger });
  const spool = new WebhookSpool({
    dataDir: config.dataDir,
    storage: state.spoolStorage,
    webhookBase: config.webhookBase,
    secret: config.webhookSecret,
    logger,
    retryBaseMs: config.retryBaseMs,
    retryMaxMs: config.retryMaxMs,
    timeoutMs: config.webhookTimeoutMs,
    authRetryMs: config.webhookAuthRetryMs,
  });
  const { idempotency, marks, fence } = state;
  const media = new InboundMedia({
    dataDir: config.dataDir,
    logger,
    spool,
    download: downloadMedia,
    reupload: reuploadMedia,
    maxBytes: config.mediaMaxBytes,
    timeoutMs: config.mediaTimeoutMs,
    retries: config.mediaRetries,
    retryBaseMs: config.mediaRetryBaseMs,
    concurrency: config.mediaConcurrency,
  });
  const manager = new SessionManager({ config, logger, transportFactory, idempotency, spool, marks, auth: state.auth, fence, media });
  // A newer owner holds the shard: close every socket at once and stop delivering webhooks
  // (what is left in the spool is the new owner's to deliver). Commands answer 409 fenced.
  fence.onFenced(async () => {
    await Promise.all([manager.closeAllFenced(), spool.close()]);
    logger.error({ shard: config.shard }, 'fenced_sockets_closed');
  });

  // Idempotency records and media files nobody fetched expire; the rejected spool is kept
  // until Django collects it.
  const retentionMs = config.idempotencyRetentionDays * 24 * 3600 * 1000;
  const sweep = () => Promise.all([
    idempotency.expire(retentionMs).then(
      (n) => { if (n) logger.info({ records: n }, 'idempotency_records_expired'); },
      (err) => logger.error({ err: err.message }, 'idempotency_expiry_failed'),
    ),
    media.store.expire(config.mediaRetentionHours * 3600 * 1000).then(
      (n) => { if (n) logger.info({ files: n }, 'media_files_expired'); },
      (err) => logger.error({ err: err.message }, 'media_expiry_failed'),
    ),
  ]);
  let sweepTimer = null;

  async function route(req, res, url) {
    const parts = url.pathname.split('/').filter(Boolean).map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        throw new HttpError(400, 'invalid_path', 'bad percent-encoding in the path');
      }
    });
    const method = req.method;

    if (parts.length === 1 && parts[0] === 'healthz') {
      if (method !== 'GET') throw new HttpError(405, 'method_not_allowed', 'use GET');
      return send(res, 200, { ok: true, transport: config.transport, sessions: manager.liveSessionCount(), ...(fence.fenced ? { fenced: true } : {}) });
    }

    const isSessions = parts[0] === 'sessions' && parts.length >= 3;
    const isSandbox = parts[0] === 'sandbox' && parts.length === 3 && config.transport === 'sandbox';
    const isRejected = parts[0] === 'inbound' && parts[1] === 'rejected' && parts.length <= 3;
    const isErase = parts[0] === 'privacy' && parts[1] === 'erase' && parts.length === 2;
    if (!isSessions && !isSandbox && !isRejected && !isErase) throw new HttpError(404, 'not_found', `no route for ${method} ${url.pathname}`);

    if (!tokenMatches(req.headers.authorization, config.token)) {
      throw new HttpError(401, 'unauthorized', 'missing or wrong bearer token');
    }
    checkFencing(req);
    if (isRejected) return rejectedRoute(req, res, url, parts[2], method);
    if (isErase) return eraseRoute(req, res, method);
    const tenant = parts[1];
    if (!TENANT_RE.test(tenant)) throw new HttpError(400, 'invalid_tenant', 'tenant must match ^[a-z0-9][a-z0-9_-]{0,62}$');
    const action = parts.slice(2);
    const is = (m, ...path) => method === m && action.length === path.length && path.every((p, i) => p === null || p === action[i]);

    if (isSandbox) return sandboxRoute(req, res, tenant, action[0], method);

    if (is('POST', 'start')) {
      await readJson(req);
      const status = await manager.start(tenant);
      if (fence.fenced) throw FENCED();
      return send(res, 200, status);
    }
    if (is('POST', 'stop')) {
      await readJson(req);
      return send(res, 200, await manager.stop(tenant));
    }
    if (is('POST', 'logout')) {
      await readJson(req);
      return send(res, 200, await manager.stop(tenant, { logout: true }));
    }
    if (is('GET', 'status')) return send(res, 200, await manager.status(tenant));
    if (is('GET', 'sending-status')) return send(res, 200, manager.sendingStatus(tenant));
    if (is('POST', 'messages')) {
      const msg = validateMessage(await readJson(req, MAX_MEDIA_REQUEST_BYTES));
      const r = await manager.send(tenant, msg);
      return send(res, r.httpStatus, r.body);
    }
    if (action[0] === 'media' && action.length === 2) return mediaRoute(res, tenant, action[1], method);
    if (is('GET', 'messages', null)) {
      const key = action[1];
      if (!key || key.length > MAX_KEY) throw new HttpError(400, 'invalid_request', 'bad idempotency key');
      return send(res, 200, await manager.outcome(tenant, key));
    }
    throw new HttpError(404, 'not_found', `no route for ${method} ${url.pathname}`);
  }

  // A command from a caller that holds another lease record than ours (X-Fencing-Token), or
  // any command once this sidecar has been fenced, is refused: nothing is done or recorded.
  // Without SIDECAR_FENCING_TOKEN (single host) the header is ignored.
  function checkFencing(req) {
    if (fence.fenced) throw FENCED();
    const header = req.headers['x-fencing-token'];
    if (config.fencingToken === null || header === undefined) return;
    const given = String(header).trim();
    if (!/^\d{1,19}$/.test(given) || BigInt(given).toString() !== config.fencingToken) throw FENCED();
  }

  // A downloaded inbound file: Django fetches it by the id in the webhook, then deletes it.
  async function mediaRoute(res, tenant, id, method) {
    if (!MEDIA_ID_RE.test(id)) throw new HttpError(400, 'invalid_request', 'bad media id');
    if (method === 'DELETE') {
      await media.store.delete(tenant, id);
      return send(res, 204);
    }
    if (method !== 'GET') throw new HttpError(405, 'method_not_allowed', 'GET or DELETE');
    const found = await media.store.get(tenant, id);
    if (!found) throw new HttpError(404, 'media_not_found', 'no such media file (fetched and deleted, or expired)');
    res.writeHead(200, {
      'Content-Type': found.mimetype || 'application/octet-stream',
      'Content-Length': found.size,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    });
    const stream = media.store.createReadStream(found.file);
    await new Promise((resolve) => {
      stream.on('error', () => { res.destroy(); resolve(); });
      res.on('close', resolve);
      stream.pipe(res);
    });
    return undefined;
  }

  // Inbound events Django refused for good: Django files them as dead letters, then deletes.
  async function rejectedRoute(req, res, url, id, method) {
    if (id === undefined && method === 'GET') {
      const raw = url.searchParams.get('limit') ?? '100';
      if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > 1000) throw new HttpError(400, 'invalid_request', 'limit must be 1..1000');
      return send(res, 200, { items: await spool.listRejected(Number(raw)) });
    }
    if (id !== undefined && method === 'DELETE') {
      if (!(await spool.deleteRejected(id))) throw new HttpError(400, 'invalid_request', 'bad rejected item id');
      return send(res, 204);
    }
    throw new HttpError(405, 'method_not_allowed', 'GET /inbound/rejected or DELETE /inbound/rejected/{id}');
  }

  async function eraseRoute(req, res, method) {
    if (method !== 'POST') throw new HttpError(405, 'method_not_allowed', 'use POST');
    const body = await readJson(req);
    if (typeof body.tenant !== 'string' || !TENANT_RE.test(body.tenant)) throw new HttpError(400, 'invalid_tenant', 'tenant must match ^[a-z0-9][a-z0-9_-]{0,62}$');
    const jids = contactJids(body);
    if (!jids) throw new HttpError(400, 'invalid_request', 'give "phone" (E.164) or "jid" (a user JID)');
    const counts = await eraseContact({ idempotency, spool, media }, body.tenant, jids);
    logger.info({ tenant: body.tenant, ...counts }, 'contact_erased'); // never the number
    return send(res, 200, counts);
  }

  async function sandboxRoute(req, res, tenant, action, method) {
    const wrap = (fn) => {
      try {
        return fn();
      } catch (err) {
        if (err instanceof TypeError) throw new HttpError(400, 'invalid_request', err.message);
        throw err;
      }
    };
    if (method === 'GET' && action === 'sent') return send(res, 200, { tenant, sent: world.sent(tenant) });
    if (method === 'GET' && action === 'activity') return send(res, 200, { tenant, activity: world.activity(tenant) });
    if (method === 'GET' && action === 'state') return send(res, 200, { tenant, ...world.state(tenant), manager: { socketsCreated: manager.session(tenant).socketsCreated } });
    if (method !== 'POST') throw new HttpError(404, 'not_found', 'unknown sandbox route');
    const body = await readJson(req, action === 'inbound' ? MAX_SANDBOX_BODY : MAX_BODY);
    if (action === 'behavior') return send(res, 200, { tenant, behavior: wrap(() => world.setBehavior(tenant, body)) });
    if (action === 'inbound') {
      const id = wrap(() => world.inbound(tenant, body));
      if (!id) throw new HttpError(409, 'no_socket', 'the tenant has no live socket');
      return send(res, 200, { ok: true, id });
    }
    if (action === 'owner-message') {
      const id = wrap(() => world.ownerMessage(tenant, body));
      return send(res, 200, { ok: true, id });
    }
    if (action === 'scan') {
      if (!world.scan(tenant)) throw new HttpError(409, 'not_waiting_for_scan', 'the session shows no QR code to scan');
      return send(res, 200, { ok: true });
    }
    if (action === 'disconnect') {
      if (!Number.isInteger(body.code)) throw new HttpError(400, 'invalid_request', '"code" must be an integer');
      if (!world.disconnect(tenant, body.code)) throw new HttpError(409, 'no_socket', 'the tenant has no live socket');
      return send(res, 200, { ok: true });
    }
    if (action === 'acks') {
      const released = wrap(() => world.releaseAcks(tenant, body));
      if (!released) throw new HttpError(409, 'no_socket', 'the tenant has no live socket');
      return send(res, 200, { ok: true, released });
    }
    if (action === 'receipt') {
      if (typeof body.messageId !== 'string' || !body.messageId) throw new HttpError(400, 'invalid_request', '"messageId" is required');
      if (!wrap(() => world.receipt(tenant, body))) throw new HttpError(409, 'no_socket', 'the tenant has no live socket');
      return send(res, 200, { ok: true });
    }
    throw new HttpError(404, 'not_found', 'unknown sandbox route');
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://sidecar.local');
    route(req, res, url).catch((err) => {
      if (err instanceof HttpError) {
        if (!res.headersSent) send(res, err.status, { error: err.error, detail: err.detail ?? err.error, ...err.extra });
        return;
      }
      logger.error({ err: err.message, stack: err.stack, path: url.pathname }, 'request_failed');
      if (!res.headersSent) send(res, 500, { error: 'internal_error', detail: err.message });
    });
  });
  server.keepAliveTimeout = 5000;

  return {
    server,
    manager,
    spool,
    media,
    world,
    state,
    async listen() {
      await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      await spool.resume();
      fence.start();
      media.resume().catch((err) => logger.error({ err: err.message }, 'media_resume_failed'));
      sweep();
      sweepTimer = setInterval(sweep, config.sweepIntervalMs);
      sweepTimer.unref();
      return server.address().port;
    },
    async close() {
      clearInterval(sweepTimer);
      media.close();
      server.close();
      server.closeAllConnections?.();
      await manager.closeAll();
      await spool.close();
      await state.close();
    },
  };
}
