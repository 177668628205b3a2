// Kudos live client: an ES module, no dependencies, served by every Kudos web process at
// /static/kudos-client.js. It speaks the websocket protocol of docs/protocol.md (version 1):
// subscribe, a snapshot then deltas applied to each channel's state, resume after a gap or a
// reconnect, reconnect with backoff. The page (app.js) is built on it; docs/clients.md says how
// to use it elsewhere:
//
//   import { KudosClient } from "http://kudos.example:8000/static/kudos-client.js";
//   const live = new KudosClient({ onUpdate: (u) => console.log(u.channel, u.kind, u.entries) });
//   live.subscribe("board:week", { limit: 10 });
//   live.connect();
//
// The same state machine in Python: kudos/subscriptions.py (with kudos/client.py).

export const PROTOCOL = 1;
/** Error codes after which a channel can never be followed as asked (others are retried). */
export const FATAL_CODES = new Set(["bad_request", "bad_channel", "unknown_board", "too_many_subscriptions"]);
const KINDS = ["board", "member", "cohort", "alerts"];
const MAX_LIMIT = 100;
const MAX_COHORT = 100;
const RETRY_MS = 1000; // after "unavailable" (Redis down for a moment) or a malformed frame
const HELLO_MS = 1500; // a server that sends no hello: go on without it
const SEND_RATE = 15; // messages a second after a burst of SEND_BURST: under the server's 20/s, 40
const SEND_BURST = 30;
const MAX_BOARDS = 64; // a member channel's standings

/** The websocket of the page's own origin: ws(s)://host/ws. */
export function defaultUrl(loc = globalThis.location) {
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws`;
}

/** A board delta applied to rows (Map member -> {rank, member, score}): left, then entered,
 *  moved and score, as docs/protocol.md says; the map is changed in place and returned. */
export function applyDelta(rows, delta) {
  const ok = (e) => e && typeof e === "object" && typeof e.member === "string";
  for (const e of (delta.left || []).filter(ok)) rows.delete(e.member);
  for (const e of (delta.entered || []).filter(ok)) rows.set(e.member, { rank: e.rank, member: e.member, score: e.score });
  for (const e of (delta.moved || []).filter(ok)) rows.set(e.member, { rank: e.to, member: e.member, score: e.score });
  for (const e of (delta.score || []).filter(ok)) rows.set(e.member, { rank: e.rank, member: e.member, score: e.score });
  return rows;
}

/** Throws what the server would refuse, before anything is sent. */
export function checkChannel(channel, { limit, members } = {}) {
  const [kind, ...rest] = String(channel).split(":");
  const key = rest.join(":");
  if (!KINDS.includes(kind) || (kind === "alerts") === (rest.length > 0) || (rest.length > 0 && !key)) {
    throw new TypeError(`${JSON.stringify(channel)} is not a channel: board:<board>, member:<id>, cohort:<board> or alerts`);
  }
  if (kind === "cohort" && !(Array.isArray(members) && members.length >= 1 && members.length <= MAX_COHORT
      && members.every((m) => typeof m === "string" && m))) {
    throw new TypeError(`${channel}: give 1 to ${MAX_COHORT} member ids`);
  }
  if (kind !== "cohort" && members != null) throw new TypeError(`${channel}: only a cohort channel takes members`);
  if (kind !== "board" && limit != null) throw new TypeError(`${channel}: only a board channel takes a limit`);
  if (kind === "board" && limit != null && !(Number.isInteger(limit) && limit >= 1 && limit <= MAX_LIMIT)) {
    throw new TypeError(`${channel}: a limit is 1 to ${MAX_LIMIT}, not ${limit}`);
  }
}

const isNum = (x) => typeof x === "number" && Number.isFinite(x);
const rowsOk = (items, needs, most) => Array.isArray(items) && items.length <= most
  && items.every((e) => e && typeof e === "object" && typeof e.member === "string" && needs.every((k) => isNum(e[k])));
const DELTA_FIELDS = { entered: ["rank", "score"], score: ["rank", "score"], moved: ["from", "to", "score"], left: ["rank"] };

/** Whether a snapshot or delta carries what applying it reads, within the subscription's bounds
 *  (a broken or hostile server's frame must not throw half-way, nor grow the state). */
export function wellFormed(kind, limit, msg) {
  if (msg.type === "snapshot" && (typeof msg.epoch !== "string" || !Number.isInteger(msg.seq))) return false;
  if (msg.type !== "snapshot" && msg.type !== "delta") return true;
  if ("events" in msg && !(Array.isArray(msg.events) && msg.events.every((e) => e && typeof e === "object"))) return false;
  if (kind === "member") {
    const b = "boards" in msg ? msg.boards : {};
    return b !== null && typeof b === "object" && !Array.isArray(b) && Object.keys(b).length <= MAX_BOARDS
      && Object.values(b).every((v) => v === null || (v && typeof v === "object" && isNum(v.rank) && isNum(v.score)));
  }
  if (kind === "alerts") return true;
  if (kind === "cohort" && !("entries" in msg)) return false;
  if ("entries" in msg && !Array.isArray(msg.entries)) return false;
  const most = kind === "board" ? limit || MAX_LIMIT : MAX_COHORT;
  if (msg.type === "snapshot" || kind === "cohort" || "entries" in msg) return rowsOk(msg.entries ?? [], ["rank", "score"], most);
  return Object.entries(DELTA_FIELDS).every(([part, needs]) => rowsOk(msg[part] ?? [], needs, 4 * MAX_LIMIT));
}

const sorted = (rows) => [...rows.values()].sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0) || (a.member < b.member ? -1 : 1));

/**
 * One websocket connection (re-opened as needed) carrying every channel subscribed.
 *
 * Options (all optional):
 * - url: the websocket (default: this page's origin, /ws)
 * - token: a string, or a function returning one, sent as the first message of each connection
 * - onAuthNeeded(): the server's hello says a token is needed and none was given: return one
 *   (or nothing, and the server closes with 1008)
 * - onUpdate(update): each channel's updates, in order and once each:
 *   {channel, kind: "snapshot"|"delta"|"event"|"resumed", frame, entries, previous, boards,
 *   first, reason, missed}; entries (board and cohort channels) are the rows held after it,
 *   boards (member channels) the standings
 * - onError(frame, channel): an error frame (channel: the subscription it answers, if known;
 *   frame.fatal is set when the channel was dropped)
 * - onStatus(state): "connecting", "reconnecting", "syncing" or "live"
 * - onClose(code, reason), onDown(delayMs): a connection ended (the next attempt is in delayMs);
 *   onHello(hello)
 * - backoff: {first: 500, max: 10000} ms: the delay before a reconnect, doubled per failed
 *   attempt up to max, times 0.6–1.0 (jitter)
 * - WebSocket: the implementation (default: the global one)
 */
export class KudosClient {
  constructor(options = {}) {
    this.o = options;
    this.url = options.url || defaultUrl();
    this.backoff = { first: 500, max: 10000, ...(options.backoff || {}) };
    this.WS = options.WebSocket || globalThis.WebSocket;
    this.want = new Map(); // channel -> {limit, members}
    this.pos = new Map(); // channel -> {epoch, seq} of the last frame applied
    this.rows = new Map(); // board/cohort channel -> Map member -> entry
    this.boards = new Map(); // member channel -> {board: standing}
    this.synced = new Set(); // channels that had a snapshot (a later one is a re-sync)
    this.ready = new Set(); // channels whose state is current (snapshot, or resumed)
    this.resyncing = new Set(); // a subscribe is on its way
    this.retries = new Map(); // channel -> timer of a subscribe to send again
    this.outbox = []; // messages waiting for the rate limit, in order
    this.tokens = SEND_BURST;
    this.tokensAt = Date.now();
    this.sendTimer = 0;
    this.reqs = new Map(); // request id -> channel
    this.reqOf = new Map(); // channel -> the id of its subscribe on its way (one in flight)
    this.nextId = 1;
    this.attempt = 0;
    this.ws = null;
    this.open = false;
    this.everOpen = false;
    this.closed = false;
    this.retryAt = 0;
    this.timer = 0;
    this.hello = null;
  }

  // ---- the application's side ---------------------------------------------------------------
  /** Follow a channel (again: a new limit or cohort, and a fresh snapshot). */
  subscribe(channel, { limit, members } = {}) {
    checkChannel(channel, { limit, members });
    this.want.set(channel, { limit: limit ?? undefined, members: members ? [...members] : undefined });
    this.forget(channel);
    if (this.open) this.sendSub(channel, false);
    this.status();
  }
  unsubscribe(channel) {
    if (!this.want.delete(channel)) return;
    this.forget(channel);
    if (this.open) this.send({ op: "unsubscribe", channel });
    this.status();
  }
  /** Count a channel as current without a snapshot (e.g. a board that does not exist yet). */
  markReady(channel) {
    this.ready.add(channel);
    this.status();
  }
  position(channel) { return this.pos.get(channel); }
  entries(channel) { return sorted(this.rows.get(channel) || new Map()); }
  connect() {
    this.closed = false;
    clearTimeout(this.timer);
    if (this.ws) { // already connected or connecting: start again on a new socket
      const old = this.ws;
      this.ws = null;
      this.open = false;
      old.close(1000);
    }
    this.status();
    let ws;
    try { ws = new this.WS(this.url); } catch { this.retry(); return; }
    this.ws = ws;
    let helloTimer = 0;
    ws.onopen = () => {
      const token = this.token();
      if (token) this.send({ op: "auth", token });
      helloTimer = setTimeout(() => this.start(ws), HELLO_MS);
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (this.ws !== ws || !msg || typeof msg !== "object") return;
      if (msg.type === "subscribed" || msg.type === "snapshot") this.served = true;
      if (msg.type === "hello") {
        clearTimeout(helloTimer);
        this.hello = msg;
        this.o.onHello?.(msg);
        if (msg.limits && msg.limits.auth && !this.token()) {
          const token = this.o.onAuthNeeded?.();
          if (token) { this.given = token; this.send({ op: "auth", token }); }
        }
        this.start(ws);
        return;
      }
      this.handle(msg);
    };
    ws.onclose = (ev) => {
      clearTimeout(helloTimer);
      if (this.ws !== ws) return;
      this.ws = null;
      this.open = false;
      this.ready.clear();
      this.resyncing.clear();
      this.reqs.clear();
      this.reqOf.clear();
      this.dropOutbox();
      // it served (a subscribe was answered): the backoff starts again; a server that greets
      // and then drops every client keeps it growing
      if (this.served) this.attempt = 0;
      this.served = false;
      if (ev.code === 1008) this.given = ""; // a refused token is asked for again
      this.o.onClose?.(ev.code, ev.reason);
      if (!this.closed) this.retry();
    };
  }
  /** Reconnect now if waiting to (e.g. the browser came back online). */
  reconnectNow() {
    if (!this.ws && !this.open && !this.closed) this.connect();
  }
  /** Close for good (until connect() again). */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.dropOutbox();
    const ws = this.ws;
    this.ws = null;
    this.open = false;
    if (ws) ws.close(1000);
    this.status();
  }
  state() {
    if (!this.open) return this.everOpen || this.attempt > 0 ? "reconnecting" : "connecting";
    for (const ch of this.want.keys()) if (!this.ready.has(ch)) return "syncing";
    return "live";
  }

  // ---- the connection -----------------------------------------------------------------------
  token() {
    const t = typeof this.o.token === "function" ? this.o.token() : this.o.token;
    return t || this.given || "";
  }
  forget(channel) {
    this.reqs.delete(this.reqOf.get(channel));
    this.reqOf.delete(channel);
    clearTimeout(this.retries.get(channel));
    this.retries.delete(channel);
    this.pos.delete(channel);
    this.rows.delete(channel);
    this.boards.delete(channel);
    this.synced.delete(channel);
    this.ready.delete(channel);
    this.resyncing.delete(channel);
  }
  start(ws) {
    if (this.ws !== ws || this.open) return;
    this.open = true;
    this.everOpen = true;
    for (const ch of this.want.keys()) this.sendSub(ch, true);
    this.status();
  }
  retry() {
    const base = Math.min(this.backoff.max, this.backoff.first * 2 ** this.attempt);
    this.attempt += 1;
    const delay = Math.round(base * (0.6 + 0.4 * Math.random()));
    this.retryAt = Date.now() + delay;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
    this.status();
    this.o.onDown?.(delay);
  }
  /** Send in order, at most SEND_RATE a second after a burst of SEND_BURST. */
  send(obj) {
    if (!this.ws || this.ws.readyState !== 1) return;
    this.outbox.push(obj);
    this.flush();
  }
  flush() {
    clearTimeout(this.sendTimer);
    const now = Date.now();
    this.tokens = Math.min(SEND_BURST, this.tokens + ((now - this.tokensAt) / 1000) * SEND_RATE);
    this.tokensAt = now;
    while (this.outbox.length && this.tokens >= 1 && this.ws && this.ws.readyState === 1) {
      this.tokens -= 1;
      this.ws.send(JSON.stringify(this.outbox.shift()));
    }
    if (this.outbox.length && this.ws && this.ws.readyState === 1) {
      this.sendTimer = setTimeout(() => this.flush(), Math.ceil(((1 - this.tokens) / SEND_RATE) * 1000));
    }
  }
  dropOutbox() { // the next connection subscribes to everything again
    this.outbox = [];
    clearTimeout(this.sendTimer);
    for (const t of this.retries.values()) clearTimeout(t);
    this.retries.clear();
  }
  /** Subscribe again after RETRY_MS (once per channel, however many reasons come meanwhile). */
  retryLater(ch) {
    if (this.retries.has(ch)) return;
    this.retries.set(ch, setTimeout(() => {
      this.retries.delete(ch);
      if (this.open && this.want.has(ch)) this.sendSub(ch, true);
    }, RETRY_MS));
  }
  malformed(ch) { // a frame this client cannot apply: a fresh snapshot, after a pause
    this.pos.delete(ch);
    this.resyncing.add(ch);
    this.retryLater(ch);
  }
  sendSub(ch, resume) {
    const w = this.want.get(ch);
    if (!w) return;
    const id = this.nextId++;
    const msg = { op: "subscribe", channel: ch, id };
    if (w.limit) msg.limit = w.limit;
    if (w.members) msg.members = w.members;
    const p = this.pos.get(ch);
    if (resume && p) msg.resume = { epoch: p.epoch, seq: p.seq };
    this.reqs.delete(this.reqOf.get(ch)); // its reply, if any, is stale now
    this.reqs.set(id, ch);
    this.reqOf.set(ch, id);
    this.resyncing.add(ch);
    this.send(msg);
  }
  resync(ch, resume) {
    if (this.resyncing.has(ch)) return;
    if (!resume) this.pos.delete(ch);
    this.sendSub(ch, resume);
  }
  update(ch, kind, frame, extra = {}) {
    const previous = this.rows.has(ch) ? sorted(this.rows.get(ch)) : [];
    const previousBoards = { ...(this.boards.get(ch) || {}) };
    return { channel: ch, kind, frame, previous, previousBoards, first: false, reason: "", missed: 0, ...extra };
  }
  deliver(u) {
    u.entries = this.entries(u.channel);
    u.boards = { ...(this.boards.get(u.channel) || {}) };
    this.o.onUpdate?.(u);
  }
  handle(msg) {
    const ch = msg.channel;
    const kind = ch ? String(ch).split(":")[0] : "";
    switch (msg.type) {
      case "subscribed": {
        if (!this.want.has(ch) || this.reqOf.get(ch) !== msg.id) return; // stale, or not ours
        this.reqs.delete(msg.id);
        this.reqOf.delete(ch);
        this.resyncing.delete(ch);
        const w = this.want.get(ch);
        if (kind === "board" && Number.isInteger(msg.limit) && msg.limit >= 1 && msg.limit <= MAX_LIMIT) w.limit = msg.limit;
        const p = this.pos.get(ch);
        if (msg.recovered && p && msg.epoch === p.epoch && Number.isInteger(msg.seq)) {
          this.ready.add(ch); // the missed frames follow
          if (msg.seq > p.seq) this.deliver(this.update(ch, "resumed", msg, { missed: msg.seq - p.seq }));
        } else {
          this.pos.delete(ch); // a snapshot follows
        }
        this.status();
        return;
      }
      case "snapshot": {
        if (!this.want.has(ch)) return;
        if (!wellFormed(kind, this.want.get(ch).limit, msg)) { this.malformed(ch); return; }
        const first = !this.synced.has(ch);
        const u = this.update(ch, "snapshot", msg, {
          first,
          reason: first ? "" : msg.conflated ? "conflated" : msg.reset ? "reset" : "not_recovered",
        });
        if (first) { u.previous = []; u.previousBoards = {}; }
        this.pos.set(ch, { epoch: msg.epoch, seq: msg.seq });
        if (kind === "board" || kind === "cohort") {
          this.rows.set(ch, new Map((msg.entries || []).filter((e) => e && typeof e.member === "string").map((e) => [e.member, e])));
        } else if (kind === "member") {
          this.boards.set(ch, { ...(msg.boards || {}) });
        }
        this.synced.add(ch);
        this.resyncing.delete(ch);
        this.ready.add(ch);
        this.deliver(u);
        this.status();
        return;
      }
      case "delta":
      case "event": {
        if (!this.want.has(ch)) return;
        const p = this.pos.get(ch);
        if (!p) return; // before the snapshot: the snapshot will include it
        if (!Number.isInteger(msg.seq)) { this.malformed(ch); return; }
        if (msg.epoch !== p.epoch) { this.resync(ch, false); return; } // the feed's history is gone
        if (msg.seq <= p.seq) return; // already applied (a replay overlapping live frames)
        if (msg.seq !== p.seq + 1) { this.resync(ch, true); return; } // a gap: resume from p.seq
        if (!wellFormed(kind, this.want.get(ch).limit, msg)) { this.malformed(ch); return; }
        p.seq = msg.seq;
        const u = this.update(ch, msg.type, msg);
        if (msg.type === "delta") {
          if (kind === "cohort" || (kind === "board" && "entries" in msg)) {
            this.rows.set(ch, new Map(msg.entries.filter((e) => e && typeof e.member === "string").map((e) => [e.member, e])));
          } else if (kind === "board") {
            applyDelta(this.rows.get(ch) || this.rows.set(ch, new Map()).get(ch), msg);
          } else if (kind === "member") {
            this.boards.set(ch, { ...(this.boards.get(ch) || {}), ...(msg.boards || {}) });
          }
          const most = kind === "board" ? this.want.get(ch).limit || MAX_LIMIT : MAX_COHORT;
          if ((this.rows.get(ch)?.size ?? 0) > most || Object.keys(this.boards.get(ch) || {}).length > MAX_BOARDS) {
            this.malformed(ch); // more rows than subscribed to
            return;
          }
        }
        this.deliver(u);
        return;
      }
      case "error": {
        let sub = msg.id != null ? this.reqs.get(msg.id) : undefined;
        this.reqs.delete(msg.id);
        if (sub && this.reqOf.get(sub) !== msg.id) sub = undefined; // a request since replaced
        if (sub) { this.resyncing.delete(sub); this.reqOf.delete(sub); }
        const fatal = Boolean(sub && this.want.has(sub) && typeof msg.code === "string" && FATAL_CODES.has(msg.code));
        if (fatal) { this.want.delete(sub); this.forget(sub); this.status(); } // subscribe again to retry
        if (sub && msg.code === "unavailable") this.retryLater(sub);
        this.o.onError?.({ ...msg, fatal }, sub);
        return;
      }
      default: // authenticated, unsubscribed, pong, anything newer
    }
  }
  status() { this.o.onStatus?.(this.state()); }
}
