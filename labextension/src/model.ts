/**
 * The Models panel's state: what is listed, open and shown, kept apart from
 * the DOM and from JupyterLab so that it can be tested in plain Node.
 *
 * Everything comes from the REST API through one injected `request` function
 * (`requestAPI` in the lab). The state holds the registry's change token from
 * its last full load; its poller asks `changes` for the current token and
 * reloads what is open only when the two differ.
 */
import { Clock, Poller } from './poller';
import {
  ActionReply,
  ApiError,
  ChangesReply,
  DetailReply,
  ModelRecord,
  ModelsReply,
  VersionRow,
  VersionsReply
} from './records';

/** The signature of `requestAPI`: an endpoint under `mlnb/api/` to its JSON. */
export type Request = <T>(endpoint: string, init?: RequestInit) => Promise<T>;

/** The version whose detail is open. */
export interface OpenVersion {
  name: string;
  version: number;
}

/** What the view draws; `ModelsState` is one. */
export interface PanelState {
  readonly models: readonly ModelRecord[];
  readonly visibleModels: readonly ModelRecord[];
  readonly loaded: boolean;
  readonly filter: string;
  readonly selected: string | null;
  readonly versions: VersionsReply | null;
  readonly open: OpenVersion | null;
  readonly detail: DetailReply | null;
  readonly error: string | null;
  readonly notice: string | null;
}

/** Options of `ModelsState` besides the request function. */
export interface StateOptions {
  /** Whether the page can be seen; polls are skipped while it is not. */
  isPageVisible?: () => boolean;
  clock?: Clock;
  intervalMs?: number;
  backoffMs?: number;
}

/**
 * Whether `name` matches `filter`: every whitespace-separated word of the
 * filter appears in the name, ignoring case. An empty filter matches all.
 */
export function matchesFilter(name: string, filter: string): boolean {
  const haystack = name.toLowerCase();
  return filter
    .toLowerCase()
    .split(/\s+/)
    .filter(word => word.length > 0)
    .every(word => haystack.includes(word));
}

/** The message to show for a failed call. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    return err.message;
  }
  return String(err);
}

const enc = encodeURIComponent;

const DONE: Record<string, string> = {
  promote: 'Promoted',
  retire: 'Retired',
  rollback: 'Rolled back'
};

/** The panel's state, its loads, actions and poller. */
export class ModelsState implements PanelState {
  models: ModelRecord[] = [];
  loaded = false;
  filter = '';
  selected: string | null = null;
  versions: VersionsReply | null = null;
  open: OpenVersion | null = null;
  detail: DetailReply | null = null;
  token: string | null = null;
  error: string | null = null;
  notice: string | null = null;
  readonly poller: Poller;

  private readonly request: Request;
  private readonly listeners = new Set<() => void>();
  private pollFailed = false;

  constructor(request: Request, options: StateOptions = {}) {
    this.request = request;
    this.poller = new Poller({
      check: () => this.poll(),
      isPageVisible: options.isPageVisible ?? (() => true),
      clock: options.clock,
      intervalMs: options.intervalMs,
      backoffMs: options.backoffMs
    });
  }

  /** The models whose name matches the filter. */
  get visibleModels(): ModelRecord[] {
    return this.models.filter(m => matchesFilter(m.name, this.filter));
  }

  /** Call `listener` after every change; returns a function that stops it. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Set the search filter. */
  setFilter(text: string): void {
    if (text !== this.filter) {
      this.filter = text;
      this.changed();
    }
  }

  /** Show `message` on the error line (`null` clears it). */
  showError(message: string | null): void {
    this.error = message;
    this.changed();
  }

  /** Show `message` on the notice line (`null` clears it). */
  showNotice(message: string | null): void {
    this.notice = message;
    this.changed();
  }

  /** Reload everything now, on the user's request; failures go to the error line. */
  async refresh(): Promise<void> {
    this.error = null;
    this.notice = null;
    try {
      await this.reload();
    } catch (err) {
      this.fail(err);
    }
  }

  /**
   * Load the models, and the open model's versions and version's detail.
   * Rejects with the first failure (the poller backs off on it).
   */
  async reload(): Promise<void> {
    const reply = await this.request<ModelsReply>('models');
    this.models = reply.models;
    this.loaded = true;
    this.changed();
    await Promise.all([this.loadVersions(), this.loadDetail()]);
    // Kept only once all loaded, so a failed load is tried again at the next
    // poll; and the first answer's token, so a change made while the rest
    // loaded makes the next poll load again.
    this.token = reply.token;
  }

  /** One poll: ask for the change token and reload if it moved. */
  async poll(): Promise<void> {
    let token: string;
    try {
      token = (await this.request<ChangesReply>('changes')).token;
    } catch (err) {
      this.pollFailed = true;
      this.fail(err);
      throw err;
    }
    if (token === this.token && !this.pollFailed) {
      return;
    }
    try {
      await this.reload();
    } catch (err) {
      this.pollFailed = true;
      this.fail(err);
      throw err;
    }
    if (this.pollFailed) {
      this.pollFailed = false;
      this.showError(null);
    }
  }

  /** Expand model `name`'s versions, or fold them if it is the one open. */
  async toggleModel(name: string): Promise<void> {
    if (this.selected === name) {
      this.selected = null;
      this.versions = null;
      this.changed();
      return;
    }
    this.selected = name;
    this.versions = null;
    this.changed();
    try {
      await this.loadVersions();
    } catch (err) {
      this.fail(err);
    }
  }

  /** Open the detail of `name:version`. */
  async openVersion(name: string, version: number): Promise<void> {
    this.open = { name, version };
    this.detail = null;
    this.changed();
    try {
      await this.loadDetail();
    } catch (err) {
      this.fail(err);
    }
  }

  /** Close the detail, back to the list. */
  closeDetail(): void {
    this.open = null;
    this.detail = null;
    this.changed();
  }

  /** The row of version `ref` among what is loaded, if any. */
  findVersion(ref: string): VersionRow | null {
    if (this.detail !== null && this.detail.version.ref === ref) {
      return this.detail.version;
    }
    return this.versions?.versions.find(v => v.ref === ref) ?? null;
  }

  /** Point `alias` at `name:version`. Returns whether the server accepted it. */
  promote(name: string, version: number, alias: string, reason?: string): Promise<boolean> {
    const body = { alias, ...reasonOf(reason) };
    return this.act('promote', `models/${enc(name)}/versions/${version}/promote`, body);
  }

  /** Retire `name:version`. Returns whether the server accepted it. */
  retire(name: string, version: number, reason?: string): Promise<boolean> {
    return this.act('retire', `models/${enc(name)}/versions/${version}/retire`, reasonOf(reason));
  }

  /** Move `alias` of model `name` back. Returns whether the server accepted it. */
  rollback(name: string, alias: string, reason?: string): Promise<boolean> {
    const body = { alias, ...reasonOf(reason) };
    return this.act('rollback', `models/${enc(name)}/rollback`, body);
  }

  /** Start polling (the panel is shown). */
  startPolling(): void {
    this.poller.start();
  }

  /** Stop polling (the panel is hidden). */
  stopPolling(): void {
    this.poller.stop();
  }

  private async act(action: string, endpoint: string, body: object): Promise<boolean> {
    this.error = null;
    this.notice = null;
    this.changed();
    let reply: ActionReply;
    try {
      reply = await this.request<ActionReply>(endpoint, {
        method: 'POST',
        body: JSON.stringify(body)
      });
    } catch (err) {
      this.fail(err);
      return false;
    }
    const row = reply.version;
    const aliases = row.aliases.length > 0 ? row.aliases.join(', ') : 'no alias';
    const answer = `${DONE[action]}: ${row.ref} (${aliases}; ${row.status})`;
    await this.refresh();
    this.showNotice(answer);
    return true;
  }

  private async loadVersions(): Promise<void> {
    const name = this.selected;
    if (name === null) {
      return;
    }
    try {
      const reply = await this.request<VersionsReply>(`models/${enc(name)}/versions`);
      if (this.selected === name) {
        this.versions = reply;
        this.changed();
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && this.selected === name) {
        this.selected = null; // the model is gone
        this.versions = null;
      }
      throw err;
    }
  }

  private async loadDetail(): Promise<void> {
    const open = this.open;
    if (open === null) {
      return;
    }
    const reply = await this.request<DetailReply>(
      `models/${enc(open.name)}/versions/${open.version}`
    );
    if (this.open === open) {
      this.detail = reply;
      this.changed();
    }
  }

  private fail(err: unknown): void {
    this.error = errorMessage(err);
    this.changed();
  }

  private changed(): void {
    for (const listener of [...this.listeners]) {
      listener();
    }
  }
}

function reasonOf(reason?: string): { reason?: string } {
  const text = reason?.trim() ?? '';
  return text.length > 0 ? { reason: text } : {};
}
