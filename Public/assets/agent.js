/* The agent console: presence, the live queue, several chats as tabs, close with a resolution,
 * a beep and a desktop notification on each new assignment, and the agent's closed chats.
 * Workflows: transfer (to a colleague with room, or to a queue, with a note only staff see),
 * escalate (with a note), internal notes (a toggle in the composer), reopen from the closed
 * chats; a chat that moves away from this agent (transferred, taken over) closes its tab with a
 * notice. */
(function () {
  'use strict';
  const { h, $ } = HD;

  const el = {
    controls: $('#controls'), me: $('#me'), presence: $('#presence'), notify: $('#notify'), logout: $('#logout'),
    banner: $('#banner'), login: $('#login'), console: $('#console'), queue: $('#queue'), queueCount: $('#queue-count'),
    queueEmpty: $('#queue-empty'), pickNext: $('#pick-next'), history: $('#history'), historyEmpty: $('#history-empty'),
    historyRefresh: $('#history-refresh'), tabs: $('#tabs'), panels: $('#panels'), noChats: $('#no-chats'),
    chatNotice: $('#chat-notice'),
  };

  // Counters the browser tests read (the sound and the notification cannot be heard or seen there).
  HD.debug = { beeps: 0, notifications: 0 };

  let session, api, socket, me, calls, offers;
  const categories = new Map(); // id (string) -> name
  const queue = new Map(); // conversation id -> conversation (insertion order = queue order)
  const chats = new Map(); // conversation id -> chat
  const announced = new Set(); // conversation ids whose assignment was announced (sound, notification)
  let selected = null;

  // ---- sound and notifications --------------------------------------------------------------
  function beep() {
    HD.debug.beeps += 1;
    HD.tone([[0, 880], [0.18, 1175]]);
  }

  function notify(conversation) {
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    try {
      const who = conversation.customer && conversation.customer.name ? conversation.customer.name : 'A customer';
      const n = new Notification('New chat assigned', {
        body: who + (conversation.subject ? ' — ' + conversation.subject : ''), tag: 'hd-' + conversation.id,
      });
      n.onclick = () => { window.focus(); select(conversation.id); n.close(); };
      HD.debug.notifications += 1;
    } catch (_) { /* some browsers only allow notifications from a service worker */ }
  }

  function offerNotifications() {
    el.notify.hidden = !('Notification' in window) || Notification.permission !== 'default';
  }
  el.notify.addEventListener('click', async () => {
    try { await Notification.requestPermission(); } catch (_) { /* old API */ }
    offerNotifications();
    if (Notification.permission === 'granted') HD.toast('Desktop alerts are on.', 'ok');
  });

  // ---- queue ----------------------------------------------------------------------------------
  function waitSeconds(c) {
    return Math.max(0, (socket.now() - (c.enqueued_at || c.created_at || socket.now())) / 1000);
  }
  function categoryName(id) {
    return id && id !== '0' ? categories.get(String(id)) || 'Category ' + id : 'General';
  }
  // The server sends only the queues this agent may pick from (its categories with their
  // subcategories, the uncategorised queue, pick-routed ones): GET /queue and QUEUE_UPDATED agree.
  function serves() { return true; }

  function renderQueue() {
    const items = [];
    for (const c of queue.values()) {
      const pick = h('button', { type: 'button', class: 'small', 'aria-label': 'Pick ' + c.customer.name, onclick: () => pickConversation(c.id) }, 'Pick');
      items.push(h('li', { class: 'queue-item', dataset: { id: c.id } },
        h('div', { class: 'info' },
          h('div', { class: 'name' }, c.customer ? c.customer.name : 'Customer',
            c.priority && c.priority !== 'normal' ? h('span', { class: 'badge ' + (c.priority === 'low' ? '' : 'warn') }, ' ' + c.priority) : null),
          h('div', { class: 'sub' }, categoryName(c.category_id) + (c.subject ? ' · ' + c.subject : ''))),
        h('span', { class: 'wait', dataset: { since: c.enqueued_at || c.created_at } }, HD.formatDuration(waitSeconds(c))),
        pick));
    }
    el.queue.replaceChildren(...items);
    el.queueCount.textContent = String(queue.size);
    el.queueEmpty.hidden = queue.size > 0;
  }

  function tickWaits() {
    if (!socket) return;
    for (const span of el.queue.querySelectorAll('.wait')) {
      span.textContent = HD.formatDuration((socket.now() - Number(span.dataset.since)) / 1000);
    }
  }

  async function loadQueue() {
    try {
      const list = await api.get('/queue');
      queue.clear();
      for (const c of list) if (serves(c)) queue.set(c.id, c);
      renderQueue();
    } catch (e) { HD.toast('Queue: ' + e.message, 'bad'); }
  }

  const PICK_ERRORS = {
    already_picked: 'Someone else took that customer.',
    at_capacity: 'You are at capacity: close a chat first.',
    conflict: 'Set your status to Online to pick customers.',
    not_found: 'Nobody is waiting.',
    offline: 'Not connected — try again in a moment.',
  };

  async function pickConversation(id) {
    try {
      const data = id ? { conversation_id: id } : {};
      const ack = await socket.request('PICK', data);
      queue.delete(ack.conversation.id);
      renderQueue();
      openChat(ack.conversation, true);
    } catch (e) {
      HD.toast(PICK_ERRORS[e.code] || e.message, 'bad');
      if (e.code === 'already_picked' && id) { queue.delete(id); renderQueue(); }
    }
  }
  el.pickNext.addEventListener('click', () => pickConversation(null));

  // ---- chats as tabs --------------------------------------------------------------------------
  function openChat(conversation, focus, readOnly) {
    let c = chats.get(conversation.id);
    if (c) {
      Object.assign(c.conversation, conversation);
      const email = conversation.customer && conversation.customer.email;
      if (email && !c.email.textContent) c.email.textContent = email; // events carry less than REST
      if (focus) select(conversation.id);
      return c;
    }
    c = { id: conversation.id, conversation, unread: 0, closed: !!readOnly };
    const name = conversation.customer && conversation.customer.name ? conversation.customer.name : 'Customer';
    c.badge = h('span', { class: 'badge unread', hidden: true });
    c.tab = h('button', {
      type: 'button', role: 'tab', id: 'tab-' + c.id, 'aria-controls': 'panel-' + c.id, 'aria-selected': 'false', tabindex: '-1',
      onclick: () => select(c.id),
    }, name, c.badge);
    const list = h('ol', { class: 'messages', role: 'log', 'aria-label': 'Messages with ' + name });
    const typingEl = h('div', { class: 'typing', 'aria-live': 'polite', hidden: true });
    const replyHint = 'Reply to ' + name + ' — Enter sends';
    const text = h('textarea', { id: 'text-' + c.id, rows: '2', maxlength: '4000', placeholder: replyHint });
    // Internal notes: staff on the conversation see them, the customer never does.
    const internal = h('input', { type: 'checkbox', id: 'internal-' + c.id, class: 'internal-toggle' });
    const sendButton = h('button', { type: 'submit', class: 'primary' }, 'Send');
    internal.addEventListener('change', () => {
      text.classList.toggle('internal', internal.checked);
      text.placeholder = internal.checked ? 'Internal note — only staff see it' : replyHint;
      sendButton.textContent = internal.checked ? 'Add note' : 'Send';
      text.focus();
    });
    const composer = h('form', { class: 'composer' },
      h('label', { for: 'text-' + c.id, class: 'sr-only' }, 'Reply'), text,
      h('label', { class: 'inline small note-toggle', for: 'internal-' + c.id }, internal, 'Internal note'), sendButton);
    const resolution = h('input', { type: 'text', id: 'resolution-' + c.id, maxlength: '500', placeholder: 'Resolution (e.g. refund issued)' });
    const closeButton = h('button', { type: 'button', class: 'danger' }, 'Close chat');
    const closeRow = h('div', { class: 'close-row' },
      h('label', { for: 'resolution-' + c.id, class: 'sr-only' }, 'Resolution'), resolution, closeButton);
    const dismiss = h('button', { type: 'button', class: 'small', hidden: true, onclick: () => dismissChat(c.id) }, 'Dismiss');
    const status = h('span', { class: 'badge ok' }, 'active');
    c.escalated = h('span', { class: 'badge warn', hidden: !conversation.escalated }, 'escalated');
    const callAudio = h('button', { type: 'button', class: 'small', 'aria-label': 'Audio call with ' + name, onclick: () => calls.start(c.id, 'audio') }, 'Call');
    const callVideo = h('button', { type: 'button', class: 'small', 'aria-label': 'Video call with ' + name, onclick: () => calls.start(c.id, 'video') }, 'Video call');
    c.callButtons = h('span', { class: 'call-buttons' }, callAudio, callVideo);
    c.email = h('span', { class: 'muted small' }, conversation.customer && conversation.customer.email ? conversation.customer.email : '');
    const head = h('div', { class: 'chat-head' },
      h('span', { class: 'title' }, name), c.email,
      h('span', { class: 'muted small' }, categoryName(conversation.category_id) + (conversation.subject ? ' · ' + conversation.subject : '')),
      status, c.escalated, h('span', { class: 'spacer' }), c.callButtons, dismiss);
    c.actions = chatActions(c, name);
    c.panel = h('div', { class: 'chat', role: 'tabpanel', id: 'panel-' + c.id, 'aria-labelledby': 'tab-' + c.id, hidden: true },
      head, list, typingEl, composer, closeRow, c.actions);
    c.view = new HD.ChatView(list, { id: String(me.id), role: 'agent' }, {
      label: (m) => (m.sender.role === 'customer' ? name : m.sender.name + ' (' + m.sender.role + ')'),
      now: () => socket.now(),
    });
    c.typing = HD.typingIndicator(typingEl);
    c.typingSender = HD.typingSender(socket, () => (c.closed ? null : c.id));
    c.text = text;
    c.composer = composer;
    c.files = HD.Attachments ? HD.Attachments.composer(composer, { conversationId: () => c.id }) : null;
    c.closeRow = closeRow;
    c.dismiss = dismiss;
    c.status = status;
    c.paintCall = () => {
      c.callButtons.hidden = c.closed || !calls.supported;
      callAudio.disabled = callVideo.disabled = c.closed || calls.busyFor(c.id);
    };

    const send = () => {
      const value = text.value.trim();
      if (c.closed || (!value && !(c.files && c.files.ready()))) return;
      const note = internal.checked;
      const clientMsgId = socket.sendMessage(c.id, value, note, c.files ? c.files.take() : []);
      c.view.addPending(clientMsgId, value, note);
      text.value = '';
      if (!note) c.typingSender.stop();
    };
    composer.addEventListener('submit', (ev) => { ev.preventDefault(); send(); });
    HD.enterToSend(text, send);
    text.addEventListener('input', () => { if (text.value && !internal.checked) c.typingSender.input(); });
    closeButton.addEventListener('click', async () => {
      closeButton.disabled = true;
      try {
        await socket.request('CLOSE_CONVERSATION', { conversation_id: c.id, resolution: resolution.value.trim() });
        markClosed(c, 'You closed this chat' + (resolution.value.trim() ? ': ' + resolution.value.trim() : '') + '.');
      } catch (e) {
        HD.toast('Close failed: ' + e.message, 'bad');
        closeButton.disabled = false;
      }
    });
    resolution.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); closeButton.click(); } });

    chats.set(c.id, c);
    el.tabs.append(c.tab);
    el.panels.append(c.panel);
    el.noChats.hidden = true;
    if (readOnly) {
      markClosed(c, null);
    } else {
      socket.join(c.id);
    }
    c.paintCall();
    if (focus || !selected) select(c.id);
    return c;
  }

  // ---- transfer and escalate ----------------------------------------------------------------
  const TRANSFER_ERRORS = {
    at_capacity: 'That agent has just become full: choose another.',
    conflict: 'That agent is offline now: choose another.',
    already_picked: 'The chat is already with that agent.',
    conversation_closed: 'This chat is closed.',
  };

  /** The Transfer and Escalate buttons of one chat, each opening a small form under the chat. */
  function chatActions(c, name) {
    const target = h('select', { id: 'transfer-target-' + c.id, required: true });
    const transferNote = h('input', { type: 'text', id: 'transfer-note-' + c.id, maxlength: '500', placeholder: 'What the next agent should know (the customer does not see it)' });
    const transferGo = h('button', { type: 'submit', class: 'primary small' }, 'Transfer');
    const transferForm = h('form', { class: 'action-form', hidden: true, 'aria-label': 'Transfer the chat with ' + name },
      h('label', { for: 'transfer-target-' + c.id }, 'Transfer to'), target,
      h('label', { for: 'transfer-note-' + c.id }, 'Note for the next agent'), transferNote,
      h('div', { class: 'row mt-05' }, transferGo,
        h('button', { type: 'button', class: 'small', onclick: () => { transferForm.hidden = true; } }, 'Cancel')));
    const escalateNote = h('input', { type: 'text', id: 'escalate-note-' + c.id, maxlength: '500', placeholder: 'Why a supervisor should look at this chat' });
    const escalateForm = h('form', { class: 'action-form', hidden: true, 'aria-label': 'Escalate the chat with ' + name },
      h('label', { for: 'escalate-note-' + c.id }, 'Note for your supervisor'), escalateNote,
      h('div', { class: 'row mt-05' }, h('button', { type: 'submit', class: 'primary small' }, 'Escalate'),
        h('button', { type: 'button', class: 'small', onclick: () => { escalateForm.hidden = true; } }, 'Cancel')));

    const openTransfer = h('button', { type: 'button', class: 'small', 'aria-expanded': 'false' }, 'Transfer…');
    const openEscalate = h('button', { type: 'button', class: 'small', 'aria-expanded': 'false' }, 'Escalate…');
    openTransfer.addEventListener('click', async () => {
      escalateForm.hidden = true;
      transferForm.hidden = !transferForm.hidden;
      openTransfer.setAttribute('aria-expanded', String(!transferForm.hidden));
      if (transferForm.hidden) return;
      target.replaceChildren(h('option', { value: '' }, 'Loading…'));
      let agents = [];
      try { agents = await api.get('/agents/available'); } catch (e) { HD.toast('Agents: ' + e.message, 'bad'); }
      const conv = c.conversation;
      target.replaceChildren(
        h('option', { value: '' }, 'Choose…'),
        h('optgroup', { label: 'Agents with room' },
          agents.length ? agents.map((a) => h('option', { value: 'agent:' + a.id }, a.name + ' (' + a.active + '/' + a.capacity + (a.status === 'away' ? ', away' : '') + ')'))
            : h('option', { value: '', disabled: true }, 'Nobody has room now')),
        h('optgroup', { label: 'Back to a queue' },
          h('option', { value: 'queue:' }, categoryName(conv.category_id) + ' queue (keeps the place)'),
          Array.from(categories.entries()).filter(([id]) => id !== String(conv.category_id))
            .map(([id, label]) => h('option', { value: 'queue:' + id }, label + ' queue'))));
      target.focus();
    });
    openEscalate.addEventListener('click', () => {
      transferForm.hidden = true;
      escalateForm.hidden = !escalateForm.hidden;
      openEscalate.setAttribute('aria-expanded', String(!escalateForm.hidden));
      if (!escalateForm.hidden) escalateNote.focus();
    });

    transferForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const value = target.value;
      if (!value) { HD.toast('Choose an agent or a queue.', 'bad'); return; }
      const body = { note: transferNote.value.trim() };
      const [kind, id] = value.split(':');
      if (kind === 'agent') body.agent_id = Number(id);
      else if (id) body.category_id = Number(id);
      const label = target.selectedOptions[0] ? target.selectedOptions[0].textContent.replace(/ \(.*\)$/, '') : '';
      transferGo.disabled = true;
      try {
        await api.post('/conversations/' + c.id + '/transfer', body);
        movedAway(c.id, kind === 'agent' ? 'Your chat with ' + name + ' was transferred to ' + label + '.'
          : 'Your chat with ' + name + ' went back to the ' + label + '.');
      } catch (e) {
        HD.toast(TRANSFER_ERRORS[e.code] || 'Transfer failed: ' + e.message, 'bad');
      } finally {
        transferGo.disabled = false;
      }
    });
    escalateForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const note = escalateNote.value.trim();
      try {
        await api.post('/conversations/' + c.id + '/escalate', { note });
        escalateForm.hidden = true;
        openEscalate.setAttribute('aria-expanded', 'false');
        escalateNote.value = '';
        c.escalated.hidden = false;
        c.view.notice('You escalated this chat' + (note ? ': ' + note : '') + '. Your supervisor has been told.');
        HD.toast('Escalated to your supervisor.', 'ok');
      } catch (e) {
        HD.toast('Escalation failed: ' + e.message, 'bad');
      }
    });

    return h('div', { class: 'chat-actions' }, h('div', { class: 'row' }, openTransfer, openEscalate), transferForm, escalateForm);
  }

  /** A chat moved away from this agent (transferred, taken over, back to a queue): its tab closes with a notice. */
  function movedAway(id, text) {
    const c = chats.get(id);
    if (!c || c.movedAway) return;
    c.movedAway = true;
    if (calls) calls.conversationGone(id);
    if (socket) socket.leave(id);
    dismissChat(id);
    el.chatNotice.textContent = text;
    el.chatNotice.hidden = false;
    HD.toast(text, 'ok');
  }

  function select(id) {
    const c = chats.get(id);
    if (!c) return;
    selected = id;
    for (const other of chats.values()) {
      const on = other.id === id;
      other.tab.setAttribute('aria-selected', on ? 'true' : 'false');
      other.tab.tabIndex = on ? 0 : -1;
      other.panel.hidden = !on;
    }
    c.unread = 0;
    paintUnread(c);
    c.view.scroll(true);
    if (!c.closed) c.text.focus();
  }

  function paintUnread(c) {
    c.badge.textContent = String(c.unread);
    c.badge.hidden = c.unread === 0;
    c.tab.setAttribute('aria-label', c.tab.firstChild.textContent + (c.unread ? ', ' + c.unread + ' unread' : ''));
  }

  // Arrow keys move between tabs (WAI-ARIA tabs pattern).
  el.tabs.addEventListener('keydown', (ev) => {
    if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft') return;
    const ids = Array.from(chats.keys());
    const focused = ids.find((id) => chats.get(id).tab === document.activeElement);
    const i = ids.indexOf(focused || selected);
    if (i < 0) return;
    const next = ids[(i + (ev.key === 'ArrowRight' ? 1 : ids.length - 1)) % ids.length];
    select(next);
    chats.get(next).tab.focus();
  });

  function markClosed(c, note) {
    const wasClosed = c.closed && c.composer.hidden;
    c.closed = true;
    c.composer.hidden = true;
    c.closeRow.hidden = true;
    c.actions.hidden = true;
    c.dismiss.hidden = false;
    c.typing.hide();
    c.tab.classList.add('closed');
    c.status.textContent = 'closed';
    c.status.className = 'badge offline';
    if (calls) calls.conversationGone(c.id);
    c.paintCall();
    if (note && !wasClosed) c.view.notice(note);
    if (socket) socket.leave(c.id);
  }

  function dismissChat(id) {
    const c = chats.get(id);
    if (!c) return;
    c.tab.remove();
    c.panel.remove();
    chats.delete(id);
    // a later tab of the same chat (reopened, assigned again) starts from its whole history
    if (socket) { socket.leave(id); socket.conversations.delete(id); }
    if (selected === id) {
      selected = null;
      const first = chats.keys().next();
      if (!first.done) select(first.value);
    }
    el.noChats.hidden = chats.size > 0;
  }

  async function loadActive() {
    try {
      const list = await api.get('/conversations?status=active');
      for (const conv of list) if (conv.agent && String(conv.agent.id) === String(me.id)) openChat(conv, false);
    } catch (e) { HD.toast('Chats: ' + e.message, 'bad'); }
  }

  // ---- history ------------------------------------------------------------------------------
  async function loadHistory() {
    try {
      const list = await api.get('/conversations?status=closed&limit=30');
      el.history.replaceChildren(...list.map((conv) => h('li', { class: 'queue-item' },
        h('div', { class: 'info' },
          h('div', { class: 'name' }, conv.customer ? conv.customer.name : 'Customer'),
          h('div', { class: 'sub' }, HD.formatTime(conv.closed_at) + (conv.resolution ? ' · ' + conv.resolution : ''))),
        h('span', { class: 'row' },
          h('button', { type: 'button', class: 'small', 'aria-label': 'View chat with ' + (conv.customer ? conv.customer.name : 'customer'), onclick: () => viewClosed(conv) }, 'View'),
          conv.status === 'closed'
            ? h('button', { type: 'button', class: 'small', 'aria-label': 'Reopen chat with ' + (conv.customer ? conv.customer.name : 'customer'), onclick: (ev) => reopen(conv, ev.currentTarget) }, 'Reopen')
            : null))));
      el.historyEmpty.hidden = list.length > 0;
    } catch (e) { HD.toast('History: ' + e.message, 'bad'); }
  }
  el.historyRefresh.addEventListener('click', loadHistory);

  /** Reopens a closed chat (it goes back to the queue) and picks it straight away when we can. */
  async function reopen(conv, button) {
    button.disabled = true;
    try {
      await api.post('/conversations/' + conv.id + '/reopen');
    } catch (e) {
      HD.toast(e.status === 409 ? 'Cannot reopen: ' + e.message : 'Reopen failed: ' + e.message, 'bad');
      button.disabled = false;
      return;
    }
    if (chats.has(conv.id) && chats.get(conv.id).closed) dismissChat(conv.id);
    button.closest('li').remove();
    try {
      const ack = await socket.request('PICK', { conversation_id: conv.id });
      queue.delete(conv.id);
      renderQueue();
      openChat(ack.conversation, true);
      HD.toast('Reopened: the chat is yours again.', 'ok');
    } catch (e) {
      HD.toast('Reopened: the chat is back in the queue (' + (PICK_ERRORS[e.code] || e.message) + ')', 'ok');
    }
  }

  async function viewClosed(conv) {
    const c = openChat(conv, true, true);
    if (c.view.messages.length) return;
    try {
      // The transcript comes in pages: follow has_more from the last id of each.
      let after = '';
      for (;;) {
        const reply = await api.get('/conversations/' + conv.id + '/messages' + (after ? '?after=' + encodeURIComponent(after) : ''));
        c.view.addAll(reply.messages);
        if (!reply.has_more || !reply.next_after) break;
        after = reply.next_after;
      }
      if (conv.resolution) c.view.notice('Closed: ' + conv.resolution);
    } catch (e) { c.view.notice('Could not load the transcript: ' + e.message); }
  }

  // ---- calls ----------------------------------------------------------------------------------
  function paintCalls() {
    for (const c of chats.values()) c.paintCall();
  }

  function incomingCall(invite) {
    // The page may be in the background: a desktop alert, as for a new chat.
    if (!document.hidden || !('Notification' in window) || Notification.permission !== 'granted') return;
    try {
      const c = chats.get(invite.conversation_id);
      const who = (c && c.conversation.customer && c.conversation.customer.name) || (invite.from && invite.from.name) || 'A customer';
      const n = new Notification(who + ' is calling', { body: invite.media === 'video' ? 'Video call' : 'Audio call', tag: 'hd-call-' + invite.call_id });
      n.onclick = () => { window.focus(); select(invite.conversation_id); n.close(); };
    } catch (_) { /* notifications from a service worker only */ }
  }

  // ---- socket events ------------------------------------------------------------------------
  /** One QUEUE_UPDATED's data (also each entry of a QUEUE_CHANGES) into the queue list. */
  function applyQueueChange(data) {
    const conv = data.conversation || {};
    if (data.op === 'added' && conv.status !== 'active') {
      // a closed tab of ours does not hide it (reopened chats come back to the queue)
      if (serves(conv) && !(chats.has(conv.id) && !chats.get(conv.id).closed)) queue.set(conv.id, conv);
    } else {
      queue.delete(conv.id);
    }
  }

  function onEvent(event, data) {
    if (calls.handleEvent(event, data)) return;
    if (offers.handleEvent(event, data)) return; // offers and wrap-up: offers.js
    switch (event) {
      case 'HELLO':
        // Our chosen status wins over what Redis remembers (and says we are here).
        socket.request('SET_STATUS', { status: el.presence.value }).catch((e) => HD.toast('Status: ' + e.message, 'bad'));
        loadQueue();
        loadActive();
        break;
      case 'RESYNC':
        loadQueue();
        break;
      case 'PROFILE_UPDATED': // an admin changed our categories or capacity: the queue we see changes with them
        HD.toast('An admin changed your categories or capacity.', 'ok');
        loadQueue();
        break;
      case 'QUEUE_UPDATED':
        applyQueueChange(data);
        renderQueue();
        break;
      case 'QUEUE_CHANGES': // a window's QUEUE_UPDATEDs, in order: drawn once
        for (const change of data.changes || []) applyQueueChange(change);
        renderQueue();
        break;
      case 'CONVERSATION_ASSIGNED': {
        const conv = data.conversation;
        queue.delete(conv.id);
        renderQueue();
        const isNew = !chats.has(conv.id) || chats.get(conv.id).closed;
        if (isNew && chats.has(conv.id)) dismissChat(conv.id);
        const opened = openChat(conv, !selected);
        // a transfer to us: its note is for us (the customer never sees it)
        if (data.transferred_from && isNew) {
          opened.view.notice('Transferred to you' + (data.note ? ' with a note: ' + data.note : '.'), 'warn');
        }
        // Announce each assignment once, whether this event or the PICK's ACK opened the tab first.
        if (isNew || !announced.has(conv.id)) { announced.add(conv.id); beep(); notify(conv); }
        break;
      }
      case 'HISTORY': {
        const c = chats.get(data.conversation_id);
        if (c) c.view.addAll(data.messages);
        break;
      }
      case 'NEW_MESSAGE': {
        const c = chats.get(data.conversation_id);
        if (!c) break;
        const m = data.message;
        if (c.view.add(m) && !(m.sender.role === 'agent' && String(m.sender.id) === String(me.id))) {
          if (m.sender.role === 'customer') c.typing.hide();
          if (selected !== c.id || document.hidden) { c.unread += 1; paintUnread(c); }
        }
        break;
      }
      case 'MESSAGE_SENT': {
        const c = chats.get(data.conversation_id);
        if (c) c.view.setState(data.client_msg_id, 'sent');
        break;
      }
      case 'MESSAGE_FAILED': {
        const c = chats.get(data.conversation_id);
        if (c) c.view.setState(data.client_msg_id, 'failed');
        HD.toast('Message not sent: ' + data.message, 'bad');
        break;
      }
      case 'TYPING': {
        const c = chats.get(data.conversation_id);
        if (c && data.role === 'customer') {
          if (data.typing) c.typing.show(c.conversation.customer ? c.conversation.customer.name : 'The customer'); else c.typing.hide();
        }
        break;
      }
      case 'CONVERSATION_CLOSED': {
        const c = chats.get(data.conversation_id);
        if (c && !c.closed) {
          const by = data.closed_by && String(data.closed_by.id) === String(me.id) ? 'You' : 'A supervisor';
          markClosed(c, data.resolution === 'abandoned' ? 'The customer left.' : by + ' closed this chat' + (data.resolution ? ': ' + data.resolution : '') + '.');
        }
        // The archive is written by the flusher a moment after the close.
        for (const delay of [300, 2000, 5000]) setTimeout(loadHistory, delay);
        break;
      }
      case 'CONVERSATION_TRANSFERRED': {
        const c = chats.get(data.conversation_id);
        if (!c || c.closed || (data.agent && String(data.agent.id) === String(me.id))) break;
        const who = c.conversation.customer && c.conversation.customer.name ? c.conversation.customer.name : 'the customer';
        if (data.taken_over) movedAway(c.id, ((data.agent && data.agent.name) || 'A supervisor') + ' took over your chat with ' + who + '.');
        else if (data.agent) movedAway(c.id, 'Your chat with ' + who + ' was transferred to ' + (data.agent.name || 'another agent') + '.');
        else movedAway(c.id, 'Your chat with ' + who + ' went back to the ' + categoryName(data.category_id) + ' queue.');
        break;
      }
      case 'CONVERSATION_REOPENED': {
        const c = chats.get(data.conversation_id);
        if (c && c.closed) c.view.notice('This chat was reopened and is back in the queue.');
        break;
      }
      case 'CONVERSATION_REQUEUED': {
        const c = chats.get(data.conversation_id);
        if (c) markClosed(c, 'This chat went back to the queue (you were offline too long).');
        break;
      }
      case 'JOIN_FAILED': {
        const c = chats.get(data.conversation_id);
        if (c && !c.closed && HD.joinRefusedForGood(data.code)) {
          markClosed(c, 'This chat is no longer yours (' + data.message + ').');
        }
        break;
      }
      default:
        break;
    }
  }

  // ---- start ----------------------------------------------------------------------------------
  async function main() {
    const auth = await HD.requireStaff(el.login, ['agent'], 'Agent sign in');
    session = auth.session;
    me = auth.user;
    api = new HD.Api(session);
    if (HD.Attachments) HD.Attachments.use(api);
    el.me.textContent = me.name;
    el.presence.value = HD.session.get('hd.agent.status') || 'online';
    el.controls.hidden = false;
    el.console.hidden = false;
    offerNotifications();
    try {
      for (const c of await api.get('/categories')) categories.set(String(c.id), c.name);
    } catch (_) { /* names only */ }
    socket = new HD.Socket({ api, onEvent, onState: HD.connectionBanner(el.banner), batchQueueChanges: true });
    // The agent is the impolite peer: on an offer collision its offer wins.
    calls = new HD.CallManager({
      socket, api, polite: false,
      peerName: (id, from) => {
        const c = chats.get(id);
        return (c && c.conversation.customer && c.conversation.customer.name) || (from && from.name) || 'The customer';
      },
      notice: (id, text, kind) => { const c = chats.get(id); if (c) c.view.notice(text, kind); },
      onChange: paintCalls,
      onIncoming: incomingCall,
      onAccept: (id) => select(id),
      mount: $('#call-slot'),
    });
    HD.debug.calls = calls;
    HD.debug.socket = socket;
    offers = new HD.Offers({ socket, mount: $('#offer-slot'), presence: el.presence, categoryName, onAccepted: (conv) => openChat(conv, true) });
    socket.start();
    loadHistory();
    setInterval(tickWaits, 1000);

    el.presence.addEventListener('change', async () => {
      const status = el.presence.value;
      HD.session.set('hd.agent.status', status);
      try {
        await socket.request('SET_STATUS', { status });
        HD.toast(status === 'online' ? 'You are online.' : 'You are away: no new chats.', 'ok');
      } catch (e) {
        HD.toast('Status not changed: ' + e.message, 'bad');
      }
    });
    el.logout.addEventListener('click', async () => {
      socket.stop();
      await session.logout(api);
      HD.session.remove('hd.agent.status');
      location.reload();
    });
    window.addEventListener('online', () => socket.reconnectNow());
  }
  main();
})();
