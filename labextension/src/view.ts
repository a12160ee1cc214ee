/**
 * The Models panel's DOM, drawn from a `PanelState` with `createElement` and
 * `textContent` only: every name, description, tag or reason from the
 * registry is shown as text, never parsed as HTML.
 *
 * The view takes the `Document` to draw in and plain callbacks, and imports
 * nothing from JupyterLab, so that tests run it in jsdom. Class names and
 * `data-*` attributes here are the hooks the browser tests use.
 */
import type { OpenVersion, PanelState } from './model';
import { metricValue } from './records';
import type { DetailReply, ModelRecord, VersionDetail, VersionRow } from './records';
import { el, section, shortTime, sizeText, table, valueText } from './dom';

/** The buttons of a version or a model (`data-action`). */
export type ActionName =
  | 'promote'
  | 'promote-staging'
  | 'retire'
  | 'rollback'
  | 'copy-load'
  | 'insert-show';

/** What an action button is about: a version (`toy:2`) or, for rollback, a model. */
export interface ActionTarget {
  name: string;
  version: number | null;
  ref: string;
}

/** What the view calls when the user does something. */
export interface ViewCallbacks {
  filter(text: string): void;
  refresh(): void;
  toggleModel(name: string): void;
  openVersion(name: string, version: number): void;
  closeDetail(): void;
  action(action: ActionName, target: ActionTarget): void;
}

/** The text shown when the registry holds no model at all. */
export const EMPTY_TEXT = 'No models yet. Register one with %mlnb register NAME VAR';

const LABELS: Record<ActionName, [string, string]> = {
  promote: ['Promote', 'Point production at REF'],
  'promote-staging': ['Staging', 'Point staging at REF'],
  retire: ['Retire', 'Retire REF'],
  rollback: ['Roll back', 'Move production of REF back'],
  'copy-load': ['Copy load', 'Copy the line that loads REF'],
  'insert-show': ['Insert show', 'Insert a cell that shows REF in the notebook']
};

/** The panel's DOM: a search bar, an error and a notice line, and the list or a detail. */
export class ModelsView {
  /** The root element, `.mlnb-models-panel`. */
  readonly node: HTMLElement;
  private readonly doc: Document;
  private readonly callbacks: ViewCallbacks;
  private readonly search: HTMLInputElement;
  private readonly errorLine: HTMLElement;
  private readonly noticeLine: HTMLElement;
  private readonly body: HTMLElement;

  constructor(doc: Document, callbacks: ViewCallbacks) {
    this.doc = doc;
    this.callbacks = callbacks;
    this.node = el(doc, 'div', 'mlnb-models-panel');

    this.search = el(doc, 'input', 'mlnb-search');
    this.search.type = 'search';
    this.search.placeholder = 'Filter models';
    this.search.setAttribute('aria-label', 'Filter models');
    this.search.addEventListener('input', () => callbacks.filter(this.search.value));

    const refresh = el(doc, 'button', 'mlnb-refresh', '\u21bb');
    refresh.type = 'button';
    refresh.title = 'Refresh';
    refresh.setAttribute('aria-label', 'Refresh models');
    refresh.addEventListener('click', () => callbacks.refresh());

    const toolbar = el(doc, 'div', 'mlnb-toolbar');
    toolbar.append(this.search, refresh);

    this.errorLine = el(doc, 'div', 'mlnb-error');
    this.errorLine.setAttribute('role', 'alert');
    this.noticeLine = el(doc, 'div', 'mlnb-notice');
    this.noticeLine.setAttribute('role', 'status');
    this.body = el(doc, 'div', 'mlnb-body');
    this.node.append(toolbar, this.errorLine, this.noticeLine, this.body);
  }

  /** Redraw everything below the search bar from `state`. */
  render(state: PanelState): void {
    if (this.search.value !== state.filter && this.doc.activeElement !== this.search) {
      this.search.value = state.filter;
    }
    showLine(this.errorLine, state.error);
    showLine(this.noticeLine, state.notice);
    const content =
      state.open !== null ? this.detailView(state, state.open) : this.listView(state);
    this.body.replaceChildren(content);
  }

  private listView(state: PanelState): HTMLElement {
    const d = this.doc;
    if (!state.loaded) {
      return el(d, 'p', 'mlnb-loading', state.error === null ? 'Loading\u2026' : '');
    }
    if (state.models.length === 0) {
      return el(d, 'p', 'mlnb-empty', EMPTY_TEXT);
    }
    const shown = state.visibleModels;
    if (shown.length === 0) {
      return el(d, 'p', 'mlnb-empty', `No model matches \u201c${state.filter}\u201d`);
    }
    const list = el(d, 'ul', 'mlnb-model-list');
    for (const model of shown) {
      list.append(this.modelItem(model, state));
    }
    return list;
  }

  private modelItem(model: ModelRecord, state: PanelState): HTMLElement {
    const d = this.doc;
    const expanded = state.selected === model.name;
    const item = el(d, 'li', 'mlnb-model');
    item.dataset.name = model.name;

    const row = el(d, 'button', 'mlnb-model-row');
    row.type = 'button';
    row.setAttribute('aria-expanded', String(expanded));
    row.append(el(d, 'span', 'mlnb-model-name', model.name));
    if (model.main_metric !== null) {
      const metric = el(d, 'span', 'mlnb-main-metric', `${model.main_metric} ${model.main_text}`);
      metric.title = model.main_ref !== null ? `${model.main_metric} of ${model.main_ref}` : '';
      row.append(metric);
    }
    row.addEventListener('click', () => this.callbacks.toggleModel(model.name));
    item.append(row);
    if (model.description) {
      item.append(el(d, 'div', 'mlnb-model-description', model.description));
    }
    if (expanded) {
      item.append(this.versionsView(model, state));
    }
    return item;
  }

  private versionsView(model: ModelRecord, state: PanelState): HTMLElement {
    const d = this.doc;
    const box = el(d, 'div', 'mlnb-model-body');
    const head = el(d, 'div', 'mlnb-versions-head');
    const count = model.versions === 1 ? '1 version' : `${model.versions} versions`;
    const metric = state.versions?.main_metric;
    head.append(el(d, 'span', 'mlnb-versions-title', metric ? `${count} \u00b7 ${metric}` : count));
    head.append(this.button('rollback', { name: model.name, version: null, ref: model.name }));
    box.append(head);
    if (state.versions === null || state.versions.model !== model.name) {
      box.append(el(d, 'p', 'mlnb-loading', state.error === null ? 'Loading\u2026' : ''));
      return box;
    }
    const list = el(d, 'ul', 'mlnb-versions');
    for (const row of state.versions.versions) {
      list.append(this.versionItem(row));
    }
    box.append(list);
    return box;
  }

  private versionItem(row: VersionRow): HTMLElement {
    const d = this.doc;
    const item = el(d, 'li', 'mlnb-version');
    item.dataset.ref = row.ref;
    item.dataset.status = row.status;
    item.classList.toggle('mlnb-retired', row.status === 'retired');

    const open = el(d, 'button', 'mlnb-version-open');
    open.type = 'button';
    open.title = `Show ${row.ref}`;
    open.append(el(d, 'span', 'mlnb-version-number', `v${row.version}`));
    open.append(...this.badges(row.aliases));
    open.append(el(d, 'span', 'mlnb-status', row.status));
    open.append(el(d, 'span', 'mlnb-version-metric', row.main_text));
    open.addEventListener('click', () => this.callbacks.openVersion(row.name, row.version));
    item.append(open, this.versionActions(row));
    return item;
  }

  private detailView(state: PanelState, open: OpenVersion): HTMLElement {
    const d = this.doc;
    const box = el(d, 'div', 'mlnb-detail');
    const head = el(d, 'div', 'mlnb-detail-head');
    const back = el(d, 'button', 'mlnb-back', '\u2190 Back');
    back.type = 'button';
    back.setAttribute('aria-label', 'Back to the models');
    back.addEventListener('click', () => this.callbacks.closeDetail());
    head.append(back, el(d, 'span', 'mlnb-detail-title', `${open.name}:${open.version}`));
    box.append(head);
    if (state.detail === null) {
      box.append(el(d, 'p', 'mlnb-loading', state.error === null ? 'Loading\u2026' : ''));
      return box;
    }
    box.append(...this.detailBody(state.detail));
    return box;
  }

  private detailBody(reply: DetailReply): HTMLElement[] {
    const d = this.doc;
    const v = reply.version;
    const status = el(d, 'div', 'mlnb-detail-status');
    status.classList.toggle('mlnb-retired', v.status === 'retired');
    status.append(...this.badges(v.aliases), el(d, 'span', 'mlnb-status', v.status));
    const meta = [
      `${v.format} \u00b7 ${shortTime(v.created_at)} by ${v.created_by}`,
      v.parent ? `from ${v.parent}` : ''
    ].filter(Boolean);
    const parts: HTMLElement[] = [status, this.versionActions(v)];
    if (v.description) {
      parts.push(el(d, 'p', 'mlnb-description', v.description));
    }
    parts.push(el(d, 'p', 'mlnb-meta', meta.join(' \u00b7 ')));
    parts.push(section(d, 'Metrics', 'mlnb-metrics', this.metricsTable(v)));
    parts.push(section(d, 'Params', 'mlnb-params', table(d, entries(v.params))));
    parts.push(section(d, 'Tags', 'mlnb-tags', table(d, entries(v.tags))));
    parts.push(section(d, 'Files', 'mlnb-files', table(d, v.files.map(f => [
      f.path, `${sizeText(f.size)} \u00b7 ${f.sha256.slice(0, 12)}`
    ]))));
    parts.push(section(d, 'Lineage', 'mlnb-lineage', table(d, reply.lineage.map(e => [
      `${e.source} \u2192 ${e.target}`, e.kind
    ]))));
    parts.push(section(d, 'Evaluations', 'mlnb-evaluations', table(d, reply.evaluations.map(e => [
      e.data, valueText(e.details)
    ]))));
    parts.push(section(d, 'Audit', 'mlnb-audit', table(d, reply.audit.map(a => [
      shortTime(a.at),
      [a.user, a.action, a.alias ?? '', moveText(a.from_version, a.to_version), a.reason ?? '']
        .filter(Boolean)
        .join(' \u00b7 ')
    ]))));
    return parts;
  }

  private metricsTable(v: VersionDetail): HTMLElement {
    const d = this.doc;
    const rows = Object.keys(v.metrics_text).map(name => [name, v.metrics_text[name]]);
    const tableEl = table(d, rows);
    for (const tr of Array.from(tableEl.querySelectorAll('tr'))) {
      const name = tr.firstChild?.textContent ?? '';
      tr.dataset.metric = name;
      if (name in v.metrics) {
        tr.dataset.value = String(metricValue(v.metrics[name]));
      }
      if (v.best.includes(name)) {
        tr.classList.add('mlnb-best');
        const mark = el(d, 'span', 'mlnb-best-mark', 'best');
        mark.title = 'best among the active versions';
        tr.lastElementChild?.append(' ', mark);
      }
    }
    return tableEl;
  }

  private versionActions(row: VersionRow): HTMLElement {
    const target = { name: row.name, version: row.version, ref: row.ref };
    const names: ActionName[] =
      row.status === 'retired'
        ? ['promote', 'promote-staging', 'copy-load', 'insert-show']
        : ['promote', 'promote-staging', 'retire', 'copy-load', 'insert-show'];
    const bar = el(this.doc, 'div', 'mlnb-actions');
    bar.append(...names.map(name => this.button(name, target)));
    return bar;
  }

  private button(action: ActionName, target: ActionTarget): HTMLButtonElement {
    const [label, title] = LABELS[action];
    const button = el(this.doc, 'button', 'mlnb-action', label);
    button.type = 'button';
    button.dataset.action = action;
    button.dataset.ref = target.ref;
    button.title = title.replace('REF', target.ref);
    button.addEventListener('click', event => {
      event.stopPropagation();
      this.callbacks.action(action, target);
    });
    return button;
  }

  private badges(aliases: readonly string[]): HTMLElement[] {
    return aliases.map(alias => el(this.doc, 'span', 'mlnb-alias-badge', alias));
  }
}

function showLine(line: HTMLElement, text: string | null): void {
  line.textContent = text ?? '';
  line.hidden = text === null || text === '';
}

function entries(record: Record<string, unknown>): string[][] {
  return Object.keys(record).map(key => [key, valueText(record[key])]);
}

function moveText(from: number | null, to: number | null): string {
  if (from === null || to === null) {
    return from === to ? '' : `v${from ?? to}`;
  }
  return `v${from} \u2192 v${to}`;
}
