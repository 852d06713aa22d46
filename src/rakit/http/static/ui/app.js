// rakit dashboard: polls the node that served this page, about once a second.
// Plain JS, no dependencies; every value reaches the page through textContent.
"use strict";

(function () {
  const PERIOD_MS = 1000;
  const HIDDEN_PERIOD_MS = 5000;
  const REQUEST_TIMEOUT_MS = 4000;
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key.startsWith("data-")) node.setAttribute(key, String(value));
      else if (value === false) continue;
      else if (key === "class") node.className = value;
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const dash = (v) => (v === null || v === undefined ? "–" : v);
  const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : dash(n));

  function badge(text, kind) {
    return el("span", { class: "badge badge-" + kind }, text);
  }

  function replaceRows(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  // -- API token (nodes started with --auth-tokens) ---------------------------
  // Open the page as /ui#token=<token>, or enter it when asked; it lives in this tab's
  // sessionStorage only (never in a URL sent to the server). The token needs the admin grant.
  const TOKEN_KEY = "rakit-token";
  let tokenDeclined = false;

  (function tokenFromFragment() {
    const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (!match) return;
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  })();

  function askForToken() {
    if (tokenDeclined) return false;
    const token = window.prompt("This node wants an API token (with the admin grant):");
    if (!token || !token.trim()) { tokenDeclined = true; return false; }
    sessionStorage.setItem(TOKEN_KEY, token.trim());
    return true;
  }

  async function getJSON(path, retried, timeoutMs) {
    const limit = timeoutMs || REQUEST_TIMEOUT_MS;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), limit);
    try {
      const token = sessionStorage.getItem(TOKEN_KEY);
      const headers = token ? { Authorization: "Bearer " + token } : {};
      const resp = await fetch(path, { cache: "no-store", signal: controller.signal, headers: headers });
      let body = null;
      try { body = await resp.json(); } catch (e) { body = null; }
      if (resp.status === 401 && !retried) {
        const current = sessionStorage.getItem(TOKEN_KEY);
        if (current && current === token) sessionStorage.removeItem(TOKEN_KEY);  // refused: ask again
        if (sessionStorage.getItem(TOKEN_KEY) || askForToken()) {
          clearTimeout(timer);
          return getJSON(path, true, timeoutMs);
        }
      }
      if (!resp.ok) {
        const code = body && body.error ? body.error : "HTTP " + resp.status;
        const detail = body && body.detail ? ": " + body.detail : "";
        throw new Error(resp.status + " " + code + detail);
      }
      return body;
    } catch (e) {
      if (e.name === "AbortError") throw new Error("no answer within " + limit / 1000 + " s");
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  function showError(id, error) {
    const node = $(id);
    node.hidden = !error;
    node.textContent = error ? "— " + error : "";
  }

  // -- cluster ----------------------------------------------------------------

  const failures = { cluster: false, locks: false, coordination: false, queue: false };

  function updateLive() {
    const live = $("live");
    const bad = Object.values(failures).filter(Boolean).length;
    if (failures.cluster) { live.className = "badge badge-bad"; live.textContent = "node unreachable"; }
    else if (bad) { live.className = "badge badge-warn"; live.textContent = "partial"; }
    else { live.className = "badge badge-ok"; live.textContent = "live"; }
  }

  function roleBadge(node) {
    if (!node.up) return badge("down", "bad");
    if (node.role === "leader") return badge("leader", "lead");
    if (node.role === "candidate") return badge("candidate", "warn");
    return badge(dash(node.role), "wait");
  }

  function healthBadge(health) {
    return badge(health, health === "ok" ? "ok" : health === "degraded" ? "warn" : "bad");
  }

  function renderCluster(data) {
    $("served-by").textContent = data.node;
    $("leader").textContent = dash(data.leader);
    $("term").textContent = dash(data.term);
    $("updated").textContent = new Date(data.generated_at * 1000).toLocaleTimeString();

    replaceRows($("nodes-body"), data.nodes.map((n) => el("tr", {
      class: [n.up ? "" : "down", n.role === "leader" && n.up ? "leader" : ""].join(" ").trim() || null,
      "data-node-id": n.node_id,
      "data-role": n.up ? n.role : "down",
      "data-health": n.health,
    },
      el("td", { title: n.url }, n.node_id, n.local ? el("small", {}, " (this page)") : null),
      el("td", {}, roleBadge(n)),
      el("td", {}, dash(n.term)),
      el("td", {}, dash(n.leader_id)),
      el("td", { class: "num" }, fmt(n.commit_index)),
      el("td", { class: "num" }, fmt(n.last_applied)),
      el("td", { class: "num" }, fmt(n.last_log_index)),
      el("td", {}, healthBadge(n.health)),
      el("td", { class: "num" }, n.latency_ms === null ? "–" : n.latency_ms.toFixed(1) + " ms"),
      el("td", { class: "err" }, n.error || n.cache_error || ""),
    )));

    replaceRows($("cache-body"), data.nodes.map((n) => {
      const c = n.cache;
      if (!c) {
        return el("tr", { class: "down", "data-node-id": n.node_id },
          el("td", {}, n.node_id), el("td", { class: "err", colSpan: 9 }, n.cache_error || n.error || "no answer"));
      }
      const lookups = c.hits + c.misses;
      return el("tr", { "data-node-id": n.node_id, "data-serving": c.serving },
        el("td", {}, n.node_id),
        el("td", {}, c.serving ? badge("serving", "ok") : badge("not serving", "warn")),
        el("td", { class: "num", "data-field": "size" }, fmt(c.size)),
        el("td", { class: "num" }, fmt(c.capacity)),
        el("td", { class: "num" }, fmt(c.hits)),
        el("td", { class: "num" }, fmt(c.misses)),
        el("td", { class: "num" }, lookups ? (100 * c.hits / lookups).toFixed(1) : "–"),
        el("td", { class: "num" }, fmt(c.peer_fetches)),
        el("td", { class: "num" }, fmt(c.evictions)),
        el("td", { class: "num" }, fmt(c.invalidations_sent)),
      );
    }));

    replaceRows($("kv-nodes-body"), data.nodes.map((n) => {
      const k = n.kv;
      if (!k) {
        return el("tr", { class: "down", "data-node-id": n.node_id },
          el("td", {}, n.node_id), el("td", { class: "err", colSpan: 5 }, n.error || "no KV counters"));
      }
      return el("tr", { "data-node-id": n.node_id, "data-revision": k.revision, "data-watchers": k.watchers },
        el("td", {}, n.node_id),
        el("td", { class: "num" }, fmt(k.revision)),
        el("td", { class: "num" }, fmt(k.keys)),
        el("td", { class: "num" }, fmt(k.watchers)),
        el("td", { class: "num" }, fmt(k.history_events)),
        el("td", { class: "num" }, fmt(k.compact_revision)),
      );
    }));
  }

  // -- locks ------------------------------------------------------------------

  function chip(text, mode, title) {
    return el("span", { class: "chip " + (mode || ""), title: title || "" }, text);
  }

  function renderLocks(data) {
    const rows = data.resources.map((r) => el("tr", {
      "data-resource": r.resource,
      "data-mode": r.mode || "free",
      "data-holders": r.holders.map((h) => h.client_id).join(","),
      "data-waiters": r.waiters.map((w) => w.client_id).join(","),
    },
      el("td", {}, r.resource),
      el("td", {}, r.mode ? badge(r.mode, r.mode === "exclusive" ? "warn" : "ok") : badge("free", "wait")),
      el("td", {}, ...(r.holders.length ? r.holders.map((h) =>
        chip(h.client_id + " (" + h.fencing_token + ")", h.mode, "ttl " + h.ttl + " s")) : ["–"])),
      el("td", {}, ...(r.waiters.length ? r.waiters.map((w, i) =>
        chip((i + 1) + ". " + w.client_id + (w.upgrade ? " ↑" : ""), w.mode, w.mode + (w.upgrade ? " (upgrade)" : ""))) : ["–"])),
      el("td", { class: "num" }, dash(r.fencing_token)),
      el("td", {}, r.delayed ? badge("delayed", "warn") : r.lock_delay ? r.lock_delay + " s" : "–"),
    ));
    replaceRows($("locks-body"), rows);
    $("locks-empty").hidden = rows.length > 0;
    $("locks-summary").textContent = data.active + " active of " + data.count + " resources" +
      (data.truncated ? " (first " + data.resources.length + " shown)" : "") + " · leader " + data.node +
      " · index " + data.index;

    $("edges").replaceChildren(...data.edges.map((e) => el("li", {
      "data-from": e.from, "data-to": e.to, "data-resource": e.resource,
    }, e.from + " → " + e.to + "  [" + e.resource + (e.kind === "queued" ? ", queued ahead" : "") + "]")));
    $("edges-empty").hidden = data.edges.length > 0;
    drawGraph(data.edges, new Set(data.resources.flatMap((r) => r.holders.map((h) => h.client_id))));
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A circle of clients with arrows waiter -> holder (at most 40 clients drawn).
  function drawGraph(edges, holders) {
    const graph = $("graph");
    const names = [...new Set(edges.flatMap((e) => [e.from, e.to]))].slice(0, 40);
    graph.hidden = names.length === 0;
    if (!names.length) { graph.replaceChildren(); return; }
    const width = 520, height = 220, cx = width / 2, cy = height / 2;
    const radius = names.length === 1 ? 0 : Math.min(cx, cy) - 30;
    const at = new Map(names.map((name, i) => {
      const angle = (2 * Math.PI * i) / names.length - Math.PI / 2;
      return [name, [cx + radius * Math.cos(angle), cy + radius * Math.sin(angle)]];
    }));
    graph.setAttribute("viewBox", "0 0 " + width + " " + height);
    const defs = svg("defs", {});
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8a94a3" }));
    defs.append(marker);
    const parts = [defs];
    const r = 18;
    for (const e of edges) {
      if (!at.has(e.from) || !at.has(e.to)) continue;
      const [x1, y1] = at.get(e.from), [x2, y2] = at.get(e.to);
      const len = Math.hypot(x2 - x1, y2 - y1) || 1;
      const ux = (x2 - x1) / len, uy = (y2 - y1) / len;
      parts.push(svg("line", { x1: x1 + ux * r, y1: y1 + uy * r, x2: x2 - ux * r, y2: y2 - uy * r,
        "marker-end": "url(#arrow)" }));
    }
    for (const name of names) {
      const [x, y] = at.get(name);
      parts.push(svg("circle", { cx: x, cy: y, r: r, class: holders.has(name) ? "holder" : "" }));
      parts.push(svg("text", { x: x, y: y + r + 12, "text-anchor": "middle" }, name));
    }
    graph.replaceChildren(...parts);
  }

  // -- sessions, semaphores, elections ----------------------------------------

  function more(truncated, shown) {
    return truncated ? " (first " + shown + " shown)" : "";
  }

  function renderCoordination(data) {
    const t = data.totals;
    const sems = data.semaphores.map((s) => el("tr", {
      "data-semaphore": s.name,
      "data-holders": s.holders.map((h) => h.client_id).join(","),
      "data-waiters": s.waiters.map((w) => w.client_id).join(","),
    },
      el("td", {}, s.name),
      el("td", { class: "num" }, fmt(s.limit)),
      el("td", { class: "num", "data-field": "available" }, fmt(s.available)),
      el("td", {}, ...(s.holders.length ? s.holders.map((h) =>
        chip(h.client_id + " ×" + h.permits + " (" + h.fencing_token + ")", "shared")) : ["–"])),
      el("td", {}, ...(s.waiters.length ? s.waiters.map((w, i) =>
        chip((i + 1) + ". " + w.client_id + " ×" + w.permits, "")) : ["–"])),
    ));
    replaceRows($("semaphores-body"), sems);
    $("semaphores-empty").hidden = sems.length > 0;
    $("semaphores-summary").textContent = t.semaphores + " in use · " + t.permits_held + " of " + t.permits_limit +
      " permits held · " + t.semaphore_waiters + " waiting" + more(data.truncated.semaphores, sems.length) +
      " · leader " + data.node + " · index " + data.index;

    const elections = data.elections.map((e) => el("tr", { "data-election": e.name, "data-leader": e.leader || "" },
      el("td", {}, e.name),
      el("td", {}, e.leader ? badge(e.leader, "ok") : badge("none", "wait")),
      el("td", { class: "num" }, dash(e.term)),
      el("td", {}, ...(e.candidates.length ? e.candidates.map((c, i) => chip((i + 1) + ". " + c, "")) : ["–"])),
    ));
    replaceRows($("elections-body"), elections);
    $("elections-empty").hidden = elections.length > 0;
    $("elections-summary").textContent = t.elections + " in use · " + t.elections_led + " with a leader · " +
      t.candidates_waiting + " candidates waiting" + more(data.truncated.elections, elections.length);

    const sessions = data.sessions.map((s) => el("tr", { "data-client": s.client_id },
      el("td", {}, el("code", {}, s.session_id)),
      el("td", {}, s.client_id),
      el("td", { class: "num" }, fmt(s.ttl) + " s"),
      el("td", { class: "num" }, s.lock_delay ? s.lock_delay + " s" : "–"),
      el("td", { class: "num" }, fmt(s.holds)),
    ));
    replaceRows($("sessions-body"), sessions);
    $("sessions-empty").hidden = sessions.length > 0;
    $("sessions-summary").textContent = t.sessions + " live" + more(data.truncated.sessions, sessions.length);
  }

  // -- queue ------------------------------------------------------------------

  function renderQueue(data) {
    const rows = data.topics.map((t) => el("tr", { "data-topic": t.topic, "data-owner": t.owner },
      el("td", {}, t.topic),
      el("td", { class: "num", "data-field": "ready" }, fmt(t.ready)),
      el("td", { class: "num", "data-field": "in_flight" }, fmt(t.in_flight)),
      el("td", { class: "num", "data-field": "dead" }, fmt(t.dead)),
      el("td", {}, t.owner),
    ));
    replaceRows($("topics-body"), rows);
    $("topics-empty").hidden = rows.length > 0;
    $("topics-summary").textContent = data.topics.length + " topic" + (data.topics.length === 1 ? "" : "s") +
      (data.truncated ? " (more not shown)" : "");
  }

  // What kv.js (the KV section) shares with this file.
  window.rakitDashboard = { $, el, fmt, dash, replaceRows, getJSON, showError, TOKEN_KEY };

  // -- polling ----------------------------------------------------------------

  function poll(name, path, render, errorId) {
    async function once() {
      const started = performance.now();
      try {
        render(await getJSON(path));
        failures[name] = false;
        showError(errorId, null);
      } catch (e) {
        failures[name] = true;
        showError(errorId, e.message || String(e));
      }
      updateLive();
      const period = document.hidden ? HIDDEN_PERIOD_MS : PERIOD_MS;
      setTimeout(once, Math.max(0, period - (performance.now() - started)));
    }
    once();
  }

  poll("cluster", "/cluster/overview", renderCluster, "cluster-error");
  poll("locks", "/lock/table", renderLocks, "locks-error");
  poll("coordination", "/coordination/table", renderCoordination, "coordination-error");
  poll("queue", "/queue/topics", renderQueue, "queue-error");
})();
