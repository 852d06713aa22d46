// rakit dashboard, the KV section: the keys of a prefix and their live changes.
// Loaded after app.js, whose helpers it uses; every value reaches the page through textContent.
"use strict";

(function () {
  const { $, el, fmt, dash, replaceRows, getJSON, showError, TOKEN_KEY } = window.rakitDashboard;

  // The keys of one prefix, read a page at a time with /kv/range (each page one consistent cut at its
  // revision), kept current by a watch of the prefix from the first page's revision + 1. A change is
  // applied to a row only if it is newer than the row (mod_revision); a key not shown is added only if
  // it falls within the pages read and is newer than the page that covers it. Without a token the watch
  // is an EventSource; with one (EventSource cannot send a header) a long poll in a loop.

  const KV_PAGE = 100;
  const KV_VALUE_CHARS = 80;
  const KV_TITLE_CHARS = 2000;
  const KV_EVENTS_SHOWN = 30;
  const KV_WAIT_S = 20;
  const KV_RETRY_MS = 2000;

  const kv = {
    generation: 0, prefix: "", rows: new Map(), pages: [], more: false, revision: null,
    watchFrom: null, lastEvent: { revision: 0, keys: new Set() }, events: [], source: null,
  };

  const bump = (revision) => { if (kv.revision === null || revision > kv.revision) kv.revision = revision; };
  const keyOrder = (a, b) => (a < b ? -1 : a > b ? 1 : 0);  // keys are ASCII: the server's byte order

  // A row or a put event, with its value as JSON text, made once (a value may be up to 1 MiB).
  const withText = (item) => Object.assign(item, { text: JSON.stringify(item.value) });
  const cut = (text, limit) => (text.length > limit ? text.slice(0, limit - 1) + "…" : text);

  function setWatch(text, kind, title) {
    const node = $("kv-watch");
    node.className = "badge badge-" + kind;
    node.textContent = text;
    if (title) node.title = title;
  }

  function renderKv() {
    const keys = [...kv.rows.keys()].sort(keyOrder);
    replaceRows($("kv-body"), keys.map((key) => {
      const r = kv.rows.get(key);
      return el("tr", { "data-key": key, "data-mod-revision": r.mod_revision, "data-version": r.version },
        el("td", {}, key),
        el("td", { class: "value", title: cut(r.text, KV_TITLE_CHARS) }, cut(r.text, KV_VALUE_CHARS)),
        el("td", { class: "num" }, fmt(r.create_revision)),
        el("td", { class: "num" }, fmt(r.mod_revision)),
        el("td", { class: "num" }, fmt(r.version)),
      );
    }));
    $("kv-empty").hidden = keys.length > 0;
    $("kv-more").hidden = !kv.more;
    $("kv-summary").textContent = (kv.prefix ? "prefix " + kv.prefix : "every key") + " · " + keys.length +
      " shown" + (kv.more ? " (more not read yet)" : "") + " · revision " + dash(kv.revision);
    $("kv-summary").dataset.revision = kv.revision === null ? "" : String(kv.revision);
    $("kv-events").replaceChildren(...kv.events.map((e) => el("li", {
      class: e.type, "data-type": e.type, "data-key": e.key, "data-revision": e.revision,
    }, "rev " + e.revision + "  " + e.type + "  " + e.key +
      (e.type === "put" ? " = " + cut(e.text, KV_VALUE_CHARS) + "  (v" + e.version + ")" : ""))));
    $("kv-events-empty").hidden = kv.events.length > 0;
  }

  let renderPending = false;
  function soonRenderKv() {  // a burst of events renders once
    if (renderPending) return;
    renderPending = true;
    setTimeout(() => { renderPending = false; renderKv(); }, 50);
  }

  function rangePath(after) {
    return "/kv/range?prefix=" + encodeURIComponent(kv.prefix) + "&limit=" + KV_PAGE +
      (after ? "&after=" + encodeURIComponent(after) : "");
  }

  function addPage(data) {
    for (const item of data.items) {
      const row = kv.rows.get(item.key);
      if (!row || item.mod_revision > row.mod_revision) kv.rows.set(item.key, withText(item));
    }
    const last = data.items.length ? data.items[data.items.length - 1].key : null;
    kv.pages.push({ last: last, revision: data.revision });
    kv.more = data.more;
    bump(data.revision);
  }

  // The revision of the page that read `key`, or null when no page read so far covers it.
  function coveredAt(key) {
    for (const page of kv.pages) if (page.last !== null && key <= page.last) return page.revision;
    return kv.more ? null : kv.pages[kv.pages.length - 1].revision;
  }

  function applyEvent(e) {
    bump(e.revision);
    const seen = kv.lastEvent;  // a resumed stream starts again at the last revision: skip what came already
    if (e.revision < seen.revision || (e.revision === seen.revision && seen.keys.has(e.key))) return;
    if (e.revision > seen.revision) { seen.revision = e.revision; seen.keys = new Set(); }
    seen.keys.add(e.key);
    if (e.type === "put") withText(e);
    kv.events.unshift(e);
    kv.events.length = Math.min(kv.events.length, KV_EVENTS_SHOWN);
    const row = kv.rows.get(e.key);
    if (row) {
      if (e.revision <= row.mod_revision) return;
      if (e.type === "delete") kv.rows.delete(e.key);
      else kv.rows.set(e.key, e);
      return;
    }
    const covered = coveredAt(e.key);
    if (e.type === "put" && covered !== null && e.revision > covered) kv.rows.set(e.key, e);
  }

  function kvEvents(gen, events) {
    if (gen !== kv.generation) return false;
    for (const e of events) {
      if (e.type === "compacted") {  // the history no longer reaches back: read again, watch again
        showKv(kv.prefix);
        return false;
      }
      applyEvent(e);
    }
    if (events.length) soonRenderKv();
    return true;
  }

  function watchPath(from) {
    return "/kv/watch?prefix=" + encodeURIComponent(kv.prefix) + "&from_revision=" + from;
  }

  function stopWatch() {
    if (kv.source) { kv.source.close(); kv.source = null; }
  }

  function startWatch(gen) {
    if (gen !== kv.generation) return;
    stopWatch();
    const from = Math.max(kv.watchFrom, kv.lastEvent.revision || 0);
    if (sessionStorage.getItem(TOKEN_KEY) || !window.EventSource) { longPoll(gen, from); return; }
    setWatch("connecting", "wait");
    const source = new EventSource(watchPath(from));
    kv.source = source;
    source.onopen = () => { if (gen === kv.generation) setWatch("watching", "ok", "EventSource " + watchPath(from)); };
    source.onmessage = (msg) => {
      let event;
      try { event = JSON.parse(msg.data); } catch (e) { return; }
      if (!kvEvents(gen, [event])) source.close();
      else showError("kv-error", null);
    };
    source.onerror = () => {  // closed, refused (a token is needed?) or the node went away: start over
      source.close();
      if (gen !== kv.generation) return;
      setWatch("reconnecting", "warn");
      setTimeout(() => startWatch(gen), KV_RETRY_MS);
    };
  }

  async function longPoll(gen, from) {
    setWatch("watching", "ok", "long poll " + watchPath(from) + "&format=json&wait=" + KV_WAIT_S);
    while (gen === kv.generation) {
      let data;
      try {
        data = await getJSON(watchPath(from) + "&format=json&wait=" + KV_WAIT_S, false, (KV_WAIT_S + 10) * 1000);
      } catch (e) {
        if (gen !== kv.generation) return;
        showError("kv-error", e.message || String(e));
        setWatch("reconnecting", "warn");
        await new Promise((resolve) => setTimeout(resolve, KV_RETRY_MS));
        continue;
      }
      if (!kvEvents(gen, data.events)) return;
      showError("kv-error", null);
      setWatch("watching", "ok");
      bump(data.revision);
      // A batch never ends inside a revision: go on after its last event, or after the node's revision.
      from = (data.events.length ? data.events[data.events.length - 1].revision : data.revision) + 1;
      renderKv();
    }
  }

  async function showKv(prefix) {
    const gen = ++kv.generation;
    stopWatch();
    Object.assign(kv, { prefix: prefix, rows: new Map(), pages: [], more: false, revision: null, events: [],
      lastEvent: { revision: 0, keys: new Set() } });
    setWatch("reading", "wait");
    renderKv();
    let data;
    try {
      data = await getJSON(rangePath(null));
    } catch (e) {
      if (gen !== kv.generation) return;
      showError("kv-error", e.message || String(e));
      setWatch("not watching", "bad");
      setTimeout(() => { if (gen === kv.generation) showKv(prefix); }, KV_RETRY_MS * 2);
      return;
    }
    if (gen !== kv.generation) return;
    showError("kv-error", null);
    addPage(data);
    kv.watchFrom = data.revision + 1;
    renderKv();
    startWatch(gen);
  }

  async function moreKv() {
    const gen = kv.generation;
    const last = kv.pages.length ? kv.pages[kv.pages.length - 1].last : null;
    if (!kv.more || last === null) return;
    $("kv-more").disabled = true;
    try {
      const data = await getJSON(rangePath(last));
      if (gen !== kv.generation) return;
      addPage(data);
      showError("kv-error", null);
      renderKv();
    } catch (e) {
      showError("kv-error", e.message || String(e));
    } finally {
      $("kv-more").disabled = false;
    }
  }

  $("kv-form").addEventListener("submit", (e) => { e.preventDefault(); showKv($("kv-prefix").value.trim()); });
  $("kv-more").addEventListener("click", () => moreKv());
  showKv("");
})();
