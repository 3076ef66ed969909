/* The supervisor board: live presence and load of the supervisor's agents, the queue coloured
 * against a target wait, live conversations, assigning, and silent monitoring with internal notes.
 * Workflows: an escalation inbox (live, with the agent's note), take over (the supervisor becomes
 * the assignee), barge (messages the customer sees, distinct from notes), close and transfer. */
(function () {
  'use strict';
  const { h, $ } = HD;

  const el = {
    controls: $('#controls'), me: $('#me'), logout: $('#logout'), banner: $('#banner'), login: $('#login'), board: $('#board'),
    agents: $('#agents tbody'), agentsOnline: $('#agents-online'), agentsEmpty: $('#agents-empty'),
    target: $('#target'), legend: $('#target-legend'), queue: $('#queue'), queueCount: $('#queue-count'), queueEmpty: $('#queue-empty'),
    live: $('#live tbody'), liveCount: $('#live-count'), liveEmpty: $('#live-empty'),
    monitorInfo: $('#monitor-info'), monitorStop: $('#monitor-stop'), monitorMessages: $('#monitor-messages'),
    monitorTyping: $('#monitor-typing'), noteForm: $('#note-form'), note: $('#note'),
    noteVisible: $('#note-visible'), noteSend: $('#note-send'),
    inbox: $('#escalations'), inboxCount: $('#inbox-count'), inboxEmpty: $('#inbox-empty'),
    actions: $('#monitor-actions'), takeover: $('#takeover'), close: $('#monitor-close'), resolution: $('#monitor-resolution'),
    transferOpen: $('#transfer-open'), transferForm: $('#transfer-form'), transferTarget: $('#transfer-target'),
    transferNote: $('#transfer-note'), transferCancel: $('#transfer-cancel'),
  };

  let session, api, socket, me;
  const agents = new Map(); // agent id (string) -> {agent_id, name, status, active, capacity, node_id, connected, since}
  const queue = new Map(); // conversation id -> conversation
  let live = [];
  let monitored = null; // {id, conversation, view, typing}
  const categories = new Map();
  // Escalations the events told us about since the last live list: id -> {conversation, note, at, seen}
  const escalationEvents = new Map();
  const DISMISSED = 'hd.supervisor.dismissed';
  const dismissed = new Set(HD.session.get(DISMISSED) || []);

  // ---- target wait ------------------------------------------------------------------------------
  function target() {
    const v = Number(el.target.value);
    return v > 0 ? v : 60;
  }
  function waitClass(seconds) {
    const t = target();
    return seconds < t ? 'ok' : seconds < 3 * t ? 'warn' : 'bad';
  }
  function paintLegend() {
    const t = target();
    el.legend.textContent = 'Green under ' + HD.formatDuration(t) + ', amber under ' + HD.formatDuration(3 * t) + ', red above.';
  }
  el.target.value = localStorage.getItem('hd.supervisor.target') || '60';
  paintLegend();
  el.target.addEventListener('input', () => {
    if (target() > 0) localStorage.setItem('hd.supervisor.target', String(target()));
    paintLegend();
    tick();
  });

  // ---- agents -------------------------------------------------------------------------------------
  function isMine(id) {
    return agents.has(String(id));
  }

  function mergeAgent(p) {
    const id = String(p.agent_id);
    const a = agents.get(id) || { agent_id: id, name: '', status: 'offline', active: 0, capacity: 0, node_id: '', connected: false, since: 0 };
    for (const key of ['name', 'status', 'active', 'capacity', 'node_id', 'connected', 'since', 'offers']) {
      if (p[key] !== undefined && p[key] !== null && !(key === 'name' && p[key] === '')) a[key] = p[key];
    }
    // a full presence view omits wrap_up_until once the wrap-up is over
    if (p.status !== undefined) a.wrap_up_until = p.wrap_up_until || 0;
    agents.set(id, a);
  }

  function renderAgents() {
    const rows = [];
    const list = Array.from(agents.values()).sort((a, b) => a.name.localeCompare(b.name));
    let online = 0;
    for (const a of list) {
      const status = a.status || 'offline';
      if (status === 'online') online += 1;
      const cap = Math.max(1, a.capacity || 1);
      const pct = Math.min(100, Math.round(100 * (a.active || 0) / cap));
      rows.push(h('tr', { dataset: { agentId: a.agent_id } },
        h('td', { class: 'agent-name' }, a.name || 'Agent ' + a.agent_id),
        h('td', null, h('span', { class: 'badge agent-status ' + status }, status),
          status !== 'offline' && a.connected === false ? h('span', { class: 'muted small' }, ' no connection') : null,
          a.offers > 0 ? h('span', { class: 'badge offer-badge', title: 'offers waiting for its answer' }, ' ' + a.offers + (a.offers === 1 ? ' offer' : ' offers')) : null,
          a.wrap_up_until > socket.now() ? h('span', { class: 'badge wrapup-badge', title: 'no offers until its wrap-up ends' }, ' wrap-up') : null),
        h('td', null, h('span', { class: 'load' }, h('span', { class: 'bar', 'aria-hidden': 'true' }, h('span', { style: 'width:' + pct + '%' })),
          h('span', { class: 'load-text' }, (a.active || 0) + '/' + (a.capacity || 0)))),
        h('td', { class: 'small' }, status === 'offline' ? '—' : a.node_id || '—'),
        h('td', { class: 'small since', dataset: { since: a.since || '' } }, a.since ? HD.formatDuration((socket.now() - a.since) / 1000) : '—')));
    }
    el.agents.replaceChildren(...rows);
    el.agentsOnline.textContent = online + ' online';
    el.agentsEmpty.hidden = agents.size > 0;
    renderQueue(); // the assign menus list the agents
    renderInbox(); // and the inbox shows our agents' escalations
    if (monitored) paintMonitor();
  }

  async function loadAgents() {
    try {
      const users = await api.get('/users?role=agent');
      for (const u of users) {
        if (u.role !== 'agent' || !u.active) continue;
        mergeAgent({ agent_id: u.id, name: u.name, capacity: u.capacity });
      }
      for (const p of await api.get('/presence')) if (isMine(p.agent_id)) mergeAgent(p);
      renderAgents();
    } catch (e) { HD.toast('Agents: ' + e.message, 'bad'); }
  }

  // ---- queue ----------------------------------------------------------------------------------------
  function waitOf(c) { return Math.max(0, (socket.now() - (c.enqueued_at || c.created_at || socket.now())) / 1000); }
  function categoryName(id) { return id && id !== '0' ? categories.get(String(id)) || 'Category ' + id : 'General'; }

  function renderQueue() {
    if (!socket) return;
    const available = Array.from(agents.values()).filter((a) => (a.status === 'online' || a.status === 'away') && a.connected !== false);
    const chosen = new Map(Array.from(el.queue.querySelectorAll('select.assign-agent'), (s) => [s.id, s.value]));
    const focused = document.activeElement && el.queue.contains(document.activeElement) ? document.activeElement.id : null;
    const items = [];
    for (const c of queue.values()) {
      const selectId = 'assign-' + c.id;
      const select = h('select', { id: selectId, class: 'assign-agent' },
        h('option', { value: '' }, available.length ? 'Assign to…' : 'No agent available'),
        available.map((a) => h('option', { value: a.agent_id, disabled: a.active >= a.capacity }, a.name + ' (' + a.active + '/' + a.capacity + ', ' + a.status + ')')));
      if (chosen.get(selectId)) select.value = chosen.get(selectId);
      const button = h('button', { type: 'button', class: 'small', onclick: () => assign(c.id, select.value) }, 'Assign');
      const secs = waitOf(c);
      items.push(h('li', { class: 'queue-item', dataset: { id: c.id } },
        h('div', { class: 'info' },
          h('div', { class: 'name' }, c.customer ? c.customer.name : 'Customer',
            c.priority && c.priority !== 'normal' ? h('span', { class: 'badge warn' }, ' ' + c.priority) : null),
          h('div', { class: 'sub' }, categoryName(c.category_id) + (c.subject ? ' · ' + c.subject : ''))),
        h('span', { class: 'wait ' + waitClass(secs), dataset: { since: c.enqueued_at || c.created_at } }, HD.formatDuration(secs)),
        h('label', { for: selectId, class: 'sr-only' }, 'Agent for ' + (c.customer ? c.customer.name : 'customer')), select, button));
    }
    el.queue.replaceChildren(...items);
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
    el.queueCount.textContent = String(queue.size);
    el.queueEmpty.hidden = queue.size > 0;
  }

  async function loadQueue() {
    try {
      queue.clear();
      for (const c of await api.get('/queue')) queue.set(c.id, c);
      renderQueue();
    } catch (e) { HD.toast('Queue: ' + e.message, 'bad'); }
  }

  const ASSIGN_ERRORS = {
    already_picked: 'Someone already took that customer.',
    at_capacity: 'That agent is at capacity.',
    conflict: 'That agent is offline.',
  };
  async function assign(conversationId, agentId) {
    if (!agentId) { HD.toast('Choose an agent first.', 'bad'); return; }
    try {
      await api.post('/conversations/' + conversationId + '/assign', { agent_id: Number(agentId) });
      queue.delete(conversationId);
      renderQueue();
      HD.toast('Assigned.', 'ok');
      scheduleLive();
    } catch (e) {
      HD.toast(ASSIGN_ERRORS[e.code] || e.message, 'bad');
    }
  }

  // ---- live conversations -----------------------------------------------------------------------
  function renderLive() {
    const rows = live.map((c) => h('tr', { dataset: { id: c.id } },
      h('td', null, c.customer ? c.customer.name : 'Customer'),
      h('td', null, c.agent ? c.agent.name : '—'),
      h('td', { class: 'small' }, c.subject || categoryName(c.category_id)),
      h('td', { class: 'small since', dataset: { since: c.assigned_at || c.enqueued_at } }, HD.formatDuration((socket.now() - (c.assigned_at || c.enqueued_at)) / 1000)),
      h('td', null, h('span', { class: 'row' }, h('button', {
        type: 'button', class: 'small', 'aria-label': 'Monitor chat with ' + (c.customer ? c.customer.name : 'customer'),
        'aria-pressed': monitored && monitored.id === c.id ? 'true' : 'false', onclick: () => monitor(c),
      }, 'Monitor'), canTakeOver(c) ? h('button', {
        type: 'button', class: 'small', 'aria-label': 'Take over chat with ' + (c.customer ? c.customer.name : 'customer'), onclick: () => takeOver(c),
      }, 'Take over') : null))));
    el.live.replaceChildren(...rows);
    el.liveCount.textContent = String(live.length);
    el.liveEmpty.hidden = live.length > 0;
  }

  async function loadLive() {
    const started = Date.now();
    try {
      live = await api.get('/conversations?status=active&limit=200');
      // this list knows every escalation that happened before it was asked for
      for (const [id, e] of escalationEvents) if (e.seen < started) escalationEvents.delete(id);
      renderLive();
      renderInbox();
      if (monitored) {
        const fresh = live.find((c) => c.id === monitored.id);
        if (fresh) { monitored.conversation = fresh; paintMonitor(); }
      }
    } catch (e) { HD.toast('Live conversations: ' + e.message, 'bad'); }
  }

  /** Ours to take over: an agent has it (not us), in our team (admins: anyone's). */
  function canTakeOver(c) {
    return c.status === 'active' && c.agent && String(c.agent.id) !== String(me.id) && (me.role === 'admin' || isMine(c.agent.id));
  }

  // ---- escalation inbox -------------------------------------------------------------------------
  /** Open escalations: escalated chats an agent of ours still has (taken over or closed ones drop out). */
  function renderInbox() {
    const entries = new Map();
    for (const c of live) {
      if (c.escalated && c.agent && isMine(c.agent.id)) {
        entries.set(c.id, { conversation: c, note: c.escalation_note || '', at: c.escalated_at || 0 });
      }
    }
    for (const [id, e] of escalationEvents) {
      const c = e.conversation;
      if (!entries.has(id) && c.agent && isMine(c.agent.id) && !live.some((l) => l.id === id && !(l.agent && isMine(l.agent.id)))) entries.set(id, e);
    }
    const items = Array.from(entries.values()).filter((e) => !dismissed.has(e.conversation.id + ':' + e.at))
      .sort((a, b) => a.at - b.at)
      .map((e) => {
        const c = e.conversation, who = c.customer ? c.customer.name : 'Customer';
        return h('li', { class: 'queue-item inbox-item', dataset: { id: c.id } },
          h('div', { class: 'info' },
            h('div', { class: 'name' }, who, h('span', { class: 'muted small' }, ' with ' + (c.agent ? c.agent.name : '—'))),
            h('div', { class: 'note' }, e.note ? '“' + e.note + '”' : 'No note.'),
            h('div', { class: 'sub' }, (c.subject || categoryName(c.category_id)) + (e.at ? ' · escalated ' + HD.formatTime(e.at) : ''))),
          h('span', { class: 'row' },
            h('button', { type: 'button', class: 'small', 'aria-label': 'Monitor escalated chat with ' + who, onclick: () => monitor(c) }, 'Monitor'),
            h('button', { type: 'button', class: 'small primary', 'aria-label': 'Take over escalated chat with ' + who, onclick: () => takeOver(c) }, 'Take over'),
            h('button', { type: 'button', class: 'small', 'aria-label': 'Dismiss escalation of ' + who, onclick: () => {
              dismissed.add(c.id + ':' + e.at);
              HD.session.set(DISMISSED, Array.from(dismissed).slice(-200));
              renderInbox();
            } }, 'Dismiss')));
      });
    el.inbox.replaceChildren(...items);
    el.inboxCount.textContent = String(items.length);
    el.inboxCount.className = items.length ? 'badge bad' : 'badge';
    el.inboxEmpty.hidden = items.length > 0;
  }

  // ---- take over, close, transfer ---------------------------------------------------------------
  const ACTION_ERRORS = {
    forbidden: 'That chat is outside your team.',
    at_capacity: 'That agent has just become full: choose another.',
    conversation_closed: 'That chat is closed.',
  };

  async function takeOver(conversation) {
    try {
      const conv = await api.post('/conversations/' + conversation.id + '/takeover');
      escalationEvents.delete(conv.id);
      if (!monitored || monitored.id !== conv.id) monitor(conv);
      monitored.conversation = conv;
      paintMonitor();
      monitored.view.notice('You took over this chat: the customer now sees you as their agent.');
      el.note.focus();
      HD.toast('You have the chat now.', 'ok');
      scheduleLive();
    } catch (e) {
      HD.toast(ACTION_ERRORS[e.code] || 'Take over failed: ' + e.message, 'bad');
    }
  }

  el.takeover.addEventListener('click', () => { if (monitored) takeOver(monitored.conversation); });

  el.close.addEventListener('click', async () => {
    if (!monitored) return;
    el.close.disabled = true;
    try {
      await api.post('/conversations/' + monitored.id + '/close', { resolution: el.resolution.value.trim() });
      el.resolution.value = '';
      scheduleLive();
    } catch (e) {
      HD.toast(ACTION_ERRORS[e.code] || 'Close failed: ' + e.message, 'bad');
    } finally {
      el.close.disabled = false;
    }
  });

  el.transferOpen.addEventListener('click', async () => {
    el.transferForm.hidden = !el.transferForm.hidden;
    el.transferOpen.setAttribute('aria-expanded', String(!el.transferForm.hidden));
    if (el.transferForm.hidden || !monitored) return;
    el.transferTarget.replaceChildren(h('option', { value: '' }, 'Loading…'));
    let targets = [];
    try { targets = await api.get('/agents/available'); } catch (e) { HD.toast('Agents: ' + e.message, 'bad'); }
    const c = monitored.conversation;
    targets = targets.filter((a) => !c.agent || String(a.id) !== String(c.agent.id));
    el.transferTarget.replaceChildren(
      h('option', { value: '' }, 'Choose…'),
      h('optgroup', { label: 'Agents with room' },
        targets.length ? targets.map((a) => h('option', { value: 'agent:' + a.id }, a.name + ' (' + a.active + '/' + a.capacity + (a.status === 'away' ? ', away' : '') + ')'))
          : h('option', { value: '', disabled: true }, 'Nobody has room now')),
      h('optgroup', { label: 'Back to a queue' },
        h('option', { value: 'queue:' }, categoryName(c.category_id) + ' queue (keeps the place)'),
        Array.from(categories.entries()).filter(([id]) => id !== String(c.category_id))
          .map(([id, label]) => h('option', { value: 'queue:' + id }, label + ' queue'))));
    el.transferTarget.focus();
  });
  el.transferCancel.addEventListener('click', () => { el.transferForm.hidden = true; el.transferOpen.setAttribute('aria-expanded', 'false'); });
  el.transferForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!monitored) return;
    const value = el.transferTarget.value;
    if (!value) { HD.toast('Choose an agent or a queue.', 'bad'); return; }
    const [kind, id] = value.split(':');
    const body = { note: el.transferNote.value.trim() };
    if (kind === 'agent') body.agent_id = Number(id);
    else if (id) body.category_id = Number(id);
    try {
      await api.post('/conversations/' + monitored.id + '/transfer', body);
      el.transferForm.hidden = true;
      el.transferOpen.setAttribute('aria-expanded', 'false');
      el.transferNote.value = '';
      HD.toast('Transferred.', 'ok');
      scheduleLive();
    } catch (e) {
      HD.toast(ACTION_ERRORS[e.code] || 'Transfer failed: ' + e.message, 'bad');
    }
  });
  let liveTimer = null;
  function scheduleLive() {
    clearTimeout(liveTimer);
    liveTimer = setTimeout(loadLive, 400);
  }

  // ---- monitoring ---------------------------------------------------------------------------------
  function monitor(conversation) {
    if (monitored && monitored.id === conversation.id) return;
    stopMonitoring();
    el.monitorMessages.replaceChildren();
    const view = new HD.ChatView(el.monitorMessages, { id: String(me.id), role: me.role }, {
      label: (m) => m.sender.name + ' (' + m.sender.role + ')',
      now: () => socket.now(),
    });
    monitored = { id: conversation.id, conversation, view, typing: HD.typingIndicator(el.monitorTyping), open: true };
    el.monitorStop.hidden = false;
    el.noteForm.hidden = false;
    el.noteVisible.checked = mine(conversation);
    paintMonitor();
    socket.join(conversation.id);
    renderLive();
    el.note.focus();
  }

  function mine(c) { return !!(c && c.agent && String(c.agent.id) === String(me.id)); }

  /** The monitor's header, actions and composer mode for the monitored chat as it is now. */
  function paintMonitor() {
    if (!monitored) return;
    const c = monitored.conversation;
    el.monitorInfo.textContent = (c.customer ? c.customer.name : 'Customer') + ' ↔ ' +
      (mine(c) ? 'you' : c.agent ? c.agent.name : 'unassigned') + (c.subject ? ' · ' + c.subject : '');
    el.actions.hidden = !monitored.open;
    el.takeover.hidden = !canTakeOver(c);
    el.transferOpen.hidden = c.status !== 'active';
    paintComposer();
  }

  /** Barge: the same composer sends either an internal note or a message the customer sees. */
  function paintComposer() {
    const visible = el.noteVisible.checked;
    el.note.classList.toggle('internal', !visible);
    el.note.placeholder = visible ? 'Message to the customer — they see it in their chat'
      : 'Internal note for the agent — never shown to the customer';
    el.noteSend.textContent = visible ? 'Send to customer' : 'Add note';
  }
  el.noteVisible.addEventListener('change', () => { paintComposer(); el.note.focus(); });

  function stopMonitoring() {
    if (!monitored) return;
    socket.leave(monitored.id);
    socket.conversations.delete(monitored.id);
    monitored.typing.hide();
    monitored = null;
    el.monitorMessages.replaceChildren();
    el.monitorInfo.textContent = 'Open a live conversation to watch it silently and leave internal notes.';
    el.monitorStop.hidden = true;
    el.noteForm.hidden = true;
    el.actions.hidden = true;
    el.transferForm.hidden = true;
    renderLive();
  }
  el.monitorStop.addEventListener('click', stopMonitoring);

  function sendNote() {
    const text = el.note.value.trim();
    if (!text || !monitored) return;
    const internal = !el.noteVisible.checked;
    const clientMsgId = socket.sendMessage(monitored.id, text, internal);
    monitored.view.addPending(clientMsgId, text, internal);
    el.note.value = '';
  }
  el.noteForm.addEventListener('submit', (ev) => { ev.preventDefault(); sendNote(); });
  HD.enterToSend(el.note, sendNote);

  // ---- events -------------------------------------------------------------------------------------
  function onEvent(event, data) {
    const inMonitor = monitored && data && data.conversation_id === monitored.id;
    switch (event) {
      case 'HELLO':
        loadAgents();
        loadQueue();
        loadLive();
        break;
      case 'RESYNC':
        loadAgents();
        loadQueue();
        loadLive();
        break;
      case 'CONVERSATION_ESCALATED': {
        // from the presence channel (the agent's supervisor, admins) and, when monitoring, the conversation's
        const conv = data.conversation || { id: data.conversation_id, customer: data.customer, subject: data.subject };
        escalationEvents.set(data.conversation_id, { conversation: conv, note: data.note || '', at: conv.escalated_at || socket.now(), seen: Date.now() });
        if (inMonitor && !monitored.escalationShown) {
          monitored.escalationShown = true;
          monitored.view.notice('Escalated' + (data.note ? ': ' + data.note : '.'), 'warn');
        }
        renderInbox();
        scheduleLive();
        break;
      }
      case 'CONVERSATION_TRANSFERRED':
        if (inMonitor) {
          const c = monitored.conversation;
          if (data.agent) c.agent = data.agent; else { c.agent = null; c.status = 'waiting'; monitored.open = false; }
          const text = data.taken_over ? (mine(c) ? 'You took over this chat.' : (data.agent.name || 'Someone') + ' took over this chat.')
            : data.agent ? 'Transferred to ' + (mine(c) ? 'you' : data.agent.name) + (data.note ? ' — note: ' + data.note : '.')
              : 'Back in the ' + categoryName(data.category_id) + ' queue' + (data.note ? ' — note: ' + data.note : '.');
          if (!(data.taken_over && mine(c))) monitored.view.notice(text, '', data.at);
          if (!mine(c)) el.noteVisible.checked = false;
          paintMonitor();
        }
        scheduleLive();
        break;
      case 'PRESENCE_UPDATED':
        if (isMine(data.agent_id) || me.role === 'admin') {
          mergeAgent(data);
          renderAgents();
        }
        scheduleLive(); // a pick or a close changes the live list too
        break;
      case 'QUEUE_UPDATED':
      case 'QUEUE_CHANGES': // a window's QUEUE_UPDATEDs, in order: drawn once
        for (const change of event === 'QUEUE_CHANGES' ? data.changes || [] : [data]) {
          const conv = change.conversation || {};
          if (change.op === 'added') queue.set(conv.id, conv); else queue.delete(conv.id);
        }
        renderQueue();
        scheduleLive();
        break;
      case 'HISTORY':
        if (inMonitor) monitored.view.addAll(data.messages);
        break;
      case 'NEW_MESSAGE':
        if (inMonitor) { monitored.view.add(data.message); monitored.typing.hide(); }
        break;
      case 'MESSAGE_SENT':
        if (inMonitor) monitored.view.setState(data.client_msg_id, 'sent');
        break;
      case 'MESSAGE_FAILED':
        if (inMonitor) monitored.view.setState(data.client_msg_id, 'failed');
        HD.toast('Note not sent: ' + data.message, 'bad');
        break;
      case 'TYPING':
        if (inMonitor && data.typing) monitored.typing.show(data.role === 'customer' ? 'The customer' : 'The agent');
        else if (inMonitor) monitored.typing.hide();
        break;
      case 'CONVERSATION_CLOSED':
        if (inMonitor) {
          monitored.view.notice('Conversation closed' + (data.resolution ? ': ' + data.resolution : '') + '.', '', data.closed_at);
          el.noteForm.hidden = true;
          monitored.open = false;
          paintMonitor();
        }
        scheduleLive();
        break;
      case 'CONVERSATION_ASSIGNED':
        // to us (a take over, maybe from another tab): show it if nothing else is on screen
        if (!inMonitor && data.agent && String(data.agent.id) === String(me.id) && !monitored) monitor(data.conversation);
        else if (inMonitor && !mine(data.conversation)) {
          monitored.view.notice('Assigned to ' + data.agent.name + '.', '', data.conversation && data.conversation.assigned_at);
        }
        if (inMonitor) { monitored.conversation = Object.assign(monitored.conversation, data.conversation); paintMonitor(); }
        scheduleLive();
        break;
      case 'CONVERSATION_REQUEUED':
        if (inMonitor) monitored.view.notice('Back in the queue: ' + data.reason + '.');
        scheduleLive();
        break;
      case 'JOIN_FAILED':
        if (inMonitor && HD.joinRefusedForGood(data.code)) {
          monitored.view.notice('Cannot monitor: ' + data.message); el.noteForm.hidden = true; monitored.open = false; paintMonitor();
        }
        break;
      default:
        break;
    }
  }

  function tick() {
    if (!socket) return;
    for (const span of el.queue.querySelectorAll('.wait')) {
      const secs = (socket.now() - Number(span.dataset.since)) / 1000;
      span.textContent = HD.formatDuration(secs);
      span.className = 'wait ' + waitClass(secs);
    }
    for (const td of document.querySelectorAll('td.since')) {
      if (td.dataset.since) td.textContent = HD.formatDuration((socket.now() - Number(td.dataset.since)) / 1000);
    }
  }

  async function main() {
    const auth = await HD.requireStaff(el.login, ['supervisor', 'admin'], 'Supervisor sign in');
    session = auth.session;
    me = auth.user;
    api = new HD.Api(session);
    el.me.textContent = me.name + (me.role === 'admin' ? ' (admin)' : '');
    el.controls.hidden = false;
    el.board.hidden = false;
    try {
      for (const c of await api.get('/categories')) categories.set(String(c.id), c.name);
    } catch (_) { /* names only */ }
    if (HD.analytics) HD.analytics.mountTeam(document.getElementById('team-analytics'), api, {}); // assets/analytics.js
    socket = new HD.Socket({ api, onEvent, onState: HD.connectionBanner(el.banner), batchQueueChanges: true });
    socket.start();
    setInterval(tick, 1000);
    // Events keep the board live; a slow full refresh repairs anything missed meanwhile.
    setInterval(() => { if (socket.isOpen) { loadLive(); loadAgents(); } }, 30000);
    el.logout.addEventListener('click', async () => {
      socket.stop();
      await session.logout(api);
      location.reload();
    });
    window.addEventListener('online', () => socket.reconnectNow());
  }
  main();
})();
