// The mlnb registry panel's view: draws the synced state of mlnb.widgets.RegistryPanel.
//
// Plain DOM, no framework, no network access.  Python holds every rule; this file
// shows state and sends the user's intent with model.send({action, ...}).  Text is
// set with textContent; only detail_html and diff_html, rendered and escaped in
// Python by mlnb.display, go through innerHTML.  Trait changes mark parts of the
// view dirty and one animation frame redraws them, so a burst of updates costs one
// redraw.  render() returns a cleanup that removes listeners, timers and the DOM.

const POLL_TIMEOUT_MS = 60000; // a poll unanswered this long (kernel gone) no longer blocks
const FILTER_DELAY_MS = 150;
const DEFAULT_POLL_S = 5;
const ALIASES = ["production", "staging", "champion", "challenger"];

let counter = 0;

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

function when(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function plural(n, noun) {
  return `${n.toLocaleString()} ${noun}${n === 1 ? "" : "s"}`;
}

function render({ model, el }) {
  const id = ++counter;
  const abort = new AbortController();
  const on = (node, type, fn) => node.addEventListener(type, fn, { signal: abort.signal });
  const send = (msg) => model.send(msg);
  const get = (name) => model.get(name);

  let picked = []; // up to two refs picked for Compare (view state, not synced)
  let polling = 0; // when the poll in flight was sent, 0 for none
  let timer = 0;
  let frame = 0;
  let filterTimer = 0;
  let askedHere = false; // this view asked for the pending action: focus its buttons
  const dirty = new Set();

  // -- skeleton -------------------------------------------------------------------
  const refreshBtn = h("button", { type: "button", class: "mlnb-panel-btn", text: "Refresh",
    "aria-label": "Refresh", title: "Read the registry again (changes from other kernels too)" });
  const autoBox = h("input", { type: "checkbox", "aria-label": "Auto-refresh" });
  const autoLabel = h("label", { class: "mlnb-panel-auto",
    title: "Ask the kernel for changes every few seconds while this page is visible" },
  [autoBox, h("span", { text: "Auto-refresh" })]);
  const busyNote = h("span", { class: "mlnb-panel-busy", role: "status", "aria-live": "polite" });
  const bar = h("div", { class: "mlnb-panel-bar" }, [
    h("strong", { class: "mlnb-panel-title", text: "mlnb registry" }), busyNote,
    h("span", { class: "mlnb-panel-spacer" }), autoLabel, refreshBtn,
  ]);

  const messageLine = h("div", { class: "mlnb-panel-message", role: "status", "aria-live": "polite" });
  const errorLine = h("div", { class: "mlnb-panel-error", role: "alert" });

  const promptText = h("span", { class: "mlnb-panel-prompt" });
  const reasonInput = h("input", { type: "text", class: "mlnb-panel-input", "aria-label": "Reason",
    placeholder: "reason (optional, for the audit log)", maxlength: "500" });
  const confirmBtn = h("button", { type: "button", class: "mlnb-panel-btn mlnb-panel-danger",
    text: "Confirm", "aria-label": "Confirm" });
  const cancelBtn = h("button", { type: "button", class: "mlnb-panel-btn", text: "Cancel",
    "aria-label": "Cancel" });
  const pendingBar = h("div", { class: "mlnb-panel-pending", role: "group",
    "aria-label": "Confirm action", hidden: true },
  [promptText, reasonInput, confirmBtn, cancelBtn]);

  const filterInput = h("input", { type: "search", class: "mlnb-panel-input",
    "aria-label": "Filter models", placeholder: "Filter models" });
  const modelList = h("ul", { class: "mlnb-panel-models", role: "listbox", "aria-label": "Models" });
  const modelCount = h("div", { class: "mlnb-panel-muted" });
  const side = h("div", { class: "mlnb-panel-side" }, [filterInput, modelList, modelCount]);

  const head = h("div", { class: "mlnb-panel-head" });
  const listId = `mlnb-panel-aliases-${id}`;
  const aliasList = h("datalist", { id: listId });
  const aliasInput = h("input", { type: "text", class: "mlnb-panel-input mlnb-panel-alias",
    "aria-label": "Alias", list: listId, title: "The alias Promote and Rollback move" });
  const promoteBtn = h("button", { type: "button", class: "mlnb-panel-btn", text: "Promote",
    "aria-label": "Promote", title: "Move the alias to the selected version" });
  const rollbackBtn = h("button", { type: "button", class: "mlnb-panel-btn", text: "Rollback",
    "aria-label": "Rollback", title: "Move the alias back to the version that held it before" });
  const retireBtn = h("button", { type: "button", class: "mlnb-panel-btn", text: "Retire",
    "aria-label": "Retire", title: "Retire the selected version: it loses its aliases" });
  const compareBtn = h("button", { type: "button", class: "mlnb-panel-btn", text: "Compare",
    "aria-label": "Compare", title: "Tick two versions, then compare them" });
  const closeDiffBtn = h("button", { type: "button", class: "mlnb-panel-btn", text: "Close diff",
    "aria-label": "Close diff" });
  const actions = h("div", { class: "mlnb-panel-actions", role: "toolbar",
    "aria-label": "Version actions" }, [
    h("label", { class: "mlnb-panel-muted", text: "alias", for: `mlnb-panel-alias-${id}` }),
    aliasInput, aliasList, promoteBtn, rollbackBtn, retireBtn,
    h("span", { class: "mlnb-panel-spacer" }), compareBtn, closeDiffBtn,
  ]);
  aliasInput.id = `mlnb-panel-alias-${id}`;

  const thead = h("thead");
  const tbody = h("tbody");
  const table = h("table", { class: "mlnb-panel-table", "aria-label": "Versions" }, [thead, tbody]);
  const tableWrap = h("div", { class: "mlnb-panel-tablewrap" }, [table]);
  const detail = h("section", { class: "mlnb-panel-detail", "aria-label": "Version details" });
  const diff = h("section", { class: "mlnb-panel-diff", "aria-label": "Diff" });
  const main = h("div", { class: "mlnb-panel-main" }, [head, actions, tableWrap, diff, detail]);

  const root = h("div", { class: "mlnb-panel" }, [bar, messageLine, errorLine, pendingBar,
    h("div", { class: "mlnb-panel-body" }, [side, main])]);
  el.append(root);

  // -- drawing ----------------------------------------------------------------------
  function drawModels() {
    const rows = get("models") || [];
    const selected = get("selected_model");
    modelList.replaceChildren(...rows.map((m) => {
      const aliases = Object.entries(m.aliases || {}).map(([a, v]) => `@${a}=${v}`).join(" ");
      const item = h("li", { role: "option", class: "mlnb-panel-model", "data-name": m.name,
        "aria-selected": m.name === selected ? "true" : "false",
        tabindex: m.name === selected ? "0" : "-1", title: aliases || null }, [
        h("span", { class: "mlnb-panel-name", text: m.name }),
        h("span", { class: "mlnb-panel-muted", text: String(m.versions) }),
      ]);
      return item;
    }));
    if (rows.length && !rows.some((m) => m.name === selected)) {
      modelList.firstChild.setAttribute("tabindex", "0");
    }
    const shown = get("model_count");
    const total = get("model_total");
    let text = total ? plural(total, "model") : "No models yet: register one with reg.register(...)";
    if (get("filter") && total) text = `${shown.toLocaleString()} of ${text}`;
    if (rows.length < shown) text += ` (first ${rows.length.toLocaleString()} listed)`;
    modelCount.textContent = text;
    if (document.activeElement !== filterInput && filterInput.value !== get("filter")) {
      filterInput.value = get("filter");
    }
  }

  function headerCell(key, label, numeric) {
    const sorted = get("sort_metric") === key;
    const desc = get("sort_desc");
    const th = h("th", { scope: "col", class: numeric ? "mlnb-panel-num" : null,
      "aria-sort": sorted ? (desc ? "descending" : "ascending") : null });
    const btn = h("button", { type: "button", class: "mlnb-panel-sort", "data-key": key,
      title: `Sort by ${label}` }, [h("span", { text: label })]);
    if (sorted) btn.append(h("span", { "aria-hidden": "true", text: desc ? " ▼" : " ▲" }));
    th.append(btn);
    return th;
  }

  function drawTable() {
    const rows = get("versions") || [];
    const metrics = get("metric_names") || [];
    const name = get("selected_model");
    const count = get("version_count");
    const selected = get("selected_version");
    const refs = new Set(rows.map((r) => r.ref));
    picked = picked.filter((ref) => refs.has(ref));
    table.hidden = !name || !rows.length;
    if (!name) {
      head.textContent = "Select a model.";
    } else {
      const key = get("sort_metric");
      const order = key === "version" ? "" : ` · sorted by ${key === "created_at" ? "created" : key}`;
      const cut = rows.length < count ? ` · showing ${rows.length.toLocaleString()}` : "";
      head.replaceChildren(h("strong", { class: "mlnb-panel-name", text: name }),
        document.createTextNode(` · ${plural(count, "version")}${cut}${order}`));
    }
    thead.replaceChildren(h("tr", {}, [
      h("th", { scope: "col", class: "mlnb-panel-pick" }, [h("span", { class: "mlnb-panel-sr",
        text: "Compare" })]),
      headerCell("version", "version", true),
      h("th", { scope: "col", text: "status" }),
      h("th", { scope: "col", text: "aliases" }),
      headerCell("created_at", "created", false),
      h("th", { scope: "col", text: "by" }),
      ...metrics.map((m) => headerCell(m, m, true)),
    ]));
    tbody.replaceChildren(...rows.map((r) => {
      const best = new Set(r.best || []);
      const box = h("input", { type: "checkbox", "data-ref": r.ref,
        "aria-label": `Pick ${r.ref} to compare` });
      box.checked = picked.includes(r.ref);
      const cells = metrics.map((m) => {
        const text = (r.metrics_text || {})[m] ?? "";
        const finite = typeof (r.metrics || {})[m] === "number";
        const td = h("td", { class: `mlnb-panel-num${finite ? "" : " mlnb-panel-muted"}` });
        td.append(best.has(m) ? h("strong", { text, title: "best of the active versions" })
          : document.createTextNode(text));
        return td;
      });
      return h("tr", { "data-version": r.version, "aria-selected": r.version === selected ? "true" : "false",
        class: r.status === "retired" ? "mlnb-panel-retired" : null }, [
        h("td", { class: "mlnb-panel-pick" }, [box]),
        h("td", { class: "mlnb-panel-num" }, [h("button", { type: "button",
          class: "mlnb-panel-link", "data-version": r.version, "aria-label": `Show ${r.ref}`,
          text: String(r.version) })]),
        h("td", { text: r.status }),
        h("td", {}, (r.aliases || []).map((a) => h("span", { class: "mlnb-panel-badge", text: `@${a}` }))),
        h("td", { text: when(r.created_at), title: r.created_at }),
        h("td", { text: r.created_by }),
        ...cells,
      ]);
    }));
  }

  function drawDetail() {
    const html = get("detail_html");
    if (html) detail.innerHTML = html; // rendered and escaped by mlnb.display
    else {
      detail.replaceChildren(h("div", { class: "mlnb-panel-muted", text: get("selected_model")
        ? "Select a version to see its metrics, params, tags, lineage, files and audit." : "" }));
    }
  }

  function drawDiff() {
    const html = get("diff_html");
    diff.hidden = !html;
    if (html) diff.innerHTML = html; // rendered and escaped by mlnb.display
    else diff.replaceChildren();
  }

  function drawStatus() {
    messageLine.textContent = get("message");
    messageLine.hidden = !get("message");
    errorLine.textContent = get("error");
    errorLine.hidden = !get("error");
  }

  function drawPending() {
    const pending = get("pending") || {};
    const shown = Boolean(pending.id);
    const wasHidden = pendingBar.hidden;
    pendingBar.hidden = !shown;
    promptText.textContent = shown ? pending.prompt : "";
    if (!shown) reasonInput.value = "";
    if (shown && wasHidden && askedHere) cancelBtn.focus();
    askedHere = false;
  }

  function selectedRow() {
    const v = get("selected_version");
    return (get("versions") || []).find((r) => r.version === v);
  }

  function drawControls() {
    const busy = get("busy");
    const name = get("selected_model");
    const version = get("selected_version");
    busyNote.textContent = busy ? "working…" : "";
    root.setAttribute("aria-busy", busy ? "true" : "false");
    refreshBtn.disabled = busy;
    promoteBtn.disabled = busy || !version;
    rollbackBtn.disabled = busy || !name;
    retireBtn.disabled = busy || !version || selectedRow()?.status === "retired";
    compareBtn.disabled = busy || picked.length !== 2;
    closeDiffBtn.hidden = !get("diff_html") && !(get("compare") || []).length;
    confirmBtn.disabled = busy;
    if (document.activeElement !== aliasInput) aliasInput.value = get("alias");
    const row = (get("models") || []).find((m) => m.name === name);
    const known = new Set([...ALIASES, ...Object.keys(row?.aliases || {})]);
    aliasList.replaceChildren(...[...known].map((a) => h("option", { value: a })));
    autoBox.checked = get("auto_refresh") > 0;
  }

  const painters = { models: drawModels, table: drawTable, detail: drawDetail, diff: drawDiff,
    status: drawStatus, pending: drawPending, controls: drawControls, timer: startTimer };

  function flush() {
    frame = 0;
    for (const part of Object.keys(painters)) {
      if (dirty.has(part)) painters[part]();
    }
    dirty.clear();
  }

  function schedule(...parts) {
    for (const part of parts) dirty.add(part);
    if (!frame) frame = requestAnimationFrame(flush);
  }

  // -- polling ------------------------------------------------------------------------
  function tick() {
    const now = Date.now();
    if (polling && now - polling < POLL_TIMEOUT_MS) return; // at most one in flight
    if (document.hidden || !el.isConnected || get("busy")) return;
    polling = now;
    send({ action: "poll" });
  }

  function startTimer() {
    clearInterval(timer);
    timer = 0;
    const seconds = Number(get("auto_refresh")) || 0;
    if (seconds > 0) timer = setInterval(tick, Math.max(1, seconds) * 1000);
  }

  // -- trait changes and messages from Python --------------------------------------
  const watched = {
    models: ["models", "controls"], model_count: ["models"], model_total: ["models"],
    filter: ["models"], selected_model: ["models", "table", "detail", "controls"],
    versions: ["table", "controls"], version_count: ["table"], metric_names: ["table"],
    sort_metric: ["table"], sort_desc: ["table"],
    selected_version: ["table", "detail", "controls"], detail_html: ["detail"],
    compare: ["diff", "controls"], diff_html: ["diff", "controls"], pending: ["pending"],
    message: ["status"], error: ["status"], busy: ["controls"], alias: ["controls"],
    auto_refresh: ["controls", "timer"],
  };
  const handlers = Object.entries(watched).map(([name, parts]) => {
    const fn = () => schedule(...parts);
    model.on(`change:${name}`, fn);
    return [`change:${name}`, fn];
  });
  const onMessage = (msg) => {
    if (msg && msg.type === "done" && msg.action === "poll") polling = 0;
  };
  model.on("msg:custom", onMessage);

  // -- user input -----------------------------------------------------------------
  on(refreshBtn, "click", () => send({ action: "refresh" }));
  on(autoBox, "change", () => {
    model.set("auto_refresh", autoBox.checked ? DEFAULT_POLL_S : 0);
    model.save_changes();
  });
  on(filterInput, "input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      model.set("filter", filterInput.value);
      model.save_changes();
    }, FILTER_DELAY_MS);
  });
  on(modelList, "click", (event) => {
    const item = event.target.closest("[data-name]");
    if (item) send({ action: "select_model", name: item.dataset.name });
  });
  on(modelList, "keydown", (event) => {
    const item = event.target.closest("[data-name]");
    if (!item) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      send({ action: "select_model", name: item.dataset.name });
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const next = event.key === "ArrowDown" ? item.nextElementSibling : item.previousElementSibling;
      if (next) next.focus();
    }
  });
  on(thead, "click", (event) => {
    const btn = event.target.closest("button[data-key]");
    if (btn) send({ action: "sort", key: btn.dataset.key });
  });
  on(tbody, "change", (event) => {
    const box = event.target.closest("input[data-ref]");
    if (!box) return;
    const ref = box.dataset.ref;
    picked = picked.filter((r) => r !== ref);
    if (box.checked) picked.push(ref);
    if (picked.length > 2) picked = picked.slice(-2); // the two most recent picks
    for (const other of tbody.querySelectorAll("input[data-ref]")) {
      other.checked = picked.includes(other.dataset.ref);
    }
    schedule("controls");
  });
  on(tbody, "click", (event) => {
    if (event.target.closest("input")) return;
    const row = event.target.closest("tr[data-version]");
    if (row) send({ action: "select_version", version: Number(row.dataset.version) });
  });
  on(aliasInput, "change", () => {
    model.set("alias", aliasInput.value.trim());
    model.save_changes();
  });
  const request = (op) => {
    askedHere = true;
    const msg = { action: "request", op, alias: aliasInput.value.trim() || get("alias") };
    if (op !== "rollback") msg.version = get("selected_version");
    send(msg);
  };
  on(promoteBtn, "click", () => request("promote"));
  on(rollbackBtn, "click", () => request("rollback"));
  on(retireBtn, "click", () => request("retire"));
  on(confirmBtn, "click", () => {
    const pending = get("pending") || {};
    send({ action: "confirm", id: pending.id, reason: reasonInput.value });
  });
  on(cancelBtn, "click", () => send({ action: "cancel" }));
  on(pendingBar, "keydown", (event) => {
    if (event.key === "Escape") send({ action: "cancel" });
  });
  on(compareBtn, "click", () => {
    if (picked.length === 2) send({ action: "compare", a: picked[0], b: picked[1] });
  });
  on(closeDiffBtn, "click", () => send({ action: "compare" }));

  // First paint at once, not on the next frame.
  for (const part of Object.keys(painters)) dirty.add(part);
  flush();

  return () => {
    abort.abort();
    cancelAnimationFrame(frame);
    clearInterval(timer);
    clearTimeout(filterTimer);
    for (const [event, fn] of handlers) model.off(event, fn);
    model.off("msg:custom", onMessage);
    root.remove();
  };
}

export default { render };
