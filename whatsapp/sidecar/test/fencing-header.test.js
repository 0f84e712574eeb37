// Command fencing (issue 15): a caller that holds an older (or newer) lease record than the
// sidecar's own SIDECAR_FENCING_TOKEN is refused with 409 fenced, and nothing is done.
// Needs no database: the header check is the same for the file and the postgres store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSidecar } from './helpers.js';

const send = { to: '+15551230001', text: 'hi', idempotencyKey: 'k1' };

test('a stale X-Fencing-Token is refused with 409 fenced and changes nothing; the own token and no header are served', async () => {
  const sc = await startSidecar({ env: { SIDECAR_FENCING_TOKEN: '7' } });
  try {
    const stale = { headers: { 'X-Fencing-Token': '6' } };
    for (const [method, path, body] of [
      ['POST', '/sessions/acme/start', {}], ['GET', '/sessions/acme/status'], ['POST', '/sessions/acme/messages', send],
      ['POST', '/sessions/acme/stop', {}], ['POST', '/sessions/acme/logout', {}], ['GET', '/inbound/rejected'],
      ['POST', '/privacy/erase', { tenant: 'acme', phone: '+15551230001' }], ['GET', '/sessions/acme/messages/k1'],
    ]) {
      const r = await sc.api(method, path, body, stale);
      assert.equal(r.status, 409, `${method} ${path}`);
      assert.equal(r.body.error, 'fenced');
    }
    assert.equal(sc.app.world.state('acme').socketsCreated, 0, 'the refused start opened no socket');
    assert.equal((await sc.api('POST', '/sessions/acme/start', {}, { headers: { 'X-Fencing-Token': '8' } })).status, 409, 'a newer token is not ours either');
    assert.equal((await sc.api('POST', '/sessions/acme/start', {}, { headers: { 'X-Fencing-Token': 'seven' } })).status, 409, 'a token that is no number is not ours');
    // Without a bearer token the answer is still 401: the fence says nothing to strangers.
    assert.equal((await sc.api('GET', '/sessions/acme/status', undefined, { token: null, headers: { 'X-Fencing-Token': '6' } })).status, 401);

    assert.equal((await sc.api('POST', '/sessions/acme/start', {}, { headers: { 'X-Fencing-Token': '7' } })).body.canSend, true);
    assert.equal((await sc.api('POST', '/sessions/acme/messages', send, { headers: { 'X-Fencing-Token': ' 07 ' } })).status, 200, 'the same number');
    assert.equal((await sc.api('GET', '/sessions/acme/status')).status, 200, 'no header: served');
    assert.equal(sc.app.world.sent('acme').length, 1);
    assert.deepEqual((await sc.api('GET', '/healthz', undefined, { token: null, headers: { 'X-Fencing-Token': '6' } })).body, { ok: true, transport: 'sandbox', sessions: 1 });
  } finally {
    await sc.close();
  }
});

test('without SIDECAR_FENCING_TOKEN (single host) the header is ignored', async () => {
  const sc = await startSidecar();
  try {
    const r = await sc.api('POST', '/sessions/acme/start', {}, { headers: { 'X-Fencing-Token': '1' } });
    assert.equal(r.status, 200);
    assert.equal(r.body.canSend, true);
  } finally {
    await sc.close();
  }
});
