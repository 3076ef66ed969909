/* The admin page: staff accounts, categories and subcategories, analytics charts (Chart.js from
 * /vendor/chart.min.js, Debian's libjs-chart.js served by the node). */
(function () {
  'use strict';
  const { h, $ } = HD;

  const el = {
    controls: $('#controls'), me: $('#me'), logout: $('#logout'), login: $('#login'), admin: $('#admin'),
    users: $('#users tbody'), showInactive: $('#show-inactive'), newUser: $('#new-user'),
    form: $('#user-form'), formTitle: $('#user-form-title'), name: $('#u-name'), email: $('#u-email'), password: $('#u-password'),
    passwordHint: $('#u-password-hint'), role: $('#u-role'), supervisor: $('#u-supervisor'), capacity: $('#u-capacity'),
    categoryChecks: $('#u-categories'), userError: $('#user-error'), save: $('#user-save'), cancel: $('#user-cancel'),
    tree: $('#category-tree'), categoriesEmpty: $('#categories-empty'), categoryForm: $('#category-form'), cName: $('#c-name'), cParent: $('#c-parent'),
    cRouting: $('#c-routing'), uncategorised: $('#uncategorised'),
    range: $('#range'), from: $('#a-from'), to: $('#a-to'), analyticsError: $('#analytics-error'), kpis: $('#kpis'),
  };

  let api, me;
  let teams = null; // the per-supervisor table of assets/analytics.js
  let users = [];
  let categories = [];
  let editing = null; // user being edited, or null for a new one
  const charts = {};

  // ---- sections (tabs) ------------------------------------------------------------------------------
  const tabs = Array.from(document.querySelectorAll('#admin [role=tab]'));
  function show(tab) {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', on ? 'true' : 'false');
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute('aria-controls')).hidden = !on;
    }
    if (tab.id === 'tab-analytics') { loadAnalytics(); if (teams) teams.loadOnce(); }
    if (location.hash !== '#' + tab.getAttribute('aria-controls')) history.replaceState(null, '', '#' + tab.getAttribute('aria-controls'));
  }
  for (const t of tabs) {
    t.addEventListener('click', () => show(t));
    t.addEventListener('keydown', (ev) => {
      if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft') return;
      const i = tabs.indexOf(t);
      const next = tabs[(i + (ev.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length];
      show(next);
      next.focus();
    });
  }

  // ---- staff ------------------------------------------------------------------------------------------
  function userName(id) {
    const u = users.find((x) => x.id === id);
    return u ? u.name : id ? '#' + id : '—';
  }
  function categoryName(id) {
    const c = categories.find((x) => x.id === id);
    if (!c) return '#' + id;
    const parent = c.parent_id ? categories.find((x) => x.id === c.parent_id) : null;
    return parent ? parent.name + ' › ' + c.name : c.name;
  }

  function renderUsers() {
    const list = users.filter((u) => u.active || el.showInactive.checked);
    el.users.replaceChildren(...list.map((u) => h('tr', { class: u.active ? '' : 'inactive', dataset: { userId: u.id } },
      h('td', null, u.name),
      h('td', null, u.email),
      h('td', null, u.role),
      h('td', null, u.role === 'agent' ? userName(u.supervisor_id) : '—'),
      h('td', null, u.role === 'agent' ? String(u.capacity) : '—'),
      h('td', { class: 'small' }, u.role !== 'agent' ? '—' : (u.category_ids || []).length ? u.category_ids.map(categoryName).join(', ') : 'all'),
      h('td', null, h('span', { class: 'badge ' + (u.active ? 'ok' : 'offline') }, u.active ? 'active' : 'deactivated')),
      h('td', null, h('span', { class: 'row' },
        h('button', { type: 'button', class: 'small', 'aria-label': 'Edit ' + u.name, onclick: () => editUser(u) }, 'Edit'),
        u.id === me.id ? null : u.active
          ? h('button', { type: 'button', class: 'small danger', 'aria-label': 'Deactivate ' + u.name, onclick: () => setActive(u, false) }, 'Deactivate')
          : h('button', { type: 'button', class: 'small', 'aria-label': 'Reactivate ' + u.name, onclick: () => setActive(u, true) }, 'Reactivate'))))));
  }

  async function loadUsers() {
    try {
      users = await api.get('/users');
      renderUsers();
    } catch (e) { HD.toast('Accounts: ' + e.message, 'bad'); }
  }
  el.showInactive.addEventListener('change', renderUsers);

  function fillUserForm(u) {
    editing = u;
    el.formTitle.textContent = u ? 'Edit ' + u.name : 'New account';
    el.save.textContent = u ? 'Save changes' : 'Create account';
    el.name.value = u ? u.name : '';
    el.email.value = u ? u.email : '';
    el.password.value = '';
    el.password.required = !u;
    el.passwordHint.textContent = u ? 'Leave empty to keep the current password.' : 'At least 8 characters.';
    el.role.value = u ? u.role : 'agent';
    el.supervisor.replaceChildren(h('option', { value: '' }, 'None'),
      ...users.filter((x) => x.role === 'supervisor' && x.active).map((s) => h('option', { value: s.id }, s.name)));
    el.supervisor.value = u && u.supervisor_id ? String(u.supervisor_id) : '';
    el.capacity.value = u ? String(u.capacity) : '3';
    el.categoryChecks.replaceChildren(...categories.map((c) => {
      const id = 'u-cat-' + c.id;
      return h('label', { class: 'inline', for: id },
        h('input', { type: 'checkbox', id, value: c.id, checked: !!(u && (u.category_ids || []).indexOf(c.id) >= 0) }), categoryName(c.id));
    }));
    if (!categories.length) el.categoryChecks.append(h('span', { class: 'muted small' }, 'No categories yet.'));
    paintRoleFields();
    el.userError.hidden = true;
    el.form.hidden = false;
    el.name.focus();
  }
  function paintRoleFields() {
    const agent = el.role.value === 'agent';
    for (const node of [el.supervisor, el.capacity, $('#u-categories-box')]) {
      node.disabled = !agent;
    }
  }
  el.role.addEventListener('change', paintRoleFields);
  el.newUser.addEventListener('click', () => fillUserForm(null));
  el.cancel.addEventListener('click', () => { el.form.hidden = true; editing = null; });
  function editUser(u) { fillUserForm(u); el.form.scrollIntoView({ block: 'nearest' }); }

  el.form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    el.userError.hidden = true;
    const body = {
      name: el.name.value.trim(),
      email: el.email.value.trim(),
      role: el.role.value,
    };
    if (el.password.value) body.password = el.password.value;
    if (body.role === 'agent') {
      body.supervisor_id = el.supervisor.value ? Number(el.supervisor.value) : null;
      body.capacity = Number(el.capacity.value) || 3;
      body.category_ids = Array.from(el.categoryChecks.querySelectorAll('input:checked'), (i) => Number(i.value));
    } else if (editing) {
      body.supervisor_id = null;
    }
    if (!editing && body.supervisor_id === null) delete body.supervisor_id;
    el.save.disabled = true;
    try {
      if (editing) {
        await api.patch('/users/' + editing.id, body);
        HD.toast('Saved ' + body.name + '.', 'ok');
      } else {
        await api.post('/users', body);
        HD.toast('Created ' + body.name + '.', 'ok');
      }
      el.form.hidden = true;
      editing = null;
      await loadUsers();
    } catch (e) {
      el.userError.textContent = e.message;
      el.userError.hidden = false;
    } finally {
      el.save.disabled = false;
    }
  });

  async function setActive(u, active) {
    try {
      if (active) await api.patch('/users/' + u.id, { active: true });
      else await api.del('/users/' + u.id);
      HD.toast((active ? 'Reactivated ' : 'Deactivated ') + u.name + '.', 'ok');
      await loadUsers();
    } catch (e) { HD.toast(e.message, 'bad'); }
  }

  // ---- categories ------------------------------------------------------------------------------------
  function renderCategories() {
    const top = categories.filter((c) => !c.parent_id);
    const items = [];
    for (const parent of top) {
      items.push(categoryItem(parent, false));
      for (const sub of categories.filter((c) => c.parent_id === parent.id)) items.push(categoryItem(sub, true));
    }
    el.tree.replaceChildren(...items);
    el.categoriesEmpty.hidden = categories.length > 0;
    const chosen = el.cParent.value;
    el.cParent.replaceChildren(h('option', { value: '' }, 'Top level'), ...top.map((c) => h('option', { value: c.id }, 'Under ' + c.name)));
    el.cParent.value = top.some((c) => String(c.id) === chosen) ? chosen : '';
  }

  /* Routing (picked from the queue, or offered to one agent at a time) and the wrap-up seconds an
   * agent gets after closing one of the category's chats; each change is saved at once. */
  function routingControls(c, label) {
    const routing = h('select', { class: 'w-auto', 'aria-label': 'Routing of ' + label, title: 'How customers reach agents' },
      h('option', { value: 'pick' }, 'Picked from the queue'), h('option', { value: 'offer' }, 'Offered to agents'));
    routing.value = c.routing || 'pick';
    const wrap = h('input', {
      type: 'number', min: '0', max: '3600', step: '1', class: 'narrow', value: String(c.wrap_up_s || 0),
      'aria-label': 'Wrap-up seconds of ' + label, title: 'Wrap-up after a close, in seconds (no offers meanwhile)',
    });
    const save = async (body, what) => {
      try {
        await api.patch('/categories/' + c.id, body);
        HD.toast(label + ': ' + what + '.', 'ok');
      } catch (e) { HD.toast(e.message, 'bad'); }
      await loadCategories();
    };
    routing.addEventListener('change', () => save({ routing: routing.value },
      routing.value === 'offer' ? 'customers are offered to agents' : 'agents pick customers from the queue'));
    wrap.addEventListener('change', () => {
      const n = Number(wrap.value);
      if (Number.isInteger(n) && n >= 0 && n <= 3600) save({ wrap_up_s: n }, n ? n + ' s of wrap-up' : 'no wrap-up');
      else HD.toast('Wrap-up is 0 to 3600 seconds.', 'bad');
    });
    return h('span', { class: 'row cat-routing' }, routing, h('span', { class: 'small muted' }, 'wrap-up'), wrap, h('span', { class: 'small muted' }, 's'));
  }

  function categoryItem(c, isSub) {
    const name = h('span', { class: 'cat-name' }, c.name);
    const li = h('li', { class: isSub ? 'sub' : '', dataset: { categoryId: c.id } }, name, routingControls(c, c.name));
    const rename = h('button', { type: 'button', class: 'small', 'aria-label': 'Rename ' + c.name }, 'Rename');
    const remove = h('button', { type: 'button', class: 'small danger', 'aria-label': 'Deactivate ' + c.name }, 'Deactivate');
    rename.addEventListener('click', () => {
      const input = h('input', { type: 'text', value: c.name, maxlength: '80', 'aria-label': 'New name for ' + c.name, style: 'width:auto', class: 'grow' });
      const save = h('button', { type: 'button', class: 'small primary' }, 'Save');
      const cancel = h('button', { type: 'button', class: 'small' }, 'Cancel');
      const done = async (commit) => {
        if (commit && input.value.trim() && input.value.trim() !== c.name) {
          try {
            await api.patch('/categories/' + c.id, { name: input.value.trim() });
            HD.toast('Renamed.', 'ok');
          } catch (e) { HD.toast(e.message, 'bad'); }
        }
        await loadCategories();
      };
      save.addEventListener('click', () => done(true));
      cancel.addEventListener('click', () => done(false));
      input.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter') { ev.preventDefault(); done(true); }
        if (ev.key === 'Escape') done(false);
      });
      li.replaceChildren(input, save, cancel);
      input.focus();
      input.select();
    });
    remove.addEventListener('click', async () => {
      try {
        await api.del('/categories/' + c.id);
        HD.toast('Deactivated ' + c.name + (isSub ? '.' : ' and its subcategories.'), 'ok');
        await loadCategories();
      } catch (e) { HD.toast(e.message, 'bad'); }
    });
    li.append(rename, remove);
    return li;
  }

  async function loadCategories() {
    try {
      categories = await api.get('/categories');
      renderCategories();
      renderUsers();
      // the uncategorised queue (category 0): every agent serves it
      const general = await api.get('/categories/0');
      el.uncategorised.replaceChildren(h('li', { dataset: { categoryId: 0 } },
        h('span', { class: 'cat-name' }, 'Chats without a category'), routingControls(general, 'Chats without a category')));
    } catch (e) { HD.toast('Categories: ' + e.message, 'bad'); }
  }

  el.categoryForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { name: el.cName.value.trim() };
    if (!body.name) return;
    if (el.cParent.value) body.parent_id = Number(el.cParent.value);
    body.routing = el.cRouting.value;
    try {
      await api.post('/categories', body);
      el.cName.value = '';
      el.cParent.value = '';
      el.cRouting.value = 'pick';
      HD.toast('Added ' + body.name + '.', 'ok');
      await loadCategories();
      el.cName.focus();
    } catch (e) { HD.toast(e.message, 'bad'); }
  });

  // ---- analytics ---------------------------------------------------------------------------------------
  function isoDay(d) {
    return d.getFullYear() + '-' + String(d.getMonth() + 1).padStart(2, '0') + '-' + String(d.getDate()).padStart(2, '0');
  }
  /** Local midnight of a yyyy-mm-dd as an ISO instant without milliseconds (what the server parses). */
  function instant(day, plusDays) {
    const [y, m, d] = day.split('-').map(Number);
    return new Date(y, m - 1, d + (plusDays || 0)).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }
  const today = new Date();
  el.to.value = isoDay(today);
  el.from.value = isoDay(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 29));

  function seconds(v) { return v === null || v === undefined ? '—' : HD.formatDuration(v); }

  const COLORS = ['#1f6feb', '#d4a72c', '#1a7f37', '#b42318', '#8250df', '#0a7ea4', '#bf5af2', '#6e7781'];

  function drawChart(id, type, labels, datasets, extra) {
    if (typeof Chart === 'undefined') return;
    if (charts[id]) charts[id].destroy();
    const options = Object.assign({
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { display: type !== 'bar' || datasets.length > 1, position: 'bottom' } },
    }, extra || {});
    charts[id] = new Chart(document.getElementById(id), { type, data: { labels, datasets }, options });
  }

  async function loadAnalytics() {
    el.analyticsError.hidden = true;
    if (typeof Chart === 'undefined') {
      el.analyticsError.textContent = 'Charts are unavailable: /vendor/chart.min.js did not load (apt install libjs-chart.js on the server).';
      el.analyticsError.hidden = false;
    }
    let s;
    try {
      s = await api.get('/analytics/summary?from=' + encodeURIComponent(instant(el.from.value)) + '&to=' + encodeURIComponent(instant(el.to.value, 1)));
    } catch (e) {
      el.analyticsError.textContent = e.message;
      el.analyticsError.hidden = false;
      return;
    }
    const total = (s.by_status || []).reduce((n, x) => n + x.count, 0);
    const kpi = (label, value) => h('div', { class: 'kpi' }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));
    el.kpis.replaceChildren(
      kpi('Conversations', String(total)),
      kpi('Average wait', seconds(s.average_wait_s)),
      kpi('Average first response', seconds(s.average_first_response_s)),
      kpi('Average handle time', seconds(s.average_handle_s)),
      kpi('Abandonment rate', s.abandonment_rate === null || s.abandonment_rate === undefined ? '—' : (100 * s.abandonment_rate).toFixed(1) + ' %'),
      kpi('Average rating', s.average_rating === null || s.average_rating === undefined ? '—' : s.average_rating.toFixed(2) + ' / 5 (' + s.ratings + ')'));
    const days = s.per_day || [];
    drawChart('chart-days', 'bar', days.map((d) => d.day), [
      { label: 'Closed', data: days.map((d) => d.closed), backgroundColor: COLORS[0] },
      { label: 'Abandoned', data: days.map((d) => d.abandoned), backgroundColor: COLORS[3] },
    ], { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } });
    const pie = (id, rows) => drawChart(id, 'doughnut', rows.map((r) => r.key), [{ data: rows.map((r) => r.count), backgroundColor: COLORS }]);
    pie('chart-category', s.by_category || []);
    drawChart('chart-status', 'bar', (s.by_status || []).map((r) => r.key),
      [{ label: 'Conversations', data: (s.by_status || []).map((r) => r.count), backgroundColor: COLORS }],
      { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });
    pie('chart-priority', s.by_priority || []);
  }
  el.range.addEventListener('submit', (ev) => { ev.preventDefault(); loadAnalytics(); });

  // ---- start ---------------------------------------------------------------------------------------------
  async function main() {
    const auth = await HD.requireStaff(el.login, ['admin'], 'Admin sign in');
    api = new HD.Api(auth.session);
    me = auth.user;
    el.me.textContent = me.name;
    el.controls.hidden = false;
    el.admin.hidden = false;
    el.logout.addEventListener('click', async () => {
      await auth.session.logout(api);
      location.reload();
    });
    teams = HD.analytics ? HD.analytics.mountSupervisors(document.getElementById('supervisor-analytics'), api) : null; // assets/analytics.js
    await loadCategories();
    await loadUsers();
    const wanted = tabs.find((t) => '#' + t.getAttribute('aria-controls') === location.hash);
    show(wanted || tabs[0]);
  }
  main();
})();
