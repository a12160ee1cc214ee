/**
 * The view in jsdom: registry text is shown as text, clicks reach the right
 * callback with the right ref, the error line shows the server's message.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { JSDOM } from 'jsdom';

import { ModelsState, PanelState } from '../src/model';
import { ActionName, ActionTarget, EMPTY_TEXT, ModelsView, ViewCallbacks } from '../src/view';
import { FakeServer, sampleDetail, sampleModel, sampleRow } from './helpers';

const HOSTILE = '<img src=x onerror=alert(1)>';

/** Callbacks that record what they were called with. */
function recorder() {
  const calls: [string, ...unknown[]][] = [];
  const callbacks: ViewCallbacks = {
    filter: text => calls.push(['filter', text]),
    refresh: () => calls.push(['refresh']),
    toggleModel: name => calls.push(['toggleModel', name]),
    openVersion: (name, version) => calls.push(['openVersion', name, version]),
    closeDetail: () => calls.push(['closeDetail']),
    action: (action: ActionName, target: ActionTarget) => calls.push(['action', action, target])
  };
  return { calls, callbacks };
}

function makeView() {
  const dom = new JSDOM('<!doctype html><html><body></body></html>');
  const doc = dom.window.document;
  const { calls, callbacks } = recorder();
  const view = new ModelsView(doc, callbacks);
  doc.body.append(view.node);
  return { dom, doc, view, calls };
}

function panelState(extra: Partial<PanelState> = {}): PanelState {
  const models = [sampleModel('toy')];
  return {
    models,
    visibleModels: models,
    loaded: true,
    filter: '',
    selected: 'toy',
    versions: {
      token: 't1',
      model: 'toy',
      main_metric: 'val_acc',
      metrics: ['loss', 'val_acc'],
      versions: [sampleRow('toy', 2), sampleRow('toy', 1, { status: 'retired' })]
    },
    open: null,
    detail: null,
    error: null,
    notice: null,
    ...extra
  };
}

test('hostile names and descriptions are shown as text, never as HTML', () => {
  const { view, doc } = makeView();
  const model = sampleModel(HOSTILE, { description: `<b>${HOSTILE}</b>` });
  const detail = sampleDetail('toy', 2);
  detail.version.description = HOSTILE;
  detail.version.tags = { [HOSTILE]: HOSTILE };
  detail.audit[0].reason = '<script>alert(2)</script>';
  view.render(panelState({ models: [model], visibleModels: [model], selected: null }));
  const item = doc.querySelector('li.mlnb-model');
  assert.equal(item?.getAttribute('data-name'), HOSTILE);
  assert.equal(item?.querySelector('.mlnb-model-name')?.textContent, HOSTILE);
  assert.equal(item?.querySelector('.mlnb-model-description')?.textContent, `<b>${HOSTILE}</b>`);
  assert.equal(doc.querySelectorAll('img, b, script').length, 0);

  view.render(panelState({ open: { name: 'toy', version: 2 }, detail }));
  assert.equal(doc.querySelector('.mlnb-detail .mlnb-description')?.textContent, HOSTILE);
  assert.ok(doc.querySelector('.mlnb-tags')?.textContent?.includes(HOSTILE));
  assert.ok(doc.querySelector('.mlnb-audit')?.textContent?.includes('<script>alert(2)</script>'));
  assert.equal(doc.querySelectorAll('img, b, script').length, 0);
});

test('a model row shows its main metric; versions show number, badges, status, value', () => {
  const { view, doc } = makeView();
  view.render(panelState());
  assert.equal(doc.querySelector('li.mlnb-model[data-name="toy"] .mlnb-main-metric')?.textContent, 'val_acc 0.97');
  const v2 = doc.querySelector('.mlnb-version[data-ref="toy:2"]');
  const v1 = doc.querySelector('.mlnb-version[data-ref="toy:1"]');
  assert.equal(v2?.querySelector('.mlnb-version-number')?.textContent, 'v2');
  assert.deepEqual([...(v2?.querySelectorAll('.mlnb-alias-badge') ?? [])].map(b => b.textContent), ['production']);
  assert.equal(v2?.querySelector('.mlnb-version-metric')?.textContent, '0.97');
  assert.equal(v2?.classList.contains('mlnb-retired'), false);
  assert.equal(v1?.classList.contains('mlnb-retired'), true);
  assert.equal(v1?.querySelector('.mlnb-status')?.textContent, 'retired');
  assert.equal(v1?.querySelector('button[data-action="retire"]'), null, 'a retired version has no Retire');
  const promote = v2?.querySelector('button.mlnb-action[data-action="promote"]');
  assert.equal(promote?.getAttribute('data-ref'), 'toy:2');
  assert.equal(promote?.textContent, 'Promote');
});

test('clicks call the right callback with the right ref', () => {
  const { view, doc, calls, dom } = makeView();
  view.render(panelState());
  const click = (selector: string) => {
    const node = doc.querySelector<HTMLElement>(selector);
    assert.ok(node, `${selector} is drawn`);
    node.click();
  };
  click('.mlnb-version[data-ref="toy:1"] button.mlnb-action[data-action="promote"]');
  click('.mlnb-version[data-ref="toy:2"] button.mlnb-action[data-action="promote-staging"]');
  click('.mlnb-version[data-ref="toy:2"] button.mlnb-action[data-action="retire"]');
  click('.mlnb-version[data-ref="toy:2"] button.mlnb-action[data-action="copy-load"]');
  click('.mlnb-version[data-ref="toy:1"] button.mlnb-action[data-action="insert-show"]');
  click('li.mlnb-model[data-name="toy"] button.mlnb-action[data-action="rollback"]');
  click('.mlnb-version[data-ref="toy:1"] .mlnb-version-open');
  click('li.mlnb-model[data-name="toy"] .mlnb-model-row');
  click('button.mlnb-refresh');
  const search = doc.querySelector<HTMLInputElement>('input.mlnb-search')!;
  search.value = 'to';
  search.dispatchEvent(new dom.window.Event('input'));

  const toy = (version: number) => ({ name: 'toy', version, ref: `toy:${version}` });
  assert.deepEqual(calls, [
    ['action', 'promote', toy(1)],
    ['action', 'promote-staging', toy(2)],
    ['action', 'retire', toy(2)],
    ['action', 'copy-load', toy(2)],
    ['action', 'insert-show', toy(1)],
    ['action', 'rollback', { name: 'toy', version: null, ref: 'toy' }],
    ['openVersion', 'toy', 1],
    ['toggleModel', 'toy'],
    ['refresh'],
    ['filter', 'to']
  ]);
});

test('the detail marks the best metrics and has a back control and the actions', () => {
  const { view, doc, calls } = makeView();
  view.render(panelState({ open: { name: 'toy', version: 2 }, detail: sampleDetail('toy', 2) }));
  const detail = doc.querySelector('.mlnb-detail');
  assert.ok(detail);
  assert.equal(doc.querySelector('.mlnb-model-list'), null, 'the detail replaces the list');
  const best = [...detail.querySelectorAll('.mlnb-metrics tr.mlnb-best')].map(tr => tr.getAttribute('data-metric'));
  assert.deepEqual(best, ['val_acc']);
  assert.equal(detail.querySelector('.mlnb-metrics tr[data-metric="loss"] td:last-child')?.textContent, 'nan');
  assert.equal(detail.querySelector('.mlnb-metrics tr[data-metric="loss"]')?.getAttribute('data-value'), 'NaN');
  assert.equal(detail.querySelector('.mlnb-metrics tr[data-metric="val_acc"]')?.getAttribute('data-value'), '0.97');
  for (const part of ['.mlnb-params', '.mlnb-tags', '.mlnb-files', '.mlnb-lineage', '.mlnb-evaluations', '.mlnb-audit']) {
    assert.ok(detail.querySelector(part), `${part} is drawn`);
  }
  assert.match(detail.querySelector('.mlnb-files')?.textContent ?? '', /model\.pkl.*2\.0 KiB/);
  detail.querySelector<HTMLElement>('button.mlnb-action[data-action="promote"]')?.click();
  detail.querySelector<HTMLElement>('button.mlnb-back')?.click();
  assert.deepEqual(calls, [
    ['action', 'promote', { name: 'toy', version: 2, ref: 'toy:2' }],
    ['closeDetail']
  ]);
});

test('an empty registry says how to register a model', () => {
  const { view, doc } = makeView();
  view.render(panelState({ models: [], visibleModels: [], selected: null, versions: null }));
  assert.equal(doc.querySelector('.mlnb-empty')?.textContent, EMPTY_TEXT);
  assert.equal(doc.querySelectorAll('li.mlnb-model').length, 0);
});

test('the error line shows the ApiError message from the server', async () => {
  const { view, doc } = makeView();
  const server = new FakeServer();
  server.failures.set('models/x/versions', {
    status: 404,
    body: { error: 'NotFound', message: "no model 'x'" }
  });
  const state = new ModelsState(server.request);
  state.onChange(() => view.render(state));
  await state.refresh();
  const line = doc.querySelector<HTMLElement>('.mlnb-error')!;
  assert.equal(line.hidden, true, 'no error, no line');
  await state.toggleModel('x');
  assert.equal(line.hidden, false);
  assert.equal(line.textContent, "NotFound: no model 'x'");
  await state.refresh();
  assert.equal(line.hidden, true, 'a successful refresh clears it');
});
