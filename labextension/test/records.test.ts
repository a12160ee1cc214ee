/** Decoding of metric values and of the server's error answers. */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ApiError, errorFromResponse, metricValue } from '../src/records';

test('metricValue decodes the non-finite strings', () => {
  assert.ok(Number.isNaN(metricValue('nan')));
  assert.equal(metricValue('inf'), Infinity);
  assert.equal(metricValue('-inf'), -Infinity);
});

test('metricValue keeps numbers and reads numeric strings', () => {
  assert.equal(metricValue(0.97), 0.97);
  assert.equal(metricValue(-3), -3);
  assert.equal(metricValue('0.5'), 0.5);
});

test('metricValue gives NaN for text that is no number, never 0', () => {
  assert.ok(Number.isNaN(metricValue('')));
  assert.ok(Number.isNaN(metricValue('  ')));
  assert.ok(Number.isNaN(metricValue('fast')));
});

test('an error answer keeps the class and message, shown together', () => {
  const err = errorFromResponse(404, 'Not Found', { error: 'NotFound', message: "no model 'x'" });
  assert.ok(err instanceof ApiError);
  assert.ok(err instanceof Error);
  assert.equal(err.status, 404);
  assert.equal(err.error, 'NotFound');
  assert.equal(err.detail, "no model 'x'");
  assert.equal(err.message, "NotFound: no model 'x'");
});

test('a message already starting with its class is not prefixed twice', () => {
  const err = new ApiError(409, 'Conflict', 'Conflict: toy:2 is retired');
  assert.equal(err.message, 'Conflict: toy:2 is retired');
  assert.equal(err.detail, 'toy:2 is retired');
});

test('a non-JSON 404 says which extension to check', () => {
  const err = errorFromResponse(404, 'Not Found', undefined);
  assert.equal(err.error, 'HTTP 404');
  assert.match(err.message, /^HTTP 404: Not Found/);
  assert.match(err.message, /jupyter server extension list/);
});

test("Jupyter's own JSON error (message only) keeps its message", () => {
  const err = errorFromResponse(403, 'Forbidden', { message: "'_xsrf' argument missing from POST" });
  assert.equal(err.message, "HTTP 403: '_xsrf' argument missing from POST");
});
