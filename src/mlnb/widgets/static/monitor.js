// The mlnb training monitor's view: draws the synced state of mlnb.widgets.monitor.TrainingMonitor.
//
// Plain DOM and SVG, no framework.  Python formats every text; this file lays it out with
// textContent (never innerHTML) and draws the curves from [x, y] numbers.  Trait changes mark
// parts dirty and one animation frame redraws them, so a burst of updates costs one redraw.
//
// Stop: the kernel is busy running the training cell and would read a widget message only
// when training is over, so the button interrupts the kernel through Jupyter Server's REST
// API (POST {baseUrl}api/kernels/{kernel_id}/interrupt), which the training loop takes as
// "stop after this optimizer step and keep a checkpoint".  Where that is impossible (no
// kernel id, no Jupyter page, a refused request) a hint points to the notebook's own Stop.

const SVG = "http://www.w3.org/2000/svg";
const W = 340;
const H = 150;
const LEFT = 46;
const BOTTOM = 30;
const MAX_DOTS = 60;
const DONE = new Set(["finished", "stopped_early", "stopped", "interrupted", "diverged", "failed"]);
const HINT = "press the notebook's Stop ■ button (interrupt the kernel) to stop after this step";

function h(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function s(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function label(value) {
  return Number.isFinite(value) ? String(Number(value.toPrecision(3))) : "";
}

// Where Jupyter Server is, from the page JupyterLab and Notebook 7 both carry.
function pageConfig() {
  const node = document.getElementById("jupyter-config-data");
  if (!node) return null;
  try {
    return JSON.parse(node.textContent || "{}");
  } catch {
    return null;
  }
}

function cookie(name) {
  const found = document.cookie.match(new RegExp(`(?:^|;\\s*)${name}=([^;]*)`));
  return found ? found[1] : "";
}

// Interrupt kernel *id*; resolves to "" when done, else to why not (for the hint).
export async function interrupt(id) {
  if (!id) return "the kernel's id is not known here";
  const config = pageConfig();
  if (!config || typeof fetch !== "function") return "this page is not served by Jupyter";
  let base = config.baseUrl || "/";
  if (!base.endsWith("/")) base += "/";
  const headers = {};
  const xsrf = cookie("_xsrf");
  if (xsrf) headers["X-XSRFToken"] = xsrf;
  if (config.token) headers.Authorization = `token ${config.token}`;
  try {
    const reply = await fetch(`${base}api/kernels/${encodeURIComponent(id)}/interrupt`,
      { method: "POST", credentials: "same-origin", headers });
    return reply.ok ? "" : `the server answered ${reply.status}`;
  } catch (err) {
    return "the server could not be reached";
  }
}

// Numbers from a binary buffer (Python sends float64 little-endian bytes, which arrive as a
// DataView, not always 8-byte aligned) or from a plain array.
function numbers(value) {
  if (Array.isArray(value)) return value;
  if (!value || !ArrayBuffer.isView(value)) return [];
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const out = new Array(Math.floor(view.byteLength / 8));
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(i * 8, true);
  return out;
}

function pointsOf(one) {
  if (one.points) return one.points;
  const ys = numbers(one.y);
  return numbers(one.x).map((x, i) => [x, ys[i]]).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
}

function chart(spec, xLabel) {
  const series = (spec.series || []).map((one) => ({ ...one, points: pointsOf(one) }))
    .filter((one) => one.points.length);
  const xs = series.flatMap((one) => one.points.map((p) => p[0]));
  const ys = series.flatMap((one) => one.points.map((p) => p[1]));
  if (!xs.length) return null;
  const w = W - LEFT - 8;
  const ht = H - BOTTOM - 8;
  const scale = (lo, hi, size, flip) => {
    if (hi <= lo) {
      const pad = Math.abs(lo) / 2 || 1;
      lo -= pad;
      hi += pad;
    }
    const k = size / (hi - lo);
    return flip ? (v) => size - (v - lo) * k : (v) => (v - lo) * k;
  };
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const fx = scale(x0, x1, w, false);
  const fy = scale(y0, y1, ht, true);
  const svg = s("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
    class: "mlnb-monitor-chart", "font-size": 10, fill: "currentColor" });
  svg.append(s("title", {}, `${spec.title} by ${xLabel}`));
  const g = s("g", { transform: `translate(${LEFT},4)` });
  g.append(s("path", { d: `M0,0 V${ht} H${w}`, fill: "none", stroke: "currentColor",
    "stroke-opacity": 0.4 }));
  g.append(s("text", { x: -4, y: 8, "text-anchor": "end" }, label(y1)));
  g.append(s("text", { x: -4, y: ht, "text-anchor": "end" }, label(y0)));
  g.append(s("text", { x: 0, y: ht + 12 }, label(x0)));
  g.append(s("text", { x: w, y: ht + 12, "text-anchor": "end" }, label(x1)));
  g.append(s("text", { x: w / 2, y: ht + 12, "text-anchor": "middle", "fill-opacity": 0.7 }, xLabel));
  let legendX = 0;
  for (const one of series) {
    const line = s("g", { "data-series": one.name });
    line.append(s("title", {}, one.name));
    line.append(s("polyline", { fill: "none", stroke: one.colour, "stroke-width": one.dots ? 1.6 : 1,
      points: one.points.map(([x, y]) => `${fx(x).toFixed(1)},${fy(y).toFixed(1)}`).join(" ") }));
    if (one.dots && one.points.length <= MAX_DOTS) {
      for (const [x, y] of one.points) {
        line.append(s("circle", { cx: fx(x).toFixed(1), cy: fy(y).toFixed(1), r: 2.2, fill: one.colour }));
      }
    }
    g.append(line);
    g.append(s("rect", { x: legendX, y: H - 17, width: 10, height: 3, fill: one.colour }));
    g.append(s("text", { x: legendX + 13, y: H - 13 }, one.name));
    legendX += 22 + 6 * one.name.length;
  }
  svg.append(g);
  return svg;
}

function table(headers, rows, caption) {
  return h("table", { class: "mlnb-monitor-table", "aria-label": caption }, [
    h("thead", {}, [h("tr", {}, headers.map((text) => h("th", { scope: "col", text })))]),
    h("tbody", {}, rows),
  ]);
}

function render({ model, el }) {
  const get = (name) => model.get(name);
  const abort = new AbortController();
  const dirty = new Set();
  let frame = 0;
  let stopping = false; // this view asked the server to interrupt

  const name = h("span", { class: "mlnb-monitor-name" });
  const status = h("span", { class: "mlnb-monitor-status", role: "status", "aria-live": "polite" });
  const where = h("span", { class: "mlnb-monitor-muted" });
  const stopBtn = h("button", { type: "button", class: "mlnb-monitor-btn", text: "Stop",
    "aria-label": "Stop training", title: "End training after the current step, with a checkpoint" });
  const dot = () => h("span", { class: "mlnb-monitor-muted", "aria-hidden": "true", text: "·" });
  const head = h("div", { class: "mlnb-monitor-head" }, [h("strong", { text: "Training" }), name,
    dot(), status, dot(), where, h("span", { class: "mlnb-monitor-spacer" }), stopBtn]);
  const hint = h("div", { class: "mlnb-monitor-hint", role: "alert", hidden: true });
  const fill = h("div", { class: "mlnb-monitor-fill" });
  const track = h("div", { class: "mlnb-monitor-track", role: "progressbar", "aria-label": "Training progress",
    "aria-valuemin": "0", "aria-valuemax": "100" }, [fill]);
  const facts = h("span", { class: "mlnb-monitor-facts" });
  const progress = h("div", { class: "mlnb-monitor-progress" }, [track, facts]);
  const metrics = h("div", { class: "mlnb-monitor-metrics" });
  const charts = h("div", { class: "mlnb-monitor-charts" });
  const history = h("div", { class: "mlnb-monitor-history" });
  const foot = h("div", { class: "mlnb-monitor-muted mlnb-monitor-foot" });
  const root = h("div", { class: "mlnb-monitor" }, [head, hint, progress,
    h("div", { class: "mlnb-monitor-body" }, [metrics, charts]), history, foot]);
  el.append(root);

  function drawHead() {
    const info = get("header") || {};
    const state = get("status") || "";
    name.textContent = info.name || "";
    status.textContent = stopping && !DONE.has(state) ? "stopping…" : state;
    status.dataset.status = state;
    const place = [info.device, info.precision].filter(Boolean).join("/");
    where.textContent = (info.resumed ? "resumed · " : "") + place;
    stopBtn.hidden = DONE.has(state);
    stopBtn.disabled = stopping;
    stopBtn.textContent = stopping ? "Stopping…" : "Stop";
    if (DONE.has(state)) hint.hidden = true;
  }

  function drawBar() {
    const bar = get("bar") || {};
    const pct = typeof bar.fraction === "number" ? Math.round(bar.fraction * 1000) / 10 : null;
    fill.style.width = pct === null ? "0%" : `${pct}%`;
    if (pct === null) track.removeAttribute("aria-valuenow");
    else track.setAttribute("aria-valuenow", String(pct));
    track.setAttribute("aria-valuetext", bar.percent || "");
    const time = bar.elapsed ? `elapsed ${bar.elapsed}${bar.eta ? ` · ETA ${bar.eta}` : ""}` : "";
    facts.textContent = [bar.epoch, bar.batch, bar.percent, time, bar.rate,
      bar.loss ? `loss ${bar.loss}` : "", bar.best ? `best ${bar.best}` : ""]
      .filter(Boolean).join(" · ");
  }

  function drawMetrics() {
    const m = get("metrics") || {};
    const rows = m.rows || [];
    if (!rows.length) {
      metrics.replaceChildren();
      return;
    }
    const best = m.best_epoch !== null && m.best_epoch !== undefined ? `best (epoch ${m.best_epoch})` : "best";
    metrics.replaceChildren(table(["metric", `last (epoch ${m.epoch})`, best], rows.map((r) =>
      h("tr", { class: r.monitor ? "mlnb-monitor-key" : null }, [
        h("td", {}, [r.monitor ? h("strong", { text: r.name }) : document.createTextNode(r.name)]),
        h("td", { class: "mlnb-monitor-num", text: r.last }),
        h("td", { class: "mlnb-monitor-num", text: r.best }),
      ])), "Metrics"));
  }

  function drawHistory() {
    const hist = get("history") || {};
    const rows = hist.rows || [];
    if (!rows.length) {
      history.replaceChildren();
      return;
    }
    const body = rows.map((cells, i) => h("tr", {
      class: hist.epochs[i] === hist.best_epoch ? "mlnb-monitor-best" : null },
    cells.map((text) => h("td", { class: "mlnb-monitor-num", text }))));
    const more = hist.hidden ? h("div", { class: "mlnb-monitor-muted",
      text: `… ${hist.hidden.toLocaleString()} earlier epochs` }) : null;
    history.replaceChildren(...[more, table(hist.columns || [], body, "History")].filter(Boolean));
  }

  function drawCurves() {
    const curves = get("curves") || {};
    charts.replaceChildren(...(curves.charts || []).map((c) => chart(c, curves.x || "step")).filter(Boolean));
  }

  function drawFoot() {
    foot.textContent = [get("gpu"), get("note")].filter(Boolean).join(" · ");
  }

  const painters = { head: drawHead, bar: drawBar, metrics: drawMetrics, history: drawHistory,
    curves: drawCurves, foot: drawFoot };
  const watched = { status: ["head"], header: ["head"], bar: ["bar"], metrics: ["metrics"],
    history: ["history"], curves: ["curves"], gpu: ["foot"], note: ["foot"], kernel_id: [] };

  function flush() {
    frame = 0;
    for (const part of Object.keys(painters)) if (dirty.has(part)) painters[part]();
    dirty.clear();
  }

  function schedule(...parts) {
    for (const part of parts) dirty.add(part);
    if (!frame) frame = requestAnimationFrame(flush);
  }

  const handlers = Object.entries(watched).map(([trait, parts]) => {
    const fn = () => schedule(...parts);
    model.on(`change:${trait}`, fn);
    return [`change:${trait}`, fn];
  });

  stopBtn.addEventListener("click", async () => {
    if (stopping || DONE.has(get("status"))) return;
    stopping = true;
    hint.hidden = true;
    drawHead(); // at once: the click must show
    const why = await interrupt(get("kernel_id"));
    if (why) {
      stopping = false;
      hint.textContent = `Stop did not reach the kernel (${why}): ${HINT}.`;
      hint.hidden = false;
      drawHead();
    }
  }, { signal: abort.signal });

  for (const part of Object.keys(painters)) dirty.add(part);
  flush();

  return () => {
    abort.abort();
    cancelAnimationFrame(frame);
    for (const [event, fn] of handlers) model.off(event, fn);
    root.remove();
  };
}

export default { render };
