// Random chat: the web client. Plain ES module, no framework, no build step.
//
// It speaks the wire contract (PROTOCOL.md) with the browser build of socket.io-client 4.x
// (`/vendor/socket.io.min.js`, global `io`) and `fetch`. Every piece of state that matters is
// visible on the page; `document.body.dataset.phase` says where the user is:
// loading → join → idle ⇄ searching → chat → ended → searching …, and `banned` while a ban holds.
//
// No inline scripts, styles or handlers: the server sends a strict Content-Security-Policy.

const $ = (id) => document.getElementById(id);

/** Query options: `?transport=polling` (HTTP long-polling only) or `?transport=websocket`. */
const params = new URLSearchParams(location.search);
const TRANSPORT = params.get('transport');

const PROFILE_KEY = 'chat.profile';
const FILTERS_KEY = 'chat.filters';
const ROOM_KEY = 'chat.room';
/** `{until, reason}` of a ban in force: while it holds the page creates no session and opens no socket. */
const BAN_KEY = 'chat.ban';
/** A random id of this browser, sent as `deviceId` with every new guest (a ban covers it). */
const DEVICE_KEY = 'chat.device';
const REFUSALS = ['Authentication required', 'Invalid token', 'Token has expired', 'Guest session not found'];

/** `user:report` reasons and how they are shown (also for the reason of a ban). */
const REPORT_REASONS = {
  spam: 'Spam or advertising',
  harassment: 'Harassment, threats or hate',
  nudity: 'Nudity or sexual content',
  underage: 'Seems to be under 18',
  other: 'Something else',
};
const MAX_REPORT_DETAILS = 500;
/** The server takes a report of the last partner up to 120 s after the room closed; a margin for the trip. */
const REPORT_AFTER_CLOSE_MS = 110_000;

const CLOSE_REASONS = {
  left: 'You left the chat.',
  partner_left: '{name} left the chat.',
  partner_disconnected: '{name} lost the connection and did not come back.',
  session_expired: "{name}'s session expired.",
  partner_banned: 'Your partner was removed for breaking the rules.',
};

const state = {
  /** `{token, expiresAt, receivedAt}` of this tab's guest session. */
  session: null,
  /** The own `GuestUser`. */
  me: null,
  /** The localStorage key of this tab's session (one per open tab, see `claimSlot`). */
  slotKey: 'chat.session.0',
  socket: null,
  phase: 'loading',
  /** `{roomId, partner, initiator}` while in a chat (and after it ended, until the next). */
  room: null,
  partnerAway: false,
  /** Why the server disconnected us: 'replaced', 'expired', 'shutdown' or null. */
  kicked: null,
  everConnected: false,
  /** socket.io's reconnection attempt, shown while reconnecting. */
  attempt: 0,
  /** Message elements by clientId and by server id. */
  byClientId: new Map(),
  byId: new Map(),
  /** Receipts that arrived before the message's id was known. */
  earlyDelivered: new Set(),
  typingSent: false,
  call: null,
  ice: null,
  recorder: null,
  renewals: [],
  /** `{until, reason}` once banned (until may be unknown: null); the page then stays on its banned screen. */
  banned: null,
  /** The open report dialog: `{opener, sending}`. */
  report: null,
  /** After a room closed: until when its partner may still be reported (ms since the epoch). */
  reportableUntil: 0,
  /** Why the last room closed. */
  closeReason: null,
};

const timers = { refresh: 0, heartbeat: 0, typingStop: 0, typingShown: 0, banner: 0, record: 0, callClock: 0, reportable: 0, banned: 0 };

// ---------------------------------------------------------------------------------------------
// Small helpers

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of [].concat(children)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

/** A random id; `crypto.randomUUID` exists only in secure contexts. */
function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

function clock(seconds) {
  const whole = Math.max(0, Math.round(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

function timeOf(timestamp) {
  const date = timestamp ? new Date(timestamp) : new Date();
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function fileSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function partnerName() {
  return state.room?.partner?.username || 'The stranger';
}

function hueOf(text) {
  let hash = 0;
  for (const char of text) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return hash % 8;
}

function readJson(storage, key) {
  try {
    return JSON.parse(storage.getItem(key) ?? 'null');
  } catch {
    return null;
  }
}

function writeJson(storage, key, value) {
  try {
    if (value === null) storage.removeItem(key);
    else storage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the page works, it just forgets on reload.
  }
}

// ---------------------------------------------------------------------------------------------
// Notices and the connection indicator

function showNotice(text, { kind = 'warning', action = null, onAction = null } = {}) {
  $('notice-text').textContent = text;
  $('notice').dataset.kind = kind;
  const button = $('notice-action');
  button.hidden = !action;
  button.textContent = action ?? '';
  button.onclick = onAction
    ? () => {
        hideNotice();
        onAction();
      }
    : null;
  $('notice').hidden = false;
}

function hideNotice() {
  $('notice').hidden = true;
}

function setConnection(status, attempt = state.attempt) {
  if (status === 'connected') state.attempt = 0;
  const box = $('connection');
  box.dataset.state = status;
  const transport = state.socket?.io?.engine?.transport?.name;
  box.dataset.transport = status === 'connected' ? transport ?? '' : '';
  const texts = {
    connecting: 'Connecting…',
    connected: `Connected${transport ? ` (${transport === 'polling' ? 'long-polling' : 'WebSocket'})` : ''}`,
    reconnecting: attempt > 0 ? `Reconnecting (attempt ${attempt})…` : 'Reconnecting…',
    offline: 'Offline',
  };
  $('connection-text').textContent = texts[status];
  updateControls();
}

function renderStats(stats) {
  if (!stats) return;
  $('stat-online').textContent = stats.onlineUsers ?? '–';
  $('stat-searching').textContent = stats.availableUsers ?? '–';
  $('stat-in-chat').textContent = stats.usersInChat ?? '–';
}

// ---------------------------------------------------------------------------------------------
// Phases

function setPhase(phase) {
  state.phase = phase;
  document.body.dataset.phase = phase;
  $('loading-view').hidden = phase !== 'loading';
  $('join-view').hidden = phase !== 'join';
  $('lobby-view').hidden = phase !== 'idle' && phase !== 'searching';
  $('chat-view').hidden = phase !== 'chat' && phase !== 'ended';
  $('searching').hidden = phase !== 'searching';
  $('search-form').hidden = phase === 'searching';
  $('room-ended').hidden = phase !== 'ended';
  $('banned-view').hidden = phase !== 'banned';
  if (phase !== 'chat') {
    showTyping(false);
    setBanner(null);
  }
  updateControls();
}

function updateControls() {
  const connected = Boolean(state.socket?.connected);
  const live = state.phase === 'chat' && connected;
  for (const id of ['message-input', 'send-button', 'attach-button', 'clear-button', 'leave-button']) {
    $(id).disabled = !live;
  }
  $('record-button').disabled = !live || !window.MediaRecorder || !navigator.mediaDevices;
  const canCall = live && !state.partnerAway && !state.call && Boolean(window.RTCPeerConnection && navigator.mediaDevices);
  $('audio-call-button').disabled = !canCall;
  $('video-call-button').disabled = !canCall;
  $('next-button').disabled = !connected || state.phase !== 'chat';
  $('search-button').disabled = !connected;
  $('new-search-button').disabled = !connected;
  $('cancel-button').disabled = !connected;
  const reportable = canReport();
  $('report-button').disabled = !connected || !reportable;
  $('report-ended-button').hidden = state.phase !== 'ended' || !reportable;
  $('report-ended-button').disabled = !connected;
}

// ---------------------------------------------------------------------------------------------
// REST

class ApiError extends Error {
  constructor(status, code, message, retryAfter, until = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    /** When a ban ends (403 `banned`). */
    this.until = until;
  }
}

async function api(method, path, { body, form, auth = true } = {}) {
  const headers = {};
  if (auth && state.session) headers.Authorization = `Bearer ${state.session.token}`;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, cache: 'no-store', credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached.');
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data?.error;
    throw new ApiError(response.status, error?.code ?? 'http_error', error?.message ?? `HTTP ${response.status}`, Number(response.headers.get('Retry-After')) || 0, error?.until ?? null);
  }
  return data;
}

/** A 401 or 404 from an authenticated call: the token or the session is gone. */
function sessionGone(error) {
  return error instanceof ApiError && (error.status === 401 || (error.status === 404 && error.code === 'session_not_found'));
}

/** An authenticated call that replaces a session that is gone with a new guest, once. */
async function authed(method, path, options) {
  try {
    return await api(method, path, options);
  } catch (error) {
    if (!sessionGone(error)) throw error;
    await renewSession('Your session had ended');
    return api(method, path, options);
  }
}

// ---------------------------------------------------------------------------------------------
// The guest session: one per tab, kept in localStorage, refreshed before it expires

/**
 * Picks this tab's localStorage slot. Every open tab holds a Web Lock on its slot, so a second
 * tab gets a session of its own (and can chat with the first), while a reopened tab takes the
 * free slot and its session back. Without Web Locks (insecure contexts) the slot is per tab.
 */
async function claimSlot() {
  if (navigator.locks?.request) {
    for (let slot = 0; slot < 64; slot += 1) {
      const held = await new Promise((resolve) => {
        navigator.locks
          .request(`chat-session-slot-${slot}`, { ifAvailable: true }, (lock) => {
            resolve(Boolean(lock));
            // Held until the tab closes.
            return lock ? new Promise(() => {}) : undefined;
          })
          .catch(() => resolve(false));
      });
      if (held) {
        state.slotKey = `chat.session.${slot}`;
        return;
      }
    }
  }
  let tab = sessionStorage.getItem('chat.tab');
  if (!tab) {
    tab = randomId();
    sessionStorage.setItem('chat.tab', tab);
  }
  state.slotKey = `chat.session.${tab}`;
}

function storeSession(token, expiresAt) {
  state.session = { token, expiresAt, receivedAt: Date.now() };
  writeJson(localStorage, state.slotKey, state.session);
  scheduleRefresh();
}

/** Refreshes when 80% of the token's remaining life has passed. */
function scheduleRefresh() {
  clearTimeout(timers.refresh);
  if (!state.session) return;
  const remaining = Date.parse(state.session.expiresAt) - Date.now();
  const delay = remaining > 2000 ? remaining * 0.8 : 0;
  timers.refresh = setTimeout(refreshToken, Math.min(delay, 2 ** 31 - 1));
}

async function refreshToken() {
  try {
    const { token, expiresAt } = await api('POST', '/api/guest/refresh');
    storeSession(token, expiresAt);
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes ?? 0) + 1);
  } catch (error) {
    if (state.banned) return;
    if (!sessionGone(error)) {
      timers.refresh = setTimeout(refreshToken, 5000);
      return;
    }
    await renewSession('Your session had ended').catch(() => {});
  }
}

/** The profile to create a guest with: only the fields the user filled in. */
function profileFromForm() {
  const profile = {};
  for (const field of ['username', 'gender', 'language', 'location']) {
    const value = $(`join-${field}`).value.trim();
    if (value) profile[field] = value;
  }
  return profile;
}

/** This browser's device id (random, kept in localStorage; the server keeps only a keyed hash of it). */
function deviceId() {
  let id = null;
  try {
    id = localStorage.getItem(DEVICE_KEY);
    if (!id) {
      id = randomId();
      localStorage.setItem(DEVICE_KEY, id);
    }
  } catch {
    // Storage disabled: no device id.
  }
  return id;
}

async function createGuest(profile) {
  if (state.banned) throw new Error('You are banned.');
  const device = deviceId();
  let data;
  try {
    data = await api('POST', '/api/guest', { body: device ? { ...profile, deviceId: device } : profile, auth: false });
  } catch (error) {
    if (error.code === 'banned') enterBanned({ until: error.until });
    throw error;
  }
  storeSession(data.token, data.expiresAt);
  return data.user;
}

/**
 * The session is gone (expired, deleted, server restarted): make a new guest with the saved
 * profile and carry on. Throttled so a broken server cannot make the page loop.
 */
async function renewSession(why) {
  if (state.banned) throw new Error('You are banned.');
  if (state.renewing) return state.renewing;
  const now = Date.now();
  state.renewals = state.renewals.filter((at) => now - at < 60_000);
  if (state.renewals.length >= 3) {
    showNotice('The server keeps refusing this session.', { kind: 'error', action: 'Try again', onAction: () => location.reload() });
    throw new Error('too many new sessions');
  }
  state.renewals.push(now);
  state.renewing = (async () => {
    const profile = readJson(localStorage, PROFILE_KEY) ?? {};
    let user;
    try {
      user = await createGuest(profile);
    } catch (error) {
      if (error.status !== 400 || state.banned) throw error;
      user = await createGuest({});
    }
    leaveRoomLocally();
    state.me = user;
    renderMe();
    document.body.dataset.userId = user.id;
    showNotice(`${why}, so you have a new one: you are now ${user.username}.`, { kind: 'info' });
    if (state.phase !== 'join' && state.phase !== 'loading') setPhase('idle');
    // A socket still open on the old session must not go on speaking for it.
    if (state.socket?.connected) {
      state.socket.disconnect();
      state.socket.connect();
    }
    return user;
  })();
  try {
    return await state.renewing;
  } finally {
    state.renewing = null;
  }
}

function renderMe() {
  $('me-name').textContent = state.me?.username ?? '';
}

// ---------------------------------------------------------------------------------------------
// Start-up

async function start() {
  setConnection('offline');
  await claimSlot();
  // A ban this browser was told about: no session, no socket until it ends.
  const ban = readJson(localStorage, BAN_KEY);
  if (ban && Date.parse(ban.until) > Date.now()) {
    enterBanned(ban);
    return;
  }
  if (ban) writeJson(localStorage, BAN_KEY, null);
  const saved = readJson(localStorage, state.slotKey);
  const savedFilters = readJson(localStorage, FILTERS_KEY) ?? {};
  for (const field of ['gender', 'language', 'location']) {
    if (savedFilters[field]) $(`filter-${field}`).value = savedFilters[field];
  }
  const profile = readJson(localStorage, PROFILE_KEY) ?? {};
  for (const field of ['username', 'gender', 'language', 'location']) {
    if (profile[field]) $(`join-${field}`).value = profile[field];
  }
  if (saved?.token) {
    state.session = saved;
    try {
      const { user } = await api('GET', '/api/guest/me');
      scheduleRefresh();
      joined(user);
      return;
    } catch (error) {
      if (!sessionGone(error)) {
        setPhase('join');
        showNotice(`The server cannot be reached right now (${error.message}).`, { kind: 'error', action: 'Retry', onAction: () => location.reload() });
        return;
      }
      state.session = null;
      writeJson(localStorage, state.slotKey, null);
    }
  }
  setPhase('join');
  $('join-username').focus();
}

async function join(event) {
  event.preventDefault();
  const profile = profileFromForm();
  $('join-error').textContent = '';
  $('join-button').disabled = true;
  try {
    const user = await createGuest(profile);
    writeJson(localStorage, PROFILE_KEY, profile);
    joined(user);
  } catch (error) {
    if (state.banned) return;
    $('join-error').textContent =
      error.status === 429 ? `Too many new sessions from your address. Try again in ${error.retryAfter || 60} s.` : error.message;
  } finally {
    $('join-button').disabled = false;
  }
}

/** A session is ready (new, or restored from localStorage): connect and show the lobby. */
function joined(user) {
  state.me = user;
  document.body.dataset.userId = user.id;
  renderMe();
  const savedRoom = readJson(sessionStorage, ROOM_KEY);
  if (user.inChat) {
    // A reload within the reconnect grace: the server kept the room. This tab may not know
    // the partner (another tab had the session): their profile comes with the next stats.
    const known = savedRoom?.partner?.id === user.connectedUser;
    beginRoom(known ? savedRoom : { roomId: null, partner: { id: user.connectedUser }, initiator: false }, { restored: true });
  } else {
    writeJson(sessionStorage, ROOM_KEY, null);
    setPhase(user.isSearching ? 'searching' : 'idle');
  }
  connectSocket();
  if (state.phase === 'idle') $('search-button').focus();
}

// ---------------------------------------------------------------------------------------------
// The socket

function connectSocket() {
  if (state.banned) return;
  if (state.socket) {
    if (!state.socket.connected) state.socket.connect();
    return;
  }
  const options = {
    path: '/socket.io/',
    // A function, so every (re)connection sends the current token.
    auth: (send) => send({ token: state.session?.token }),
    reconnectionDelay: 1000,
    reconnectionDelayMax: 5000,
    timeout: 10_000,
  };
  if (TRANSPORT === 'polling') Object.assign(options, { transports: ['polling'], upgrade: false });
  if (TRANSPORT === 'websocket') options.transports = ['websocket'];
  const socket = window.io(options);
  state.socket = socket;
  setConnection('connecting');

  socket.on('connect', onConnect);
  socket.on('disconnect', onDisconnect);
  socket.on('connect_error', onConnectError);
  socket.io.on('reconnect_attempt', (attempt) => {
    state.attempt = attempt;
    setConnection('reconnecting');
  });
  socket.io.on('reconnect_failed', () => setConnection('offline'));

  socket.on('connection:established', (info) => {
    if (state.me) {
      state.me.id = info.userId;
      state.me.username = info.username;
      renderMe();
    }
  });
  socket.on('realtime:stats', (update) => {
    renderStats(update?.stats);
    lookUpPartner(update?.onlineUsers);
  });
  socket.on('stats:update', (update) => renderStats(update?.stats));
  socket.on('error', (failure) => {
    if (failure?.message) showNotice(`${failure.event ?? 'Request'}: ${failure.message}`, { kind: 'error' });
  });

  socket.on('match:searching', () => {
    if (state.phase !== 'searching') {
      leaveRoomLocally();
      setPhase('searching');
    }
  });
  socket.on('match:cancelled', () => setPhase('idle'));
  socket.on('match:found', (found) => beginRoom(found));

  socket.on('chat:message', onIncomingMessage);
  socket.on('message:sent', ({ id, clientId } = {}) => markSent(clientId, id));
  socket.on('message:delivered', ({ id } = {}) => markDelivered(id));
  socket.on('chat:typing', ({ isTyping } = {}) => showTyping(Boolean(isTyping)));
  socket.on('chat:cleared', () => {
    clearMessages();
    systemMessage(`${partnerName()} cleared the chat.`);
  });
  socket.on('partner:disconnected', ({ graceSecs } = {}) => partnerAway(Number(graceSecs) || 0));
  socket.on('partner:reconnected', partnerBack);
  socket.on('room:closed', ({ reason } = {}) => {
    const text = (CLOSE_REASONS[reason] ?? 'The chat ended.').replace('{name}', partnerName());
    endRoom(text, reason);
  });
  socket.on('session:banned', ({ until, reason } = {}) => enterBanned({ until, reason }));

  socket.on('webrtc:offer', onOffer);
  socket.on('webrtc:answer', onAnswer);
  socket.on('webrtc:ice-candidate', onRemoteCandidate);
  socket.on('webrtc:call-end', () => endCall(`${partnerName()} hung up.`));
  socket.on('webrtc:call-reject', () => endCall(`${partnerName()} declined the call.`));
  socket.on('webrtc:call-timeout', () => {
    if (!state.call) return;
    endCall(state.call.role === 'caller' ? 'No answer.' : 'Missed call.', { outcome: 'no-answer' });
  });
  socket.on('webrtc:error', ({ message } = {}) => {
    if (state.call) endCall(`The call failed: ${message ?? 'unknown error'}.`);
    else showNotice(`Call: ${message ?? 'unknown error'}`, { kind: 'error' });
  });

  socket.on('session:replaced', () => {
    state.kicked = 'replaced';
    showNotice('This chat was opened in another tab or window, so this one is now disconnected.', {
      action: 'Use it here',
      onAction: () => {
        state.kicked = null;
        state.socket.connect();
      },
    });
  });
  socket.on('session:expired', () => {
    state.kicked = 'expired';
    leaveRoomLocally();
    showNotice('Your session expired after a long time without activity.', {
      action: 'Start a new session',
      onAction: async () => {
        state.kicked = null;
        await renewSession('Your session expired');
        state.socket.connect();
      },
    });
  });
  socket.on('server:shutdown', () => {
    state.kicked = 'shutdown';
    showNotice('The server is shutting down for a moment. The page reconnects by itself when it is back.');
  });
}

async function onConnect() {
  const first = !state.everConnected;
  state.everConnected = true;
  setConnection('connected');
  state.socket.io.engine?.once?.('upgrade', () => setConnection('connected'));
  if (state.kicked === 'shutdown') {
    state.kicked = null;
    hideNotice();
  }
  state.socket.emit('stats:request');
  startHeartbeat();
  // Buttons are disabled while offline, so the focus could not land on them before.
  const nothingFocused = !document.activeElement || document.activeElement === document.body;
  if (nothingFocused && state.phase === 'idle') $('search-button').focus();
  if (nothingFocused && state.phase === 'chat') $('message-input').focus();
  if (!first) await reconcile();
  // The server drops a searcher whose socket went away (a reload): search again.
  else if (state.phase === 'searching') search();
}

/** After a reconnection: whatever happened meanwhile on the server wins. */
async function reconcile() {
  let user;
  try {
    ({ user } = await authed('GET', '/api/guest/me'));
  } catch {
    return;
  }
  state.me = user;
  renderMe();
  if (state.phase === 'chat' && (!user.inChat || user.connectedUser !== state.room?.partner?.id)) {
    endRoom('The chat ended while you were disconnected.', 'partner_disconnected');
  } else if (state.phase === 'searching' && !user.inChat) {
    search();
  }
}

function onDisconnect(reason) {
  stopHeartbeat();
  if (reason === 'io client disconnect') {
    setConnection('offline');
    return;
  }
  if (reason !== 'io server disconnect') {
    // Transport trouble: socket.io retries by itself.
    setConnection('reconnecting');
    return;
  }
  // The server closed this socket on purpose.
  setConnection('offline');
  if (state.banned || state.kicked === 'replaced' || state.kicked === 'expired') return;
  if (state.kicked === 'shutdown') {
    setConnection('reconnecting');
    // Opening again enters socket.io's reconnection loop (backoff, attempt count).
    setTimeout(() => state.socket.connect(), 1000);
    return;
  }
  // Anything else (the session was deleted, …): check the session, then come back.
  authed('GET', '/api/guest/me')
    .catch(() => null)
    .finally(() => state.socket.connect());
}

async function onConnectError(error) {
  if (state.socket.active) {
    // A transport failure: socket.io tries again by itself.
    setConnection('reconnecting');
    return;
  }
  setConnection('offline');
  if (state.banned) return;
  if (error?.message === 'Banned') {
    // Refused because this user or address is banned; when it ends is known only from
    // `session:banned` or a refused new session.
    const known = readJson(localStorage, BAN_KEY);
    enterBanned(known && Date.parse(known.until) > Date.now() ? known : { until: null, reason: null });
    return;
  }
  if (!REFUSALS.includes(error?.message)) {
    showNotice(`The server refused the connection: ${error?.message ?? 'unknown reason'}.`, { kind: 'error' });
    return;
  }
  // The token or session is gone: a new guest, then connect again.
  try {
    await renewSession(error.message === 'Token has expired' ? 'Your session token had expired' : 'Your session had ended');
    state.socket.connect();
  } catch (failure) {
    if (state.banned) return;
    showNotice(`Could not start a new session: ${failure.message}`, { kind: 'error', action: 'Retry', onAction: () => location.reload() });
  }
}

/** Heartbeats keep the session alive (Engine.IO pings do not count as activity). */
function startHeartbeat() {
  stopHeartbeat();
  const life = state.session ? Date.parse(state.session.expiresAt) - state.session.receivedAt : 120_000;
  const every = Math.min(30_000, Math.max(2_000, life / 4));
  timers.heartbeat = setInterval(() => state.socket?.emit('presence:heartbeat', () => {}), every);
}

function stopHeartbeat() {
  clearInterval(timers.heartbeat);
}

// ---------------------------------------------------------------------------------------------
// Searching

function currentFilters() {
  const filters = {};
  for (const field of ['gender', 'language', 'location']) {
    const value = $(`filter-${field}`).value.trim();
    if (value) filters[field] = value;
  }
  writeJson(localStorage, FILTERS_KEY, filters);
  return filters;
}

function answerOrNotice(what) {
  return (answer) => {
    if (answer && answer.ok === false) showNotice(`${what}: ${answer.error?.message ?? 'failed'}`, { kind: 'error' });
  };
}

function search(event) {
  event?.preventDefault();
  state.socket.emit('match:search', { filters: currentFilters() }, answerOrNotice('Search'));
}

function cancelSearch() {
  state.socket.emit('match:cancel', answerOrNotice('Cancel'));
}

function next() {
  endCall(null, { notify: true });
  state.socket.emit('match:next', { filters: currentFilters() }, answerOrNotice('Next'));
}

function leaveChat() {
  $('leave-button').closest('details').open = false;
  endCall(null, { notify: true });
  state.socket.emit('chat:leave', answerOrNotice('Leave'));
}

function clearChat() {
  $('clear-button').closest('details').open = false;
  state.socket.emit('chat:clear', (answer) => {
    if (answer?.ok === false) {
      showNotice(`Clear: ${answer.error?.message ?? 'failed'}`, { kind: 'error' });
      return;
    }
    clearMessages();
    systemMessage('You cleared the chat.');
  });
}

// ---------------------------------------------------------------------------------------------
// The room

function beginRoom({ roomId, partner, initiator }, { restored = false } = {}) {
  closeReport({ restoreFocus: false });
  endCall(null);
  state.closeReason = null;
  state.reportableUntil = 0;
  state.room = { roomId, partner: partner ?? { username: 'Stranger' }, initiator: Boolean(initiator) };
  state.partnerAway = false;
  writeJson(sessionStorage, ROOM_KEY, state.room);
  $('chat-view').dataset.initiator = String(state.room.initiator);
  if (!restored) clearMessages();
  renderPartner();
  setPhase('chat');
  systemMessage(restored ? `Back in your chat with ${partnerName()}.` : `You are now chatting with ${partnerName()}. Say hi!`);
  $('message-input').focus();
}

function renderPartner() {
  const partner = state.room?.partner ?? {};
  const name = partner.username || 'Stranger';
  $('partner-name').textContent = name;
  const avatar = $('partner-avatar');
  avatar.textContent = name.slice(0, 1).toUpperCase();
  avatar.className = `avatar hue-${hueOf(name)}`;
  const details = [partner.gender, partner.language, partner.location].filter(Boolean);
  $('partner-details').textContent = details.length ? details.join(' · ') : 'No details shared';
}

/** A restored room knows only the partner's id: their public profile is in the stats. */
function lookUpPartner(users) {
  const partner = state.room?.partner;
  if (!partner?.id || partner.username || !Array.isArray(users)) return;
  const found = users.find((user) => user.id === partner.id);
  if (found) {
    state.room.partner = found;
    renderPartner();
  }
}

function endRoom(text, reason) {
  if (state.phase !== 'chat') return;
  endCall(null);
  clearTimeout(timers.typingStop);
  state.typingSent = false;
  state.partnerAway = false;
  writeJson(sessionStorage, ROOM_KEY, null);
  systemMessage(text);
  $('room-ended-text').textContent = text;
  $('room-ended').dataset.reason = reason ?? '';
  state.closeReason = reason ?? null;
  // The server takes a report of this partner for a while yet (not of one it removed already).
  state.reportableUntil = reason === 'partner_banned' ? 0 : Date.now() + REPORT_AFTER_CLOSE_MS;
  clearTimeout(timers.reportable);
  if (state.reportableUntil) timers.reportable = setTimeout(updateControls, REPORT_AFTER_CLOSE_MS + 50);
  setPhase('ended');
  $('new-search-button').focus();
}

/** Forgets the room without a word (a new search, a new session). */
function leaveRoomLocally() {
  closeReport({ restoreFocus: false });
  endCall(null);
  state.room = null;
  state.partnerAway = false;
  writeJson(sessionStorage, ROOM_KEY, null);
}

function partnerAway(graceSecs) {
  state.partnerAway = true;
  endCall(`${partnerName()} lost the connection; the call ended.`);
  let left = graceSecs;
  const render = () => {
    setBanner(`${partnerName()} lost the connection. Waiting for them to reconnect${left > 0 ? ` (${left} s)` : ''}…`);
    left -= 1;
  };
  render();
  clearInterval(timers.banner);
  timers.banner = setInterval(() => (left >= 0 ? render() : clearInterval(timers.banner)), 1000);
  updateControls();
}

function partnerBack() {
  state.partnerAway = false;
  setBanner(null);
  systemMessage(`${partnerName()} is back.`);
  updateControls();
}

function setBanner(text) {
  if (!text) clearInterval(timers.banner);
  $('partner-banner').hidden = !text;
  $('partner-banner').textContent = text ?? '';
}

function showTyping(typing) {
  clearTimeout(timers.typingShown);
  $('typing').textContent = typing ? `${partnerName()} is typing…` : '';
  // A lost "stopped typing" must not leave the indicator on forever.
  if (typing) timers.typingShown = setTimeout(() => showTyping(false), 6000);
}

// ---------------------------------------------------------------------------------------------
// Reporting (`user:report`) and bans (`session:banned`, 403 `banned`, CONNECT_ERROR "Banned")

/** The partner can be reported in a chat, and for a while after the room closed. */
function canReport() {
  if (state.banned || !state.room) return false;
  if (state.phase === 'chat') return true;
  return state.phase === 'ended' && Date.now() < state.reportableUntil;
}

function openReport(opener) {
  if (!canReport() || !state.socket?.connected || $('report-dialog').open) return;
  $('report-button').closest('details').open = false;
  state.report = { opener, sending: false };
  $('report-form').reset();
  $('report-name').textContent = state.room.partner?.username || 'the stranger';
  $('report-error').textContent = '';
  renderDetailsCount();
  setReportSending(false);
  $('report-dialog').showModal();
  $('report-form').querySelector('input[name="reason"]').focus();
}

/** Closes the dialog; `restoreFocus` false when something else takes the focus (a new room, a ban). */
function closeReport({ restoreFocus = true } = {}) {
  const dialog = $('report-dialog');
  if (!restoreFocus && state.report) state.report.opener = null;
  if (dialog.open) dialog.close();
  else state.report = null;
}

/** The dialog closed (Cancel, Escape, a report sent, the room changed): focus goes back. */
function onReportClosed() {
  if ($('report-dialog').open) return;
  const opener = state.report?.opener;
  state.report = null;
  if (opener && opener.offsetParent !== null && !opener.disabled) opener.focus();
}

function renderDetailsCount() {
  const length = [...$('report-details').value].length;
  const count = $('report-details-count');
  count.textContent = `${length} / ${MAX_REPORT_DETAILS} characters`;
  count.dataset.over = String(length > MAX_REPORT_DETAILS);
}

function setReportSending(sending) {
  $('report-form').setAttribute('aria-busy', String(sending));
  $('report-submit').disabled = sending;
  $('report-submit').textContent = sending ? 'Sending…' : 'Send report';
}

function reportError(text, focus = null) {
  $('report-error').textContent = text;
  focus?.focus();
}

function submitReport(event) {
  event.preventDefault();
  const report = state.report;
  if (!report || report.sending) return;
  const form = $('report-form');
  const reason = new FormData(form).get('reason');
  const details = $('report-details').value.trim();
  if (!Object.hasOwn(REPORT_REASONS, reason)) {
    reportError('Choose what is wrong first.', form.querySelector('input[name="reason"]'));
    return;
  }
  const length = [...details].length;
  if (length > MAX_REPORT_DETAILS) {
    reportError(`The details can have at most ${MAX_REPORT_DETAILS} characters; these have ${length}.`, $('report-details'));
    return;
  }
  if (!state.socket?.connected) {
    reportError('You are offline. Send the report again once the page has reconnected.');
    return;
  }
  $('report-error').textContent = '';
  report.sending = true;
  setReportSending(true);
  const payload = details ? { reason, details } : { reason };
  state.socket.timeout(15_000).emit('user:report', payload, (error, answer) => reportAnswered(report, error, answer));
}

function reportFailure(error) {
  switch (error?.code) {
    case 'not_in_chat':
      return 'There is nobody to report any more: a chat can be reported until two minutes after it ended.';
    case 'rate_limited':
      return 'Too many requests at once. Wait a moment and try again.';
    default:
      return error?.message ?? 'The report was not accepted.';
  }
}

function reportAnswered(report, error, answer) {
  report.sending = false;
  const open = state.report === report;
  if (open) setReportSending(false);
  if (state.banned) return;
  if (error || !answer?.ok) {
    const text = error ? 'The server did not answer. Try again.' : reportFailure(answer?.error);
    if (answer?.error?.code === 'not_in_chat' && state.phase === 'ended') {
      state.reportableUntil = 0;
      updateControls();
    }
    if (open) reportError(text);
    else showNotice(`Report: ${text}`, { kind: 'error' });
    return;
  }
  document.body.dataset.reportId = answer.reportId ?? '';
  closeReport({ restoreFocus: false });
  // With enough reports the server removes the partner at once (`room:closed` `partner_banned`).
  const removed = state.phase === 'ended' && state.closeReason === 'partner_banned';
  const text = 'Reported. You will not be matched with this person again.';
  showNotice(removed ? `${text} They were removed for breaking the rules.` : text, { kind: 'info' });
  // On to the next stranger, as "Next" does.
  if (state.phase === 'chat') next();
  else if (state.phase === 'ended') search();
}

/**
 * This browser is banned: forget the session, stop the socket (no reconnection), and show the
 * banned screen until `until`. The ban is remembered so a reload creates no session meanwhile.
 */
function enterBanned({ until = null, reason = null } = {}) {
  const ends = typeof until === 'string' && Number.isFinite(Date.parse(until)) ? until : null;
  state.banned = { until: ends ?? state.banned?.until ?? null, reason: reason || state.banned?.reason || null };
  if (state.banned.until && Date.parse(state.banned.until) > Date.now()) writeJson(localStorage, BAN_KEY, state.banned);
  state.kicked = 'banned';
  clearTimeout(timers.refresh);
  stopHeartbeat();
  discardRecording();
  closeReport({ restoreFocus: false });
  leaveRoomLocally();
  clearMessages();
  state.session = null;
  writeJson(localStorage, state.slotKey, null);
  state.socket?.disconnect();
  hideNotice();
  setConnection('offline');
  // The live counters stop with the socket.
  renderStats({ onlineUsers: '–', availableUsers: '–', usersInChat: '–' });
  setPhase('banned');
  renderBanned();
  $('banned-title').focus();
}

/** "in 23 h 59 min", "in 4 min", "in 12 s". */
function timeLeft(ms) {
  const seconds = Math.ceil(ms / 1000);
  if (seconds < 60) return `in ${seconds} s`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 60) return `in ${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `in ${hours} h ${minutes % 60} min`;
  return `in ${Math.floor(hours / 24)} days ${hours % 24} h`;
}

function renderBanned() {
  clearInterval(timers.banned);
  const { until, reason } = state.banned;
  const view = $('banned-view');
  $('banned-reason').textContent = reason ? `Reason: ${REPORT_REASONS[reason] ?? reason}.` : '';
  $('banned-reason').hidden = !reason;
  const again = $('banned-again');
  const ends = until ? Date.parse(until) : NaN;
  if (!Number.isFinite(ends)) {
    view.dataset.state = 'unknown';
    $('banned-ends').textContent = 'The server did not say when the ban ends. You can check again later.';
    again.textContent = 'Check again';
    again.hidden = false;
    return;
  }
  const time = el('time', {
    datetime: new Date(ends).toISOString(),
    text: new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' }).format(ends),
  });
  again.hidden = true;
  const tick = () => {
    const left = ends - Date.now();
    if (left > 0) {
      view.dataset.state = 'active';
      $('banned-ends').replaceChildren('It ends on ', time, ` (${timeLeft(left)}).`);
      return;
    }
    clearInterval(timers.banned);
    writeJson(localStorage, BAN_KEY, null);
    view.dataset.state = 'over';
    $('banned-title').textContent = 'Your ban has ended';
    $('banned-ends').replaceChildren('It ended on ', time, '. You can chat again.');
    again.textContent = 'Start again';
    again.hidden = false;
    again.focus();
  };
  tick();
  timers.banned = setInterval(tick, 1000);
}

/** "Start again" once the ban is over, or "Check again" when its end was not known. */
function leaveBanned() {
  writeJson(localStorage, BAN_KEY, null);
  location.reload();
}

// ---------------------------------------------------------------------------------------------
// Messages

function nearBottom() {
  const list = $('messages');
  return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
}

function scrollToEnd() {
  const list = $('messages');
  list.scrollTop = list.scrollHeight;
}

function appendToLog(item) {
  const stick = nearBottom();
  $('messages').append(item);
  if (stick) scrollToEnd();
}

function clearMessages() {
  $('messages').replaceChildren();
  state.byClientId.clear();
  state.byId.clear();
  state.earlyDelivered.clear();
}

function systemMessage(text) {
  appendToLog(el('li', { class: 'message system', text }));
}

const RECEIPTS = {
  pending: ['…', 'Sending'],
  sent: ['✓', 'Sent'],
  delivered: ['✓✓', 'Delivered'],
  failed: ['!', 'Not sent'],
};

function setStatus(item, status, why = '') {
  const order = ['pending', 'sent', 'delivered'];
  const current = item.dataset.status;
  if (order.includes(status) && order.indexOf(status) < order.indexOf(current)) return;
  if (current === 'delivered') return;
  item.dataset.status = status;
  const receipt = item.querySelector('.receipt');
  const [mark, label] = RECEIPTS[status];
  receipt.textContent = mark;
  receipt.setAttribute('aria-label', why ? `${label}: ${why}` : label);
  receipt.title = why ? `${label}: ${why}` : label;
  item.querySelector('.retry')?.remove();
  if (status === 'failed' && item.retry) {
    const retry = el('button', { type: 'button', class: 'retry quiet', text: 'Retry' });
    retry.addEventListener('click', () => item.retry());
    item.querySelector('.meta').append(retry);
  }
}

function messageItem({ mine, timestamp, body }) {
  const meta = el('div', { class: 'meta' }, [el('time', { text: timeOf(timestamp), datetime: timestamp ?? new Date().toISOString() })]);
  if (mine) meta.append(el('span', { class: 'receipt', role: 'img' }));
  return el('li', { class: `message ${mine ? 'mine' : 'theirs'}` }, [el('div', { class: 'bubble' }, body), meta]);
}

/** The visible body of a message: text, an image, a player, or a download link. */
function renderBody(type, content) {
  if (type === 'text') return [document.createTextNode(String(content))];
  const file = content ?? {};
  const url = typeof file.fileUrl === 'string' && file.fileUrl.startsWith('/') ? file.fileUrl : null;
  const name = file.filename ?? 'file';
  if (!url) return [document.createTextNode(`[${name}]`)];
  if (type === 'voice') {
    return [
      el('span', { class: 'voice-label', text: `Voice note · ${clock(Number(file.duration) || 0)}` }),
      el('audio', { controls: true, preload: 'metadata', src: url, 'aria-label': 'Voice note' }),
    ];
  }
  switch (file.fileType) {
    case 'image': {
      const image = el('img', { src: url, alt: name, loading: 'lazy', decoding: 'async' });
      // The image grows the log once loaded: keep the newest message in view.
      image.addEventListener('load', () => $('messages').lastElementChild?.contains(image) && scrollToEnd(), { once: true });
      return [el('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, image), el('span', { class: 'caption', text: name })];
    }
    case 'video':
      return [el('video', { controls: true, preload: 'metadata', src: url }), el('span', { class: 'caption', text: name })];
    case 'audio':
    case 'voice':
      return [el('audio', { controls: true, preload: 'metadata', src: url }), el('span', { class: 'caption', text: name })];
    default:
      return [el('a', { href: url, download: name, class: 'download', text: `Download ${name} (${fileSize(Number(file.fileSize) || 0)})` })];
  }
}

/** Sends one chat message; `item` is its element (already on the page, status pending). */
function emitMessage(item, type, content) {
  const clientId = item.dataset.clientId;
  setStatus(item, 'pending');
  state.socket.timeout(15_000).emit('chat:message', { type, content, clientId }, (error, answer) => {
    if (error) {
      if (item.dataset.status === 'pending') setStatus(item, 'failed', 'no answer from the server');
    } else if (answer?.ok) {
      markSent(clientId, answer.message?.id);
    } else {
      setStatus(item, 'failed', answer?.error?.message ?? 'refused');
    }
  });
}

function newOutgoing(body) {
  const item = messageItem({ mine: true, body });
  item.dataset.clientId = randomId();
  state.byClientId.set(item.dataset.clientId, item);
  appendToLog(item);
  scrollToEnd();
  return item;
}

function sendText(event) {
  event.preventDefault();
  const input = $('message-input');
  const text = input.value.trim();
  if (!text || state.phase !== 'chat') return;
  if ([...text].length > 2000) {
    showNotice('A message can have at most 2000 characters.', { kind: 'error' });
    return;
  }
  input.value = '';
  stopTyping();
  const item = newOutgoing(renderBody('text', text));
  item.dataset.type = 'text';
  item.retry = () => emitMessage(item, 'text', text);
  emitMessage(item, 'text', text);
}

function markSent(clientId, id) {
  const item = state.byClientId.get(clientId);
  if (!item) return;
  if (id && !item.dataset.id) {
    item.dataset.id = id;
    state.byId.set(id, item);
  }
  setStatus(item, 'sent');
  if (id && state.earlyDelivered.delete(id)) setStatus(item, 'delivered');
}

function markDelivered(id) {
  const item = state.byId.get(id);
  if (item) setStatus(item, 'delivered');
  else if (id) state.earlyDelivered.add(id);
}

function onIncomingMessage(message, ack) {
  // The receipt: acking the event confirms delivery (the sender sees ✓✓).
  if (typeof ack === 'function') ack({ ok: true });
  if (state.phase !== 'chat' || !message) return;
  showTyping(false);
  const item = messageItem({ mine: false, timestamp: message.timestamp, body: renderBody(message.type, message.content) });
  item.dataset.id = message.id ?? '';
  item.dataset.type = message.type ?? 'text';
  appendToLog(item);
}

// Typing: true on the first keystroke, false after 2.5 s without one or on send.
function onTypingInput() {
  if (state.phase !== 'chat' || state.partnerAway) return;
  if (!state.typingSent && $('message-input').value.trim()) {
    state.typingSent = true;
    state.socket.emit('chat:typing', { isTyping: true });
  }
  clearTimeout(timers.typingStop);
  timers.typingStop = setTimeout(stopTyping, 2500);
}

function stopTyping() {
  clearTimeout(timers.typingStop);
  if (!state.typingSent) return;
  state.typingSent = false;
  if (state.phase === 'chat') state.socket.emit('chat:typing', { isTyping: false });
}

// ---------------------------------------------------------------------------------------------
// Files and voice notes

async function upload(blob, filename, duration) {
  const form = new FormData();
  form.append('file', blob, filename);
  if (duration !== undefined) form.append('duration', duration.toFixed(1));
  const { file } = await authed('POST', '/api/files', { form });
  return file;
}

/** Uploads, then sends the message pointing at the upload. */
async function sendUpload(blob, filename, duration) {
  const type = duration === undefined ? 'file' : 'voice';
  const item = newOutgoing([el('span', { class: 'uploading', text: `Uploading ${filename}…` })]);
  item.dataset.type = type;
  setStatus(item, 'pending');
  let file;
  try {
    file = await upload(blob, filename, duration);
  } catch (error) {
    setStatus(item, 'failed', error.message);
    return;
  }
  const content = { fileId: file.fileId, filename: file.filename, fileType: file.fileType, fileSize: file.fileSize, fileUrl: file.fileUrl };
  if (type === 'voice') content.duration = file.duration ?? duration;
  item.querySelector('.bubble').replaceChildren(...renderBody(type, content));
  item.retry = () => emitMessage(item, type, content);
  emitMessage(item, type, content);
}

function onFileChosen() {
  const input = $('file-input');
  for (const file of input.files) sendUpload(file, file.name);
  input.value = '';
}

async function toggleRecording() {
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    showNotice(`The microphone is not available: ${error.message}`, { kind: 'error' });
    return;
  }
  const type = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4'].find((candidate) => MediaRecorder.isTypeSupported(candidate));
  const recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  const chunks = [];
  const startedAt = performance.now();
  state.recorder = recorder;
  recorder.discard = false;
  recorder.addEventListener('dataavailable', (event) => event.data.size && chunks.push(event.data));
  recorder.addEventListener('stop', () => {
    stream.getTracks().forEach((track) => track.stop());
    clearInterval(timers.record);
    state.recorder = null;
    renderRecording(null);
    const seconds = Math.min(3600, Math.max(0.1, (performance.now() - startedAt) / 1000));
    if (recorder.discard || !chunks.length || state.phase !== 'chat') return;
    const mime = recorder.mimeType || type || 'audio/webm';
    const extension = mime.includes('ogg') ? 'ogg' : mime.includes('mp4') ? 'm4a' : 'webm';
    sendUpload(new Blob(chunks, { type: mime }), `voice-note.${extension}`, seconds);
  });
  recorder.start(250);
  const tick = () => {
    const elapsed = (performance.now() - startedAt) / 1000;
    renderRecording(elapsed);
    // Five minutes at most.
    if (elapsed >= 300) recorder.stop();
  };
  tick();
  timers.record = setInterval(tick, 250);
}

function renderRecording(elapsed) {
  const button = $('record-button');
  const recording = elapsed !== null;
  button.dataset.recording = String(recording);
  button.dataset.elapsed = recording ? elapsed.toFixed(2) : '';
  button.setAttribute('aria-label', recording ? 'Stop and send the voice note' : 'Record a voice note');
  $('record-time').textContent = recording ? clock(elapsed) : '';
  $('record-cancel').hidden = !recording;
}

function discardRecording() {
  if (!state.recorder) return;
  state.recorder.discard = true;
  state.recorder.stop();
}

// ---------------------------------------------------------------------------------------------
// Calls (WebRTC): whoever clicks "call" sends the offer; the other accepts or declines.

async function iceServers() {
  if (state.ice && state.ice.until > Date.now()) return state.ice.servers;
  const { iceServers: servers, ttl } = await authed('GET', '/api/webrtc/ice-servers');
  state.ice = { servers: usableIceServers(servers), until: Date.now() + Math.max(60, Number(ttl) || 0) * 500 };
  return state.ice.servers;
}

/**
 * The servers as given, less any URL that is not a STUN/TURN URL (an empty one would make
 * `RTCPeerConnection` throw). With none left, host candidates still connect on one network.
 */
function usableIceServers(servers) {
  if (!Array.isArray(servers)) return [];
  return servers
    .map((server) => ({ ...server, urls: [].concat(server?.urls ?? []).filter((url) => typeof url === 'string' && /^(stun|stuns|turn|turns):./.test(url)) }))
    .filter((server) => server.urls.length > 0);
}

/** Camera and microphone, falling back to the microphone alone, then to receiving only. */
async function localMedia(kind) {
  const attempts = kind === 'video' ? [{ audio: true, video: true }, { audio: true }] : [{ audio: true }];
  for (const constraints of attempts) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch {
      // try the next
    }
  }
  systemMessage('No camera or microphone is available: you can only see and hear the other side.');
  return null;
}

function renderCall(status, text) {
  const stick = nearBottom();
  const panel = $('call-panel');
  const call = state.call;
  panel.hidden = !call;
  panel.dataset.state = status;
  panel.dataset.kind = call?.kind ?? '';
  $('call-status').textContent = text ?? '';
  $('incoming-call').hidden = status !== 'ringing';
  $('call-controls').hidden = !call || status === 'ringing';
  $('camera-button').hidden = call?.kind !== 'video';
  updateControls();
  if (stick) scrollToEnd();
}

function createPeer(servers) {
  const call = state.call;
  const pc = new RTCPeerConnection({ iceServers: servers });
  call.pc = pc;
  const remote = new MediaStream();
  $('remote-video').srcObject = remote;
  pc.addEventListener('icecandidate', ({ candidate }) => {
    if (candidate && state.call === call) state.socket.emit('webrtc:ice-candidate', { candidate: candidate.toJSON() });
  });
  pc.addEventListener('track', ({ track, streams }) => {
    if (streams[0]) $('remote-video').srcObject = streams[0];
    else remote.addTrack(track);
  });
  pc.addEventListener('connectionstatechange', () => {
    if (state.call !== call) return;
    $('call-panel').dataset.peerState = pc.connectionState;
    if (pc.connectionState === 'connected') {
      if (!call.connectedAt) {
        call.connectedAt = performance.now();
        timers.callClock = setInterval(() => renderCall('connected', `In call with ${partnerName()} · ${clock((performance.now() - call.connectedAt) / 1000)}`), 1000);
      }
      renderCall('connected', `In call with ${partnerName()}`);
    } else if (pc.connectionState === 'disconnected') {
      renderCall('connecting', 'Connection unstable, reconnecting…');
    } else if (pc.connectionState === 'failed') {
      hangUp('The call could not connect.');
    }
  });
  if (call.stream) {
    for (const track of call.stream.getTracks()) pc.addTrack(track, call.stream);
  } else {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    if (call.kind === 'video') pc.addTransceiver('video', { direction: 'recvonly' });
  }
  return pc;
}

function showLocal(stream) {
  $('local-video').srcObject = stream;
}

async function startCall(kind) {
  if (state.call || state.phase !== 'chat' || state.partnerAway) return;
  const call = { kind, role: 'caller', pending: [] };
  state.call = call;
  renderCall('calling', `Calling ${partnerName()}…`);
  try {
    const servers = await iceServers();
    call.stream = await localMedia(kind);
    if (state.call !== call) return call.stream?.getTracks().forEach((track) => track.stop());
    showLocal(call.stream);
    const pc = createPeer(servers);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    if (state.call !== call) return;
    state.socket.emit('webrtc:offer', { offer: { type: offer.type, sdp: offer.sdp }, type: kind }, (answer) => {
      if (answer?.ok === false && state.call === call) endCall(`The call failed: ${answer.error?.message ?? 'refused'}.`);
    });
    $('hangup-button').focus();
  } catch (error) {
    if (state.call === call) hangUp(`The call failed: ${error.message}`);
  }
}

async function onOffer({ offer, type } = {}) {
  if (state.phase !== 'chat' || !offer) return;
  const current = state.call;
  if (current?.pc && current.answered) {
    // Renegotiation of a call in progress.
    await current.pc.setRemoteDescription(offer);
    const answer = await current.pc.createAnswer();
    await current.pc.setLocalDescription(answer);
    state.socket.emit('webrtc:answer', { answer: { type: answer.type, sdp: answer.sdp } });
    return;
  }
  if (current?.role === 'caller') {
    // Both called at once: the match's initiator keeps its call, the other takes the offer.
    if (state.room?.initiator) return;
    const stream = current.stream;
    current.pc?.close();
    state.call = { kind: type === 'audio' ? 'audio' : 'video', role: 'callee', pending: [], offer, stream };
    acceptCall();
    return;
  }
  if (current) return;
  state.call = { kind: type === 'audio' ? 'audio' : 'video', role: 'callee', pending: [], offer };
  renderCall('ringing', `${partnerName()} is calling you (${state.call.kind === 'video' ? 'video' : 'audio'} call).`);
  $('accept-call').focus();
}

async function acceptCall() {
  const call = state.call;
  if (!call || call.role !== 'callee' || call.pc) return;
  call.answered = true;
  renderCall('connecting', 'Connecting…');
  try {
    const servers = await iceServers();
    call.stream ??= await localMedia(call.kind);
    if (state.call !== call) return call.stream?.getTracks().forEach((track) => track.stop());
    showLocal(call.stream);
    const pc = createPeer(servers);
    await pc.setRemoteDescription(call.offer);
    await flushCandidates(call);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (state.call !== call) return;
    state.socket.emit('webrtc:answer', { answer: { type: answer.type, sdp: answer.sdp } });
    $('hangup-button').focus();
  } catch (error) {
    if (state.call === call) hangUp(`The call failed: ${error.message}`);
  }
}

function rejectCall() {
  if (state.call?.role !== 'callee') return;
  state.socket.emit('webrtc:call-reject');
  endCall('You declined the call.');
}

async function onAnswer({ answer } = {}) {
  const call = state.call;
  if (!call?.pc || call.role !== 'caller' || !answer) return;
  call.answered = true;
  renderCall('connecting', 'Connecting…');
  try {
    await call.pc.setRemoteDescription(answer);
    await flushCandidates(call);
  } catch (error) {
    hangUp(`The call failed: ${error.message}`);
  }
}

async function onRemoteCandidate({ candidate } = {}) {
  const call = state.call;
  if (!call || !candidate) return;
  if (!call.pc?.remoteDescription) {
    call.pending.push(candidate);
    return;
  }
  await call.pc.addIceCandidate(candidate).catch(() => {});
}

async function flushCandidates(call) {
  const pending = call.pending.splice(0);
  for (const candidate of pending) await call.pc.addIceCandidate(candidate).catch(() => {});
}

/** Ends the call here and tells the partner. */
function hangUp(text = 'Call ended.') {
  if (!state.call) return;
  if (state.phase === 'chat') state.socket.emit('webrtc:call-end');
  endCall(text);
}

/**
 * Ends the call here. `text` goes into the chat log (null: silently); `notify` also tells the
 * partner.
 */
function endCall(text, { notify = false, outcome = 'ended' } = {}) {
  const call = state.call;
  if (!call) return;
  if (notify && state.phase === 'chat') state.socket.emit('webrtc:call-end');
  state.call = null;
  clearInterval(timers.callClock);
  call.pc?.close();
  call.stream?.getTracks().forEach((track) => track.stop());
  $('remote-video').srcObject = null;
  $('local-video').srcObject = null;
  $('mute-button').setAttribute('aria-pressed', 'false');
  $('mute-button').textContent = 'Mute';
  $('camera-button').setAttribute('aria-pressed', 'false');
  $('camera-button').textContent = 'Camera off';
  delete $('call-panel').dataset.peerState;
  $('call-panel').dataset.outcome = outcome;
  renderCall('idle', '');
  if (text) systemMessage(call.connectedAt ? `${text} (${clock((performance.now() - call.connectedAt) / 1000)})` : text);
}

function toggleTrack(kind, button, on, off) {
  const tracks = state.call?.stream?.getTracks().filter((track) => track.kind === kind) ?? [];
  if (!tracks.length) return;
  const disable = button.getAttribute('aria-pressed') !== 'true';
  for (const track of tracks) track.enabled = !disable;
  button.setAttribute('aria-pressed', String(disable));
  button.textContent = disable ? on : off;
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  $('join-form').addEventListener('submit', join);
  $('search-form').addEventListener('submit', search);
  $('cancel-button').addEventListener('click', cancelSearch);
  $('new-search-button').addEventListener('click', () => search());
  $('next-button').addEventListener('click', next);
  $('leave-button').addEventListener('click', leaveChat);
  $('clear-button').addEventListener('click', clearChat);
  $('composer').addEventListener('submit', sendText);
  $('message-input').addEventListener('input', onTypingInput);
  $('message-input').addEventListener('blur', stopTyping);
  $('attach-button').addEventListener('click', () => $('file-input').click());
  $('file-input').addEventListener('change', onFileChosen);
  $('record-button').addEventListener('click', toggleRecording);
  $('record-cancel').addEventListener('click', discardRecording);
  $('audio-call-button').addEventListener('click', () => startCall('audio'));
  $('video-call-button').addEventListener('click', () => startCall('video'));
  $('accept-call').addEventListener('click', acceptCall);
  $('reject-call').addEventListener('click', rejectCall);
  $('hangup-button').addEventListener('click', () => hangUp('You hung up.'));
  $('mute-button').addEventListener('click', (event) => toggleTrack('audio', event.currentTarget, 'Unmute', 'Mute'));
  $('camera-button').addEventListener('click', (event) => toggleTrack('video', event.currentTarget, 'Camera on', 'Camera off'));
  $('notice-close').addEventListener('click', hideNotice);
  $('report-button').addEventListener('click', () => openReport($('report-button').closest('details').querySelector('summary')));
  $('report-ended-button').addEventListener('click', (event) => openReport(event.currentTarget));
  $('report-form').addEventListener('submit', submitReport);
  $('report-cancel').addEventListener('click', () => closeReport());
  $('report-details').addEventListener('input', renderDetailsCount);
  // Escape closes the modal dialog by itself ("cancel", then "close").
  $('report-dialog').addEventListener('close', onReportClosed);
  $('banned-again').addEventListener('click', leaveBanned);
  // Escape closes the "more" menu.
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    const menu = document.querySelector('details.more[open]');
    if (menu) {
      menu.open = false;
      menu.querySelector('summary').focus();
    }
  });
  window.addEventListener('offline', () => setConnection('offline'));
  window.addEventListener('online', () => {
    if (state.socket && !state.socket.connected) state.socket.connect();
  });
}

wire();
start().catch((error) => showNotice(`Something went wrong: ${error.message}`, { kind: 'error', action: 'Reload', onAction: () => location.reload() }));
