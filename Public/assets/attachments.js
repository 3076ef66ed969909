/* Attachments on the chat pages: a file button and drag-and-drop on a composer (files are uploaded
 * at once, with POST /api/v1/conversations/{id}/attachments, and sent with the next message), and
 * the files of messages in every HD.ChatView: images previewed, others as download buttons.
 * Downloads need the bearer token, so files are fetched and shown through blob URLs.
 * Names and everything else from the server go into the DOM as text, never as HTML. */
(function () {
  'use strict';
  const { h } = HD;

  const ACCEPT = 'image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain';
  const IMAGE = /^image\/(png|jpeg|gif|webp)$/;
  let currentApi = null; // the page's HD.Api: its token fetches files
  const blobs = new Map(); // attachment id -> Promise of a blob URL (fetched once per page)

  function token() { return currentApi && currentApi.auth ? currentApi.auth.accessToken() : null; }

  function formatSize(n) {
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(n < 10240 ? 1 : 0) + ' KB';
    return (n / 1024 / 1024).toFixed(1) + ' MB';
  }

  /** A blob URL of an attachment, fetched with the page's token. */
  function blobUrl(attachment) {
    if (!blobs.has(attachment.id)) {
      const p = (async () => {
        const headers = {};
        const t = token();
        if (t) headers.Authorization = 'Bearer ' + t;
        const res = await fetch('/api/v1/attachments/' + encodeURIComponent(attachment.id), { headers });
        if (!res.ok) throw new Error('download failed (' + res.status + ')');
        return URL.createObjectURL(await res.blob());
      })();
      p.catch(() => blobs.delete(attachment.id));
      blobs.set(attachment.id, p);
    }
    return blobs.get(attachment.id);
  }

  async function download(attachment) {
    try {
      const url = await blobUrl(attachment);
      const a = h('a', { href: url, download: attachment.name || 'file', hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (e) {
      HD.toast('The file could not be downloaded: ' + e.message, 'bad');
    }
  }

  /** The files of one message, as a list under its text. */
  function render(attachments) {
    const list = h('ul', { class: 'msg-files', 'aria-label': 'Attachments' });
    for (const a of attachments) {
      const label = (a.name || 'file') + ' (' + formatSize(a.size || 0) + ')';
      const button = h('button', { type: 'button', class: 'small file-link', title: 'Download ' + (a.name || 'file'), onclick: () => download(a) }, label);
      const item = h('li', { class: 'msg-file', 'data-attachment-id': a.id }, button);
      if (IMAGE.test(a.content_type || '')) {
        const img = h('img', { class: 'msg-image', alt: a.name || 'image' });
        img.addEventListener('click', () => download(a));
        item.prepend(img);
        blobUrl(a).then((url) => { img.src = url; }, () => { img.remove(); });
      }
      list.append(item);
    }
    return list;
  }

  function decorate(li, message) {
    if (!li || !message || !message.attachments || !message.attachments.length || li.querySelector('.msg-files')) return;
    const state = li.querySelector('.msg-state');
    li.insertBefore(render(message.attachments), state);
  }

  // Every chat view shows files: new bubbles, and our own pending bubble when the server's copy arrives.
  const bubble = HD.ChatView.prototype.bubble;
  HD.ChatView.prototype.bubble = function (message, mine, state) {
    const li = bubble.call(this, message, mine, state);
    decorate(li, message);
    return li;
  };
  const add = HD.ChatView.prototype.add;
  HD.ChatView.prototype.add = function (message, quiet) {
    const added = add.call(this, message, quiet);
    if (added) decorate(this.byId.get(message.id), message);
    return added;
  };

  /**
   * A file button and drag-and-drop for one composer form. options.conversationId() names the
   * conversation. Returns { take(): ids of the files ready to send (and forgets them), busy() }.
   */
  function composer(form, options) {
    const input = h('input', { type: 'file', accept: ACCEPT, multiple: true, hidden: true, class: 'file-input' });
    const button = h('button', { type: 'button', class: 'small attach', title: 'Attach a file (or drop it here)' }, 'Attach');
    const chips = h('ul', { class: 'attach-chips', 'aria-live': 'polite' });
    let files = []; // {id?, name, li, uploading}
    button.addEventListener('click', () => input.click());
    input.addEventListener('change', () => { upload(Array.from(input.files || [])); input.value = ''; });
    form.prepend(input);
    form.insertBefore(button, form.querySelector('button[type=submit]'));
    form.parentNode.insertBefore(chips, form);

    for (const type of ['dragenter', 'dragover']) {
      form.addEventListener(type, (ev) => { ev.preventDefault(); form.classList.add('dropping'); });
    }
    form.addEventListener('dragleave', () => form.classList.remove('dropping'));
    form.addEventListener('drop', (ev) => {
      ev.preventDefault();
      form.classList.remove('dropping');
      upload(Array.from((ev.dataTransfer && ev.dataTransfer.files) || []));
    });

    function remove(entry) {
      files = files.filter((f) => f !== entry);
      entry.li.remove();
    }

    async function upload(list) {
      for (const file of list) {
        const entry = { name: file.name, uploading: true };
        const drop = h('button', { type: 'button', class: 'small', 'aria-label': 'Remove ' + file.name, onclick: () => remove(entry) }, '×');
        entry.li = h('li', { class: 'attach-chip uploading' }, file.name + ' — uploading…');
        files.push(entry);
        chips.append(entry.li);
        try {
          const id = options.conversationId();
          const headers = { 'Content-Type': file.type || 'application/octet-stream' };
          const t = token();
          if (t) headers.Authorization = 'Bearer ' + t;
          const res = await fetch('/api/v1/conversations/' + encodeURIComponent(id) + '/attachments?name=' + encodeURIComponent(file.name),
            { method: 'POST', headers, body: file });
          const data = await res.json().catch(() => null);
          if (!res.ok) throw new Error((data && data.error && data.error.message) || 'upload failed (' + res.status + ')');
          entry.id = data.id;
          entry.uploading = false;
          entry.li.className = 'attach-chip';
          entry.li.replaceChildren(data.name + ' (' + formatSize(data.size) + ') ', drop);
        } catch (e) {
          remove(entry);
          HD.toast(file.name + ': ' + e.message, 'bad');
        }
      }
    }

    return {
      take() {
        const ready = files.filter((f) => f.id);
        for (const f of ready) remove(f);
        return ready.map((f) => f.id);
      },
      busy() { return files.some((f) => f.uploading); },
      ready() { return files.some((f) => f.id); },
    };
  }

  HD.Attachments = {
    /** The page's HD.Api (its token fetches and uploads files). */
    use(api) { currentApi = api; },
    composer,
    render,
  };
})();
