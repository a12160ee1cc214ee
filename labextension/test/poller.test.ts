/**
 * The poller: it asks `changes` every 3 s only while the panel is shown and
 * the page visible, reloads only when the token moved, and backs off after
 * errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ModelsState } from '../src/model';
import { FakeClock, FakeServer, settle } from './helpers';

function setup() {
  const clock = new FakeClock();
  const server = new FakeServer();
  const page = { visible: true };
  const state = new ModelsState(server.request, {
    clock,
    isPageVisible: () => page.visible,
    intervalMs: 3000,
    backoffMs: 30000
  });
  return { clock, server, page, state };
}

test('nothing is asked before the panel is shown, nor after it is hidden', async () => {
  const { clock, server, state } = setup();
  await clock.advance(60000);
  assert.deepEqual(server.endpoints, []);

  state.startPolling();
  await clock.advance(0);
  assert.deepEqual(server.endpoints, ['changes', 'models']);

  state.stopPolling();
  server.calls = [];
  await clock.advance(60000);
  assert.deepEqual(server.endpoints, []);
  assert.equal(clock.pending, 0);
});

test('polls every 3 s while shown and the page is visible', async () => {
  const { clock, server, state } = setup();
  state.startPolling();
  await clock.advance(0);
  server.calls = [];
  await clock.advance(2999);
  assert.deepEqual(server.endpoints, []);
  await clock.advance(1);
  assert.deepEqual(server.endpoints, ['changes']);
  await clock.advance(6000);
  assert.deepEqual(server.endpoints, ['changes', 'changes', 'changes']);
});

test('a hidden page is not polled, and polling resumes when it is visible', async () => {
  const { clock, server, page, state } = setup();
  state.startPolling();
  await clock.advance(0);
  server.calls = [];
  page.visible = false;
  await clock.advance(30000);
  assert.deepEqual(server.endpoints, []);
  page.visible = true;
  await clock.advance(3000);
  assert.deepEqual(server.endpoints, ['changes']);
});

test('the same token reloads nothing', async () => {
  const { clock, server, state } = setup();
  state.startPolling();
  await clock.advance(0);
  await state.toggleModel('toy');
  await state.openVersion('toy', 2);
  server.calls = [];
  await clock.advance(9000);
  assert.deepEqual(server.endpoints, ['changes', 'changes', 'changes']);
});

test('a new token reloads the list, the open versions and the open detail', async () => {
  const { clock, server, state } = setup();
  state.startPolling();
  await clock.advance(0);
  await state.toggleModel('toy');
  await state.openVersion('toy', 2);
  server.calls = [];
  server.token = 't2';
  server.versions.toy[0] = { ...server.versions.toy[0], status: 'retired' };
  await clock.advance(3000);
  assert.deepEqual(server.endpoints.sort(), [
    'changes',
    'models',
    'models/toy/versions',
    'models/toy/versions/2'
  ]);
  assert.equal(state.token, 't2');
  assert.equal(state.versions?.versions[0].status, 'retired');
  server.calls = [];
  await clock.advance(3000);
  assert.deepEqual(server.endpoints, ['changes']);
});

test('after an error it waits 30 s, shows the error, and recovers', async () => {
  const { clock, server, state } = setup();
  state.startPolling();
  await clock.advance(0);
  server.failures.set('changes', {
    status: 503,
    body: { error: 'RegistryUnavailable', message: 'registry server down' }
  });
  server.calls = [];
  await clock.advance(3000);
  assert.deepEqual(server.endpoints, ['changes']);
  assert.equal(state.error, 'RegistryUnavailable: registry server down');

  await clock.advance(29999);
  assert.deepEqual(server.endpoints, ['changes'], 'no poll during the back-off');

  server.failures.clear();
  await clock.advance(1);
  assert.deepEqual(server.endpoints, ['changes', 'changes', 'models']);
  assert.equal(state.error, null, 'the error line clears once the server answers');

  server.calls = [];
  await clock.advance(3000);
  assert.deepEqual(server.endpoints, ['changes'], 'back to the 3 s interval');
});

test('a check still in flight when the panel is hidden and shown again does not delay the new one', async () => {
  const clock = new FakeClock();
  const server = new FakeServer();
  let release: () => void = () => undefined;
  const gate = new Promise<void>(resolve => (release = resolve));
  let first = true;
  const state = new ModelsState(
    async <T>(endpoint: string, init?: RequestInit): Promise<T> => {
      if (first) {
        first = false;
        await gate; // the first `changes` hangs until released
      }
      return server.request<T>(endpoint, init);
    },
    { clock }
  );
  state.startPolling();
  await clock.advance(0); // first check starts and hangs
  state.stopPolling();
  state.startPolling(); // shown again: a check is due right away
  release();
  await settle(); // the old check ends now; it must not push the new one back
  server.calls = [];
  await clock.advance(0);
  assert.deepEqual(server.endpoints, ['changes']);
  assert.equal(clock.pending, 1);
});

test('a refresh that failed half-way is tried again at the next poll', async () => {
  const { clock, server, state } = setup();
  await state.toggleModel('toy');
  server.failures.set('models/toy/versions', {
    status: 503,
    body: { error: 'RegistryUnavailable', message: 'busy' }
  });
  await state.refresh();
  assert.equal(state.error, 'RegistryUnavailable: busy');
  server.failures.clear();
  server.calls = [];
  state.startPolling();
  await clock.advance(0);
  assert.deepEqual(server.endpoints.sort(), ['changes', 'models', 'models/toy/versions']);
});
