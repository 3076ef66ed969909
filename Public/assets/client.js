/* HelpDesk shared client: REST with bearer tokens, a reconnecting WebSocket that rejoins its
 * conversations from the last message id it saw, and message de-duplication. Plain script, no
 * build step: it defines window.HD. Every page uses the protocol in shared/PROTOCOL.md only. */
(function (global) {
  'use strict';

  const HD = global.HD || (global.HD = {});

  // ---- storage (per tab) ----------------------------------------------------------------------
  HD.session = {
    get(key) {
      try { return JSON.parse(sessionStorage.getItem(key)); } catch (_) { return null; }
    },
    set(key, value) {
      try { sessionStorage.setItem(key, JSON.stringify(value)); } catch (_) { /* full or disabled */ }
    },
    remove(key) { try { sessionStorage.removeItem(key); } catch (_) { /* ignore */ } },
  };

  // ---- ids ------------------------------------------------------------------------------------
  /** A random id for client_msg_id (crypto.randomUUID needs a secure context; this does not). */
  HD.randomId = function () {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  };

  /** Compares two Redis stream ids ("<ms>-<seq>") in send order. */
  HD.compareIds = function (a, b) {
    if (a === b) return 0;
    if (!a) return -1;
    if (!b) return 1;
    const [am, as] = String(a).split('-').map(Number);
    const [bm, bs] = String(b).split('-').map(Number);
    return am !== bm ? (am < bm ? -1 : 1) : (as < bs ? -1 : as > bs ? 1 : 0);
  };

  /** JOIN_FAILED for good (the conversation is gone or not the caller's). Any other code passes:
   * the socket asks again (rate_limited, unavailable, timeout) or joins again on reconnect. */
  HD.joinRefusedForGood = function (code) {
    return code === 'forbidden' || code === 'not_found';
  };

  // ---- REST -----------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || code);
      this.status = status;
      this.code = code;
    }
  }
  HD.ApiError = ApiError;

  /** Tokens of a staff login, kept in sessionStorage under `key` (per tab). */
  class StaffSession {
    constructor(key) {
      this.key = key || 'hd.staff';
      this.state = HD.session.get(this.key);
      this.refreshing = null;
      this.onExpired = null;
    }
    get user() { return this.state ? this.state.user : null; }
    get loggedIn() { return !!(this.state && this.state.access_token); }
    accessToken() { return this.state ? this.state.access_token : null; }
    canRefresh() { return !!(this.state && this.state.refresh_token); }
    save(reply) {
      this.state = {
        access_token: reply.access_token,
        refresh_token: reply.refresh_token,
        user: reply.user || (this.state && this.state.user) || null,
      };
      HD.session.set(this.key, this.state);
    }
    clear() {
      this.state = null;
      HD.session.remove(this.key);
    }
    async login(email, password) {
      const reply = await new Api(null).request('POST', '/auth/login', { email, password });
      this.save(reply);
      return reply.user;
    }
    /** One refresh at a time: refresh tokens are single use, and reusing one revokes the login. */
    refresh() {
      if (!this.refreshing) {
        const token = this.state && this.state.refresh_token;
        this.refreshing = (async () => {
          if (!token) return false;
          try {
            this.save(await new Api(null).request('POST', '/auth/refresh', { refresh_token: token }));
            return true;
          } catch (e) {
            if (e.status === 401 || e.status === 400) this.expired();
            return false;
          }
        })().finally(() => { this.refreshing = null; });
      }
      return this.refreshing;
    }
    expired() {
      this.clear();
      if (this.onExpired) this.onExpired();
    }
    async logout(api) {
      const token = this.state && this.state.refresh_token;
      try { await api.request('POST', '/auth/logout', token ? { refresh_token: token } : undefined); } catch (_) { /* gone anyway */ }
      this.clear();
    }
  }
  HD.StaffSession = StaffSession;

  /** A customer's token: no refresh, it lives as long as the chat. */
  class CustomerSession {
    constructor(token) { this.token = token; this.onExpired = null; }
    accessToken() { return this.token; }
    canRefresh() { return false; }
    refresh() { return Promise.resolve(false); }
    expired() { if (this.onExpired) this.onExpired(); }
  }
  HD.CustomerSession = CustomerSession;

  /** JSON over fetch with the session's bearer token; a 401 refreshes once and retries. */
  class Api {
    constructor(auth) { this.auth = auth; }
    async request(method, path, body, retried) {
      const headers = { Accept: 'application/json' };
      const token = this.auth && this.auth.accessToken();
      if (token) headers.Authorization = 'Bearer ' + token;
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      let res;
      try {
        res = await fetch('/api/v1' + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      } catch (_) {
        throw new ApiError(0, 'network_error', 'The server cannot be reached.');
      }
      if (res.status === 401 && !retried && this.auth && this.auth.canRefresh()) {
        if (await this.auth.refresh()) return this.request(method, path, body, true);
      }
      const text = res.status === 204 ? '' : await res.text();
      let data = null;
      if (text) { try { data = JSON.parse(text); } catch (_) { data = null; } }
      if (!res.ok) {
        const err = (data && data.error) || {};
        if (res.status === 401 && this.auth && path !== '/auth/login') this.auth.expired();
        throw new ApiError(res.status, err.code || 'http_' + res.status, err.message || res.statusText || 'Request failed');
      }
      return data;
    }
    get(path) { return this.request('GET', path); }
    post(path, body) { return this.request('POST', path, body === undefined ? {} : body); }
    patch(path, body) { return this.request('PATCH', path, body); }
    put(path, body) { return this.request('PUT', path, body); }
    del(path) { return this.request('DELETE', path); }
  }
  HD.Api = Api;

  // ---- WebSocket ------------------------------------------------------------------------------
  /** Cancels a conversation's delayed JOIN (Socket.joinLater), if one waits. */
  function cancelDelayedJoin(c) {
    clearTimeout(c.joinTimer);
    c.joinTimer = null;
  }

  /**
   * One reconnecting socket. Each connection takes a fresh single-use ticket (POST /ws-tickets).
   * After every (re)connect and on RESYNC it re-sends JOIN_CONVERSATION for each joined
   * conversation with the last message id seen there, so the server sends only what was missed.
   * NEW_MESSAGE and HISTORY messages are de-duplicated by id before the page sees them.
   * Chat messages go out with echo: false; the page still gets its own messages as NEW_MESSAGE,
   * made from the ACK (which carries the stored message), before their MESSAGE_SENT. Such a
   * message has `via_ack: true`: an ACK may come before NEW_MESSAGEs of earlier messages (it
   * answers on another path), so its id is never a resume point (`lastId`, ChatView.lastId).
   *
   * Page callbacks: onEvent(event, data, frame), onState('connecting'|'open'|'reconnecting'|'stopped').
   * Option batchQueueChanges: the server sends a window's queue changes as one QUEUE_CHANGES
   * {changes: [QUEUE_UPDATED data, ...]} instead of one QUEUE_UPDATED each (staff pages).
   * Synthetic events: MESSAGE_SENT {conversation_id, client_msg_id, message_id},
   * MESSAGE_FAILED {conversation_id, client_msg_id, code, message}.
   */
  class Socket {
    constructor(options) {
      this.api = options.api;
      this.onEvent = options.onEvent || function () {};
      this.onState = options.onState || function () {};
      this.batchQueueChanges = !!options.batchQueueChanges;
      this.state = 'idle';
      this.ws = null;
      this.attempt = 0;
      this.stopped = true;
      this.retryTimer = null;
      this.pingTimer = null;
      this.lastFrameAt = 0;
      this.nextRef = 0;
      this.pending = new Map(); // ref -> {resolve, reject, timer}
      this.conversations = new Map(); // id -> {lastId, seen: Set}
      this.outbox = new Map(); // client_msg_id -> {conversation_id, text, internal}
      this.serverOffset = 0; // server clock minus ours, ms
      this.hello = null;
      // History pages (one JOIN each) after this socket's JOIN budget ran out once: no faster
      // than the server refills it (2 a second), so a long history does not collect refusals
      // (each counts against the socket's error budget; 20 a minute close it).
      this.pagesPaced = false;
      this.nextPageAt = 0;
    }

    start() {
      if (!this.stopped) return;
      this.stopped = false;
      this.connect();
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.retryTimer);
      this.stopHeartbeat();
      if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000, 'bye'); }
      this.failPending('stopped');
      this.setState('stopped');
    }

    /** Server time now, ms since epoch (corrected by HELLO's server_time). */
    now() { return Date.now() + this.serverOffset; }

    get isOpen() { return this.state === 'open'; }

    setState(state) {
      if (this.state === state) return;
      this.state = state;
      this.onState(state);
    }

    async connect() {
      if (this.stopped) return;
      this.setState(this.attempt === 0 && !this.hello ? 'connecting' : 'reconnecting');
      let ticket;
      try {
        ticket = (await this.api.request('POST', '/ws-tickets', {})).ticket;
      } catch (e) {
        if (e.status === 401 || e.status === 403) { this.stopped = true; this.setState('stopped'); return; }
        this.scheduleRetry();
        return;
      }
      if (this.stopped) return;
      const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
      let ws;
      try {
        ws = new WebSocket(scheme + '//' + location.host + '/ws?ticket=' + encodeURIComponent(ticket)
          + (this.batchQueueChanges ? '&queue_changes=batched' : ''));
      } catch (_) {
        this.scheduleRetry();
        return;
      }
      this.ws = ws;
      ws.onmessage = (ev) => { if (this.ws === ws) this.receive(ev.data); };
      ws.onclose = (ev) => {
        if (this.ws !== ws) return;
        this.ws = null;
        this.stopHeartbeat();
        this.failPending('offline');
        if (ev.code === 1008) {
          // Policy violation (e.g. the account was deactivated): retrying would only repeat it.
          this.stopped = true;
          this.setState('stopped');
          this.onEvent('SOCKET_REFUSED', { code: ev.code, reason: ev.reason }, null);
          return;
        }
        if (!this.stopped) this.scheduleRetry();
      };
      ws.onerror = () => { /* onclose follows */ };
    }

    scheduleRetry() {
      if (this.stopped) return;
      this.setState('reconnecting');
      clearTimeout(this.retryTimer);
      const base = Math.min(15000, 500 * Math.pow(2, this.attempt));
      this.attempt += 1;
      this.retryTimer = setTimeout(() => this.connect(), base / 2 + Math.random() * base / 2);
    }

    /** Forces a new connection now (used when the page comes back online). */
    reconnectNow() {
      if (this.stopped || this.state === 'open') return;
      clearTimeout(this.retryTimer);
      this.attempt = 0;
      this.connect();
    }

    startHeartbeat() {
      this.stopHeartbeat();
      this.pingTimer = setInterval(() => {
        if (!this.ws) return;
        if (Date.now() - this.lastFrameAt > 65000) { this.ws.close(); return; } // silent: assume dead
        this.sendFrame('PING', {});
      }, 25000);
    }

    stopHeartbeat() { clearInterval(this.pingTimer); this.pingTimer = null; }

    sendFrame(event, data, ref) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
      const frame = { event, data: data || {} };
      if (ref) frame.ref = ref;
      this.ws.send(JSON.stringify(frame));
      return true;
    }

    /** Sends an event with a ref; resolves with the ACK's (or HISTORY's) data, rejects on ERROR. */
    request(event, data, timeoutMs) {
      return new Promise((resolve, reject) => {
        if (!this.isOpen) { reject(new ApiError(0, 'offline', 'Not connected')); return; }
        const ref = 'r' + (++this.nextRef);
        const timer = setTimeout(() => {
          this.pending.delete(ref);
          reject(new ApiError(0, 'timeout', 'No answer from the server'));
        }, timeoutMs || 10000);
        this.pending.set(ref, { resolve, reject, timer });
        this.sendFrame(event, data, ref);
      });
    }

    failPending(code) {
      for (const [ref, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new ApiError(0, code, 'Connection lost'));
        this.pending.delete(ref);
      }
    }

    conv(id) {
      let c = this.conversations.get(id);
      if (!c) { c = { lastId: null, seen: new Set(), joined: false }; this.conversations.set(id, c); }
      return c;
    }

    /** Follow a conversation (now and after every reconnect). `lastId`: skip what the page already has. */
    join(conversationId, lastId) {
      const c = this.conv(conversationId);
      c.joined = true;
      if (lastId && HD.compareIds(lastId, c.lastId) > 0) c.lastId = lastId;
      if (this.isOpen) return this.sendJoin(conversationId);
      return Promise.resolve(null);
    }

    sendJoin(conversationId) {
      const c = this.conv(conversationId);
      const data = { conversation_id: conversationId };
      if (c.lastId) data.last_message_id = c.lastId;
      return this.request('JOIN_CONVERSATION', data).catch((e) => {
        // Passing trouble (Redis back a moment ago, too many JOINs at once after a RESYNC): the
        // server holds this conversation's messages until we join, so try again.
        if (e.code === 'rate_limited') this.pagesPaced = true;
        if (['unavailable', 'rate_limited', 'timeout'].includes(e.code)) this.joinLater(conversationId, 1000 + Math.random() * 2000);
        this.onEvent('JOIN_FAILED', { conversation_id: conversationId, code: e.code, message: e.message }, null);
        return null;
      });
    }

    /** The JOIN for a conversation's next history page: at once, or paced (`pagesPaced`). */
    nextPage(conversationId) {
      const now = Date.now();
      if (!this.pagesPaced) return this.sendJoin(conversationId);
      const at = Math.max(now, this.nextPageAt);
      this.nextPageAt = at + 600;
      this.joinLater(conversationId, at - now);
      return null;
    }

    /** JOIN again after `delay` ms, if the page still follows the conversation and the socket is
     * open. One such JOIN waits per conversation: a new one replaces it (each JOIN resumes from
     * the conversation's newest message, so one stands for both), and `rejoinAll` (a reconnect,
     * a RESYNC: it JOINs at once) and `leave` cancel it. */
    joinLater(conversationId, delay) {
      const c = this.conversations.get(conversationId);
      if (!c) return;
      cancelDelayedJoin(c);
      c.joinTimer = setTimeout(() => {
        c.joinTimer = null;
        if (c.joined && this.isOpen && this.conversations.get(conversationId) === c) this.sendJoin(conversationId);
      }, delay);
    }

    leave(conversationId) {
      const c = this.conversations.get(conversationId);
      if (!c || !c.joined) return;
      c.joined = false;
      cancelDelayedJoin(c);
      if (this.isOpen) this.sendFrame('LEAVE_CONVERSATION', { conversation_id: conversationId });
    }

    rejoinAll() {
      for (const [id, c] of this.conversations) {
        cancelDelayedJoin(c);
        if (c.joined) this.sendJoin(id);
      }
    }

    /** Sends a chat message; kept and re-sent after a reconnect until ACKed (same client_msg_id).
     * `attachmentIds`: files uploaded first (POST /conversations/{id}/attachments), optional. */
    sendMessage(conversationId, text, internal, attachmentIds) {
      const clientMsgId = HD.randomId();
      this.outbox.set(clientMsgId, { conversation_id: conversationId, text, internal: !!internal, attachment_ids: attachmentIds || [] });
      this.flushOne(clientMsgId);
      return clientMsgId;
    }

    flushOne(clientMsgId) {
      const item = this.outbox.get(clientMsgId);
      if (!item || !this.isOpen || item.inFlight) return;
      item.inFlight = true;
      // echo: false: the ACK carries the stored message, so it does not come again as NEW_MESSAGE.
      const data = { conversation_id: item.conversation_id, text: item.text, client_msg_id: clientMsgId, echo: false };
      if (item.internal) data.internal = true;
      if (item.attachment_ids && item.attachment_ids.length) data.attachment_ids = item.attachment_ids;
      this.request('SEND_MESSAGE', data).then((ack) => this.sent(item, clientMsgId, ack), (e) => {
        item.inFlight = false;
        if (e.code === 'timeout' || e.code === 'unavailable') {
          // Passing trouble on a connection that stays open (Redis away a moment): send it again,
          // backing off, rather than wait for a reconnect that may not come. The same
          // client_msg_id: a message that was stored after all is answered as a duplicate.
          item.retries = (item.retries || 0) + 1;
          clearTimeout(item.retryTimer);
          item.retryTimer = setTimeout(() => this.flushOne(clientMsgId), Math.min(30000, 1000 * 2 ** Math.min(item.retries - 1, 5)) * (0.5 + Math.random()));
          return;
        }
        if (e.code === 'offline' || e.code === 'stopped') return; // sent again on reconnect
        this.outbox.delete(clientMsgId);
        this.onEvent('MESSAGE_FAILED', { conversation_id: item.conversation_id, client_msg_id: clientMsgId, code: e.code, message: e.message }, null);
      });
    }

    flushOutbox() { for (const id of this.outbox.keys()) this.flushOne(id); }

    /** A chat message of ours is stored: its ACK (`ack.message` with echo: false) stands for the
     * NEW_MESSAGE this socket does not get. Marked seen, but `lastId` stays (see the class note). */
    sent(item, clientMsgId, ack) {
      this.outbox.delete(clientMsgId);
      const message = ack.message;
      // get, not conv(): a conversation the page let go of (leave) is not brought back by a late answer
      const c = this.conversations.get(item.conversation_id);
      if (message && message.id && !(c && c.seen.has(message.id))) {
        if (c) c.seen.add(message.id);
        this.onEvent('NEW_MESSAGE', { conversation_id: item.conversation_id, message: Object.assign({ via_ack: true }, message) }, null);
      }
      this.onEvent('MESSAGE_SENT', { conversation_id: item.conversation_id, client_msg_id: clientMsgId, message_id: ack.message_id }, null);
    }

    /** Marks a message that came in stream order (NEW_MESSAGE, HISTORY) seen and moves the resume
     * point past it (even when its ACK brought it first); false when it was seen before. */
    accept(conversationId, message) {
      if (!message || !message.id) return false;
      // A frame already on its way when the page let the conversation go (leave): passed on, but it
      // must not bring the entry back with a resume point that a later join would start from.
      const c = this.conversations.get(conversationId);
      if (!c) return true;
      if (HD.compareIds(message.id, c.lastId) > 0) c.lastId = message.id;
      if (c.seen.has(message.id)) return false;
      c.seen.add(message.id);
      if (message.client_msg_id && this.outbox.has(message.client_msg_id)) {
        // Echo of ours arrived before the ACK (or the ACK was lost): it is stored.
        this.outbox.delete(message.client_msg_id);
      }
      return true;
    }

    receive(text) {
      this.lastFrameAt = Date.now();
      let frame;
      try { frame = JSON.parse(text); } catch (_) { return; }
      const event = frame.event;
      let data = frame.data || {};
      if (frame.ref && this.pending.has(frame.ref) && (event === 'ACK' || event === 'ERROR' || event === 'HISTORY')) {
        const p = this.pending.get(frame.ref);
        this.pending.delete(frame.ref);
        clearTimeout(p.timer);
        if (event === 'ERROR') p.reject(new ApiError(0, data.code || 'error', data.message || 'Error'));
        else p.resolve(data);
        if (event !== 'HISTORY') return;
      }
      // The ACK of a message whose request timed out: with echo: false nothing else tells us it is stored.
      if (event === 'ACK' && data.client_msg_id && this.outbox.has(data.client_msg_id)) {
        this.sent(this.outbox.get(data.client_msg_id), data.client_msg_id, data);
        return;
      }
      switch (event) {
        case 'HELLO':
          this.hello = data;
          // server_time corrects a clock that is off; an offset below a second is mostly the
          // HELLO's own trip (the server's clock read before it was sent), so it is not applied:
          // it would make countdowns start above their length ("21 s" for a 20 s offer).
          if (data.server_time) {
            const offset = data.server_time - Date.now();
            this.serverOffset = Math.abs(offset) < 1000 ? 0 : offset;
          }
          this.attempt = 0;
          // a new connection has a fresh JOIN budget: pages go at once until it runs out again
          this.pagesPaced = false;
          this.setState('open');
          this.startHeartbeat();
          this.onEvent('HELLO', data, frame);
          this.rejoinAll();
          this.flushOutbox();
          return;
        case 'RESYNC':
          this.onEvent('RESYNC', data, frame);
          this.rejoinAll();
          this.flushOutbox();
          return;
        case 'PONG':
          return;
        case 'HISTORY': {
          const c = this.conversations.get(data.conversation_id);
          const startedAt = c ? c.lastId : null;
          const messages = (data.messages || []).filter((m) => this.accept(data.conversation_id, m));
          data = Object.assign({}, data, { messages });
          // History comes in pages: ask for the next one from where this page ended (`next_after`:
          // its last message, even one not shown to us, such as an internal note).
          if (data.has_more && c) {
            if (data.next_after && HD.compareIds(data.next_after, c.lastId) > 0) c.lastId = data.next_after;
            // Nothing moved us on (a node without next_after): asking again would get the same page.
            // As a request (sendJoin), so that a page refused for a passing reason (a long
            // conversation's pages outrun the socket's JOIN budget) is asked for again.
            if (c.joined && c.lastId !== startedAt) this.nextPage(data.conversation_id);
          }
          break;
        }
        case 'NEW_MESSAGE':
          if (!this.accept(data.conversation_id, data.message)) return;
          break;
        default:
          break;
      }
      this.onEvent(event, data, frame);
    }
  }
  HD.Socket = Socket;

  // ---- small formatting helpers ---------------------------------------------------------------
  HD.formatDuration = function (seconds) {
    seconds = Math.max(0, Math.round(seconds || 0));
    if (seconds < 60) return seconds + ' s';
    const m = Math.floor(seconds / 60), s = seconds % 60;
    if (m < 60) return s ? m + ' min ' + String(s).padStart(2, '0') + ' s' : m + ' min';
    const h = Math.floor(m / 60);
    return h + ' h ' + String(m % 60).padStart(2, '0') + ' min';
  };

  HD.formatTime = function (ms) {
    if (!ms) return '';
    const d = new Date(ms);
    const today = new Date();
    const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return d.toDateString() === today.toDateString() ? time : d.toLocaleDateString() + ' ' + time;
  };
})(window);
