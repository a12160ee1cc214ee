// Drives static/panel.js in jsdom with a stand-in for the widget model, then prints
// what it saw as JSON for tests/widgets/test_widgets_dom.py.  Usage:
//   NODE_PATH=/dir/with/node_modules node dom_harness.mjs /tmp/panel.mjs
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);
const { JSDOM } = require("jsdom"); // CommonJS resolution honours NODE_PATH

const dom = new JSDOM("<!doctype html><body></body>");
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
console.log(JSON.stringify(out));
