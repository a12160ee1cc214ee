/**
 * Test doubles for the panel: a hand-driven clock, a fake REST server and
 * sample records shaped as docs/rest-api.md describes them.
 */
import { Clock } from '../src/poller';
import { Request } from '../src/model';
import {
  DetailReply,
  ModelRecord,
  VersionRow,
  errorFromResponse
} from '../src/records';

/** A clock whose time moves only when the test says so. */
export class FakeClock implements Clock {
  now = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.now + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** How many timers are waiting. */
  get pending(): number {
    return this.timers.size;
  }

  /** Move time forward by `ms`, running each timer due and letting its promises settle. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | null = null;
      for (const entry of this.timers) {
        if (entry[1].at <= end && (due === null || entry[1].at < due[1].at)) {
          due = entry;
        }
      }
      if (due === null) {
        break;
      }
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
      await settle();
    }
    this.now = end;
  }
}

/** Let every pending promise callback run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) {
    await new Promise(resolve => setImmediate(resolve));
  }
}

/** One request the fake server received. */
export interface Call {
  endpoint: string;
  method: string;
  body: unknown;
}

/** An in-memory stand-in for the REST API, recording every call. */
export class FakeServer {
  token = 't1';
  models: ModelRecord[] = [sampleModel('toy')];
  versions: Record<string, VersionRow[]> = { toy: [sampleRow('toy', 2), sampleRow('toy', 1)] };
  calls: Call[] = [];
  /** Endpoint -> the error body and status to answer with instead. */
  failures = new Map<string, { status: number; body: unknown }>();

  /** The `requestAPI` stand-in. */
  readonly request: Request = async <T>(endpoint: string, init?: RequestInit): Promise<T> => {
    const method = init?.method ?? 'GET';
    const body = typeof init?.body === 'string' ? JSON.parse(init.body) : undefined;
    this.calls.push({ endpoint, method, body });
    const failure = this.failures.get(endpoint);
    if (failure !== undefined) {
      throw errorFromResponse(failure.status, 'Error', failure.body);
    }
    return this.answer(endpoint, method, body) as T;
  };

  /** The endpoints called, in order. */
  get endpoints(): string[] {
    return this.calls.map(c => c.endpoint);
  }

  private answer(endpoint: string, method: string, body: unknown): object {
    const token = this.token;
    if (endpoint === 'changes') {
      return { token };
    }
    if (endpoint === 'models') {
      return { token, models: this.models };
    }
    let m = /^models\/([^/]+)\/versions$/.exec(endpoint);
    if (m !== null) {
      const name = decodeURIComponent(m[1]);
      return { token, model: name, main_metric: 'val_acc', metrics: ['val_acc'], versions: this.versions[name] ?? [] };
    }
    m = /^models\/([^/]+)\/versions\/(\d+)$/.exec(endpoint);
    if (m !== null) {
      return sampleDetail(decodeURIComponent(m[1]), Number(m[2]), token);
    }
    m = /^models\/([^/]+)\/versions\/(\d+)\/(promote|retire)$/.exec(endpoint);
    if (m !== null && method === 'POST') {
      const row = sampleRow(decodeURIComponent(m[1]), Number(m[2]));
      const alias = (body as { alias?: string }).alias;
      return { token, version: { ...row, aliases: alias ? [alias] : [], status: m[3] === 'retire' ? 'retired' : 'active' } };
    }
    throw new Error(`fake server: no route for ${method} ${endpoint}`);
  }
}

/** A model record. */
export function sampleModel(name: string, extra: Partial<ModelRecord> = {}): ModelRecord {
  return {
    name,
    description: `the ${name} model`,
    versions: 2,
    latest: 2,
    aliases: { production: 2 },
    created_at: '2026-11-25T10:31:02.123456+00:00',
    created_by: 'ada',
    updated_at: '2026-11-25T10:31:02.123456+00:00',
    main_metric: 'val_acc',
    main_ref: `${name}:2`,
    main_value: 0.97,
    main_text: '0.97',
    ...extra
  };
}

/** A version row. */
export function sampleRow(name: string, version: number, extra: Partial<VersionRow> = {}): VersionRow {
  const ref = `${name}:${version}`;
  return {
    name,
    version,
    ref,
    status: 'active',
    format: 'pickle',
    aliases: version === 2 ? ['production'] : [],
    created_at: '2026-11-25T10:31:02.123456+00:00',
    created_by: 'ada',
    description: '',
    parent: null,
    metrics: { val_acc: version === 2 ? 0.97 : 0.9, loss: 'nan' },
    metrics_text: { val_acc: version === 2 ? '0.97' : '0.9', loss: 'nan' },
    best: version === 2 ? ['val_acc'] : [],
    main_value: version === 2 ? 0.97 : 0.9,
    main_text: version === 2 ? '0.97' : '0.9',
    snippets: { load: `m = %mlnb load ${ref}`, show: `%mlnb show ${ref}` },
    ...extra
  };
}

/** A version detail answer. */
export function sampleDetail(name: string, version: number, token = 't1'): DetailReply {
  return {
    token,
    version: {
      ...sampleRow(name, version),
      params: { lr: 0.01 },
      tags: { team: 'vision' },
      files: [{ path: 'model.pkl', sha256: 'ab'.repeat(32), size: 2048, media_type: 'application/octet-stream' }]
    },
    lineage: [{ source: `${name}:${version}`, kind: 'trained_on', target: 'data:1', details: {} }],
    evaluations: [{ data: 'holdout', details: { acc: 0.96 } }],
    audit: [{
      id: 1, at: '2026-11-25T10:31:02+00:00', user: 'ada', action: 'promote', model: name,
      version, alias: 'production', from_version: 1, to_version: version, reason: 'better', details: {}
    }]
  };
}
