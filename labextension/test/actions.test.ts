/** Actions post to the right route and show the server's answer, or its error. */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ModelsState } from '../src/model';
import { FakeServer } from './helpers';

test('promote posts the alias and reason, reloads, and shows the answer', async () => {
  const server = new FakeServer();
  const state = new ModelsState(server.request);
  await state.refresh();
  server.calls = [];
  const ok = await state.promote('toy', 1, 'staging', ' looks good ');
  assert.equal(ok, true);
  assert.deepEqual(server.calls[0], {
    endpoint: 'models/toy/versions/1/promote',
    method: 'POST',
    body: { alias: 'staging', reason: 'looks good' }
  });
  assert.ok(server.endpoints.includes('models'), 'reloads after the action');
  assert.equal(state.notice, 'Promoted: toy:1 (staging; active)');
  assert.equal(state.error, null);
});

test('an empty reason is not sent', async () => {
  const server = new FakeServer();
  const state = new ModelsState(server.request);
  await state.retire('toy', 2, '  ');
  assert.deepEqual(server.calls[0].body, {});
  assert.equal(server.calls[0].endpoint, 'models/toy/versions/2/retire');
});

test('a refused action shows the server message and no notice', async () => {
  const server = new FakeServer();
  server.failures.set('models/toy/rollback', {
    status: 409,
    body: { error: 'Conflict', message: 'production of toy has no earlier version' }
  });
  const state = new ModelsState(server.request);
  const ok = await state.rollback('toy', 'production');
  assert.equal(ok, false);
  assert.deepEqual(server.calls[0].body, { alias: 'production' });
  assert.equal(state.error, 'Conflict: production of toy has no earlier version');
  assert.equal(state.notice, null);
});

test('names are escaped in paths', async () => {
  const server = new FakeServer();
  const state = new ModelsState(server.request);
  await state.toggleModel('a/b c');
  assert.equal(server.endpoints[0], 'models/a%2Fb%20c/versions');
});
