// The Madang light page: a phone (or a WebXR browser) becomes an anonymous `app` device.
//
// An independent implementation of docs/protocol.md over WebSocket ("The audience"): no
// controller code is shared. The device clock is performance.timeOrigin + performance.now(), in
// integer nanoseconds (BigInt: instants since 1970 do not fit a double). It answers pings at
// once, keeps the clock model the controller sends, executes every cue at the device-clock
// instant the model gives, reports what it fired, and shows the look a `light:` action names:
// a colour (and strobe), a scene, a wave across the seats, an image one pixel per phone, each
// computed here from the seat's position and the synced clock.
//
// window.madangRecord: every cue it executed, with the instants (device clock, and mapped back
// to the show clock), for tests and for the curious. window.madang: state and tap()/vote().
"use strict";
(() => {
  const NS = 1000000000n;
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  const light = $("light"), dim = $("dim"), sceneEl = $("scene"), statusEl = $("status");

  // -- the device clock ---------------------------------------------------------------------
  const origin = BigInt(Math.round(performance.timeOrigin * 1000)) * 1000n; // us resolution
  const nowNs = () => origin + BigInt(Math.round(performance.now() * 1e6));
  const boot = nowNs();

  // Integers above 2^53 (instants in ns) lose digits in JSON.parse: quote them first. The
  // controller's numbers never sit inside strings it sends in this position.
  const BIG = /([:,\[]\s*)(-?\d{16,})(?=\s*[,\]}])/g;
  const parse = (text) => JSON.parse(text.replace(BIG, '$1"$2"'));
  const big = (v) => (typeof v === "string" || typeof v === "number" ? BigInt(v) : null);

  const record = [];
  const state = {
    device: null, root: null, zone: null, seat: null, position: null, bounds: null, show: "",
    connected: false, model: null, pongs: 0, controller: null, dropped: 0, fired: 0, floor: null,
    staleTerm: 0,
    media: {}, params: { brightness: 1 },
  };
  window.madangRecord = record;
  window.madang = { state, tap: () => tap(), vote: (choice) => vote(choice) };

  // -- the clock model (docs/protocol.md, "The clock model") -------------------------------
  function toLocal(at) {
    const m = state.model;
    if (!m) return null;
    const num = m.drift * (at - m.epoch);
    return at + m.offset + (num >= 0n ? (num + NS / 2n) / NS : (num - NS / 2n) / NS);
  }
  function toShow(local) {
    const m = state.model;
    if (!m) return null;
    const guess = local - m.offset;
    return guess - (m.drift * (guess - m.epoch)) / NS;
  }

  // -- the connection ------------------------------------------------------------------------
  let ws = null, heartbeat = null, retry = 1000;
  // Every controller's audience address, this page's own first (a hot-standby pair: the welcome's
  // `controllers`): after a close the page tries the next one, so it finds the standby after a
  // takeover (docs/standby.md). Terms keep a replaced controller's commands out (termOk).
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let addresses = [`${scheme}//${location.host}/audience/ws`], at = 0;
  function learn(listed) {  // the one connected now first, then the others as listed
    if (!listed.length) return;
    const here = addresses[at % addresses.length];
    const next = [here, ...listed.filter((u) => u !== here)].slice(0, 8);
    if (next.join(" ") !== addresses.join(" ")) { addresses = next; at = 0; }
  }
  function url() {
    const q = new URLSearchParams();
    for (const k of ["seat", "zone"]) if (params.get(k)) q.set(k, params.get(k));
    const again = sessionStorage.getItem("madang.rejoin");
    if (again) {
      const [device, token] = again.split(" ");
      q.set("device", device); q.set("rejoin", token);
    }
    return `${addresses[at % addresses.length]}?${q}`;
  }
  function send(topic, body) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(`{"topic":${JSON.stringify(topic)},"payload":${body}}`);
  }
  function status(st) {
    send(`${state.root}/status`, `{"state":"${st}","boot":${boot},"proto":1,"local":${nowNs()}}`);
  }
  function connect() {
    statusEl.textContent = "connecting…";
    ws = new WebSocket(url());
    ws.onmessage = (ev) => receive(ev.data);
    ws.onclose = (ev) => {
      state.connected = false;
      clearInterval(heartbeat);
      statusEl.textContent = ev.code === 1013 ? "the audience is full here; retrying…" : "reconnecting…";
      at = (at + 1) % addresses.length;  // the next controller (the same one when there is one)
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  function receive(text) {
    let env;
    try {
      if (text.length > 65536) throw new Error("too large");
      env = parse(text);
    } catch (e) {
      state.dropped++;
      return;
    }
    const topic = env.topic, msg = env.payload;
    if (typeof topic !== "string" || msg === null || typeof msg !== "object") { state.dropped++; return; }
    if (topic === "madang/ws/welcome") return welcome(msg);
    if (topic === `${state.root}/ping`) return pong(msg);
    const commands = topic === `${state.root}/clock` || topic === "madang/controller/state" ||
                     topic === "madang/cue" || topic.startsWith("madang/cue/");
    if (commands && !termOk(msg)) return;
    if (topic === `${state.root}/clock`) return clockModel(msg);
    if (topic === "madang/controller/state") {
      state.controller = msg;
      if (Array.isArray(msg.web)) learn(msg.web.filter((u) => typeof u === "string" && /^https?:\/\/[^\s/?#]+$/.test(u))
        .map((u) => `${u.startsWith("https:") ? "wss:" : "ws:"}//${u.split("//")[1]}/audience/ws`));
      return showStatus();
    }
    if (topic === "madang/cue" || topic.startsWith("madang/cue/")) return cue(msg);
  }

  // Controller terms (docs/protocol.md, "Controller terms"): obey the highest term heard, drop
  // what a replaced controller says. A message without a term is valid.
  function termOk(msg) {
    if (msg.term === undefined) return true;
    if (!Number.isInteger(msg.term) || msg.term < 1) { state.dropped++; return false; }
    if (state.floor !== null && msg.term < state.floor) { state.staleTerm++; return false; }
    if (state.floor === null || msg.term > state.floor) state.floor = msg.term;
    return true;
  }

  function welcome(w) {
    Object.assign(state, {
      device: w.device, root: w.root, zone: w.zone, seat: w.seat, position: w.position,
      bounds: w.bounds, show: w.show || "", tapTopic: w.tap, voteTopic: w.vote, connected: true,
    });
    sessionStorage.setItem("madang.rejoin", `${w.device} ${w.rejoin}`);
    learn(Array.isArray(w.controllers) ? w.controllers.filter((u) => typeof u === "string" &&
      /^wss?:\/\/[^\s/?#]+\/[^\s?#]*$/.test(u) && u.length < 512) : []);
    for (const [name, src] of Object.entries(w.media || {})) loadImage(name, src);
    retry = 1000;
    status("ready");
    clearInterval(heartbeat);
    heartbeat = setInterval(() => status("alive"), 5000);
    showStatus();
  }

  function pong(p) {
    const t2 = nowNs();
    if (p.seq === undefined || p.t1 === undefined) { state.dropped++; return; }
    const t3 = nowNs();
    send(`${state.root}/pong`, `{"seq":${Number(p.seq)},"t1":${big(p.t1)},"t2":${t2},"t3":${t3}}`);
    state.pongs++;
  }

  function clockModel(m) {
    try {
      state.model = { epoch: big(m.epoch), offset: big(m.offset_ns), drift: big(m.drift_ppb),
                      uncertainty: Number(m.uncertainty_ns) };
    } catch (e) { state.dropped++; }
    showStatus();
  }

  function showStatus() {
    const c = state.controller ? state.controller.state : "…";
    const seat = state.seat ? `seat ${state.seat}` : state.zone || "";
    statusEl.textContent = `${seat} · ${state.model ? "in sync" : "syncing…"} · ${c}`;
  }

  // -- cues (docs/protocol.md, "Cues") --------------------------------------------------------
  const seen = new Set();
  let pending = [];      // {local, msg, n}, sorted by local
  let timer = null, counter = 0;
  // Timers are millisecond-grained. ?spin=MS wakes that early and spins on the clock for the
  // rest: worth it on a phone with a core to itself; where many pages share a machine the spins
  // steal each other's time (measured: 20 pages on 2 cores, spread 9-16 ms with a 1.5 ms spin,
  // 3-9 ms without), so the default is none.
  const WAKE_EARLY_MS = Math.min(5, Math.max(0, Number(params.get("spin")) || 0));

  function cue(msg) {
    let key;
    try { key = `${msg.show}\u0000${msg.cue}\u0000${msg.seq}`; } catch (e) { state.dropped++; return; }
    if (!msg.op || typeof msg.op !== "object") return;
    if (seen.has(key)) {
      // A repeat. One under a higher term replaces a copy still pending (a new controller
      // re-sends what is to come under the same keys).
      const p = pending.find((q) => `${q.msg.show}\u0000${q.msg.cue}\u0000${q.msg.seq}` === key);
      if (p && msg.term !== undefined && (p.msg.term === undefined || msg.term > p.msg.term)) p.msg = msg;
      return;
    }
    seen.add(key);
    if (msg.op.panic) { pending = []; return execute(msg, nowNs(), true); }
    if (msg.op.state) return execute(msg, nowNs(), true);
    const at = big(msg.at);
    const local = at === null ? null : toLocal(at);
    if (local === null) return execute(msg, nowNs(), false); // no model yet: on receipt
    pending.push({ local, msg, n: counter++ });
    pending.sort((a, b) => (a.local < b.local ? -1 : a.local > b.local ? 1 : a.n - b.n));
    arm();
  }

  function arm() {
    clearTimeout(timer);
    if (!pending.length) return;
    const ms = Number(pending[0].local - nowNs()) / 1e6;
    timer = setTimeout(due, Math.max(0, ms - WAKE_EARLY_MS)); // wake early, finish on the clock
  }

  function due() {
    const first = pending[0];
    if (!first) return;
    // The last stretch: timers are millisecond-grained, the clock is not.
    const stop = performance.now() + 2 * WAKE_EARLY_MS;
    while (nowNs() < first.local && performance.now() < stop) { /* spin */ }
    const now = nowNs();
    while (pending.length && pending[0].local <= now) {
      const p = pending.shift();
      if (p.msg.term !== undefined && state.floor !== null && p.msg.term < state.floor) {
        // Planned by a controller that has been replaced: never fires; its successor may resend.
        state.staleTerm++;
        seen.delete(`${p.msg.show}\u0000${p.msg.cue}\u0000${p.msg.seq}`);
        continue;
      }
      execute(p.msg, nowNs(), true, p.local);
    }
    arm();
  }

  function execute(msg, local, synced, planned) {
    const op = msg.op;
    const entry = {
      show: msg.show, cue: msg.cue, seq: msg.seq, at: String(msg.at), local: String(local),
      show_clock: state.model ? String(toShow(local)) : null, synced: !!(synced && state.model),
      op: Object.keys(op)[0], late_us: planned === undefined ? null : Number(local - planned) / 1000,
    };
    record.push(entry);
    state.fired++;
    const start = planned === undefined ? local : planned;
    if (op.mqtt) applyMqtt(op.mqtt.topic, op.mqtt.payload, start);
    else if (op.fade) startFade(op.fade, start);
    else if (op.state) {
      for (const [k, v] of Object.entries(op.state.params || {})) if (typeof v === "number") state.params[k] = v;
      for (const [t, p] of Object.entries(op.state.mqtt || {})) applyMqtt(t, p, local);
    } else if (op.panic) {
      fades.clear();
      look = { color: "#000000", t0: local };
      state.params.brightness = 0;
    }
    render();
    // The report can wait: at the instant, every phone of the venue wants the network at once.
    const report = `{"show":${JSON.stringify(msg.show)},"cue":${JSON.stringify(msg.cue)},` +
                   `"seq":${Number(msg.seq)},"local":${local},"synced":${entry.synced}}`;
    setTimeout(() => send(`${state.root}/fired`, report), 20 + Math.random() * 200);
  }

  // -- looks ----------------------------------------------------------------------------------
  let look = { color: "#000000", t0: boot };
  const images = {};

  function applyMqtt(topic, payload, t0) {
    if (!payload || typeof payload !== "object") return;
    if (topic === "madang/light") look = Object.assign({ t0 }, payload);
    else if (payload.scene || payload.color) look = Object.assign({ t0 }, look, payload);
  }

  function loadImage(name, src) {
    const img = new Image();
    img.onload = () => {
      const c = document.createElement("canvas");
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      const g = c.getContext("2d", { willReadFrequently: true });
      g.drawImage(img, 0, 0);
      images[name] = { w: c.width, h: c.height, data: g.getImageData(0, 0, c.width, c.height).data };
    };
    img.src = src;
  }

  const fades = new Map();
  function startFade(f, t0) {
    const from = typeof f.from === "number" ? f.from : (state.params[f.param] ?? 0);
    fades.set(f.param, { from, to: f.to, t0, dur: BigInt(f.duration_ns || 0), ease: (f.ease || {}).kind || "linear" });
  }
  function ease(kind, x) {
    const m = /^(in-out|in|out)-(quad|cubic|quart|quint|sine|expo|circ)$/.exec(kind);
    if (kind === "hold") return x < 1 ? 0 : 1;
    if (!m) return x; // linear, and the curves this page does not draw
    const fn = {
      quad: (t) => t * t, cubic: (t) => t ** 3, quart: (t) => t ** 4, quint: (t) => t ** 5,
      sine: (t) => 1 - Math.cos((t * Math.PI) / 2), expo: (t) => (t === 0 ? 0 : 2 ** (10 * t - 10)),
      circ: (t) => 1 - Math.sqrt(1 - t * t),
    }[m[2]];
    if (m[1] === "in") return fn(x);
    if (m[1] === "out") return 1 - fn(1 - x);
    return x < 0.5 ? fn(2 * x) / 2 : 1 - fn(2 - 2 * x) / 2;
  }

  function hex(c) { return "#" + c.map((v) => v.toString(16).padStart(2, "0")).join(""); }

  function colourNow(now) {
    const l = look;
    const secs = Number(now - l.t0) / 1e9;
    if (l.wave && Array.isArray(l.wave.colors) && l.wave.colors.length) {
      const w = l.wave, pos = state.position, b = state.bounds;
      if (!pos || !b) return "#101010";
      const a = (Number(w.direction) || 0) * Math.PI / 180, ux = Math.cos(a), uy = Math.sin(a);
      const start = Math.min(b[0] * ux + b[1] * uy, b[2] * ux + b[1] * uy, b[0] * ux + b[3] * uy, b[2] * ux + b[3] * uy);
      const s = secs * (Number(w.speed) || 1) - (pos[0] * ux + pos[1] * uy - start);
      if (s < 0) return "#000000";
      return w.colors[Math.floor(s / (Number(w.width) || 1)) % w.colors.length];
    }
    if (l.image) {
      const img = images[l.image.name], pos = state.position, b = state.bounds;
      if (!img || !pos || !b) return "#101010";
      const fx = b[2] > b[0] ? (pos[0] - b[0]) / (b[2] - b[0]) : 0.5;
      const fy = b[3] > b[1] ? (b[3] - pos[1]) / (b[3] - b[1]) : 0.5; // the image's top row: the back
      const x = Math.round(fx * (img.w - 1)), y = Math.round(fy * (img.h - 1));
      const i = (y * img.w + x) * 4;
      return hex([img.data[i], img.data[i + 1], img.data[i + 2]]);
    }
    if (l.strobe) {
      const on = Math.floor(secs * Number(l.strobe) * 2) % 2 === 0;
      return on ? l.color || "#ffffff" : "#000000";
    }
    return l.color || "#000000";
  }

  let shown = { bg: "", dim: "", scene: null }, animating = false;
  function render() { // now, and on every frame while something moves
    if (!animating) { animating = true; requestAnimationFrame(frame); }
  }
  function frame() {
    const now = nowNs();
    for (const [param, f] of fades) {
      const x = f.dur > 0n ? Math.min(1, Math.max(0, Number(now - f.t0) / Number(f.dur))) : 1;
      if (now >= f.t0) state.params[param] = f.from + (f.to - f.from) * ease(f.ease, x);
      if (x >= 1) fades.delete(param);
    }
    const bg = colourNow(now);
    const bright = state.params.brightness;
    const op = String(1 - Math.max(0, Math.min(1, typeof bright === "number" ? bright : 1)));
    const scene = look.scene || "";
    if (bg !== shown.bg) light.style.background = shown.bg = bg; // touch the page only on a change
    if (op !== shown.dim) dim.style.opacity = shown.dim = op;
    if (scene !== shown.scene) sceneEl.textContent = shown.scene = scene;
    const moving = fades.size > 0 || look.strobe || look.wave || (look.image && !images[look.image.name]);
    if (moving) requestAnimationFrame(frame);
    else animating = false;
  }

  // -- the audience's voice -------------------------------------------------------------------
  function tap() {
    if (!state.tapTopic) return false;
    send(state.tapTopic, `{"local":${nowNs()}}`);
    return true;
  }
  function vote(choice) {
    if (!state.voteTopic || !/^[a-z0-9][a-z0-9-]{0,31}$/.test(choice)) return false;
    send(state.voteTopic + choice, `{"local":${nowNs()}}`);
    return true;
  }
  $("tap").addEventListener("click", tap);

  // -- start ----------------------------------------------------------------------------------
  render();
  if (params.get("seat") || params.get("zone") || params.get("join")) {
    connect();
  } else {
    $("join").style.display = "flex";
    $("join-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const seat = $("seat").value.trim();
      if (seat) params.set("seat", seat);
      $("join").style.display = "none";
      connect();
    });
  }
})();
