// Drives a widget's ES module in jsdom with a stand-in for the widget model, then prints
// what it saw as JSON.  Usage (the scenario defaults to panel):
//   NODE_PATH=/dir/with/node_modules node dom_harness.mjs /tmp/panel.mjs [panel]
//   NODE_PATH=/dir/with/node_modules node dom_harness.mjs /tmp/monitor.mjs monitor
// panel drives static/panel.js for tests/widgets/test_widgets_dom.py; monitor drives
// static/monitor.js for tests/widgets/test_monitor.py.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);
const { JSDOM } = require("jsdom"); // CommonJS resolution honours NODE_PATH

// A page on a Jupyter server's origin, where cookies work.
const dom = new JSDOM("<!doctype html><body></body>", { url: "http://127.0.0.1:8888/lab" });
const w = dom.window;
for (const key of ["document", "AbortController"]) globalThis[key] = w[key];
// Frames come at once; timers the panel starts with setInterval run when the harness says.
globalThis.requestAnimationFrame = (fn) => setTimeout(fn, 0);
globalThis.cancelAnimationFrame = (id) => clearTimeout(id);
const intervals = new Map();
let nextInterval = 1;
globalThis.setInterval = (fn) => { intervals.set(nextInterval, fn); return nextInterval++; };
globalThis.clearInterval = (id) => intervals.delete(id);
const tick = () => { for (const fn of intervals.values()) fn(); };
const settle = (ms = 40) => new Promise((resolve) => setTimeout(resolve, ms));

const { default: widget } = await import(pathToFileURL(process.argv[2]).href);

async function panelScenario() {
  const state = {
    models: [{ name: "churn", versions: 2, latest: 2, aliases: { production: 1 } },
      { name: "<b>x</b>", versions: 1, latest: 1, aliases: {} }],
    model_count: 2, model_total: 2, filter: "", selected_model: "churn",
    versions: [
      { version: 2, ref: "churn:2", status: "active", aliases: [], created_at: "2025-01-02T03:04:05+00:00",
        created_by: "<script>x</script>", metrics: { acc: 0.9, loss: "nan" },
        metrics_text: { acc: "0.9", loss: "nan" }, best: ["acc"] },
      { version: 1, ref: "churn:1", status: "retired", aliases: ["production"],
        created_at: "2025-01-01T03:04:05+00:00", created_by: "me", metrics: { acc: 0.8 },
        metrics_text: { acc: "0.8" }, best: [] },
    ],
    version_count: 2, metric_names: ["acc", "loss"], sort_metric: "acc", sort_desc: true,
    selected_version: 0, detail_html: "", compare: [], diff_html: "", alias: "production",
    pending: {}, message: "", error: "", busy: false, auto_refresh: 0,
  };
  const listeners = {};
  const sent = [];
  const model = {
    get: (k) => state[k],
    set: (k, v) => { state[k] = v; },
    save_changes: () => sent.push({ saved: { filter: state.filter, auto_refresh: state.auto_refresh } }),
    send: (m) => sent.push(m),
    on: (event, fn) => { (listeners[event] ||= []).push(fn); },
    off: (event, fn) => { listeners[event] = (listeners[event] || []).filter((f) => f !== fn); },
  };
  const update = (key, value) => {
    state[key] = value;
    for (const fn of listeners[`change:${key}`] || []) fn();
  };
  const reply = (m) => { for (const fn of listeners["msg:custom"] || []) fn(m); };

  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = widget.render({ model, el });
  const q = (s) => el.querySelector(s);
  const button = (name) => [...el.querySelectorAll("button")]
    .find((b) => b.getAttribute("aria-label") === name && !b.closest("[hidden]") && !b.hidden);
  const out = { first: {} };

  out.first.buttons = [...el.querySelectorAll("button[aria-label]")]
    .filter((b) => !b.hidden && !b.closest("[hidden]"))
    .map((b) => `${b.getAttribute("aria-label")}${b.disabled ? " (disabled)" : ""}`);
  out.first.options = [...el.querySelectorAll('[role="option"]')]
    .map((o) => [o.textContent, o.getAttribute("aria-selected")]);
  out.first.rows = [...el.querySelectorAll("tbody tr")].map((r) => [...r.cells].map((c) => c.textContent));
  out.first.headers = [...el.querySelectorAll("thead th")].map((t) => [t.textContent, t.getAttribute("aria-sort")]);
  out.first.bold = [...el.querySelectorAll("tbody strong")].map((s) => s.textContent);
  out.first.injected = el.querySelectorAll("script, b").length;
  out.first.head = q(".mlnb-panel-head").textContent;

  q('thead button[data-key="loss"]').click();
  q('[data-name="churn"]').click();
  el.querySelectorAll("tbody tr")[0].click();
  for (const box of el.querySelectorAll('tbody input[type="checkbox"]')) {
    box.checked = true;
    box.dispatchEvent(new w.Event("change", { bubbles: true }));
  }
  await settle();
  out.compareEnabled = !button("Compare").disabled;
  button("Compare").click();

  update("selected_version", 2);
  await settle();
  out.selectedRow = q('tbody tr[aria-selected="true"]')?.dataset.version;
  out.actionsEnabled = ["Promote", "Rollback", "Retire"].every((n) => !button(n).disabled);
  button("Promote").click();
  update("pending", { id: 7, op: "promote", ref: "churn:2", alias: "production",
    prompt: "Promote churn:2 to production?" });
  await settle();
  out.prompt = q('[role="group"][aria-label="Confirm action"]').hidden ? null
    : q(".mlnb-panel-prompt").textContent;
  out.focused = document.activeElement?.getAttribute("aria-label");
  q('input[aria-label="Reason"]').value = "better acc";
  button("Confirm").click();

  update("error", "Conflict: <b>no</b>");
  update("detail_html", '<div class="mlnb">detail <em>ok</em></div>');
  update("busy", true);
  await settle();
  out.error = q('[role="alert"]').textContent;
  out.detail = q(".mlnb-panel-detail").innerHTML;
  out.disabledWhileBusy = ["Promote", "Refresh"].every((n) => button(n).disabled);

  const filter = q('input[aria-label="Filter models"]');
  for (const text of ["c", "ch", "chu"]) {
    filter.value = text;
    filter.dispatchEvent(new w.Event("input"));
  }
  await settle(250);

  update("busy", false);
  const auto = q('input[aria-label="Auto-refresh"]');
  auto.checked = true;
  auto.dispatchEvent(new w.Event("change"));
  update("auto_refresh", 5);
  await settle();
  const polls = () => sent.filter((m) => m.action === "poll").length;
  let hidden = true; // jsdom's page is hidden, as a background browser tab is
  Object.defineProperty(w.document, "hidden", { get: () => hidden, configurable: true });
  tick();
  const whileHidden = polls();
  hidden = false;
  tick();
  tick(); // the first poll is unanswered: no second one
  const inFlight = polls();
  reply({ type: "done", action: "poll", ok: true });
  tick();
  out.polls = [whileHidden, inFlight, polls()];

  out.sent = sent.filter((m) => m.action !== "poll");
  cleanup();
  out.listenersLeft = Object.values(listeners).reduce((n, l) => n + l.length, 0);
  out.intervalsLeft = intervals.size;
  out.emptied = el.childNodes.length === 0;
  return out;
}

// The training monitor: what it draws from a state, and what its Stop button sends.
async function monitorScenario() {
  const HOSTILE = "<img src=x onerror=alert(1)>";
  const f64 = (values) => new DataView(new Float64Array(values).buffer);
  const config = document.createElement("script");
  config.id = "jupyter-config-data";
  config.type = "application/json";
  config.textContent = JSON.stringify({ baseUrl: "/user/ann/", token: "tok3n" });
  document.head.append(config);
  document.cookie = "_xsrf=2|a1b2|c3d4|1700000000; path=/";
  const requests = [];
  let answer = { ok: true, status: 204 };
  globalThis.fetch = async (url, init) => {
    requests.push({ url, method: init.method, headers: init.headers, credentials: init.credentials });
    if (answer === "down") throw new TypeError("Failed to fetch");
    return answer;
  };

  const mount = (overrides = {}) => {
    const state = {
      status: "training", kernel_id: "0a1b-2c3d", gpu: "GPU memory 1.0 GiB (peak 2.0 GiB)", note: "",
      header: { name: HOSTILE, run_id: "r1", device: "cuda:0", precision: "bf16", monitor: "val_loss",
        mode: "min", resumed: false },
      bar: { fraction: 0.45, epoch: "epoch 2/3", batch: "batch 40/100", percent: "45%", elapsed: "0:45",
        eta: "1:23", rate: "1,234 samples/s", loss: "0.1234", best: "val_loss 0.1 (epoch 1)" },
      metrics: { epoch: 1, best_epoch: 1, rows: [
        { name: "val_loss", last: "0.1", best: "0.1", monitor: true },
        { name: HOSTILE, last: "0.9", best: "0.9", monitor: false }] },
      history: { columns: ["epoch", "val_loss", HOSTILE], rows: [["1", "0.1", "0.9"]], epochs: [1],
        best_epoch: 1, hidden: 4 },
      curves: { x: "step", charts: [
        { title: "loss", series: [
          { name: "train (steps)", colour: "#90a4ae", dots: false, x: f64([10, 20, 30]), y: f64([1, 0.5, 0.25]) },
          { name: "val_loss", colour: "#e65100", dots: true, points: [[30, 0.4]] }] },
        { title: HOSTILE, series: [{ name: HOSTILE, colour: "#2e7d32", dots: true, x: f64([30]), y: f64([0.9]) }] },
      ] },
      ...overrides,
    };
    const listeners = {};
    const model = {
      get: (k) => state[k],
      on: (event, fn) => { (listeners[event] ||= []).push(fn); },
      off: (event, fn) => { listeners[event] = (listeners[event] || []).filter((g) => g !== fn); },
    };
    const el = document.createElement("div");
    document.body.append(el);
    const cleanup = widget.render({ model, el });
    const update = (key, value) => {
      state[key] = value;
      for (const fn of listeners[`change:${key}`] || []) fn();
    };
    const stop = () => el.querySelector('button[aria-label="Stop training"]');
    const seen = () => ({
      status: el.querySelector('[role="status"]').textContent,
      stop: stop().hidden ? "hidden" : `${stop().textContent}${stop().disabled ? " (disabled)" : ""}`,
      hint: el.querySelector('[role="alert"]').hidden ? "" : el.querySelector('[role="alert"]').textContent,
    });
    const left = () => Object.values(listeners).reduce((n, l) => n + l.length, 0);
    return { el, update, stop, seen, cleanup, left };
  };

  const out = {};
  const a = mount();
  const bar = a.el.querySelector('[role="progressbar"]');
  out.progress = [bar.getAttribute("aria-valuenow"), a.el.querySelector(".mlnb-monitor-fill").style.width];
  out.facts = a.el.querySelector(".mlnb-monitor-facts").textContent;
  out.head = a.el.querySelector(".mlnb-monitor-head").textContent;
  out.metrics = [...a.el.querySelectorAll('table[aria-label="Metrics"] tr')].map(
    (r) => [...r.cells].map((c) => c.textContent));
  out.history = [...a.el.querySelectorAll('table[aria-label="History"] tr')].map(
    (r) => [...r.cells].map((c) => c.textContent));
  out.more = a.el.querySelector(".mlnb-monitor-history .mlnb-monitor-muted")?.textContent;
  out.charts = [...a.el.querySelectorAll("svg")].map((svg) => ({
    title: svg.querySelector("title").textContent,
    lines: [...svg.querySelectorAll("polyline")].map((p) => p.getAttribute("points").split(" ").length),
    dots: svg.querySelectorAll("circle").length,
  }));
  out.foot = a.el.querySelector(".mlnb-monitor-foot").textContent;
  out.injected = a.el.querySelectorAll("img, script").length;
  out.before = a.seen();

  a.stop().click();
  out.clicked = a.seen();
  await settle();
  out.requests = requests.splice(0);
  a.stop().click(); // a second click while stopping sends nothing
  await settle();
  out.secondClick = requests.length;
  for (let i = 1; i <= 50; i++) a.update("bar", { fraction: i / 50, percent: `${i * 2}%`, epoch: "epoch 3/3" });
  await settle();
  out.afterBurst = a.el.querySelector(".mlnb-monitor-facts").textContent;
  a.update("status", "stopped");
  a.update("note", "stopped on request after an optimizer step");
  await settle();
  out.stopped = a.seen();
  out.stoppedFoot = a.el.querySelector(".mlnb-monitor-foot").textContent;
  a.cleanup();
  out.cleanup = [a.left(), a.el.childNodes.length];

  const b = mount({ kernel_id: "" }); // not in a kernel Jupyter Server knows
  b.stop().click();
  await settle();
  out.noKernel = { ...b.seen(), requests: requests.length };
  b.cleanup();

  answer = { ok: false, status: 403 };
  const c = mount();
  c.stop().click();
  await settle();
  out.refused = c.seen();
  answer = "down";
  c.stop().click();
  await settle();
  out.down = c.seen();
  out.retried = requests.splice(0).length;
  c.cleanup();
  return out;
}

const scenarios = { panel: panelScenario, monitor: monitorScenario };
console.log(JSON.stringify(await scenarios[process.argv[3] || "panel"]()));
