// Kudos live leaderboard: plain JS, no dependencies, no network access except this server.
// Follows the live feed with kudos-client.js (the websocket protocol of docs/protocol.md, on /ws)
// and reads the JSON API.
import { KudosClient } from "./kudos-client.js";

(() => {
  const BASES = ["all", "1h", "24h", "7d", "decayed", "day", "week", "month"];
  const CALENDAR = ["day", "week", "month"]; // UTC periods: live, or an archived one (board "week@2012-W27")
  const LABEL = { all: "All time", "1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", decayed: "Decayed",
    day: "Today (UTC)", week: "This week (ISO, UTC)", month: "This month (UTC)" };
  const SHORT = { all: "All time", "1h": "1h", "24h": "24h", "7d": "7d", decayed: "Decayed", day: "Day", week: "Week", month: "Month" };
  const PERIOD_NAME = { day: "Day", week: "Week", month: "Month" };
  const LIMIT = 20; // rows of the board shown
  const MAX_COMMUNITY_LOOKUPS = 24; // community boards asked about when a member card opens
  const MAX_BOARD_PAGES = 10; // community pickers list at most ~10,000 boards
  const TOAST_TIERS = 10; // board events: toast entering the top 1, 3 and 10 (not 100)
  // The websocket token is asked for when the server's hello says one is needed, and kept for
  // this tab only (never in the URL: URLs end up in logs, history and Referer headers).
  const TOKEN_KEY = "kudos-token";
  const storedToken = () => { try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; } };
  // The members this visitor follows (the "Following" view: a cohort channel of the board shown),
  // kept in this browser only.
  const FOLLOW_KEY = "kudos-following";
  const MAX_FOLLOWING = 100; // a cohort channel follows at most 100 members
  const loadFollowing = () => {
    try {
      const v = JSON.parse(localStorage.getItem(FOLLOW_KEY) || "[]");
      return Array.isArray(v) ? v.filter((m) => typeof m === "string" && m).slice(0, MAX_FOLLOWING) : [];
    } catch { return []; }
  };
  const saveFollowing = (list) => { try { localStorage.setItem(FOLLOW_KEY, JSON.stringify(list)); } catch { /* private mode */ } };
  const storeToken = (t) => { try { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); } catch { /* private mode */ } };

  // ---- small helpers ------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    for (const c of children.flat()) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
    return el;
  }
  const SVGNS = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    for (const c of children.flat()) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
    return el;
  }
  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === "text") el.textContent = v;
      else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  const nf0 = new Intl.NumberFormat("en-US");
  const nf1 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const nf3 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 3 });
  const pts = (v) => nf1.format(v);
  const dtf = new Intl.DateTimeFormat("en-GB", {
    timeZone: "UTC", weekday: "short", day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const hourFmt = new Intl.DateTimeFormat("en-GB", {
    timeZone: "UTC", weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
  const dayFmt = new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", weekday: "short", day: "numeric" });
  const utc = (ts) => dtf.format(new Date(ts * 1000)).replace(/,/, "").replace(/,(?=[^,]*$)/, " ·") + " UTC";
  function hue(id) {
    let x = 2166136261;
    for (let i = 0; i < id.length; i++) x = Math.imul(x ^ id.charCodeAt(i), 16777619);
    return (x >>> 0) % 360;
  }
  // Display names and avatars (profile events; GET /api/profiles), fetched for the members on
  // screen and kept for this page. Names are text (textContent), never markup; avatars are https
  // URLs the server checked, loaded without a Referer.
  const names = new Map(); // member -> {name, avatar} ({} when they set none)
  const nameWanted = new Set();
  let nameTimer = 0;
  const nameOf = (id) => names.get(id)?.name || id;
  function wantNames(ids) {
    for (const id of ids) if (!names.has(id)) nameWanted.add(id);
    if (nameWanted.size && !nameTimer) nameTimer = setTimeout(fetchNames, 50);
  }
  async function fetchNames() {
    nameTimer = 0;
    const ids = [];
    let length = 0; // the request line must fit the server's 8 KiB
    for (const id of nameWanted) {
      if (ids.length && (ids.length >= 100 || length + enc(id).length + 1 > 6000)) break;
      ids.push(id);
      length += enc(id).length + 1;
    }
    for (const id of ids) nameWanted.delete(id);
    const { status, body } = await getJSON(`/api/profiles?members=${ids.map(enc).join(",")}`).catch(() => ({}));
    if (status === 200 && body && body.profiles) {
      for (const id of ids) names.set(id, body.profiles[id] || {});
      for (const [member, li] of nodes) if (ids.includes(member)) paintName(li, member);
      if (state.card && ids.includes(state.card.member)) renderCard();
    }
    if (nameWanted.size) nameTimer = setTimeout(fetchNames, 50);
  }
  function avatar(id) {
    const letters = nameOf(id).replace(/[^\p{L}\p{N}]/gu, "").slice(0, 2) || "?";
    const el = h("span", { class: "avatar", "aria-hidden": "true", style: { background: `hsl(${hue(id)} 52% 46%)` }, text: letters });
    const url = names.get(id)?.avatar;
    if (url && url.startsWith("https://")) {
      const img = h("img", { src: url, alt: "", loading: "lazy", referrerpolicy: "no-referrer", decoding: "async" });
      img.addEventListener("error", () => img.remove()); // the letters stay
      el.append(img);
    }
    return el;
  }
  function paintName(li, member) {
    const idEl = li.querySelector(".id");
    const named = names.get(member)?.name;
    idEl.textContent = named || member;
    idEl.title = named ? `${named} (${member})` : member;
    li.querySelector(".handle").textContent = named ? member : ""; // (the id always shows beside a name)
    if (named) li.dataset.name = named; else delete li.dataset.name;
    const old = li.querySelector(".avatar");
    if (old) old.replaceWith(avatar(member));
  }
  const baseLabel = (base, short) => {
    const at = base.indexOf("@");
    if (at > 0) return `${PERIOD_NAME[base.slice(0, at)] || base.slice(0, at)} ${base.slice(at + 1)}`;
    return (short ? SHORT : LABEL)[base] || base;
  };
  const boardLabel = (b) => {
    const i = b.indexOf(":");
    return i < 0 ? baseLabel(b, false) : `${baseLabel(b.slice(0, i), true)} · ${b.slice(i + 1)}`;
  };
  async function getJSON(path) {
    const r = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    let body = null;
    try { body = await r.json(); } catch { /* not JSON */ }
    return { status: r.status, body };
  }
  const enc = encodeURIComponent;
  const narrow = matchMedia("(max-width: 600px)");
  const pct = (p) => nf1.format(Math.floor(p * 10 + 1e-6) / 10); // 99.96 is not yet 100.0

  // ---- page state ---------------------------------------------------------------------------
  const state = {
    base: "all",
    period: "", // a calendar base's archived period ("2012-W27"); "" is the live one
    periods: [], // the archived periods of the calendar base shown, newest first
    community: "",
    rows: new Map(), // member -> {rank, score}
    members: null,
    asOf: null,
    boardMissing: false,
    boardFromHttp: false,
    quiet: true, // next render: no "entered" animations (a fresh board)
    communities: [], // names
    boardIds: new Set(),
    card: null, // {member, standings: Map, explain, explainStatus, gen}
    following: loadFollowing(), // member ids
    followMode: false, // show the followed members on the board (a cohort) instead of its top
  };
  const followView = () => state.followMode && state.following.length > 0;
  const boardBase = () => (state.period ? `${state.base}@${state.period}` : state.base);
  const boardId = () => (state.community ? `${boardBase()}:${state.community}` : boardBase());
  const boardChannel = () => (followView() ? `cohort:${boardId()}` : `board:${boardId()}`);

  // ---- status and as-of -----------------------------------------------------------------------
  const statusEl = $("status");
  let statusTick = 0;
  function showStatus(kind) {
    clearInterval(statusTick);
    const text = statusEl.querySelector(".status-text");
    const paint = () => {
      let t = { live: "live", connecting: "connecting…", syncing: "syncing…" }[kind];
      if (kind === "reconnecting") {
        const secs = Math.ceil((feed.retryAt - Date.now()) / 1000);
        t = secs > 0 && !feed.ws ? `reconnecting in ${secs}s…` : "reconnecting…";
      }
      text.textContent = t;
    };
    statusEl.dataset.state = kind;
    statusEl.title = kind === "live" ? "Connected: updates arrive as they happen" : "Not connected to live updates";
    paint();
    if (kind === "reconnecting") statusTick = setInterval(paint, 500);
  }
  function setAsOf(asOf) {
    if (asOf === undefined) return;
    state.asOf = asOf;
    const el = $("asof");
    if (asOf == null) { el.textContent = "Waiting for the first interaction…"; return; }
    el.replaceChildren("As of ", h("strong", { class: "num", text: utc(asOf) }), " (event time)");
    el.title = `Event time of the latest interaction applied: ${asOf}`;
  }

  // ---- the board --------------------------------------------------------------------------------
  const rowsEl = $("rows");
  const nodes = new Map(); // member -> <li>
  let renderQueued = false;
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(render);
  }
  function makeRow(member) {
    const li = h("li", { class: "row", "data-testid": "row", "data-member": member, tabindex: "0", role: "button" },
      h("span", { class: "rank num" }),
      h("span", { class: "who" }, avatar(member),
        h("span", { class: "name" }, h("span", { class: "id", text: member, title: member }), h("span", { class: "handle" }), h("span", { class: "global", "data-testid": "global-rank" }), h("span", { class: "bar" }, h("i")))),
      h("span", { class: "right" }, h("span", { class: "move num" }), h("span", { class: "score num" })));
    if (names.has(member)) paintName(li, member);
    li.addEventListener("click", () => openMember(member));
    li.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); openMember(member); }
    });
    return li;
  }
  function restartClass(el, cls) {
    el.classList.remove(cls);
    void el.offsetWidth; // restart the CSS animation
    el.classList.add(cls);
  }
  function updateRow(li, e, top, isNew, quiet) {
    const prevRank = li._rank, prevScore = li._score;
    li._rank = e.rank;
    li._score = e.score;
    li.dataset.rank = String(e.rank);
    li.setAttribute("aria-label", `Rank ${e.rank}: ${e.member}, ${pts(e.score)} points`);
    li.classList.toggle("selected", state.card?.member === e.member);
    li.querySelector(".rank").textContent = String(e.rank);
    const g = li.querySelector(".global");
    g.textContent = e.global != null ? `#${nf0.format(e.global)} overall` : "";
    if (e.global != null) li.dataset.globalRank = String(e.global); else delete li.dataset.globalRank;
    const sc = li.querySelector(".score");
    sc.textContent = pts(e.score);
    sc.title = `${nf3.format(e.score)} points`;
    li.querySelector(".bar i").style.width = `${top > 0 ? Math.max(2, (100 * e.score) / top) : 0}%`;
    const move = li.querySelector(".move");
    if (isNew) {
      if (!quiet) { restartClass(li, "entered"); flag(move, "new", "new"); }
      return;
    }
    if (prevScore !== e.score) restartClass(sc, "flash");
    if (prevRank !== e.rank) {
      const up = e.rank < prevRank;
      restartClass(li, up ? "rose" : "fell");
      li.classList.remove(up ? "fell" : "rose");
      flag(move, up ? "up" : "down", `${up ? "▲" : "▼"}${Math.abs(prevRank - e.rank)}`);
    }
  }
  function flag(el, cls, text) {
    el.className = `move num show ${cls}`;
    el.textContent = text;
    clearTimeout(el._t);
    el._t = setTimeout(() => el.classList.remove("show"), 2600);
  }
  function render() {
    renderQueued = false;
    const nobody = state.followMode && !state.following.length;
    const entries = nobody ? [] : [...state.rows].map(([member, r]) => ({ member, rank: r.rank, score: r.score, global: r.global }));
    entries.sort((a, b) => a.rank - b.rank || b.score - a.score || (a.member < b.member ? -1 : a.member > b.member ? 1 : 0));
    const top = entries.reduce((m, e) => Math.max(m, e.score), 0);
    const quiet = state.quiet;
    if (entries.length) state.quiet = false; // the first rows of a board appear without fanfare
    // FLIP, First: where every row is now (mid-animation rows included)
    const first = new Map();
    for (const li of rowsEl.children) first.set(li.dataset.member, li.getBoundingClientRect().top);
    for (const [member, li] of nodes) {
      if (!state.rows.has(member)) { li.remove(); nodes.delete(member); }
    }
    entries.forEach((e, i) => {
      let li = nodes.get(e.member);
      const isNew = !li;
      if (isNew) { li = makeRow(e.member); nodes.set(e.member, li); wantNames([e.member]); }
      updateRow(li, e, top, isNew, quiet);
      if (rowsEl.children[i] !== li) rowsEl.insertBefore(li, rowsEl.children[i] || null);
    });
    // Last, Invert, Play
    const moving = [];
    for (const li of rowsEl.children) {
      const f = first.get(li.dataset.member);
      if (f === undefined) continue;
      const dy = f - li.getBoundingClientRect().top;
      if (Math.abs(dy) < 0.5) continue;
      li.style.transition = "none";
      li.style.transform = `translateY(${dy}px)`;
      li.style.zIndex = dy > 0 ? "2" : "1"; // risers pass over the rows they overtake
      moving.push(li);
    }
    if (moving.length) {
      void rowsEl.offsetHeight;
      for (const li of moving) {
        li.style.transition = "transform 650ms cubic-bezier(0.2, 0.8, 0.2, 1)";
        li.style.transform = "";
        clearTimeout(li._z);
        li._z = setTimeout(() => { li.style.zIndex = ""; }, 700);
      }
    }
    const empty = $("empty");
    if (entries.length === 0) {
      empty.hidden = false;
      if (nobody) empty.replaceChildren(h("strong", { text: "You follow nobody yet" }), "Open a member's card and press Follow.");
      else empty.replaceChildren(
        h("strong", { text: state.boardMissing ? `No one is on ${boardLabel(boardId())} yet` : "No points on this board yet" }),
        state.boardMissing ? "This board appears with its first interaction." : "Scores appear here the moment interactions arrive.");
    } else {
      empty.hidden = true;
    }
    $("count").textContent = state.members == null ? "" : `${nf0.format(state.members)} ${state.members === 1 ? "member" : "members"}`;
  }
  function boardFrame(msg) {
    setAsOf(msg.as_of);
    if (msg.members !== undefined) state.members = msg.members;
    state.boardMissing = false;
    state.boardFromHttp = false;
    if (msg.type === "snapshot" || (msg.type === "delta" && msg.entries)) { // (a cohort's frame: the whole cohort)
      state.rows = new Map((msg.entries || []).map((e) => [e.member, { rank: e.rank, score: e.score, global: e.global_rank }]));
    } else if (msg.type === "delta") {
      for (const e of msg.left || []) state.rows.delete(e.member);
      for (const e of msg.entered || []) state.rows.set(e.member, { rank: e.rank, score: e.score });
      for (const e of msg.moved || []) state.rows.set(e.member, { rank: e.to, score: e.score });
      for (const e of msg.score || []) state.rows.set(e.member, { rank: e.rank, score: e.score });
      for (const ev of msg.events || []) {
        if ((ev.event === "entered_top" && (ev.top ?? 1) <= TOAST_TIERS) || ev.event === "perk") eventToast(ev);
      }
    } else if (msg.type === "event") {
      eventToast(msg);
    }
    scheduleRender();
  }
  async function httpSnapshot() { // only while the websocket has never delivered this board
    const ch = boardChannel();
    if (feed.position(ch) || feed.open) return;
    const path = followView()
      ? `/api/boards/${enc(boardId())}/cohort?members=${state.following.map(enc).join(",")}`
      : `/api/boards/${enc(boardId())}?limit=${LIMIT}`;
    const { status, body } = await getJSON(path).catch(() => ({}));
    if (ch !== boardChannel() || feed.position(ch) || status !== 200 || !body) return;
    state.rows = new Map(body.entries.map((e) => [e.member, { rank: e.rank, score: e.score, global: e.global_rank }]));
    state.members = body.members;
    state.boardFromHttp = true;
    setAsOf(body.as_of);
    scheduleRender();
  }

  // ---- board switcher -------------------------------------------------------------------------
  const basesEl = $("bases");
  for (const b of BASES) {
    basesEl.append(h("button", { type: "button", "data-board": b, "aria-pressed": "false", title: LABEL[b], text: SHORT[b], onclick: () => selectBoard(b, state.community) }));
  }
  const communityEl = $("community");
  communityEl.addEventListener("change", () => selectBoard(state.base, communityEl.value, false, state.period));
  const periodEl = $("period");
  periodEl.addEventListener("change", () => selectBoard(state.base, state.community, false, periodEl.value));
  function selectBoard(base, community, force = false, period = "") {
    if (!BASES.includes(base)) base = "all";
    if (!CALENDAR.includes(base) || !/^[0-9]{4}-(W[0-9]{2}|[0-9]{2}(-[0-9]{2})?)$/.test(period || "")) period = "";
    if (!force && base === state.base && community === state.community && period === state.period) return;
    feed.unsubscribe(boardChannel());
    const unitChanged = base !== state.base;
    state.base = base;
    state.period = period;
    state.community = community || "";
    state.rows = new Map();
    state.members = null;
    state.boardMissing = false;
    state.quiet = true;
    for (const btn of basesEl.children) btn.setAttribute("aria-pressed", String(btn.dataset.board === state.base));
    syncCommunityOptions();
    if (unitChanged) state.periods = [];
    syncPeriodOptions();
    if (CALENDAR.includes(base) && (unitChanged || force)) loadPeriods(base);
    const title = baseLabel(boardBase(), false);
    const named = state.community ? `${title} · ${state.community}` : title;
    $("board-title").textContent = state.followMode ? `Following · ${named}` : named;
    syncFollowToggle();
    if (followView()) feed.subscribe(boardChannel(), { members: [...state.following] });
    else feed.subscribe(boardChannel(), { limit: LIMIT });
    writeHash();
    scheduleRender();
    if (!feed.open) httpSnapshot();
    if (state.card) renderCard();
  }
  function syncCommunityOptions() {
    const names = [...state.communities];
    if (state.community && !names.includes(state.community)) names.push(state.community);
    const opts = [h("option", { value: "", text: "All communities" })];
    for (const c of names) {
      const id = `${state.base}:${c}`;
      const n = state.boardSizes?.get(id);
      opts.push(h("option", { value: c, text: n ? `${c} (${nf0.format(n)})` : c }));
    }
    communityEl.replaceChildren(...opts);
    communityEl.value = state.community;
    communityEl.parentElement.hidden = names.length === 0;
  }
  const followEl = $("following");
  followEl.addEventListener("click", () => {
    feed.unsubscribe(boardChannel());
    state.followMode = !state.followMode;
    selectBoard(state.base, state.community, true, state.period);
  });
  function syncFollowToggle() {
    followEl.setAttribute("aria-pressed", String(state.followMode));
    followEl.textContent = state.following.length ? `Following (${state.following.length})` : "Following";
  }
  function toggleFollow(member) {
    const was = followView() ? boardChannel() : null;
    const i = state.following.indexOf(member);
    // (the subscribe must fit the server's message limit, which its hello says)
    const limit = (feed.hello && feed.hello.limits && feed.hello.limits.max_message_bytes) || 4096;
    const size = JSON.stringify({ op: "subscribe", channel: `cohort:${boardId()}`, members: [...state.following, member], id: 1e9 }).length;
    if (i >= 0) state.following.splice(i, 1);
    else if (state.following.length < MAX_FOLLOWING && size <= limit) state.following.push(member);
    else { toast("error", `Following ${state.following.length} members already`, "That is as many as one live view can follow; unfollow someone first."); return; }
    saveFollowing(state.following);
    if (state.followMode) { if (was) feed.unsubscribe(was); selectBoard(state.base, state.community, true, state.period); }
    else syncFollowToggle();
    if (state.card) renderCard();
  }
  function syncPeriodOptions() {
    const wrap = periodEl.parentElement;
    wrap.hidden = !CALENDAR.includes(state.base);
    if (wrap.hidden) return;
    const labels = state.periods.map((id) => id.slice(id.indexOf("@") + 1));
    if (state.period && !labels.includes(state.period)) labels.push(state.period);
    const name = PERIOD_NAME[state.base].toLowerCase();
    const opts = [h("option", { value: "", text: `Current ${name} (live)` })];
    for (const label of labels) opts.push(h("option", { value: label, "data-testid": "period-option", text: label }));
    periodEl.replaceChildren(...opts);
    periodEl.value = state.period;
  }
  async function loadPeriods(unit) {
    const { status, body } = await getJSON(`/api/boards/${unit}/periods?limit=200`).catch(() => ({}));
    if (status !== 200 || !body || unit !== state.base) return;
    state.periods = body.periods.map((p) => p.id).filter((id) => id !== body.live);
    if (document.activeElement !== periodEl) syncPeriodOptions();
  }
  async function loadBoards() {
    const all = [];
    let cursor = 0;
    for (let pages = 0; pages < MAX_BOARD_PAGES; pages++) {
      const { status, body } = await getJSON(`/api/boards?limit=1000&cursor=${cursor}`).catch(() => ({}));
      if (status !== 200 || !body) return;
      all.push(...body.boards);
      if (!body.next) break;
      cursor = body.next;
    }
    const names = new Set();
    state.boardSizes = new Map();
    state.boardIds = new Set();
    for (const b of all) {
      state.boardIds.add(b.id);
      state.boardSizes.set(b.id, b.members);
      const i = b.id.indexOf(":");
      if (i > 0 && BASES.includes(b.id.slice(0, i))) names.add(b.id.slice(i + 1));
    }
    state.communities = [...names].sort((a, b) => a.localeCompare(b));
    if (document.activeElement !== communityEl) syncCommunityOptions();
  }

  // ---- toasts ---------------------------------------------------------------------------------
  // Events can come in bursts (a surge overtakes many people on several boards at once): toasts
  // are queued and shown one at a time, the same news on several boards becomes one toast, and
  // the queue keeps only the newest few. Perks, bait alerts and errors are never dropped.
  const toastsEl = $("toasts");
  const recent = new Map(); // de-duplicates an event seen on both a board and a member channel
  const queue = [];
  let pumping = 0;
  const ICON = { entered_top: "★", perk: "◆", bait: "!", error: "!", info: "•" };
  const KEEP = new Set(["perk", "bait", "error"]);
  function toast(kind, title, body, extra = "") {
    enqueue({ kind, extra, text: () => [title, body] });
  }
  function enqueue(item) {
    if (item.merge) {
      const twin = queue.find((q) => q.merge === item.merge);
      if (twin) { for (const b of item.boards) if (!twin.boards.includes(b)) twin.boards.push(b); return; }
    }
    queue.push(item);
    while (queue.length > 4) {
      const drop = queue.findIndex((q) => !KEEP.has(q.kind));
      if (drop < 0) break;
      queue.splice(drop, 1);
    }
    pump();
  }
  function pump() {
    if (pumping || !queue.length) return;
    show(queue.shift());
    pumping = setTimeout(() => { pumping = 0; pump(); }, 900);
  }
  function show(item) {
    const [title, body] = item.text(item.boards);
    const el = h("div", { class: `toast ${item.kind} ${item.extra || ""}`.trim(), "data-testid": "toast", "data-kind": item.kind, role: "status" },
      h("span", { class: "ico", "aria-hidden": "true", text: item.kind === "overtaken" ? (item.extra === "lost" ? "↓" : "↑") : ICON[item.kind] || "•" }),
      h("strong", { text: title }), body ? h("span", { text: body }) : null);
    toastsEl.prepend(el);
    const max = narrow.matches ? 2 : 3;
    while (toastsEl.children.length > max) toastsEl.lastElementChild.remove();
    const dismiss = () => { el.classList.add("out"); setTimeout(() => el.remove(), 320); };
    el.addEventListener("click", dismiss);
    setTimeout(dismiss, KEEP.has(item.kind) ? 8000 : 5000);
  }
  const onBoards = (boards) => (boards.length ? ` on ${boards.map(boardLabel).join(", ")}` : "");
  function eventToast(ev) {
    // a perk arrives on the member's and the board's channel: its id names it once
    const key = ev.id ? JSON.stringify([ev.event, ev.id]) : JSON.stringify([ev.event, ev.board, ev.member, ev.top, ev.overtaker, ev.overtaken, ev.as_of]);
    const now = Date.now();
    for (const [k, t] of recent) if (now - t > 15000) recent.delete(k);
    if (recent.has(key)) return;
    recent.set(key, now);
    const boards = ev.board ? [ev.board] : [];
    const me = state.card?.member;
    switch (ev.event) {
      case "entered_top":
        enqueue({ kind: "entered_top", merge: `top|${ev.member}|${ev.top}`, boards,
          text: (bs) => [`${ev.member} entered the top ${ev.top}`, `#${ev.rank}${onBoards(bs)}`] });
        break;
      case "overtaken": {
        const ranks = ev.ranks || {};
        const lost = me && ev.overtaken === me;
        enqueue({ kind: "overtaken", extra: lost ? "lost" : "", merge: `over|${ev.overtaker}|${ev.overtaken}`, boards,
          text: (bs) => lost
            ? [`${ev.overtaker} overtook ${me}`, `${me} is now #${ranks[me] ?? "?"}${onBoards(bs)}`]
            : [`${ev.overtaker} overtook ${ev.overtaken}`, `now #${ranks[ev.overtaker] ?? "?"}${onBoards(bs)}`] });
        break;
      }
      case "perk": {
        const who = ev.member || me || "";
        const what = ev.title || ev.rule || "a perk";
        if (ev.period) { // a winners' perk: the period closed (the board is its archive)
          toast("perk", `${boardLabel(ev.board || "")} closed: ${who} won ${what}`, ev.rank != null ? `#${ev.rank}` : "");
          break;
        }
        const where = ev.rank != null ? `#${ev.rank}${onBoards(boards)}` : onBoards(boards).trim();
        toast("perk", `${who} unlocked ${what}`, where);
        break;
      }
      case "bait": {
        const on = ev.post ? ` on ${ev.post}` : "";
        const by = ev.member ? ` by ${ev.member}` : "";
        if (ev.state === "ended") { toast("bait", `Throttle ended${on}${by}`, "its comments count in full again"); break; }
        const mult = ev.multiplier != null ? `comments count ×${nf3.format(ev.multiplier)}` : "";
        const reasons = Array.isArray(ev.reasons) ? ev.reasons.join(", ") : ev.reasons || "";
        // a retroactive throttle: found in lockstep with a ring after the fact, points taken back
        const back = ev.clawed_back?.length ? `${ev.clawed_back.length} earlier interactions' points taken back` : "";
        const title = ev.retroactive_at != null ? `Ring found${on}${by}` : `Comment-bait throttled${on}${by}`;
        toast("bait", title, [mult, back, reasons].filter(Boolean).join(" · "));
        break;
      }
      default:
        if (ev.event) toast("info", `${ev.event}${ev.member ? `: ${ev.member}` : ""}`, onBoards(boards).trim());
    }
  }

  // ---- member card ----------------------------------------------------------------------------
  const cardEl = $("card");
  const scrim = $("scrim");
  let cardGen = 0;
  let refreshTimer = 0;
  let lastRefresh = 0;
  const KIND_COLORS = {
    share: "#3b4fd8", conversion: "#0f8a5f", comment: "#d97706", reply: "#eab308", mention: "#8b5cf6",
    follow: "#0ea5e9", like: "#ec4899", click: "#64748b", post: "#94a3b8",
  };
  const kindColor = (k) => KIND_COLORS[k] || `hsl(${hue(k)} 55% 50%)`;

  function openMember(member) {
    member = member.trim();
    if (!member) return;
    wantNames([member]);
    if (state.card?.member !== member) {
      if (state.card) feed.unsubscribe(`member:${state.card.member}`);
      state.card = { member, standings: new Map(), explain: undefined, explainStatus: 0, gen: ++cardGen, loading: true };
      feed.subscribe(`member:${member}`);
    }
    cardEl.hidden = false;
    scrim.hidden = false;
    $("layout").classList.add("with-card");
    for (const [m, li] of nodes) li.classList.toggle("selected", m === member);
    writeHash();
    renderCard();
    refreshCard();
  }
  function closeMember() {
    if (!state.card) return;
    feed.unsubscribe(`member:${state.card.member}`);
    state.card = null;
    cardEl.hidden = true;
    scrim.hidden = true;
    $("layout").classList.remove("with-card");
    for (const li of nodes.values()) li.classList.remove("selected");
    writeHash();
  }
  scrim.addEventListener("click", closeMember);
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && state.card) closeMember(); });

  function scheduleCardRefresh() {
    if (!state.card || refreshTimer) return;
    const wait = Math.max(0, 3000 - (Date.now() - lastRefresh));
    refreshTimer = setTimeout(() => { refreshTimer = 0; refreshCard(); }, wait);
  }
  async function refreshCard() {
    const card = state.card;
    if (!card) return;
    lastRefresh = Date.now();
    const gen = card.gen;
    const communities = state.communities.length <= MAX_COMMUNITY_LOOKUPS
      ? state.communities.flatMap((c) => BASES.map((b) => `${b}:${c}`)).filter((b) => state.boardIds.has(b))
      : [];
    if (state.community && !communities.includes(boardId())) communities.push(boardId());
    const boards = [...BASES, ...communities.slice(0, MAX_COMMUNITY_LOOKUPS * 5)];
    const id = enc(card.member);
    const [standings, explain] = await Promise.all([
      Promise.all(boards.map((b) => getJSON(`/api/boards/${enc(b)}/members/${id}`)
        .then((r) => [b, r.status === 200 ? r.body : null, r.status]).catch(() => [b, undefined, 0]))),
      getJSON(`/api/members/${id}/explain`).catch(() => ({ status: 0, body: null })),
    ]);
    if (state.card?.gen !== gen) return;
    for (const [b, body, status] of standings) {
      if (status === 200 || status === 404) card.standings.set(b, body && { rank: body.rank, score: body.score, members: body.members, percentile: body.percentile });
    }
    card.explainStatus = explain.status;
    if (explain.status === 200) card.explain = explain.body;
    else if (card.explain === undefined) card.explain = null;
    card.explainError = explain.body?.error;
    card.loading = false;
    renderCard();
  }
  function memberFrame(msg) {
    const card = state.card;
    if (!card) return;
    if (msg.type === "event") { eventToast(msg); scheduleCardRefresh(); return; }
    const boards = msg.boards || {};
    for (const [b, v] of Object.entries(boards)) {
      if (!v) { card.standings.set(b, null); continue; }
      const prev = card.standings.get(b);
      const members = (b === boardId() && state.members) || prev?.members; // the live count when shown
      card.standings.set(b, {
        rank: v.rank, score: v.score, members,
        percentile: members ? Math.round((1000 * 100 * (members - v.rank + 1)) / members) / 1000 : prev?.percentile,
      });
    }
    for (const ev of msg.events || []) eventToast(ev);
    if (!card.loading) renderCard();
    if (msg.type === "delta") scheduleCardRefresh();
  }

  function renderCard() {
    const card = state.card;
    if (!card) return;
    const m = card.member;
    const here = boardId();
    const focusBoard = card.standings.get(here) ? here : card.standings.get("all") ? "all" : BASES.find((b) => card.standings.get(b)) || here;
    const place = card.standings.get(focusBoard);
    const ex = card.explain;
    const seen = [...card.standings.values()].some(Boolean) || (ex && ex.totals && ex.totals.count > 0);
    let sub;
    if (card.loading) sub = "Loading…";
    else if (!seen) sub = "Not on any board";
    else if (place) sub = `#${nf0.format(place.rank)}${place.members ? ` of ${nf0.format(place.members)}` : ""} · ${boardLabel(focusBoard)}`;
    else sub = `Not on ${boardLabel(focusBoard)}`;
    const closeBtn = h("button", { class: "icon-btn", type: "button", "aria-label": "Close", title: "Close (Esc)", onclick: closeMember },
      s("svg", { width: 14, height: 14, viewBox: "0 0 14 14", "aria-hidden": "true" }, s("path", { d: "M2 2l10 10M12 2L2 12", stroke: "currentColor", "stroke-width": 1.8, "stroke-linecap": "round" })));
    const followed = state.following.includes(m);
    const followBtn = h("button", { class: "follow-btn", type: "button", "data-testid": "follow", "aria-pressed": String(followed),
      text: followed ? "Following ✓" : "Follow", title: followed ? "Stop following" : "Add to your Following view", onclick: () => toggleFollow(m) });
    const parts = [
      h("div", { class: "mc-head" }, avatar(m),
        h("div", { class: "mc-title" }, h("h2", { text: nameOf(m), title: m, "data-testid": "member-name", "data-member": m }),
          h("p", { text: names.get(m)?.name ? `${m} · ${sub}` : sub, "data-testid": "member-sub" })),
        followBtn, closeBtn),
    ];
    if (card.loading) {
      parts.push(h("div", { class: "mc-section" }, h("div", { class: "skeleton" }), h("div", { class: "skeleton", style: { width: "70%" } }), h("div", { class: "skeleton", style: { width: "85%" } })));
      cardEl.replaceChildren(...parts);
      return;
    }
    if (!seen && !ex) {
      parts.push(h("p", { class: "note", text: `Nobody called “${m}” has earned points yet. Ids are exact, e.g. a user id from the board.` }));
      cardEl.replaceChildren(...parts);
      return;
    }
    const trend = ex?.trend;
    parts.push(h("div", { class: "kpis" },
      kpi("Rank", place ? `#${nf0.format(place.rank)}` : "—", boardLabel(focusBoard), "kpi-rank"),
      kpi("Points", place ? pts(place.score) : "—", boardLabel(focusBoard), "kpi-points"),
      kpi("Percentile", place && place.percentile != null ? pct(place.percentile) : "—", "share of the board at or below", "kpi-pct")));
    parts.push(boardsTable(card, here, BASES, "Standing on every board"));
    parts.push(trendSection(trend));
    parts.push(explainSection(card));
    const communities = [...card.standings.keys()].filter((b) => !BASES.includes(b) && card.standings.get(b));
    if (communities.length) parts.push(boardsTable(card, here, communities, "Communities"));
    cardEl.replaceChildren(...parts);
  }
  function kpi(k, v, hint, testid) {
    return h("div", { class: "kpi", title: hint, "data-testid": testid }, h("div", { class: "k", text: k }), h("div", { class: "v", text: v }));
  }
  function boardsTable(card, here, ids, title) {
    const rows = [];
    for (const b of ids) {
      const p = card.standings.get(b);
      rows.push(h("tr", { class: [p ? "" : "off", b === here ? "current" : ""].join(" ").trim() || null, "data-testid": "standing", "data-board": b },
        h("td", { text: boardLabel(b), title: b }),
        h("td", { text: p ? `#${nf0.format(p.rank)}` : "—" }),
        h("td", { text: p ? pts(p.score) : "—", title: p ? `${nf3.format(p.score)} points` : "not on this board" }),
        h("td", { text: p && p.percentile != null ? pct(p.percentile) : "—" })));
    }
    return h("section", { class: "mc-section", "data-testid": "standings" }, h("h3", { text: title }),
      h("table", { class: "t" }, h("thead", null, h("tr", null, h("th", { text: "Board" }), h("th", { text: "Rank" }), h("th", { text: "Points" }), h("th", { text: "Pctile", title: "Percentile: share of the board at or below" }))), h("tbody", null, rows)));
  }
  function trendSection(trend) {
    const sec = h("section", { class: "mc-section", "data-testid": "trend" });
    const hourly = trend?.hourly || [];
    sec.append(h("h3", null, "Last 7 days", trend ? h("span", { class: "num", text: `24h ${pts(trend["24h"] ?? 0)} · 7d ${pts(trend["7d"] ?? 0)} pts` }) : null));
    if (!hourly.length) {
      sec.append(h("p", { class: "note", text: trend ? "No hourly activity yet." : "The trend is not available from this server." }));
      return sec;
    }
    const n = hourly.length, W = n * 4, H = 100;
    const max = hourly.reduce((a, x) => Math.max(a, x.points), 0);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": `Points per hour over the last ${Math.round(n / 24)} days; peak ${pts(max)}` });
    const ticks = [];
    hourly.forEach((x, i) => {
      if (x.hour % 86400 === 0 && i > 0) {
        svg.append(s("line", { x1: i * 4 - 0.5, x2: i * 4 - 0.5, y1: 0, y2: H, stroke: "#e7e9ee", "stroke-width": 1, "vector-effect": "non-scaling-stroke" }));
        const left = (100 * i) / n;
        if (left > 6 && left < 94) ticks.push(h("span", { style: { left: `${left}%` }, text: dayFmt.format(new Date(x.hour * 1000)) }));
      }
    });
    svg.append(s("line", { x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5, stroke: "#d5d9e1", "stroke-width": 1, "vector-effect": "non-scaling-stroke" }));
    hourly.forEach((x, i) => {
      if (x.points <= 0) return;
      const bh = Math.max(1.5, (x.points / (max || 1)) * (H - 6));
      svg.append(s("rect", { x: i * 4 + 0.5, y: H - bh, width: 3, height: bh, rx: 0.8, fill: i >= n - 24 ? "#3b4fd8" : "#a9b4f3" },
        s("title", { text: `${hourFmt.format(new Date(x.hour * 1000))} UTC · ${pts(x.points)} pts` })));
    });
    const last = hourly[n - 1]?.hour;
    sec.append(h("div", { class: "chart-meta" }, h("span", { text: max > 0 ? `peak ${pts(max)} pts/hour` : "no points this week" }), h("span", { text: "last 24 h darker" })));
    sec.append(h("div", { class: "chart", "data-testid": "chart" }, svg, h("div", { class: "axis" }, ticks)));
    if (last != null) sec.title = `Hours up to ${hourFmt.format(new Date(last * 1000))} UTC`;
    return sec;
  }
  function explainSection(card) {
    const ex = card.explain;
    const sec = h("section", { class: "mc-section", "data-testid": "breakdown" });
    sec.append(h("h3", { text: "Where the points come from" }));
    if (!ex) {
      const unseen = card.explainStatus === 404 && /never been seen/i.test(card.explainError || "");
      sec.append(h("p", { class: "note", text: unseen ? "No interactions recorded for this member." : "The breakdown is not available from this server right now." }));
      return sec;
    }
    const kinds = Object.entries(ex.kinds || {});
    const total = ex.totals?.points ?? kinds.reduce((a, [, k]) => a + k.points, 0);
    if (total > 0) {
      sec.append(h("div", { class: "stack", role: "img", "aria-label": "points by kind" },
        kinds.filter(([, k]) => k.points > 0).map(([name, k]) => h("i", { title: `${name}: ${pts(k.points)} pts`, style: { width: `${(100 * k.points) / total}%`, background: kindColor(name) } }))));
    }
    const body = kinds.map(([name, k]) => h("tr", { "data-testid": "kind", "data-kind": name },
      h("td", null, h("span", { class: "swatch", style: { background: kindColor(name) } }), name),
      h("td", { text: nf0.format(k.count) }),
      h("td", { text: pts(k.points), title: `full weight ${pts(k.full_points ?? k.points)}` }),
      h("td", { text: k.discounted ? `−${pts(k.discounted)}` : "—", title: "lost to diminishing returns (the k-th event of one actor in a day counts 1/k)" }),
      h("td", { class: k.withheld ? "withheld" : null, text: k.withheld ? `−${pts(k.withheld)}` : "—", title: "withheld by the comment-bait throttle" })));
    const t = ex.totals || {};
    sec.append(h("table", { class: "t" },
      h("thead", null, h("tr", null, h("th", { text: "Kind" }), h("th", { text: "Events" }), h("th", { text: "Points" }), h("th", { text: "Diminished", title: "lost to diminishing returns" }), h("th", { text: "Withheld", title: "comment-bait throttle" }))),
      h("tbody", null, body.length ? body : h("tr", null, h("td", { colspan: 5, class: "muted", text: "No interactions yet." }))),
      body.length ? h("tfoot", null, h("tr", null, h("td", { text: "Total" }), h("td", { text: nf0.format(t.count ?? 0) }), h("td", { text: pts(t.points ?? total) }),
        h("td", { text: t.discounted ? `−${pts(t.discounted)}` : "—" }), h("td", { class: t.withheld ? "withheld" : null, text: t.withheld ? `−${pts(t.withheld)}` : "—" }))) : null));
    const notes = [];
    if (ex.self_ignored) notes.push(h("span", null, h("b", { text: nf0.format(ex.self_ignored) }), ` self-interaction${ex.self_ignored === 1 ? "" : "s"} ignored. `));
    if (t.withheld) notes.push(h("span", null, h("b", { text: pts(t.withheld) }), " points withheld on throttled comment-bait posts. "));
    notes.push(h("span", { text: `All-time points; windows count only their recent part. Scoring ${ex.scoring_version || "?"}.` }));
    sec.append(h("p", { class: "note" }, notes));
    if (ex.throttles?.length) {
      sec.append(h("h3", { style: { marginTop: "16px" }, text: "Comment-bait throttles" }),
        h("ul", { class: "throttles", "data-testid": "throttles" }, ex.throttles.map((t) => h("li", null,
          h("span", { text: `${t.post || "comments without a post"} · ×${nf3.format(t.multiplier)}${t.state === "ended" ? " (ended)" : ""}${t.clawed_back ? ` · ${t.clawed_back} taken back` : ""}`, title: (t.reasons || []).join(", ") }),
          h("span", { text: `−${pts(t.withheld)} pts` })))));
    }
    if (ex.top_posts?.length) {
      sec.append(h("h3", { style: { marginTop: "16px" }, text: "Top posts" }),
        h("ol", { class: "posts" }, ex.top_posts.map((p) => h("li", null, h("span", { text: p.post, title: p.post }), h("span", { text: `${pts(p.points)} pts` })))));
    }
    return sec;
  }

  // ---- search ---------------------------------------------------------------------------------
  const placeholder = () => { $("search").placeholder = narrow.matches ? "Find a member" : "Find a member by id, then Enter"; };
  narrow.addEventListener("change", placeholder);
  placeholder();
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("search").value.trim();
    if (v) openMember(v);
  });

  // ---- URL hash: #board=7d:math&member=alice --------------------------------------------------
  function writeHash() {
    const p = new URLSearchParams();
    if (boardId() !== "all") p.set("board", boardId());
    if (state.card) p.set("member", state.card.member);
    const hash = p.toString().replace(/%3A/g, ":");
    history.replaceState(null, "", hash ? `#${hash}` : location.pathname + location.search);
  }
  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    const b = p.get("board") || "all";
    const i = b.indexOf(":");
    const head = i < 0 ? b : b.slice(0, i);
    const at = head.indexOf("@");
    return {
      base: at < 0 ? head : head.slice(0, at), period: at < 0 ? "" : head.slice(at + 1),
      community: i < 0 ? "" : b.slice(i + 1), member: p.get("member"),
    };
  }

  // ---- wiring ---------------------------------------------------------------------------------
  let missingRetry = 0;
  const feed = new KudosClient({
    token: storedToken,
    onAuthNeeded() { // the hello says a token is needed: ask once, keep it for this tab
      const token = (window.prompt("This leaderboard's live feed needs a token:") || "").trim();
      if (token) storeToken(token);
      return token;
    },
    onStatus: showStatus,
    onUpdate({ frame: msg, kind }) {
      if (kind === "resumed") return; // the missed frames follow as deltas
      if (msg.channel === boardChannel()) boardFrame(msg);
      else if (msg.channel === "alerts") { if (msg.type === "event") eventToast(msg); }
      else if (state.card && msg.channel === `member:${state.card.member}`) memberFrame(msg);
    },
    onError(msg, channel) {
      if (channel && channel === boardChannel() && msg.code === "unknown_board") {
        state.rows = new Map();
        state.members = 0;
        state.boardMissing = true;
        feed.markReady(channel);
        scheduleRender();
        clearTimeout(missingRetry); // a community board appears with its first event: try again later
        missingRetry = setTimeout(() => { if (channel === boardChannel() && state.boardMissing) selectBoard(state.base, state.community, true, state.period); }, 10000);
        return;
      }
      if (msg.code === "unavailable") { toast("error", "The server cannot reach its store", "Retrying…"); return; }
      if (msg.code === "not_subscribed") return;
      toast("error", channel ? `Cannot follow ${channel}` : "Server error", msg.message || msg.code);
    },
    onClose(code) {
      if (code !== 1008) return;
      const hadToken = Boolean(storedToken());
      storeToken(""); // a refused token is asked for again on the next connection
      toast("error", "The server refused the live connection", hadToken ? "The token was refused; you will be asked again." : "It may need a token or an allowed origin.");
    },
    onDown() { httpSnapshot(); },
  });
  window.addEventListener("online", () => feed.reconnectNow());
  window.addEventListener("hashchange", () => {
    const want = readHash();
    selectBoard(want.base, want.community, false, want.period);
    if (want.member && want.member !== state.card?.member) openMember(want.member);
    else if (!want.member && state.card) closeMember();
  });

  const initial = readHash();
  selectBoard(initial.base, initial.community, true, initial.period);
  feed.subscribe("alerts"); // comment-bait throttles, as toasts
  feed.connect();
  loadBoards().then(() => { if (state.card) refreshCard(); });
  setInterval(() => { loadBoards(); if (CALENDAR.includes(state.base)) loadPeriods(state.base); }, 20000);
  if (initial.member) openMember(initial.member);
  window.kudos = { state, feed, openMember, closeMember, selectBoard }; // for debugging and tests
})();
