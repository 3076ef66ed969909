/* Optional customer accounts on the customer page: register, sign in, "My conversations" with
 * their transcripts. A chat started while signed in belongs to the account (customer.js starts it
 * with HD.account.auth()); without an account the page works as before. The session lives in
 * sessionStorage (per tab), without a refresh token: when it ends, the customer signs in again.
 * Everything from the server goes into the DOM as text. */
(function () {
  'use strict';
  const { h, $ } = HD;
  const KEY = 'hd.account';
  const root = $('#account');
  if (!root) return;

  let state = HD.session.get(KEY); // {access_token, user: {id, name, email}, expires_at}
  if (state && state.expires_at && state.expires_at < Date.now()) state = null;
  let auth = null;
  let api = null;

  function connect() {
    if (!state) { auth = null; api = null; return; }
    auth = new HD.CustomerSession(state.access_token);
    auth.onExpired = () => signOut('Your session ended; please sign in again.');
    api = new HD.Api(auth);
  }
  connect();

  HD.account = {
    /** The signed-in account's token holder for HD.Api, or null. */
    auth() { return auth; },
    user() { return state ? state.user : null; },
  };

  function save(reply) {
    state = { access_token: reply.access_token, user: reply.user, expires_at: Date.now() + (reply.expires_in || 900) * 1000 - 5000 };
    HD.session.set(KEY, state);
    connect();
  }

  function signOut(message) {
    state = null;
    HD.session.remove(KEY);
    connect();
    lockStartForm(null);
    renderSignedOut(message);
  }

  /** Signed in, the start form uses the account's name and e-mail (the server does anyway). */
  function lockStartForm(user) {
    const name = $('#name'), email = $('#email');
    if (!name || !email) return;
    if (user) {
      name.value = user.name;
      email.value = user.email;
    }
    name.readOnly = email.readOnly = !!user;
  }

  // ---- signed out -------------------------------------------------------------------------------
  function renderSignedOut(message) {
    const note = h('p', { class: 'muted small' }, 'Optional: sign in to find your past conversations here. You can also just chat without an account.');
    const info = message ? h('p', { class: 'banner info', role: 'status' }, message) : null;
    const signIn = h('button', { type: 'button', id: 'account-signin', onclick: () => renderForm('signin') }, 'Sign in');
    const register = h('button', { type: 'button', id: 'account-register', onclick: () => renderForm('register') }, 'Create an account');
    root.replaceChildren(h('h2', {}, 'Your account'), info, note, h('p', { class: 'row' }, signIn, ' ', register));
    root.hidden = false;
  }

  function field(id, label, attrs) {
    return [h('label', { for: id }, label), h('input', Object.assign({ id }, attrs))];
  }

  function renderForm(kind) {
    const registering = kind === 'register';
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    const submit = h('button', { type: 'submit', class: 'primary', id: 'account-submit' }, registering ? 'Create account' : 'Sign in');
    const cancel = h('button', { type: 'button', onclick: () => renderSignedOut() }, 'Cancel');
    const form = h('form', { id: 'account-form' },
      ...(registering ? field('account-name', 'Your name', { type: 'text', autocomplete: 'name', maxlength: '100', required: true }) : []),
      ...field('account-email', 'E-mail', { type: 'email', autocomplete: 'email', maxlength: '200', required: true }),
      ...field('account-password', registering ? 'Password (at least 8 characters)' : 'Password',
        { type: 'password', autocomplete: registering ? 'new-password' : 'current-password', minlength: '8', maxlength: '256', required: true }),
      error, h('p', { class: 'row' }, submit, ' ', cancel));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      submit.disabled = true;
      const body = { email: $('#account-email').value.trim(), password: $('#account-password').value };
      if (registering) body.name = $('#account-name').value.trim();
      try {
        const reply = await new HD.Api(null).post(registering ? '/auth/register' : '/auth/login', body);
        if (!reply.user || reply.user.role !== 'customer') {
          throw new Error('This is a staff account: sign in on the agent, supervisor or admin page.');
        }
        save(reply);
        renderSignedIn();
      } catch (e) {
        error.textContent = e.message || 'That did not work.';
        error.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });
    root.replaceChildren(h('h2', {}, registering ? 'Create an account' : 'Sign in'), form);
    $(registering ? '#account-name' : '#account-email').focus();
  }

  // ---- signed in --------------------------------------------------------------------------------
  function renderSignedIn() {
    const user = state.user;
    lockStartForm(user);
    const who = h('p', { id: 'account-who' }, 'Signed in as ', h('strong', {}, user.name), ' (' + user.email + ')');
    const mine = h('button', { type: 'button', id: 'my-conversations', onclick: () => showList() }, 'My conversations');
    const out = h('button', { type: 'button', id: 'account-signout', onclick: () => signOut() }, 'Sign out');
    root.replaceChildren(h('h2', {}, 'Your account'), who, h('p', { class: 'row' }, mine, ' ', out), h('div', { id: 'account-body' }));
    root.hidden = false;
  }

  const STATUS = { waiting: 'waiting', active: 'open', closed: 'closed', abandoned: 'ended' };

  async function showList(before, list) {
    const body = $('#account-body');
    if (!list) {
      list = h('ul', { id: 'my-conversation-list', class: 'conversation-list' });
      body.replaceChildren(h('h3', {}, 'My conversations'), list);
    }
    const more = body.querySelector('.more');
    if (more) more.remove();
    try {
      const reply = await api.get('/me/conversations?limit=20' + (before ? '&before=' + before : ''));
      if (!reply.conversations.length && !before) list.append(h('li', { class: 'muted' }, 'No conversations yet.'));
      for (const c of reply.conversations) {
        const title = c.subject || 'Conversation';
        const open = h('button', { type: 'button', class: 'link', onclick: () => showTranscript(c) }, title);
        list.append(h('li', { class: 'conversation', 'data-conversation-id': c.id }, open, ' ',
          h('span', { class: 'badge' }, STATUS[c.status] || c.status), ' ',
          h('span', { class: 'muted small' }, HD.formatTime(c.created_at) + (c.agent ? ' · ' + c.agent.name : ''))));
      }
      if (reply.next_before) {
        body.append(h('p', { class: 'more' }, h('button', { type: 'button', class: 'small', onclick: () => showList(reply.next_before, list) }, 'Older')));
      }
    } catch (e) {
      if (e.status !== 401) body.append(h('p', { class: 'error', role: 'alert' }, e.message));
    }
  }

  async function showTranscript(conversation) {
    const body = $('#account-body');
    const messages = h('ol', { id: 'transcript', class: 'messages transcript', role: 'log', 'aria-label': 'Transcript' });
    const back = h('button', { type: 'button', class: 'small', onclick: () => showList() }, 'Back to my conversations');
    body.replaceChildren(h('h3', {}, conversation.subject || 'Conversation'),
      h('p', { class: 'muted small' }, HD.formatTime(conversation.created_at) + ' · ' + (STATUS[conversation.status] || conversation.status)),
      messages, h('p', {}, back));
    if (HD.Attachments) HD.Attachments.use(api);
    const view = new HD.ChatView(messages, { id: state.user.id, role: 'customer' }, {
      label: (m) => (m.sender.role === 'customer' ? state.user.name : m.sender.name || 'Agent'),
    });
    try {
      let after = null;
      for (;;) {
        const reply = await api.get('/conversations/' + encodeURIComponent(conversation.id) + '/messages' + (after ? '?after=' + encodeURIComponent(after) : ''));
        view.addAll(reply.messages);
        if (!reply.has_more || !reply.next_after) break;
        after = reply.next_after;
      }
      if (!view.messages.length) view.notice('No messages.');
    } catch (e) {
      if (e.status !== 401) view.notice('The transcript could not be loaded: ' + e.message, 'bad');
    }
  }

  if (state) renderSignedIn(); else renderSignedOut();
})();
