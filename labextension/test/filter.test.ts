/** The search filter: case-insensitive, every word must appear in the name. */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ModelsState, matchesFilter } from '../src/model';
import { FakeServer, sampleModel } from './helpers';

test('an empty or blank filter matches every name', () => {
  assert.ok(matchesFilter('toy', ''));
  assert.ok(matchesFilter('toy', '   '));
});

test('the filter ignores case', () => {
  assert.ok(matchesFilter('ResNet50', 'resnet'));
  assert.ok(matchesFilter('resnet50', 'RESNET'));
});

test('every word must appear, in any order', () => {
  assert.ok(matchesFilter('churn-model-eu', 'eu churn'));
  assert.ok(!matchesFilter('churn-model-eu', 'eu churn us'));
  assert.ok(!matchesFilter('toy', 'boy'));
});

test('visibleModels follows the filter', async () => {
  const server = new FakeServer();
  server.models = ['toy', 'Churn-EU', 'churn-us'].map(n => sampleModel(n));
  const state = new ModelsState(server.request);
  await state.refresh();
  let changes = 0;
  state.onChange(() => changes++);
  state.setFilter('CHURN');
  assert.deepEqual(state.visibleModels.map(m => m.name), ['Churn-EU', 'churn-us']);
  state.setFilter('churn eu');
  assert.deepEqual(state.visibleModels.map(m => m.name), ['Churn-EU']);
  state.setFilter('');
  assert.equal(state.visibleModels.length, 3);
  assert.equal(changes, 3);
});
