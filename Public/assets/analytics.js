/* Team analytics (issue 12 #3), shared by the supervisor board and the admin page:
 *   HD.analytics.mountTeam(root, api, {supervisorId, title}) — a team's figures: per agent (handled,
 *     closed, average first response and handle time, CSAT, SLA met), SLA per priority, created vs
 *     closed per day (line), status (pie), categories rolled up to their parent, CSV export;
 *   HD.analytics.mountSupervisors(root, api) — admins: one row per supervisor; a row opens its team.
 * Data: GET /api/v1/analytics/team, /analytics/supervisors, /analytics/conversations.csv.
 * Charts: Chart.js 3 from /vendor/chart.min.js (the page loads it before this file). */
(function (global) {
  'use strict';
  const HD = global.HD;
  const { h } = HD;
  const COLORS = ['#1f6feb', '#1a7f37', '#d4a72c', '#b42318', '#8250df', '#0a7ea4', '#bf5af2', '#6e7781'];
  let nextId = 0;

  function isoDay(d) {
    return d.getFullYear() + '-' + String(d.getMonth() + 1).padStart(2, '0') + '-' + String(d.getDate()).padStart(2, '0');
  }
  /** The window of two yyyy-mm-dd inputs: from 00:00 UTC of the first to 00:00 UTC after the last. */
  function windowQuery(from, to) {
    const next = new Date(to + 'T00:00:00Z');
    next.setUTCDate(next.getUTCDate() + 1);
    return 'from=' + encodeURIComponent(from) + '&to=' + encodeURIComponent(next.toISOString().slice(0, 10));
  }
  function seconds(v) { return v === null || v === undefined ? '—' : HD.formatDuration(v); }
  function share(met, total) { return total ? (100 * met / total).toFixed(1) + ' % (' + met + '/' + total + ')' : '—'; }
  function csat(v, n) { return v === null || v === undefined ? '—' : v.toFixed(2) + ' (' + n + ')'; }

  /** From/to inputs (the last 30 days), a Show button and optional extra controls. */
  function rangeForm(prefix, onSubmit, extra) {
    const today = new Date();
    const from = h('input', { id: prefix + '-from', type: 'date', class: 'w-auto', value: isoDay(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 29)) });
    const to = h('input', { id: prefix + '-to', type: 'date', class: 'w-auto', value: isoDay(today) });
    const form = h('form', { class: 'row' },
      h('label', { class: 'inline small', for: prefix + '-from' }, 'From'), from,
      h('label', { class: 'inline small', for: prefix + '-to' }, 'To'), to,
      h('button', { type: 'submit', class: 'primary small' }, 'Show'), ...(extra || []));
    form.addEventListener('submit', (ev) => { ev.preventDefault(); onSubmit(); });
    return { form, query: () => windowQuery(from.value, to.value) };
  }

  function table(headers, rows) {
    return h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ...headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ...rows)));
  }

  /** Fetches the CSV with the session's token (a plain link would carry none) and saves it. */
  async function downloadCSV(api, path, button) {
    button.disabled = true;
    try {
      const get = () => fetch('/api/v1' + path, { headers: { Authorization: 'Bearer ' + api.auth.accessToken() } });
      let res = await get();
      if (res.status === 401 && api.auth.canRefresh() && await api.auth.refresh()) res = await get();
      if (!res.ok) {
        let message = res.statusText;
        try { message = (await res.json()).error.message; } catch (_) { /* not JSON */ }
        throw new Error(message);
      }
      const name = (/filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') || '') || [])[1] || 'conversations.csv';
      const url = URL.createObjectURL(await res.blob());
      const a = h('a', { href: url, download: name, hidden: true });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      HD.toast('Export failed: ' + e.message, 'error');
    } finally {
      button.disabled = false;
    }
  }

  function mountTeam(root, api, options) {
    const opts = options || {};
    const id = 'ta' + (++nextId);
    const charts = {};
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    const exportButton = h('button', { type: 'button', class: 'small', id: id + '-csv' }, 'Export CSV');
    const range = rangeForm(id, load, [exportButton]);
    const kpis = h('div', { class: 'kpis mt-1', id: id + '-kpis' });
    const agents = h('div', { id: id + '-agents' });
    const sla = h('div', { id: id + '-sla-table' });
    const canvas = (name, label) => h('canvas', { id: id + '-' + name, role: 'img', 'aria-label': label });
    const dayCanvas = canvas('days', 'Created and closed per day');
    const statusCanvas = canvas('status', 'Conversations by status');
    const categoryCanvas = canvas('category', 'Conversations by category');
    const slaCanvas = canvas('sla', 'First-response target met per priority');
    const title = h('h2', { class: 'grow' }, opts.title || 'Team analytics');
    root.replaceChildren(
      h('div', { class: 'row' }, title), range.form, error, kpis,
      h('h3', {}, 'Agents'), agents,
      h('h3', {}, 'First-response target per priority'), sla,
      h('div', { class: 'charts mt-1' },
        h('div', {}, h('h3', {}, 'Created and closed per day'), h('div', { class: 'chart-box' }, dayCanvas)),
        h('div', {}, h('h3', {}, 'By status'), h('div', { class: 'chart-box' }, statusCanvas)),
        h('div', {}, h('h3', {}, 'By category'), h('div', { class: 'chart-box' }, categoryCanvas)),
        h('div', {}, h('h3', {}, 'Target met per priority'), h('div', { class: 'chart-box' }, slaCanvas))));
    root.hidden = false;
    const scope = () => (opts.supervisorId ? '&supervisor_id=' + encodeURIComponent(opts.supervisorId) : '');
    exportButton.addEventListener('click', () => downloadCSV(api, '/analytics/conversations.csv?' + range.query() + scope(), exportButton));

    function draw(el, type, labels, datasets, extra) {
      if (typeof Chart === 'undefined') return;
      if (charts[el.id]) charts[el.id].destroy();
      charts[el.id] = new Chart(el, {
        type, data: { labels, datasets },
        options: Object.assign({ responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: 'bottom' } } }, extra || {}),
      });
    }

    let latest = 0; // a slower earlier answer never paints over a later one
    async function load() {
      const mine = ++latest;
      error.hidden = true;
      if (typeof Chart === 'undefined') {
        error.textContent = 'Charts are unavailable: /vendor/chart.min.js did not load (apt install libjs-chart.js on the server).';
        error.hidden = false;
      }
      let t;
      try {
        t = await api.get('/analytics/team?' + range.query() + scope());
      } catch (e) {
        if (mine !== latest) return;
        error.textContent = e.message;
        error.hidden = false;
        return;
      }
      if (mine !== latest) return;
      if (t.supervisor && !opts.title) title.textContent = 'Team of ' + t.supervisor.name;
      const s = t.totals;
      const kpi = (label, value) => h('div', { class: 'kpi' }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));
      kpis.replaceChildren(
        kpi('Agents', String(t.agents.length)),
        kpi('Handled', String(s.handled)),
        kpi('Closed', String(s.closed)),
        kpi('Average first response', seconds(s.average_first_response_s)),
        kpi('Average handle time', seconds(s.average_handle_s)),
        kpi('CSAT', csat(s.csat, s.ratings)),
        kpi('First-response target met', share(s.sla_met, s.sla_total)));
      agents.replaceChildren(t.agents.length
        ? table(['Agent', 'Handled', 'Closed', 'Avg first response', 'Avg handle time', 'CSAT', 'Target met'], t.agents.map((a) =>
          h('tr', { 'data-agent-id': a.agent_id },
            h('td', {}, a.name + (a.active ? '' : ' (deactivated)')), h('td', { class: 'num' }, String(a.handled)),
            h('td', { class: 'num' }, String(a.closed)), h('td', {}, seconds(a.average_first_response_s)),
            h('td', {}, seconds(a.average_handle_s)), h('td', {}, csat(a.csat, a.ratings)), h('td', {}, share(a.sla_met, a.sla_total)))))
        : h('p', { class: 'empty' }, 'No agents in this team.'));
      sla.replaceChildren(table(['Priority', 'Target', 'Met'], t.sla.map((r) =>
        h('tr', {}, h('td', {}, r.priority), h('td', {}, HD.formatDuration(r.target_s)), h('td', {}, share(r.met, r.total))))));
      const days = t.per_day || [];
      draw(dayCanvas, 'line', days.map((d) => d.day), [
        { label: 'Created', data: days.map((d) => d.created), borderColor: COLORS[0], backgroundColor: COLORS[0], tension: 0.2 },
        { label: 'Closed', data: days.map((d) => d.closed), borderColor: COLORS[1], backgroundColor: COLORS[1], tension: 0.2 },
      ], { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });
      const statuses = (t.by_status || []).filter((r) => r.count > 0);
      draw(statusCanvas, 'pie', statuses.map((r) => r.key), [{ data: statuses.map((r) => r.count), backgroundColor: COLORS }]);
      draw(categoryCanvas, 'bar', (t.by_category || []).map((r) => r.key),
        [{ label: 'Conversations', data: (t.by_category || []).map((r) => r.count), backgroundColor: COLORS[0] }],
        { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });
      draw(slaCanvas, 'bar', t.sla.map((r) => r.priority), [
        { label: 'Met', data: t.sla.map((r) => r.met), backgroundColor: COLORS[1] },
        { label: 'Missed', data: t.sla.map((r) => r.total - r.met), backgroundColor: COLORS[3] },
      ], { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } });
      root.dataset.loaded = String(Date.now());
    }

    load();
    return { load };
  }

  function mountSupervisors(root, api) {
    const id = 'sa' + (++nextId);
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    const list = h('div', { id: id + '-list' });
    const team = h('div', { id: id + '-team', class: 'mt-1', hidden: true });
    const range = rangeForm(id, load);
    root.replaceChildren(h('h2', {}, 'Teams'), range.form, error, list, team);
    let loaded = false;

    let latest = 0;
    async function load() {
      const mine = ++latest;
      error.hidden = true;
      let rows;
      try {
        rows = await api.get('/analytics/supervisors?' + range.query());
        if (mine !== latest) return;
      } catch (e) {
        if (mine !== latest) return;
        error.textContent = e.message;
        error.hidden = false;
        return;
      }
      loaded = true;
      list.replaceChildren(rows.length
        ? table(['Supervisor', 'Agents', 'Handled', 'Closed', 'Avg first response', 'CSAT', 'Target met', ''], rows.map((r) => {
          const open = h('button', { type: 'button', class: 'small' }, 'Open team');
          open.addEventListener('click', () => mountTeam(team, api, { supervisorId: r.supervisor_id, title: 'Team of ' + r.name }));
          return h('tr', { 'data-supervisor-id': r.supervisor_id },
            h('td', {}, r.name), h('td', { class: 'num' }, String(r.agents)), h('td', { class: 'num' }, String(r.handled)),
            h('td', { class: 'num' }, String(r.closed)), h('td', {}, seconds(r.average_first_response_s)),
            h('td', {}, csat(r.csat, r.ratings)), h('td', {}, share(r.sla_met, r.sla_total)), h('td', {}, open));
        }))
        : h('p', { class: 'empty' }, 'No supervisors yet.'));
    }
    return { load, loadOnce: () => { if (!loaded) load(); } };
  }

  HD.analytics = { mountTeam, mountSupervisors };
})(window);
