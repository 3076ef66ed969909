/* The supervisor board: live presence and load of the supervisor's agents, the queue coloured
 * against a target wait, live conversations, assigning, and silent monitoring with internal notes. */
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
  };

  let session, api, socket, me;
  const agents = new Map(); // agent id (string) -> {agent_id, name, status, active, capacity, node_id, connected, since}
  const queue = new Map(); // conversation id -> conversation
  let live = [];
  let monitored = null; // {id, conversation, view, typing}
  const categories = new Map();

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
    for (const key of ['name', 'status', 'active', 'capacity', 'node_id', 'connected', 'since']) {
      if (p[key] !== undefined && p[key] !== null && !(key === 'name' && p[key] === '')) a[key] = p[key];
    }
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
          status !== 'offline' && a.connected === false ? h('span', { class: 'muted small' }, ' no connection') : null),
        h('td', null, h('span', { class: 'load' }, h('span', { class: 'bar', 'aria-hidden': 'true' }, h('span', { style: 'width:' + pct + '%' })),
          h('span', { class: 'load-text' }, (a.active || 0) + '/' + (a.capacity || 0)))),
        h('td', { class: 'small' }, status === 'offline' ? '—' : a.node_id || '—'),
        h('td', { class: 'small since', dataset: { since: a.since || '' } }, a.since ? HD.formatDuration((socket.now() - a.since) / 1000) : '—')));
    }
    el.agents.replaceChildren(...rows);
    el.agentsOnline.textContent = online + ' online';
    el.agentsEmpty.hidden = agents.size > 0;
    renderQueue(); // the assign menus list the agents
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
      h('td', null, h('button', {
        type: 'button', class: 'small', 'aria-label': 'Monitor chat with ' + (c.customer ? c.customer.name : 'customer'),
        'aria-pressed': monitored && monitored.id === c.id ? 'true' : 'false', onclick: () => monitor(c),
      }, 'Monitor'))));
    el.live.replaceChildren(...rows);
    el.liveCount.textContent = String(live.length);
    el.liveEmpty.hidden = live.length > 0;
  }

  async function loadLive() {
    try {
      live = await api.get('/conversations?status=active&limit=200');
      renderLive();
    } catch (e) { HD.toast('Live conversations: ' + e.message, 'bad'); }
  }
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
    });
    monitored = { id: conversation.id, conversation, view, typing: HD.typingIndicator(el.monitorTyping) };
    el.monitorInfo.textContent = (conversation.customer ? conversation.customer.name : 'Customer') + ' ↔ ' +
      (conversation.agent ? conversation.agent.name : 'unassigned') + (conversation.subject ? ' · ' + conversation.subject : '');
    el.monitorStop.hidden = false;
    el.noteForm.hidden = false;
    socket.join(conversation.id);
    renderLive();
    el.note.focus();
  }

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
    renderLive();
  }
  el.monitorStop.addEventListener('click', stopMonitoring);

  function sendNote() {
    const text = el.note.value.trim();
    if (!text || !monitored) return;
    const clientMsgId = socket.sendMessage(monitored.id, text, true);
    monitored.view.addPending(clientMsgId, text, true);
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
      case 'PRESENCE_UPDATED':
        if (isMine(data.agent_id) || me.role === 'admin') {
          mergeAgent(data);
          renderAgents();
        }
        scheduleLive(); // a pick or a close changes the live list too
        break;
      case 'QUEUE_UPDATED': {
        const conv = data.conversation || {};
        if (data.op === 'added') queue.set(conv.id, conv); else queue.delete(conv.id);
        renderQueue();
        scheduleLive();
        break;
      }
      case 'HISTORY':
        if (inMonitor) for (const m of data.messages) monitored.view.add(m);
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
          monitored.view.notice('Conversation closed' + (data.resolution ? ': ' + data.resolution : '') + '.');
          el.noteForm.hidden = true;
        }
        scheduleLive();
        break;
      case 'CONVERSATION_ASSIGNED':
        if (inMonitor) monitored.view.notice('Assigned to ' + data.agent.name + '.');
        scheduleLive();
        break;
      case 'CONVERSATION_REQUEUED':
        if (inMonitor) monitored.view.notice('Back in the queue: ' + data.reason + '.');
        scheduleLive();
        break;
      case 'JOIN_FAILED':
        if (inMonitor) { monitored.view.notice('Cannot monitor: ' + data.message); el.noteForm.hidden = true; }
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
    socket = new HD.Socket({ api, onEvent, onState: HD.connectionBanner(el.banner) });
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
