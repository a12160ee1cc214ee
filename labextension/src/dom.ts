/**
 * Small DOM builders for the view. Text always goes in through `textContent`.
 */

/** A new `tag` element with `className` and, if given, `text` as its text. */
export function el<K extends keyof HTMLElementTagNameMap>(
  doc: Document,
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = doc.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** A titled `<section>` of the detail view holding `content`. */
export function section(
  doc: Document,
  title: string,
  className: string,
  content: HTMLElement
): HTMLElement {
  const box = el(doc, 'section', `mlnb-section ${className}`);
  box.append(el(doc, 'h4', 'mlnb-section-title', title), content);
  return box;
}

/** A two-column table of `rows` (key, value), or a "none" line when empty. */
export function table(doc: Document, rows: string[][]): HTMLElement {
  if (rows.length === 0) {
    return el(doc, 'p', 'mlnb-none', 'none');
  }
  const tableEl = el(doc, 'table', 'mlnb-table');
  const body = el(doc, 'tbody', '');
  for (const cells of rows) {
    const tr = el(doc, 'tr', '');
    for (const cell of cells) {
      tr.append(el(doc, 'td', '', cell));
    }
    body.append(tr);
  }
  tableEl.append(body);
  return tableEl;
}

/** Any JSON value as one line of text. */
export function valueText(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'string') {
    return value;
  }
  if (typeof value === 'number' || typeof value === 'boolean') {
    return String(value);
  }
  return JSON.stringify(value);
}

/** An ISO 8601 UTC time as `2026-11-25 10:31 UTC` (the text itself if it is not one). */
export function shortTime(iso: string | null): string {
  if (!iso) {
    return '';
  }
  const match = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(iso);
  if (match === null) {
    return iso;
  }
  const utc = /(\+00:00|Z)$/.test(iso) ? ' UTC' : '';
  return `${match[1]} ${match[2]}${utc}`;
}

/** A byte count as a person reads it (`1.5 KiB`). */
export function sizeText(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}
