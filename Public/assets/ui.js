/* HelpDesk shared UI pieces: an element builder that only ever sets text with textContent, a chat
 * transcript with delivery states, a staff login form, toasts. Plain script; extends window.HD. */
(function (global) {
  'use strict';
  const HD = global.HD || (global.HD = {});

  /**
   * h('div', {class: 'x', onclick: fn}, 'text', child) — strings become text nodes, never HTML.
   * Attribute values are set with setAttribute, so they are never parsed as markup either.
   */
  function h(tag, attrs) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const key of Object.keys(attrs)) {
        const value = attrs[key];
        if (value === null || value === undefined || value === false) continue;
        if (key === 'class') el.className = value;
        else if (key === 'text') el.textContent = value;
        else if (key === 'dataset') Object.assign(el.dataset, value);
        // through CSSOM: the Content-Security-Policy refuses style attributes
        else if (key === 'style') el.style.cssText = value;
        else if (key === 'value') el.value = value;
        else if (key === 'checked' || key === 'disabled' || key === 'selected' || key === 'hidden' || key === 'required') el[key] = !!value;
        else if (key.slice(0, 2) === 'on' && typeof value === 'function') el.addEventListener(key.slice(2), value);
        else el.setAttribute(key, value === true ? '' : String(value));
      }
    }
    for (let i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach((c) => append(el, c)); return; }
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  HD.h = h;

  HD.$ = (selector, root) => (root || document).querySelector(selector);

  // ---- toasts ---------------------------------------------------------------------------------
  HD.toast = function (text, kind) {
    let box = document.getElementById('toasts');
    if (!box) {
      box = h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' });
      document.body.append(box);
    }
    const item = h('div', { class: 'toast ' + (kind || '') }, text);
    box.append(item);
    while (box.children.length > 3) box.firstElementChild.remove(); // the latest few only
    setTimeout(() => item.remove(), 4000);
  };

  // ---- connection banner ------------------------------------------------------------------------
  /** Shows "Reconnecting…" while the socket is not open (after it was open once). */
  HD.connectionBanner = function (el) {
    return function (state) {
      if (state === 'reconnecting') {
        el.textContent = 'Connection lost — reconnecting…';
        el.hidden = false;
      } else if (state === 'stopped') {
        el.textContent = 'Disconnected. Reload the page to connect again.';
        el.hidden = false;
      } else if (state === 'open') {
        el.hidden = true;
      }
    };
  };

  // ---- chat transcript --------------------------------------------------------------------------
  const STATES = { sending: 0, sent: 1, delivered: 2, failed: 3 };
  const STATE_TEXT = { sending: 'Sending…', sent: 'Sent', delivered: 'Delivered', failed: 'Not sent' };

  /**
   * A transcript in `list` (an <ol>). Messages are keyed by id and by client_msg_id, so an echo of
   * one's own message upgrades the pending bubble instead of adding a second one.
   * me: {id, role}; labels: optional function(message) -> sender label.
   */
  class ChatView {
    constructor(list, me, options) {
      this.list = list;
      this.me = me;
      this.options = options || {};
      this.byId = new Map();
      this.byClient = new Map();
      this.messages = [];
    }

    isMine(message) {
      return !!(this.me && message.sender && String(message.sender.id) === String(this.me.id) && message.sender.role === this.me.role);
    }

    nearBottom() {
      const l = this.list;
      return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
    }

    scroll(force) {
      if (force || this.stick) this.list.scrollTop = this.list.scrollHeight;
    }

    bubble(message, mine, state) {
      const sender = message.sender || {};
      const who = mine ? 'You' : (this.options.label ? this.options.label(message) : sender.name || sender.role || '');
      const cls = ['msg', mine ? 'mine' : 'theirs', message.internal ? 'internal' : '', sender.role ? 'from-' + sender.role : ''].join(' ');
      const time = h('time', { class: 'msg-time' }, HD.formatTime(message.sent_at || Date.now()));
      if (message.sent_at) time.setAttribute('datetime', new Date(message.sent_at).toISOString());
      const meta = h('div', { class: 'msg-meta' }, h('span', { class: 'msg-who' }, who),
        message.internal ? h('span', { class: 'badge note' }, 'internal note') : null, time);
      const body = h('div', { class: 'msg-text' }, message.text);
      const li = h('li', { class: cls }, meta, body);
      if (mine) {
        const st = h('span', { class: 'msg-state', 'aria-label': 'delivery state' });
        li.append(st);
        this.paintState(li, state || 'delivered');
      }
      return li;
    }

    paintState(li, state) {
      const old = li.dataset.state;
      if (old && old !== 'failed' && STATES[state] < STATES[old]) return; // never go back
      li.dataset.state = state;
      const st = li.querySelector('.msg-state');
      if (st) st.textContent = STATE_TEXT[state];
    }

    /** A message from the server (HISTORY or NEW_MESSAGE). Returns true when it was new.
     * `quiet` (addAll): no layout read and no scroll, the caller does them once for all. */
    add(message, quiet) {
      if (this.byId.has(message.id)) return false;
      if (!quiet) this.stick = this.nearBottom();
      const mine = this.isMine(message);
      let li = message.client_msg_id ? this.byClient.get(message.client_msg_id) : null;
      if (li) {
        this.paintState(li, 'delivered');
        li.querySelector('.msg-time').textContent = HD.formatTime(message.sent_at);
      } else {
        li = this.bubble(message, mine, 'delivered');
        li.dataset.id = message.id;
        this.insert(li);
      }
      if (li.dataset.id !== message.id) {
        // our pending bubble, now stored: it takes its place among the others
        li.dataset.id = message.id;
        li.remove();
        this.insert(li);
      }
      this.byId.set(message.id, li);
      if (message.client_msg_id) this.byClient.set(message.client_msg_id, li);
      this.messages.push(message);
      if (!quiet) this.scroll(mine);
      return true;
    }

    /** Several messages (a page of history): one layout read and one scroll for all of them. */
    addAll(messages) {
      if (!messages.length) return 0;
      this.stick = this.nearBottom();
      let added = 0, mine = false;
      for (const m of messages) {
        if (this.add(m, true)) { added++; mine = mine || this.isMine(m); }
      }
      if (added) this.scroll(mine);
      return added;
    }

    /**
     * Keeps the order things happened in, whatever order they arrive in: messages by their stream
     * id ("<ms>-<seq>"), notices by their server time (`data-at`, ms; before messages of the same
     * ms). Our own bubbles the server has not stored yet stay last.
     */
    insert(li) {
      const key = ChatView.keyOf(li);
      let before = null;
      for (let n = this.list.lastElementChild; n; n = n.previousElementSibling) {
        const k = ChatView.keyOf(n);
        if (!k) { before = n; continue; } // pending bubbles stay last
        if (ChatView.compareKeys(k, key) > 0) before = n; else break;
      }
      this.list.insertBefore(li, before);
    }

    /** [ms, seq] of a transcript entry, or null for a pending bubble. */
    static keyOf(li) {
      if (li.dataset.id) {
        const [ms, seq] = String(li.dataset.id).split('-').map(Number);
        return [ms, seq];
      }
      if (li.dataset.at) return [Number(li.dataset.at), -1];
      return null;
    }

    static compareKeys(a, b) {
      return a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
    }

    /** Our own message before the server has it. */
    addPending(clientMsgId, text, internal) {
      this.stick = true;
      const li = this.bubble({ text, internal, sender: { id: this.me.id, role: this.me.role }, client_msg_id: clientMsgId }, true, 'sending');
      this.byClient.set(clientMsgId, li);
      this.list.append(li);
      this.scroll(true);
      return li;
    }

    setState(clientMsgId, state) {
      const li = this.byClient.get(clientMsgId);
      if (li) this.paintState(li, state);
    }

    /**
     * A line from the system ("… joined the chat"). `at`: when it happened (ms, server time: the
     * event's own time where it has one); without it, now by `options.now` (the socket's clock,
     * corrected by HELLO's server_time) or this browser's.
     */
    notice(text, kind, at) {
      this.stick = this.nearBottom();
      const when = typeof at === 'number' && at > 0 ? at : (this.options.now ? this.options.now() : Date.now());
      const li = h('li', { class: 'notice ' + (kind || ''), dataset: { at: String(when) } }, text);
      this.insert(li);
      this.scroll(false);
      return li;
    }

    clear() {
      this.list.replaceChildren();
      this.byId.clear();
      this.byClient.clear();
      this.messages = [];
    }

    /** Where to resume: the newest message that came in stream order. A message of ours taken
     * from its ACK (`via_ack`) may have overtaken earlier ones, so it does not count. */
    get lastId() {
      let last = null;
      for (const m of this.messages) if (!m.via_ack && HD.compareIds(m.id, last) > 0) last = m.id;
      return last;
    }
  }
  HD.ChatView = ChatView;

  // ---- typing -------------------------------------------------------------------------------------
  /** Sends TYPING true while the user types (at most every 3 s) and false after 4 s idle or on send. */
  HD.typingSender = function (socket, conversationId) {
    let typing = false, lastSent = 0, idle = null;
    function send(value) {
      typing = value;
      lastSent = Date.now();
      if (socket.isOpen) socket.sendFrame('TYPING', { conversation_id: conversationId(), typing: value });
    }
    return {
      input() {
        if (!conversationId()) return;
        if (!typing || Date.now() - lastSent > 3000) send(true);
        clearTimeout(idle);
        idle = setTimeout(() => { if (typing) send(false); }, 4000);
      },
      stop() {
        clearTimeout(idle);
        if (typing && conversationId()) send(false);
      },
    };
  };

  /** Shows "<name> is typing…" in `el`; hides on typing:false, a message from them, or after 6 s. */
  HD.typingIndicator = function (el) {
    let timer = null;
    return {
      show(name) {
        el.textContent = name + ' is typing…';
        el.hidden = false;
        clearTimeout(timer);
        timer = setTimeout(() => { el.hidden = true; }, 6000);
      },
      hide() { clearTimeout(timer); el.hidden = true; },
    };
  };

  /** Enter sends, Shift+Enter makes a new line. */
  HD.enterToSend = function (textarea, send) {
    textarea.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        send();
      }
    });
  };

  // ---- staff login ------------------------------------------------------------------------------
  /**
   * Renders a login form into `root`; resolves when a user with one of `roles` logged in.
   * Tokens go to sessionStorage (per tab) through `session`.
   */
  HD.staffLogin = function (root, session, roles, title) {
    return new Promise((resolve) => {
      const error = h('p', { class: 'error', role: 'alert', hidden: true });
      const email = h('input', { id: 'login-email', type: 'email', name: 'email', autocomplete: 'username', required: true });
      const password = h('input', { id: 'login-password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
      const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
      const form = h('form', { class: 'card login', 'aria-labelledby': 'login-title' },
        h('h1', { id: 'login-title' }, title),
        h('label', { for: 'login-email' }, 'E-mail'), email,
        h('label', { for: 'login-password' }, 'Password'), password,
        error, button);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        error.hidden = true;
        button.disabled = true;
        try {
          const user = await session.login(email.value.trim(), password.value);
          if (roles.indexOf(user.role) < 0) {
            session.clear();
            throw new HD.ApiError(403, 'forbidden', 'This page is for ' + roles.join(' or ') + ' accounts; you are signed in as ' + user.role + '.');
          }
          root.replaceChildren();
          resolve(user);
        } catch (e) {
          error.textContent = e.code === 'invalid_credentials' ? 'Wrong e-mail or password.' : e.message;
          error.hidden = false;
          button.disabled = false;
          password.select();
        }
      });
      root.replaceChildren(form);
      email.focus();
    });
  };

  /** Signs in (or reuses this tab's tokens) and returns the user; signing out reloads. */
  HD.requireStaff = async function (root, roles, title) {
    const session = new HD.StaffSession('hd.staff');
    const done = (user) => {
      session.onExpired = () => { location.reload(); }; // signed out elsewhere or refresh refused
      return { session, user };
    };
    if (session.loggedIn && session.user && roles.indexOf(session.user.role) >= 0) {
      // Check the tokens still work (refreshes if the access token expired).
      try {
        const me = await new HD.Api(session).get('/auth/me');
        session.state.user = me;
        HD.session.set(session.key, session.state);
        return done(me);
      } catch (_) {
        session.clear();
      }
    }
    return done(await HD.staffLogin(root, session, roles, title));
  };

  // ---- short tones (assignments, offers): one audio context, unlocked by the first gesture ------
  let audio = null;
  function unlockAudio() {
    try {
      if (!audio) audio = new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === 'suspended') audio.resume();
    } catch (_) { audio = null; }
  }
  document.addEventListener('pointerdown', unlockAudio, { once: true });
  document.addEventListener('keydown', unlockAudio, { once: true });

  /** Plays [[offset s, frequency Hz], ...], each note `length` s long, at `volume`. */
  HD.tone = function (notes, { type = 'sine', volume = 0.2, length = 0.16 } = {}) {
    try {
      unlockAudio();
      if (!audio) return;
      const t = audio.currentTime;
      for (const [offset, freq] of notes) {
        const osc = audio.createOscillator();
        const gain = audio.createGain();
        osc.type = type;
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, t + offset);
        gain.gain.exponentialRampToValueAtTime(volume, t + offset + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + offset + length);
        osc.connect(gain).connect(audio.destination);
        osc.start(t + offset);
        osc.stop(t + offset + length + 0.02);
      }
    } catch (_) { /* no sound, no harm */ }
  };
})(window);
