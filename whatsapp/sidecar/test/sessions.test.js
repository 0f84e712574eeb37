import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startSidecar, waitFor, sleep } from './helpers.js';
import { loadConfig } from '../src/config.js';

const sockCreates = (logs, tenant) => logs.filter((l) => l.msg === 'SOCK_CREATE' && l.tenant === tenant).length;

test('10 concurrent starts create exactly one socket and report a verified connection', async () => {
  const sc = await startSidecar();
  try {
    const results = await Promise.all(Array.from({ length: 10 }, () => sc.api('POST', '/sessions/acme/start')));
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal(r.body.connected, true);
      assert.equal(r.body.canSend, true);
      assert.equal(r.body.starting, false);
      assert.equal(r.body.authPaired, true);
    }
    // Starting an already connected tenant makes no socket either.
    assert.equal((await sc.api('POST', '/sessions/acme/start')).body.connected, true);
    assert.equal(sockCreates(sc.logs, 'acme'), 1);
    const state = (await sc.api('GET', '/sandbox/acme/state')).body;
    assert.equal(state.socketsCreated, 1);
    assert.equal(state.maxOpenSockets, 1);
    assert.equal((await sc.api('GET', '/healthz', undefined, { token: null })).body.sessions, 1);
  } finally {
    await sc.close();
  }
});

test('connected is not reported when the verification presence update fails', async () => {
  const sc = await startSidecar();
  try {
    await sc.api('POST', '/sandbox/acme/behavior', { failPresence: true });
    const r = await sc.api('POST', '/sessions/acme/start');
    assert.equal(r.body.connected, false);
    assert.equal(r.body.canSend, false);
    assert.equal(r.body.lastDisconnect.reason, 'verificationFailed');
    assert.equal((await sc.api('GET', '/sandbox/acme/state')).body.openSockets, 0);
  } finally {
    await sc.close();
  }
});

test('each disconnect code is reported with its reason; only 515 restarts; 401 clears creds, 500 keeps them', async () => {
  const sc = await startSidecar();
  const credsFile = path.join(sc.dataDir, 'auth', 'acme', 'creds.json');
  const exists = (f) => fs.access(f).then(() => true, () => false);
  try {
    const expected = { 428: 'connectionClosed', 408: 'connectionLost', 440: 'connectionReplaced', 500: 'badSession', 411: 'multideviceMismatch', 403: 'forbidden', 503: 'unavailableService', 405: 'outdatedVersion', 499: 'unknown' };
    for (const [code, reason] of Object.entries(expected)) {
      const started = await sc.api('POST', '/sessions/acme/start');
      assert.equal(started.body.connected, true, `start before ${code}`);
      const before = sockCreates(sc.logs, 'acme');
      assert.equal((await sc.api('POST', '/sandbox/acme/disconnect', { code: Number(code) })).status, 200);
      const st = await waitFor(async () => {
        const s = (await sc.api('GET', '/sessions/acme/status')).body;
        return s.lastDisconnect?.code === Number(code) && !s.connected ? s : null;
      }, { what: `disconnect ${code}` });
      assert.equal(st.lastDisconnect.reason, reason);
      assert.equal(st.canSend, false);
      await sleep(50);
      assert.equal(sockCreates(sc.logs, 'acme'), before, `no reconnect after ${code}`);
      assert.equal((await sc.api('GET', '/sessions/acme/status')).body.connected, false);
      assert.equal(await exists(credsFile), true, `creds kept after ${code}`);
      assert.equal(st.authPaired, true);
    }

    // 515: WhatsApp asks for a restart -> exactly one new socket, by itself.
    await sc.api('POST', '/sessions/acme/start');
    const before515 = sockCreates(sc.logs, 'acme');
    await sc.api('POST', '/sandbox/acme/disconnect', { code: 515 });
    const st515 = await waitFor(async () => {
      const s = (await sc.api('GET', '/sessions/acme/status')).body;
      return s.connected && s.lastDisconnect?.code === 515 ? s : null;
    }, { what: 'restart after 515' });
    assert.equal(st515.lastDisconnect.reason, 'restartRequired');
    assert.equal(sockCreates(sc.logs, 'acme'), before515 + 1);
    assert.equal((await sc.api('GET', '/sandbox/acme/state')).body.maxOpenSockets, 1);

    // 401: logged out -> no reconnect, credentials gone, a new QR is needed.
    await sc.api('POST', '/sandbox/acme/disconnect', { code: 401 });
    const st401 = await waitFor(async () => {
      const s = (await sc.api('GET', '/sessions/acme/status')).body;
      return s.lastDisconnect?.code === 401 ? s : null;
    }, { what: 'disconnect 401' });
    assert.equal(st401.lastDisconnect.reason, 'loggedOut');
    await waitFor(async () => !(await exists(credsFile)), { what: 'creds cleared' });
    assert.equal((await sc.api('GET', '/sessions/acme/status')).body.authPaired, false);
    await sc.api('POST', '/sandbox/acme/behavior', { pairing: 'never' });
    const again = await sc.api('POST', '/sessions/acme/start');
    assert.equal(again.body.connected, false);
    assert.equal(again.body.authPaired, false);
    assert.match(again.body.qr, /^sandbox-qr:acme:/);
    assert.equal(again.body.canSend, false);
  } finally {
    await sc.close();
  }
});

test('first pairing by QR: scan, 515 restart inside the same start, then connected', async () => {
  const sc = await startSidecar();
  try {
    await sc.api('POST', '/sandbox/acme/behavior', { pairing: 'scan', scanDelayMs: 50 });
    const first = await sc.api('POST', '/sessions/acme/start');
    assert.ok(first.body.qr, 'the QR is available to the admin');
    assert.equal(first.body.connected, false);
    // Concurrent starts while waiting for the scan do not create sockets.
    await Promise.all(Array.from({ length: 5 }, () => sc.api('POST', '/sessions/acme/start')));
    const st = await waitFor(async () => {
      const s = (await sc.api('GET', '/sessions/acme/status')).body;
      return s.connected ? s : null;
    }, { what: 'connected after scan' });
    assert.equal(st.qr, null);
    assert.equal(st.authPaired, true);
    assert.equal(st.lastDisconnect.reason, 'restartRequired');
    assert.equal(sockCreates(sc.logs, 'acme'), 2);
    assert.equal((await sc.api('GET', '/sandbox/acme/state')).body.maxOpenSockets, 1);
    assert.ok(!sc.logs.some((l) => JSON.stringify(l).includes(first.body.qr)), 'the QR is never logged');
  } finally {
    await sc.close();
  }
});

test('stop keeps credentials; logout deletes them; tenants are independent', async () => {
  const sc = await startSidecar();
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sessions/beta/start');
    const stopped = await sc.api('POST', '/sessions/acme/stop');
    assert.equal(stopped.status, 200);
    assert.equal(stopped.body.connected, false);
    assert.equal(stopped.body.authPaired, true);
    assert.equal((await sc.api('GET', '/sandbox/acme/state')).body.openSockets, 0);
    assert.equal((await sc.api('GET', '/sessions/beta/status')).body.connected, true);
    const out = await sc.api('POST', '/sessions/beta/logout');
    assert.equal(out.body.authPaired, false);
    assert.equal(out.body.connected, false);
    assert.equal((await sc.api('POST', '/sessions/acme/start')).body.connected, true);
  } finally {
    await sc.close();
  }
});

test('manual pairing (SIDECAR_SANDBOX_PAIRING=manual): the QR stays until the sandbox scan, then the session connects', async () => {
  const sc = await startSidecar({ env: { SIDECAR_SANDBOX_PAIRING: 'manual' } });
  try {
    assert.equal((await sc.api('POST', '/sandbox/acme/scan', {})).status, 409, 'nothing to scan before a start');
    const first = await sc.api('POST', '/sessions/acme/start');
    assert.match(first.body.qr, /^sandbox-qr:acme:/);
    assert.equal(first.body.connected, false);
    await sleep(100);
    const waiting = (await sc.api('GET', '/sessions/acme/status')).body;
    assert.ok(waiting.qr && !waiting.connected, 'no phone, no pairing: the QR stays');
    assert.equal((await sc.api('POST', '/sandbox/acme/scan', {}, { token: 'wrong' })).status, 401);

    assert.equal((await sc.api('POST', '/sandbox/acme/scan', {})).status, 200);
    const st = await waitFor(async () => {
      const s = (await sc.api('GET', '/sessions/acme/status')).body;
      return s.connected ? s : null;
    }, { what: 'connected after the scan' });
    assert.equal(st.qr, null);
    assert.equal(st.authPaired, true);
    assert.equal(st.canSend, true);
    assert.equal((await sc.api('POST', '/sandbox/acme/scan', {})).status, 409, 'a paired session has no QR');
  } finally {
    await sc.close();
  }
});

test('the default sandbox still pairs at once, and a bad SIDECAR_SANDBOX_PAIRING fails at startup', async () => {
  const sc = await startSidecar();
  try {
    const first = await sc.api('POST', '/sessions/acme/start');
    assert.equal(first.body.connected, true);
    assert.equal(first.body.qr, null);
  } finally {
    await sc.close();
  }
  assert.throws(() => loadConfig({ SIDECAR_TOKEN: 't', SIDECAR_SANDBOX_PAIRING: 'later' }), /SIDECAR_SANDBOX_PAIRING/);
});
