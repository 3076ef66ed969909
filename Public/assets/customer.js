/* The customer page: start a chat, wait in the queue (or leave it), chat, rate, reopen. State
 * lives in sessionStorage (per tab), so a reload restores the chat, its notices, and rejoins from
 * the last message id. Messages and notices show in the order they happened (stream ids and the
 * times the server sends), not in the order they arrived. */
(function () {
  'use strict';
  const { h, $ } = HD;
  const KEY = 'hd.customer';
  const PROFILE = 'hd.customer.profile';

  // {conversation_id, token, name, status, agent, position, messages, notices, rated, resolution, left, wait_notice_at}
  let state = HD.session.get(KEY);
  let api = null, socket = null, chat = null, typing = null, typingSender = null, calls = null, files = null;

  const el = {
    start: $('#start'), form: $('#start-form'), name: $('#name'), email: $('#email'), category: $('#category'),
    subject: $('#subject'), startError: $('#start-error'), startButton: $('#start-button'),
    chat: $('#chat'), status: $('#status-line'), wait: $('#wait-line'), messages: $('#messages'), typing: $('#typing'),
    composer: $('#composer'), text: $('#text'), closed: $('#closed'), closedText: $('#closed-text'),
    ratingForm: $('#rating-form'), ratingError: $('#rating-error'), thanks: $('#rating-thanks'), comment: $('#comment'),
    newChat: $('#new-chat'), banner: $('#banner'), leave: $('#leave'), reopen: $('#reopen'), reopenError: $('#reopen-error'),
    callButtons: $('#call-buttons'), callAudio: $('#call-audio'), callVideo: $('#call-video'),
  };

  function save() {
    if (!state) return;
    if (chat) state.messages = chat.messages.slice(-300);
    HD.session.set(KEY, state);
  }

  /** A notice in the transcript at the time it happened (server ms), kept across reloads. */
  function say(text, kind, at) {
    const li = chat.notice(text, kind, at);
    state.notices = (state.notices || []).concat([{ text, kind: kind || '', at: Number(li.dataset.at) }]).slice(-100);
    save();
  }

  // ---- start form ---------------------------------------------------------------------------
  async function showStart() {
    el.chat.hidden = true;
    el.start.hidden = false;
    const profile = HD.session.get(PROFILE) || {};
    if (profile.name) el.name.value = profile.name;
    if (profile.email) el.email.value = profile.email;
    (profile.name ? el.subject : el.name).focus();
    try {
      const categories = await new HD.Api(null).get('/categories');
      const top = categories.filter((c) => !c.parent_id);
      el.category.replaceChildren(h('option', { value: '' }, 'General question'));
      for (const parent of top) {
        el.category.append(h('option', { value: parent.id }, parent.name));
        for (const sub of categories.filter((c) => c.parent_id === parent.id)) {
          el.category.append(h('option', { value: sub.id }, parent.name + ' › ' + sub.name));
        }
      }
    } catch (_) { /* topics are optional */ }
  }

  el.form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    el.startError.hidden = true;
    el.startButton.disabled = true;
    const body = { name: el.name.value.trim(), email: el.email.value.trim() };
    if (el.category.value) body.category_id = Number(el.category.value);
    if (el.subject.value.trim()) body.subject = el.subject.value.trim();
    try {
      // signed in (account.js): the chat belongs to the account
      const reply = await new HD.Api(HD.account ? HD.account.auth() : null).post('/conversations', body);
      HD.session.set(PROFILE, { name: body.name, email: body.email });
      state = {
        conversation_id: reply.conversation_id, token: reply.customer_token, name: body.name,
        status: reply.status || 'waiting', position: reply.position, messages: [],
      };
      save();
      resume();
    } catch (e) {
      el.startError.textContent = e.message || 'The chat could not be started.';
      el.startError.hidden = false;
    } finally {
      el.startButton.disabled = false;
    }
  });

  // ---- chat -----------------------------------------------------------------------------------
  function renderStatus() {
    el.wait.textContent = '';
    el.leave.hidden = state.status !== 'waiting';
    if (state.status === 'waiting') {
      el.status.textContent = state.position ? 'You are number ' + state.position + ' in the queue' : 'Waiting for an agent…';
      if (typeof state.estimated_wait_s === 'number') {
        const s = state.estimated_wait_s;
        el.wait.textContent = 'Estimated wait: ' + (s < 60 ? 'under a minute' : 'about ' + Math.round(s / 60) + ' min');
      }
    } else if (state.status === 'active') {
      el.status.textContent = 'You are chatting with ' + ((state.agent && state.agent.name) || 'an agent');
    } else if (state.status === 'closed') {
      el.status.textContent = 'This chat is closed';
    } else if (state.status === 'abandoned') {
      el.status.textContent = 'This chat has ended';
    }
    renderCallButtons();
  }

  // ---- calls ----------------------------------------------------------------------------------
  /** Calls are for an active chat with an agent, one at a time. */
  function renderCallButtons() {
    const possible = !!(calls && calls.supported && state && state.status === 'active');
    el.callButtons.hidden = !possible;
    el.callAudio.disabled = el.callVideo.disabled = !possible || calls.busyFor(state.conversation_id);
  }
  el.callAudio.addEventListener('click', () => { if (calls) calls.start(state.conversation_id, 'audio'); });
  el.callVideo.addEventListener('click', () => { if (calls) calls.start(state.conversation_id, 'video'); });

  function showClosed() {
    el.composer.hidden = true;
    el.typing.hidden = true;
    el.closed.hidden = false;
    el.closedText.textContent = state.left
      ? 'You left the queue. You can start a new chat at any time.'
      : state.status === 'abandoned'
        ? 'This chat ended because we lost contact with you. You can start a new one at any time.'
        : 'The agent closed this chat. Thank you for contacting us.';
    el.reopen.hidden = state.status !== 'closed';
    el.reopenError.hidden = true;
    const canRate = state.status === 'closed' && !state.rated;
    el.ratingForm.hidden = !canRate;
    el.thanks.hidden = !state.rated;
    if (calls) calls.conversationGone(state.conversation_id);
    if (socket) { socket.stop(); }
    el.banner.hidden = true;
    renderCallButtons();
  }

  function resume() {
    el.start.hidden = true;
    el.chat.hidden = false;
    el.closed.hidden = true;
    el.composer.hidden = false;
    el.messages.replaceChildren(); // rebuilt from the state below (a reopen resumes on the same page)
    const auth = new HD.CustomerSession(state.token);
    auth.onExpired = reset;
    api = new HD.Api(auth);
    if (HD.Attachments) {
      HD.Attachments.use(api);
      if (!files) files = HD.Attachments.composer(el.composer, { conversationId: () => state.conversation_id });
    }
    // Our customer id is the token's subject (HELLO confirms it), so our own bubbles show as ours.
    let me = null;
    try {
      me = JSON.parse(atob(state.token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub;
    } catch (_) { /* HELLO sets it */ }
    chat = new HD.ChatView(el.messages, { id: me, role: 'customer' }, {
      label: (m) => (m.sender.role === 'customer' ? state.name : m.sender.name || 'Agent'),
      now: () => (socket ? socket.now() : Date.now()),
    });
    chat.addAll(state.messages || []);
    for (const n of state.notices || []) chat.notice(n.text, n.kind, n.at);
    typing = HD.typingIndicator(el.typing);
    renderStatus();

    refreshConversation();
    if (state.status === 'closed' || state.status === 'abandoned') {
      showClosed();
      return;
    }
    socket = new HD.Socket({ api, onEvent, onState: HD.connectionBanner(el.banner) });
    if (!calls) {
      // The customer is the polite peer: on an offer collision its own offer yields.
      calls = new HD.CallManager({
        socket, api, polite: true,
        peerName: (id, from) => (state && state.agent && state.agent.name) || (from && from.name) || 'The agent',
        notice: (id, text, kind) => { if (chat) chat.notice(text, kind); },
        onChange: renderCallButtons,
        mount: $('#call-slot'),
      });
    } else {
      calls.socket = socket;
      calls.api = api;
    }
    renderCallButtons();
    HD.debug = { socket, calls }; // for the browser tests and for a look from the console
    typingSender = HD.typingSender(socket, () => state && state.conversation_id);
    socket.join(state.conversation_id, chat.lastId);
    socket.start();
    el.text.focus();
  }

  /** The conversation's current state from REST (after a reload: agent name, closed or not). */
  async function refreshConversation() {
    try {
      const conv = await api.get('/conversations/' + state.conversation_id);
      const wasOpen = state.status === 'waiting' || state.status === 'active';
      state.status = conv.status;
      state.agent = conv.agent || null;
      save();
      renderStatus();
      // once per time in the queue, at the time it began (the server's enqueued_at)
      if (conv.status === 'waiting' && state.wait_notice_at !== conv.enqueued_at) {
        state.wait_notice_at = conv.enqueued_at;
        say('An agent will be with you shortly. You can already describe your question here.', '', conv.enqueued_at);
      }
      if (wasOpen && (conv.status === 'closed' || conv.status === 'abandoned')) {
        await catchUpByRest();
        showClosed();
      }
    } catch (e) {
      if (e.status === 404) reset();
    }
  }

  /** Messages we missed, read over REST (when the chat is already closed). */
  async function catchUpByRest() {
    try {
      // The transcript comes in pages: follow has_more from the last id of each.
      let after = chat.lastId;
      for (;;) {
        const q = after ? '?after=' + encodeURIComponent(after) : '';
        const reply = await api.get('/conversations/' + state.conversation_id + '/messages' + q);
        const messages = reply.messages || [];
        chat.addAll(messages);
        // next_after: where the page ended, even on a page of internal notes we are not shown
        if (!reply.has_more || !reply.next_after) break;
        after = reply.next_after;
      }
      save();
    } catch (_) { /* keep what we have */ }
  }

  function onEvent(event, data) {
    if (data && data.conversation_id && data.conversation_id !== state.conversation_id && event !== 'HELLO') return;
    if (calls && calls.handleEvent(event, data)) return;
    switch (event) {
      case 'HELLO':
        chat.me.id = data.user.id;
        break;
      case 'HISTORY':
        chat.addAll(data.messages);
        save();
        break;
      case 'NEW_MESSAGE':
        if (chat.add(data.message) && data.message.sender.role !== 'customer') typing.hide();
        save();
        break;
      case 'MESSAGE_SENT':
        chat.setState(data.client_msg_id, 'sent');
        break;
      case 'MESSAGE_FAILED':
        chat.setState(data.client_msg_id, 'failed');
        HD.toast('Your message was not sent: ' + data.message, 'bad');
        break;
      case 'QUEUE_STATUS':
        state.status = 'waiting';
        state.position = data.position;
        state.estimated_wait_s = data.estimated_wait_s;
        save();
        renderStatus();
        break;
      case 'CONVERSATION_ASSIGNED':
        state.status = 'active';
        state.agent = data.agent;
        save();
        renderStatus();
        say((data.agent && data.agent.name ? data.agent.name : 'An agent') + ' joined the chat', '',
          data.conversation && data.conversation.assigned_at);
        break;
      case 'CONVERSATION_TRANSFERRED':
        // to another agent, a supervisor taking over, or back to a queue: the name follows
        if (calls) calls.conversationGone(state.conversation_id);
        if (data.agent) {
          state.status = 'active';
          state.agent = data.agent;
          save();
          renderStatus();
          say('You are now chatting with ' + (data.agent.name || 'another agent'), '', data.at);
        } else {
          state.status = 'waiting';
          state.agent = null;
          save();
          renderStatus();
          say('We are passing you to the right team — you keep your place in the queue.', '', data.at);
        }
        break;
      case 'CONVERSATION_REQUEUED':
        state.status = 'waiting';
        state.agent = null;
        save();
        if (calls) calls.conversationGone(state.conversation_id);
        renderStatus();
        say('Your agent was disconnected — you are back in the queue and keep your place.');
        break;
      case 'CONVERSATION_CLOSED':
        if (state.status === 'closed' || state.status === 'abandoned') break; // we left: already shown
        state.status = data.resolution === 'abandoned' ? 'abandoned' : 'closed';
        state.resolution = data.resolution;
        if (data.closed_by && data.closed_by.role === 'customer') state.left = true;
        save();
        renderStatus();
        say(state.left ? 'You left the queue' : 'Chat closed', '', data.closed_at);
        showClosed();
        break;
      case 'TYPING':
        if (data.role !== 'customer') {
          if (data.typing) typing.show((state.agent && state.agent.name) || 'The agent'); else typing.hide();
        }
        break;
      case 'JOIN_FAILED':
        if (HD.joinRefusedForGood(data.code)) reset();
        break;
      default:
        break;
    }
  }

  function send() {
    const text = el.text.value.trim();
    if (!socket || (!text && !(files && files.ready()))) return;
    const clientMsgId = socket.sendMessage(state.conversation_id, text, false, files ? files.take() : []);
    chat.addPending(clientMsgId, text, false);
    el.text.value = '';
    typingSender.stop();
    el.text.focus();
  }

  el.composer.addEventListener('submit', (ev) => { ev.preventDefault(); send(); });

  // Leave the queue: the conversation ends (abandoned) at once; the page shows it as ended.
  el.leave.addEventListener('click', async () => {
    if (!state || state.status !== 'waiting') return;
    el.leave.disabled = true;
    try {
      const conv = await api.post('/conversations/' + state.conversation_id + '/cancel');
      if (state.status === 'waiting') { // CONVERSATION_CLOSED may have told us first
        state.status = conv.status;
        state.left = true;
        say('You left the queue', '', conv.closed_at);
        renderStatus();
        showClosed();
      }
    } catch (e) {
      HD.toast(e.status === 409 ? 'An agent has just taken your chat.' : 'Could not leave the queue: ' + e.message, 'bad');
      refreshConversation();
    } finally {
      el.leave.disabled = false;
    }
  });

  // Reopen a chat closed a short while ago (the server keeps it for HELPDESK_ARCHIVE_RETENTION).
  el.reopen.addEventListener('click', async () => {
    el.reopen.disabled = true;
    el.reopenError.hidden = true;
    try {
      const reply = await api.post('/conversations/' + state.conversation_id + '/reopen');
      state.status = 'waiting';
      state.position = reply.position;
      state.agent = null;
      state.rated = false;
      state.left = false;
      state.resolution = null;
      save();
      resume();
    } catch (e) {
      el.reopenError.textContent = e.status === 409 ? e.message.charAt(0).toUpperCase() + e.message.slice(1) + '.' : 'Could not reopen: ' + e.message;
      el.reopenError.hidden = false;
    } finally {
      el.reopen.disabled = false;
    }
  });
  HD.enterToSend(el.text, send);
  el.text.addEventListener('input', () => { if (typingSender && el.text.value) typingSender.input(); });

  el.ratingForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    el.ratingError.hidden = true;
    const picked = el.ratingForm.querySelector('input[name=rating]:checked');
    if (!picked) {
      el.ratingError.textContent = 'Please choose a rating from 1 to 5.';
      el.ratingError.hidden = false;
      return;
    }
    const button = el.ratingForm.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      await api.post('/conversations/' + state.conversation_id + '/rating', { rating: Number(picked.value), comment: el.comment.value.trim() });
      state.rated = true;
    } catch (e) {
      if (e.status === 409 && /already/.test(e.message)) state.rated = true;
      else { el.ratingError.textContent = e.message; el.ratingError.hidden = false; }
    } finally {
      button.disabled = false;
    }
    save();
    if (state.rated) { el.ratingForm.hidden = true; el.thanks.hidden = false; el.newChat.focus(); }
  });

  function reset() {
    if (calls && state) calls.conversationGone(state.conversation_id);
    if (socket) socket.stop();
    socket = null;
    state = null;
    HD.session.remove(KEY);
    if (chat) chat.clear();
    el.banner.hidden = true;
    showStart();
  }
  el.newChat.addEventListener('click', reset);

  window.addEventListener('online', () => { if (socket) socket.reconnectNow(); });

  if (state && state.token && state.conversation_id) resume(); else showStart();
})();
