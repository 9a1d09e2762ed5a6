// Madang operator console (docs/operator.md, "The browser console").
//
// An adapter in the browser: it renders what the controller pushes (the same view model as the
// terminal view) and sends the operator's commands; it decides nothing about the show. Which
// commands are accepted, and why one is refused, is the controller's answer, shown as it comes.
//
// Protocol (/console/ws): first message {"op":"hello","token","name"}; the controller answers
// "welcome" (role, device list), "denied" (a wrong token: closes, no retry) or "busy" (closes;
// retried). Then it pushes "state", "log" and
// "grid" (only when they change, at most 10 a second); a command {"cmd":..., "id"} gets a
// "reply" {"id","status":"ok"|"error"|"denied","data"}; {"op":"ping"} gets "pong" (liveness).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN = "madang.console.token";
  const NAME = "madang.console.name";
  const PING_MS = 2000;
  const DEAD_MS = 6000; // no pong for this long: the link is dead, reconnect
  const FORCE_CONFIRM_MS = 2000; // a forced GO takes a second press within this (as G G)

  const ui = (window.madangConsole = {
    connected: false, signedIn: false, role: null, source: "", state: null, log: [],
    replies: [], presence: "", sync: "", attempts: 0, denied: null,
    timings: { build_ms: null, grid_ms: [], state_ms: [] }, // render costs (madang bench console)
  });

  // -- the token: from the URL's fragment (never sent to the server) into this tab's storage ----
  function takeToken() {
    const h = new URLSearchParams(location.hash.slice(1));
    const t = h.get("token");
    if (t) {
      sessionStorage.setItem(TOKEN, t);
      if (h.get("name")) sessionStorage.setItem(NAME, h.get("name"));
      history.replaceState(null, "", location.pathname + location.search); // off the address bar
    }
    return sessionStorage.getItem(TOKEN);
  }

  // -- the link -------------------------------------------------------------------------------
  let ws = null;
  let lastPong = 0;
  let retry = null;
  let nextId = 1;

  function connect() {
    retry = null;
    const token = sessionStorage.getItem(TOKEN);
    if (!token) { showSignin(); return; }
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/console/ws";
    ui.attempts += 1;
    setLink(ui.attempts > 1 ? "reconnecting" : "connecting");
    const sock = new WebSocket(url);
    ws = sock;
    sock.onopen = () => {
      lastPong = Date.now();
      sock.send(JSON.stringify({ op: "hello", token, name: sessionStorage.getItem(NAME) || "" }));
    };
    sock.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      lastPong = Date.now();
      handle(msg);
    };
    sock.onclose = () => {
      if (ws !== sock) return;
      ws = null;
      ui.connected = false;
      ui.signedIn = false;
      if (ui.denied) { setLink("denied"); return; } // a wrong token: do not hammer the controller
      setLink("lost");
      const wait = Math.min(5000, 500 * 2 ** Math.min(4, ui.attempts - 1));
      retry = setTimeout(connect, wait);
    };
  }

  setInterval(() => {
    if (!ws || ws.readyState !== WebSocket.OPEN || !ui.signedIn) return;
    if (Date.now() - lastPong > DEAD_MS) { ws.close(); return; } // silent: treat as lost
    ws.send(JSON.stringify({ op: "ping" }));
  }, PING_MS);

  function send(cmd) {
    if (!ws || !ui.signedIn) { toast("Not connected: the command was not sent", false); return; }
    cmd.id = nextId++;
    ws.send(JSON.stringify(cmd));
  }

  function setLink(how) {
    document.body.dataset.link = how;
    const link = $("link");
    const text = { connecting: "connecting…", live: "connected", lost: "CONNECTION LOST",
      reconnecting: "reconnecting…", denied: "signed out" }[how] || how;
    link.textContent = text;
    link.className = "pill " + (how === "live" ? "ok" : how === "connecting" ? "meh" : "bad");
    const lost = how === "lost" || how === "reconnecting";
    $("lost").hidden = !lost || !ui.role;
    $("lost-text").textContent = how === "lost" ? "reconnecting…" : `reconnecting (attempt ${ui.attempts})…`;
    for (const b of document.querySelectorAll("#controls .btn")) b.disabled = how !== "live";
  }

  // -- messages -------------------------------------------------------------------------------
  function handle(msg) {
    switch (msg.type) {
      case "welcome": return welcome(msg);
      case "denied": return denied(msg.reason);
      case "busy": return toast(msg.reason, false); // not a sign-out: the link retries
      case "state": return renderState(msg);
      case "log": return renderLog(msg.lines);
      case "grid": return renderGrid(msg);
      case "reply": return reply(msg);
      default: return undefined;
    }
  }

  function welcome(msg) {
    ui.connected = true;
    ui.signedIn = true;
    ui.attempts = 0;
    ui.denied = null;
    ui.role = msg.role;
    ui.source = msg.source;
    document.body.dataset.role = msg.role;
    $("denied").hidden = true;
    $("signin").hidden = true;
    $("role-banner").textContent = msg.may_drive ? "OPERATOR" : "VIEWER · watch only";
    $("role-banner").title = msg.source;
    const slot = $("controls-slot");
    if (msg.may_drive && !$("controls")) {
      slot.appendChild($("controls-tpl").content.cloneNode(true));
      wireControls();
    } else if (!msg.may_drive) {
      slot.replaceChildren(); // a viewer has no transport controls at all
    }
    buildGrid(msg.devices);
    setLink("live");
  }

  function denied(reason) {
    ui.denied = reason;
    ui.signedIn = false;
    sessionStorage.removeItem(TOKEN);
    $("denied").hidden = false;
    $("denied").textContent = "Not signed in: " + reason;
    showSignin();
  }

  function showSignin() {
    $("signin").hidden = false;
    document.body.dataset.role = "none";
    $("role-banner").textContent = "SIGNED OUT";
  }

  $("signin").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN, $("signin-token").value.trim());
    $("signin-token").value = "";
    ui.denied = null;
    ui.attempts = 0;
    $("denied").hidden = true;
    $("signin").hidden = true;
    connect();
  });

  function reply(msg) {
    ui.replies.push(msg);
    if (ui.replies.length > 50) ui.replies.shift();
    if (msg.status === "ok") {
      const d = msg.data || {};
      toast(`→ ${d.state || "ok"}${d.cue ? " · " + d.cue : ""}`, true);
    } else {
      toast(String(msg.data), false);
    }
  }

  let toastTimer = null;
  function toast(text, ok) {
    const t = $("toast");
    t.textContent = text;
    t.className = ok ? "ok" : "err";
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, ok ? 1500 : 6000); // refusals stay longer
  }

  // -- the state: header, cue list, venue -----------------------------------------------------
  function clock(ns) {
    const neg = ns < 0;
    let ms = Math.floor(Math.abs(ns) / 1e6);
    const h = Math.floor(ms / 3600000); ms -= h * 3600000;
    const m = Math.floor(ms / 60000); ms -= m * 60000;
    const s = Math.floor(ms / 1000); ms -= s * 1000;
    const p = (v, n) => String(v).padStart(n, "0");
    return (neg ? "-" : "") + (h ? `${h}:${p(m, 2)}` : p(m, 2)) + `:${p(s, 2)}.${p(ms, 3)}`;
  }
  function left(ns) {
    if (ns < 60e9) return (ns / 1e9).toFixed(1) + " s";
    const t = Math.floor(ns / 1e9);
    return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, "0")}`;
  }
  function eventName(pattern) {
    const lv = pattern.split("/").filter((p) => p && !["+", "#", "*"].includes(p));
    return lv.length ? lv[lv.length - 1] : pattern;
  }

  function renderState(s) {
    const t0 = performance.now();
    ui.state = s;
    const tr = $("transport");
    tr.textContent = s.state.toUpperCase() + (s.rate !== 1 ? ` ×${s.rate}` : "");
    tr.className = "pill state-" + s.state;
    tr.dataset.state = s.state;
    $("show").textContent = s.show;
    $("venue").textContent = s.venue;
    $("clock").textContent = `${clock(s.show_ns)} / ${clock(s.duration_ns)}`;
    const ctl = $("controller");
    ctl.textContent = s.role || (s.role_live ? "LIVE" : "NOT LIVE");
    ctl.className = "pill " + (s.role_live ? "ok" : "standby-role");
    const gate = $("gate");
    if (s.ready === null || s.ready === undefined) {
      gate.textContent = "sync gate —";
      gate.className = "pill";
    } else {
      gate.textContent = s.ready ? "READY" : s.ready_text;
      gate.className = "pill " + (s.ready ? "ok" : "meh");
    }
    gate.dataset.ready = String(s.ready);
    $("standby-title").textContent = s.standby_cue ? `· standby (GO): ${s.standby_cue}` : "";
    $("debounced").textContent = s.debounced ? `· ${s.debounced} GO double-tap${s.debounced > 1 ? "s" : ""} ignored` : "";
    const goCue = $("go-cue");
    if (goCue) {
      const row = s.cues.find((c) => c.cue === s.standby_cue);
      goCue.textContent = s.standby_cue ? `▶ ${s.standby_cue}${row && row.name ? " · " + row.name : ""}` : "— end of show —";
    }
    const pause = $("pause");
    if (pause) pause.textContent = s.state === "paused" ? "RESUME" : "PAUSE";
    renderCues(s);
    renderVenue(s);
    ui.timings.state_ms.push(performance.now() - t0);
    if (ui.timings.state_ms.length > 100) ui.timings.state_ms.shift();
  }

  let cueKey = "";
  let rows = [];
  let selected = null;
  function renderCues(s) {
    const body = document.querySelector("#cues tbody");
    const key = s.cues.map((c) => c.cue).join("\n");
    if (key !== cueKey) {
      cueKey = key;
      body.replaceChildren();
      rows = s.cues.map((c) => {
        const tr = document.createElement("tr");
        tr.dataset.cue = c.cue;
        for (const cls of ["mark", "n", "cue", "name", "go", "status", "spread", "notes"]) {
          const td = document.createElement("td");
          td.className = cls;
          tr.appendChild(td);
        }
        tr.addEventListener("click", () => select(c.cue));
        body.appendChild(tr);
        return tr;
      });
    }
    let focus = null;
    s.cues.forEach((c, i) => {
      const tr = rows[i];
      const td = tr.children;
      let mark = c.role === "standby" ? "▶" : c.role === "running" ? "●" : "";
      if (c.clock && c.clock.starts_in_ns !== null) mark = "○";
      td[0].textContent = mark;
      td[1].textContent = c.n;
      td[2].textContent = c.cue;
      td[3].textContent = c.name;
      td[4].textContent = c.go;
      const st = status(c, s.state);
      td[5].textContent = st.text;
      td[5].className = "status" + (st.trig ? " trig" : "");
      td[6].textContent = c.spread || "";
      td[7].textContent = c.notes;
      const pending = c.clock && c.clock.starts_in_ns !== null;
      tr.className = (pending ? "pending" : c.role || "") + (c.cue === selected ? " selected" : "");
      tr.dataset.role = c.role || "";
      if (c.role && !focus) focus = tr;
    });
    if (focus && focus.dataset.cue !== renderCues.focus) {
      renderCues.focus = focus.dataset.cue;
      focus.scrollIntoView({ block: "nearest" });
    }
  }

  function status(c, state) {
    const k = c.clock;
    if (k) {
      const parts = [];
      if (k.starts_in_ns !== null) parts.push("starts in " + left(k.starts_in_ns));
      if (k.pre_wait_ns !== null) parts.push("pre-wait " + left(k.pre_wait_ns));
      if (k.action_ns !== null) parts.push("action " + left(k.action_ns));
      if (k.post_wait_ns !== null) parts.push("post-wait " + left(k.post_wait_ns));
      return { text: parts.join(" · ") + (state === "paused" ? " (paused)" : "") };
    }
    const t = c.trigger;
    if (t) {
      let text = `${eventName(t.pattern)} ${t.counted.toLocaleString()} of ${t.count.toLocaleString()}`;
      text += t.timeout_ns !== null ? `, timeout ${left(t.timeout_ns)}, then ${t.on_timeout}` : ", no timeout";
      return { text, trig: true };
    }
    if (c.role === "standby") {
      const playing = state === "armed" || state === "playing";
      if (c.event) return { text: playing ? "waits for " + c.event : "waits for an event", trig: true };
      return { text: playing ? "waits for GO" : "standby", trig: true };
    }
    return { text: "" };
  }

  function select(cue) {
    selected = selected === cue ? null : cue;
    for (const tr of rows) tr.classList.toggle("selected", tr.dataset.cue === selected);
    const at = $("load-at");
    if (at) at.placeholder = selected ? `cue ${selected}` : "s, or tap a cue";
  }

  function fact(dl, k, v, cls) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    if (cls) dd.className = cls;
    dl.append(dt, dd);
  }
  const n = (v) => Number(v).toLocaleString();
  function renderVenue(s) {
    const dl = $("venue-facts");
    dl.replaceChildren();
    fact(dl, "devices", `${n(s.online)} online · ${n(s.late)} late · ${n(s.offline)} offline · of ${n(s.devices)}`,
      s.offline ? "bad-text" : s.late ? "warn" : "");
    let sync = s.pinged ? `${n(s.synced)} of ${n(s.pinged)} clock-synced` : `${n(s.synced)} clock-synced`;
    if (s.over_budget) sync += `, ${n(s.over_budget)} over the ${n(s.budget_us)} µs budget`;
    fact(dl, "sync", sync, s.over_budget ? "warn" : "");
    if (s.worst && s.worst.length) fact(dl, "worst sync", s.worst.map((w) => `${w[0]} ${n(Math.round(w[1]))} µs`).join("  "));
    fact(dl, "acks", `${n(s.acks)} fire reports`);
    fact(dl, "fire error", s.fire_error_p99_us === null ? "—" : `${n(Math.round(s.fire_error_p99_us))} µs p99`);
    fact(dl, "broker", `${s.broker} ${s.broker_connected ? "connected" : "DISCONNECTED"}`, s.broker_connected ? "" : "bad-text");
    fact(dl, "consoles", `${n(s.consoles)} open · you: ${ui.source}`);
    for (const e of (s.errors || []).slice(-3)) fact(dl, "error", e, "bad-text");
  }

  function renderLog(lines) {
    ui.log = lines;
    const ol = $("log");
    ol.replaceChildren();
    for (const l of lines.slice().reverse()) {
      const li = document.createElement("li");
      li.className = l.hint ? "l-hint" : l.ok ? "l-ok" : "l-refused";
      const c = document.createElement("span"); c.className = "dim mono"; c.textContent = l.clock;
      const src = document.createElement("span"); src.className = "src"; src.textContent = l.source; src.title = l.source;
      const body = document.createElement("span");
      const what = document.createElement("span"); what.className = "what"; what.textContent = l.what + " ";
      const det = document.createElement("span"); det.className = "detail"; det.textContent = l.detail;
      body.append(what, det);
      li.append(c, src, body);
      ol.appendChild(li);
    }
  }

  // -- the device grid: one cell per device, grouped by zone ----------------------------------
  let cells = [];
  let devices = [];
  let zones = [];
  const PRESENCE = { o: "online", l: "late", x: "offline", u: "not heard yet", v: "vacant seat" };
  const SYNC = { "-": "not clock-synced (plays on receipt)", w: "no clock model yet", b: "OVER the sync budget", s: "synced" };
  function buildGrid(groups) {
    const t0 = performance.now();
    const grid = $("grid");
    grid.replaceChildren();
    cells = [];
    devices = [];
    zones = [];
    for (const g of groups) {
      const z = document.createElement("div");
      z.className = "zone";
      const h = document.createElement("h3");
      const box = document.createElement("div");
      box.className = "cells";
      const frag = document.createDocumentFragment();
      const idx = [];
      for (const [i, id, kind] of g.devices) {
        const c = document.createElement("i");
        c.className = "c u";
        c.dataset.i = i;
        cells[i] = c;
        devices[i] = { id, kind, zone: g.zone };
        idx.push(i);
        frag.appendChild(c);
      }
      box.appendChild(frag);
      const trouble = document.createElement("div");
      trouble.className = "trouble";
      trouble.hidden = true;
      z.append(h, trouble, box);
      grid.appendChild(z);
      zones.push({ zone: g.zone, h, idx, trouble });
    }
    ui.presence = "";
    ui.sync = "";
    ui.timings.build_ms = performance.now() - t0;
  }

  $("grid").addEventListener("click", (ev) => {
    const c = ev.target.closest(".c");
    if (!c) return;
    for (const o of document.querySelectorAll("#grid .c.sel")) o.classList.remove("sel");
    c.classList.add("sel");
    const i = Number(c.dataset.i);
    const d = devices[i];
    $("device-detail").textContent =
      `${d.id} · zone ${d.zone} · ${d.kind} · ${PRESENCE[ui.presence[i]] || "?"} · ${SYNC[ui.sync[i]] || "?"}`;
    $("device-detail").className = "";
  });

  function renderGrid(msg) {
    const t0 = performance.now();
    const p = msg.presence;
    const s = msg.sync;
    for (let i = 0; i < cells.length; i++) {
      if (p[i] === ui.presence[i] && s[i] === ui.sync[i]) continue;
      const c = cells[i];
      const sel = c.classList.contains("sel");
      c.className = "c " + p[i] + (s[i] === "b" ? " b" : s[i] === "w" ? " w" : "") + (sel ? " sel" : "");
    }
    ui.presence = p;
    ui.sync = s;
    let heard = 0;
    for (const z of zones) {
      const count = { o: 0, l: 0, x: 0, u: 0, v: 0, b: 0, s: 0 };
      const trouble = { x: [], l: [], b: [] };
      for (const i of z.idx) {
        count[p[i]] += 1;
        if (s[i] === "b" || s[i] === "s") count[s[i]] += 1;
        if (p[i] === "x" || p[i] === "l") trouble[p[i]].push(devices[i].id);
        if (s[i] === "b") trouble.b.push(devices[i].id);
      }
      heard += count.o + count.l + count.x;
      z.h.innerHTML = "";
      z.h.append(document.createTextNode(`${z.zone} `));
      const d = document.createElement("span");
      d.className = count.x ? "bad-text" : "dim";
      let text = `${n(z.idx.length)} devices · ${n(count.o)} online`;
      if (count.l) text += ` · ${n(count.l)} late`;
      if (count.x) text += ` · ${n(count.x)} OFFLINE`;
      if (count.s || count.b) text += ` · ${n(count.s)} synced`;
      if (count.b) text += ` · ${n(count.b)} over budget`;
      d.textContent = text;
      z.h.appendChild(d);
      // Which devices are in trouble, by name: no finger has to find a 12-pixel cell on the night.
      const parts = [];
      const names = (ids) => ids.slice(0, 8).join(", ") + (ids.length > 8 ? ` +${n(ids.length - 8)} more` : "");
      if (trouble.x.length) parts.push("offline: " + names(trouble.x));
      if (trouble.l.length) parts.push("late: " + names(trouble.l));
      if (trouble.b.length) parts.push("over budget: " + names(trouble.b));
      z.trouble.textContent = parts.join(" · ");
      z.trouble.hidden = parts.length === 0;
    }
    $("grid").dataset.filled = String(heard);
    ui.timings.grid_ms.push(performance.now() - t0);
    if (ui.timings.grid_ms.length > 100) ui.timings.grid_ms.shift();
  }

  // -- the controls (operators only) ----------------------------------------------------------
  let forceAt = 0;
  let forceTimer = null;
  function forceGo() {
    const b = $("force");
    if (Date.now() - forceAt <= FORCE_CONFIRM_MS) {
      forceAt = 0;
      clearTimeout(forceTimer);
      b.classList.remove("armed-confirm");
      b.textContent = "FORCED GO";
      send({ cmd: "go", force: true });
      return;
    }
    forceAt = Date.now();
    b.classList.add("armed-confirm");
    b.textContent = "AGAIN to force";
    toast("Forced GO goes past the sync gate: press it again within 2 s to confirm", false);
    clearTimeout(forceTimer);
    forceTimer = setTimeout(() => { b.classList.remove("armed-confirm"); b.textContent = "FORCED GO"; forceAt = 0; }, FORCE_CONFIRM_MS);
  }

  function load() {
    const at = $("load-at").value.trim();
    if (selected) send({ cmd: "load", cue: selected });
    else if (at !== "") send({ cmd: "load", at: Number(at) });
    else toast("Load: tap a cue in the list, or type a show time in seconds", false);
  }

  function command(name) {
    if (name === "force") return forceGo();
    if (name === "load") return load();
    return send({ cmd: name });
  }

  function wireControls() {
    for (const b of document.querySelectorAll("#controls [data-cmd]")) {
      b.addEventListener("click", () => {
        b.blur(); // no button keeps the focus: Space is GO and Enter does nothing, as in the terminal
        command(b.dataset.cmd);
      });
    }
  }

  // The terminal's keys, for a console on a laptop (docs/operator.md, "Keys").
  document.addEventListener("keydown", (ev) => {
    if (!$("controls") || ev.target instanceof HTMLInputElement || ev.metaKey || ev.ctrlKey || ev.altKey) return;
    const keys = { " ": "go", Escape: "panic", p: "toggle-pause", P: "toggle-pause", s: "stop", S: "stop",
      a: "arm", A: "arm", ArrowUp: "previous", ArrowLeft: "previous", ArrowDown: "next", ArrowRight: "next", G: "force" };
    const name = keys[ev.key];
    if (!name) return;
    ev.preventDefault(); // Space must not also press the focused button
    if (ev.repeat) return;
    command(name);
  });

  takeToken();
  connect();
})();
