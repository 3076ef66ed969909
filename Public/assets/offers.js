/* Offer routing and wrap-up on the agent console (issue 11). A customer of an offer-routed
 * category is offered to one agent at a time: CONVERSATION_OFFERED {conversation, expires_at}
 * shows a card with Accept / Decline, a countdown and a short chime; ACCEPT_OFFER opens the chat,
 * DECLINE_OFFER (or the time running out) sends the customer on to someone else. After a close
 * the agent may be in wrap-up (WRAP_UP_STARTED {wrap_up_until}): no offers meanwhile; Ready sends
 * END_WRAP_UP. agent.js creates one HD.Offers and passes it every socket event first.
 * Plain script; extends window.HD. */
(function (global) {
  'use strict';
  const HD = global.HD || (global.HD = {});
  const { h } = HD;

  /** Three quick rising notes: unlike the two-note beep of an assignment. */
  function chime() {
    // a counter the browser tests read (the chime cannot be heard there)
    HD.debug.offerChimes = (HD.debug.offerChimes || 0) + 1;
    HD.tone([[0, 660], [0.12, 880], [0.24, 1320]], { type: 'triangle', volume: 0.25, length: 0.11 });
  }

  function seconds(ms) { return Math.max(0, Math.ceil(ms / 1000)); }

  const ERRORS = {
    conflict: 'This offer is no longer open.',
    offline: 'Not connected — try again in a moment.',
    timeout: 'No answer from the server — try again.',
  };

  /**
   * options: socket (HD.Socket), mount (element for the cards), presence (the status <select>),
   * categoryName(id), onAccepted(conversation) (open the chat).
   */
  class Offers {
    constructor(options) {
      this.socket = options.socket;
      this.mount = options.mount;
      this.presence = options.presence;
      this.categoryName = options.categoryName || ((id) => (id && id !== '0' ? 'Category ' + id : 'General'));
      this.onAccepted = options.onAccepted || function () {};
      this.offers = new Map(); // conversation id -> {conversation, expiresAt, total, card, ...}
      this.wrapUp = null; // {until, card}
      this.timer = null;
      HD.debug = HD.debug || {};
      HD.debug.offers = this;
    }

    /** Takes the events it owns; returns true when the page need not look at one. */
    handleEvent(event, data) {
      switch (event) {
        case 'HELLO':
          // A new connection: the server sends what is still waiting (offers, wrap-up) right after.
          this.clearAll();
          return false;
        case 'CONVERSATION_OFFERED':
          this.offered(data.conversation, data.expires_at);
          return true;
        case 'OFFER_REVOKED':
          this.revoked(data);
          return true;
        case 'CONVERSATION_ASSIGNED':
          // accepted here or in another tab: the card goes, the page opens the chat
          if (data.conversation) this.remove(data.conversation.id);
          return false;
        case 'WRAP_UP_STARTED':
          this.startWrapUp(data.wrap_up_until);
          return true;
        case 'WRAP_UP_ENDED':
          this.endWrapUp(data.reason === 'elapsed' ? 'Wrap-up over: you can be offered customers again.' : null);
          return true;
        default:
          return false;
      }
    }

    // ---- offers ------------------------------------------------------------------------------
    offered(conversation, expiresAt) {
      if (!conversation || !conversation.id) return;
      this.remove(conversation.id);
      const name = conversation.customer && conversation.customer.name ? conversation.customer.name : 'A customer';
      const offer = { conversation, expiresAt: Number(expiresAt), total: Math.max(1000, Number(expiresAt) - this.socket.now()) };
      const titleId = 'offer-title-' + conversation.id;
      offer.left = h('span', { class: 'offer-left' }, seconds(offer.expiresAt - this.socket.now()) + ' s');
      offer.bar = h('progress', { class: 'offer-bar', max: String(offer.total), value: String(offer.total), 'aria-hidden': 'true' });
      offer.accept = h('button', { type: 'button', class: 'primary', 'aria-label': 'Accept ' + name, onclick: () => this.answer(offer, true) }, 'Accept');
      offer.decline = h('button', { type: 'button', 'aria-label': 'Decline ' + name, onclick: () => this.answer(offer, false) }, 'Decline');
      const details = [this.categoryName(conversation.category_id)];
      if (conversation.subject) details.push(conversation.subject);
      offer.card = h('section', { class: 'card offer-card', role: 'alertdialog', 'aria-labelledby': titleId, dataset: { conversationId: conversation.id } },
        h('div', { class: 'row' },
          h('h2', { id: titleId, class: 'grow' }, 'Customer offered: ', h('span', { class: 'offer-name' }, name)),
          conversation.priority && conversation.priority !== 'normal' ? h('span', { class: 'badge warn' }, conversation.priority) : null),
        h('p', { class: 'sub muted small' }, details.join(' · ')),
        h('div', { class: 'row offer-time' }, offer.bar, offer.left),
        h('div', { class: 'row' }, offer.accept, offer.decline));
      this.offers.set(conversation.id, offer);
      this.mount.append(offer.card);
      this.tick();
      this.startTimer();
      chime();
      if (document.hidden && 'Notification' in window && Notification.permission === 'granted') {
        try {
          const n = new Notification('Customer offered', { body: name + ' — answer within ' + seconds(offer.total) + ' s', tag: 'hd-offer-' + conversation.id });
          n.onclick = () => { window.focus(); n.close(); };
        } catch (_) { /* notifications from a service worker only */ }
      }
    }

    async answer(offer, accept) {
      const id = offer.conversation.id;
      offer.accept.disabled = offer.decline.disabled = true;
      try {
        const ack = await this.socket.request(accept ? 'ACCEPT_OFFER' : 'DECLINE_OFFER', { conversation_id: id });
        this.remove(id);
        if (accept && ack && ack.conversation) this.onAccepted(ack.conversation);
      } catch (e) {
        HD.toast((accept ? 'Not accepted: ' : 'Not declined: ') + (ERRORS[e.code] || e.message), 'bad');
        if (e.code === 'conflict') this.remove(id);
        else if (this.offers.has(id) && offer.expiresAt > this.socket.now()) offer.accept.disabled = offer.decline.disabled = false;
      }
    }

    revoked(data) {
      const offer = this.offers.get(data.conversation_id);
      const name = offer && offer.conversation.customer ? offer.conversation.customer.name : 'the customer';
      this.remove(data.conversation_id);
      if (data.reason === 'expired') HD.toast('The offer of ' + name + ' ran out; it went to someone else.', 'bad');
      else if (data.reason === 'closed') HD.toast(name + ' left before you answered.', '');
      if (data.status === 'away' && this.presence) {
        // As a missed contact does: the agent is away until it says it is back.
        this.presence.value = 'away';
        HD.session.set('hd.agent.status', 'away');
        HD.toast('You are Away after a missed offer: set Online to get customers again.', 'bad');
      }
    }

    remove(id) {
      const offer = this.offers.get(id);
      if (!offer) return;
      offer.card.remove();
      this.offers.delete(id);
      this.stopTimerIfIdle();
    }

    clearAll() {
      for (const id of Array.from(this.offers.keys())) this.remove(id);
      this.endWrapUp(null);
    }

    // ---- wrap-up -----------------------------------------------------------------------------
    startWrapUp(until) {
      until = Number(until);
      if (!until || until <= this.socket.now()) return;
      if (this.wrapUp) { this.wrapUp.until = Math.max(this.wrapUp.until, until); this.tick(); return; }
      const left = h('span', { class: 'wrapup-left' });
      const ready = h('button', { type: 'button', class: 'primary', onclick: () => this.ready() }, 'Ready');
      const card = h('section', { class: 'card wrapup-card', role: 'status', 'aria-labelledby': 'wrapup-title' },
        h('div', { class: 'row' },
          h('h2', { id: 'wrapup-title', class: 'grow' }, 'Wrap-up'), left),
        h('p', { class: 'muted small' }, 'No new customers are offered to you until it ends. Finish your notes, then:'),
        h('div', { class: 'row' }, ready));
      this.wrapUp = { until, card, left, ready };
      this.mount.prepend(card);
      this.tick();
      this.startTimer();
    }

    async ready() {
      if (!this.wrapUp) return;
      this.wrapUp.ready.disabled = true;
      try {
        await this.socket.request('END_WRAP_UP', {});
        this.endWrapUp(null);
      } catch (e) {
        HD.toast('Still in wrap-up: ' + (ERRORS[e.code] || e.message), 'bad');
        if (this.wrapUp) this.wrapUp.ready.disabled = false;
      }
    }

    endWrapUp(message) {
      if (!this.wrapUp) return;
      this.wrapUp.card.remove();
      this.wrapUp = null;
      if (message) HD.toast(message, 'ok');
      this.stopTimerIfIdle();
    }

    get inWrapUp() { return !!this.wrapUp; }

    // ---- countdowns --------------------------------------------------------------------------
    startTimer() {
      if (!this.timer) this.timer = setInterval(() => this.tick(), 250);
    }

    stopTimerIfIdle() {
      if (this.timer && this.offers.size === 0 && !this.wrapUp) { clearInterval(this.timer); this.timer = null; }
    }

    tick() {
      const now = this.socket.now();
      for (const offer of this.offers.values()) {
        const ms = offer.expiresAt - now;
        offer.bar.value = Math.max(0, ms);
        if (ms > 0) {
          offer.left.textContent = seconds(ms) + ' s';
          offer.card.classList.toggle('urgent', ms <= 5000);
        } else {
          // the server ends it (OFFER_REVOKED) by its clock
          offer.left.textContent = 'Time is up';
          offer.accept.disabled = offer.decline.disabled = true;
        }
      }
      if (this.wrapUp) {
        const ms = this.wrapUp.until - now;
        this.wrapUp.left.textContent = ms > 0 ? HD.formatDuration(ms / 1000) + ' left' : 'Ending…';
      }
    }
  }
  HD.Offers = Offers;
})(window);
