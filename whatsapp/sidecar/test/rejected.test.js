import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startSidecar, startFakeWebhook, waitFor, sleep, SECRET } from './helpers.js';

const webhookEnv = (base, extra = {}) => ({ SIDECAR_WEBHOOK_BASE: base, SIDECAR_WEBHOOK_SECRET: SECRET, ...extra });

test('an inbound event Django refuses for good is listed with why and when, oldest first, until Django deletes it', async () => {
  const hook = await startFakeWebhook({ status: () => 413 });
  const sc = await startSidecar({ env: webhookEnv(hook.base) });
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15550002222', text: 'first', id: 'WAID-A' });
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15550002222', text: 'second', id: 'WAID-B' });
    await waitFor(async () => (await sc.api('GET', '/inbound/rejected')).body.items.length === 2, { what: 'two rejected items' });

    const { items } = (await sc.api('GET', '/inbound/rejected?limit=100')).body;
    assert.deepEqual(items.map((i) => i.payload.id), ['WAID-A', 'WAID-B']);
    const [a] = items;
    assert.deepEqual(Object.keys(a).sort(), ['error', 'httpStatus', 'id', 'kind', 'payload', 'rejectedAt', 'tenant']);
    assert.equal(a.tenant, 'acme');
    assert.equal(a.kind, 'message');
    assert.equal(a.httpStatus, 413);
    assert.ok(a.error.length > 0 && a.error.length <= 500);
    assert.ok(Math.abs(Date.parse(a.rejectedAt) - Date.now()) < 60_000);
    assert.equal(a.payload.text, 'first');
    assert.equal(a.payload.from, '15550002222');
    assert.equal((await sc.api('GET', '/inbound/rejected?limit=1')).body.items.length, 1);

    assert.equal((await sc.api('DELETE', `/inbound/rejected/${a.id}`)).status, 204);
    assert.equal((await sc.api('DELETE', `/inbound/rejected/${a.id}`)).status, 204, 'idempotent');
    assert.deepEqual((await sc.api('GET', '/inbound/rejected')).body.items.map((i) => i.payload.id), ['WAID-B']);
    assert.equal(hook.attempts.length, 2, '413 is not retried');
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('the rejected API needs the token and refuses bad ids and limits', async () => {
  const sc = await startSidecar();
  try {
    assert.equal((await sc.api('GET', '/inbound/rejected', undefined, { token: 'wrong' })).status, 401);
    assert.equal((await sc.api('DELETE', '/inbound/rejected/x.json', undefined, { token: null })).status, 401);
    assert.deepEqual((await sc.api('GET', '/inbound/rejected')).body, { items: [] });
    for (const bad of ['..%2Fpending%2Fx.json', 'nope', '000001732900000-1-000001-inbound-acme.txt']) {
      assert.equal((await sc.api('DELETE', `/inbound/rejected/${bad}`)).status, 400, bad);
    }
    for (const bad of ['0', 'abc', '5000', '-1']) assert.equal((await sc.api('GET', `/inbound/rejected?limit=${bad}`)).status, 400, bad);
    assert.equal((await sc.api('POST', '/inbound/rejected')).status, 405);
  } finally {
    await sc.close();
  }
});

test('a refused signature or unknown tenant (401/403/404) is retried until it heals, within the bounded window', async () => {
  let answer = 403;
  const hook = await startFakeWebhook({ status: () => answer });
  const sc = await startSidecar({ env: webhookEnv(hook.base) });
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15550002222', text: 'skewed', id: 'WAID-S' });
    await waitFor(() => hook.attempts.length >= 2, { what: 'a retry after 403' });
    answer = 404;
    await waitFor(() => hook.attempts.filter((x) => x.code === 404).length >= 1, { what: 'a retry after 404' });
    answer = 200;
    await waitFor(() => hook.received.length === 1, { what: 'the delivery once healed' });
    assert.deepEqual((await sc.api('GET', '/inbound/rejected')).body.items, []);
  } finally {
    await sc.close();
    await hook.close();
  }
});

test('a 403 that outlasts the retry window is rejected with Django\'s answer', async () => {
  const hook = await startFakeWebhook({ status: () => 403 });
  const sc = await startSidecar({ env: webhookEnv(hook.base, { SIDECAR_WEBHOOK_AUTH_RETRY_MS: '300' }) });
  try {
    await sc.api('POST', '/sessions/acme/start');
    await sc.api('POST', '/sandbox/acme/inbound', { from: '15550002222', text: 'rotated', id: 'WAID-R' });
    await waitFor(async () => (await sc.api('GET', '/inbound/rejected')).body.items.length === 1, { what: 'rejected after the window' });
    assert.ok(hook.attempts.length >= 2, 'retried first');
    const [item] = (await sc.api('GET', '/inbound/rejected')).body.items;
    assert.equal(item.httpStatus, 403);
    const stored = JSON.parse(await fs.readFile(path.join(sc.dataDir, 'spool', 'rejected', item.id), 'utf8'));
    assert.equal(stored.rejection.httpStatus, 403);
    const attempts = hook.attempts.length;
    await sleep(300);
    assert.equal(hook.attempts.length, attempts, 'no retries after the rejection');
  } finally {
    await sc.close();
    await hook.close();
  }
});
