/* HelpDesk calls: audio and video between a customer and the conversation's agent. Media flows peer
 * to peer (WebRTC); the chat socket carries only signaling (CALL_INVITE, CALL_ACCEPT, CALL_REJECT,
 * CALL_END, RTC_SIGNAL). Either side may renegotiate (an audio call becomes a video call by adding a
 * track), so offers follow the perfect-negotiation pattern: on an offer collision the polite side
 * (the customer) rolls back and the impolite side (the agent) ignores the other offer.
 * One call per page at a time. Plain script; extends window.HD (needs client.js and ui.js).
 *
 * Test hooks: window.__call is the current (or last) call: {id, conversationId, state, media, pc,
 * localStream, ...}; state is calling | connecting | connected | reconnecting | ended.
 * window.HD_CALL_CONNECT_TIMEOUT_MS shortens the "could not connect" deadline. */
(function (global) {
  'use strict';
  const HD = global.HD || (global.HD = {});
  const { h } = HD;

  const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24 } };
  const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  const CONNECT_TIMEOUT_MS = 30000; // accepted but no media path: give up with a clear message
  const RECOVER_MS = 12000; // a connection that dropped gets this long (and one ICE restart) to come back

  /** A random RFC 4122 version 4 id (crypto.randomUUID needs a secure context; this does not). */
  HD.uuid = function () {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const x = Array.from(b, (v) => v.toString(16).padStart(2, '0')).join('');
    return x.slice(0, 8) + '-' + x.slice(8, 12) + '-' + x.slice(12, 16) + '-' + x.slice(16, 20) + '-' + x.slice(20);
  };

  // ---- local media ----------------------------------------------------------------------------
  class MediaError extends Error {}

  /** A sentence for the user about a getUserMedia failure. */
  function mediaMessage(e, device) {
    const name = e && e.name;
    if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') {
      return 'Permission to use your ' + device + ' was denied. Allow the ' + device + ' for this site (the icon in the address bar), then try again.';
    }
    if (name === 'NotFoundError' || name === 'DevicesNotFoundError' || name === 'OverconstrainedError') {
      return device === 'microphone'
        ? 'No microphone was found. Connect a microphone or headset and try again.'
        : 'No camera was found.';
    }
    if (name === 'NotReadableError' || name === 'TrackStartError' || name === 'AbortError') {
      return 'Your ' + device + ' could not be started. Another application may be using it.';
    }
    return 'Your ' + device + ' could not be used (' + ((e && (e.message || e.name)) || 'unknown error') + ').';
  }

  function canCall() {
    return !!(global.RTCPeerConnection && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  /**
   * Microphone (and camera for a video call). A video call without a usable camera goes on with
   * audio only and says so in `note`; without a microphone there is no call (MediaError).
   */
  async function localMedia(media) {
    if (!canCall()) throw new MediaError('Calls need a browser with WebRTC on a secure (https) page.');
    if (media === 'video') {
      try {
        return { stream: await navigator.mediaDevices.getUserMedia({ audio: AUDIO, video: VIDEO }), note: null };
      } catch (e) {
        let stream;
        try {
          stream = await navigator.mediaDevices.getUserMedia({ audio: AUDIO });
        } catch (e2) {
          throw new MediaError(mediaMessage(e2, 'microphone'));
        }
        return { stream, note: mediaMessage(e, 'camera') + ' The call uses audio only.' };
      }
    }
    try {
      return { stream: await navigator.mediaDevices.getUserMedia({ audio: AUDIO }), note: null };
    } catch (e) {
      throw new MediaError(mediaMessage(e, 'microphone'));
    }
  }

  function stopTracks(stream) {
    if (stream) for (const t of stream.getTracks()) t.stop();
  }

  // ---- one RTCPeerConnection with perfect negotiation -----------------------------------------
  class Peer {
    /**
     * options: iceServers, polite, send(signal), onTrack(track), onState(connectionState), onError(e),
     * beforeAnswer(): called before answering an offer (the callee attaches its tracks there).
     */
    constructor(options) {
      this.options = options;
      this.polite = options.polite;
      this.makingOffer = false;
      this.ignoreOffer = false;
      this.settingAnswer = false;
      this.chain = Promise.resolve();
      const pc = this.pc = new RTCPeerConnection({ iceServers: options.iceServers });
      pc.onnegotiationneeded = async () => {
        try {
          this.makingOffer = true;
          await pc.setLocalDescription();
          options.send({ type: pc.localDescription.type, sdp: pc.localDescription.sdp });
        } catch (e) {
          options.onError(e);
        } finally {
          this.makingOffer = false;
        }
      };
      pc.onicecandidate = (ev) => { if (ev.candidate) options.send({ type: 'ice-candidate', candidate: ev.candidate.toJSON() }); };
      pc.ontrack = (ev) => options.onTrack(ev.track);
      pc.onconnectionstatechange = () => options.onState(pc.connectionState);
    }

    /** Signals are applied one at a time, in the order the server relayed them. */
    signal(signal) {
      this.chain = this.chain.then(() => this.apply(signal)).catch((e) => this.options.onError(e));
      return this.chain;
    }

    async apply(signal) {
      const pc = this.pc;
      if (pc.signalingState === 'closed' || !signal) return;
      if (signal.type === 'offer' || signal.type === 'answer') {
        if (signal.type === 'answer' && pc.signalingState !== 'have-local-offer') return; // stale: we rolled back
        const readyForOffer = !this.makingOffer && (pc.signalingState === 'stable' || this.settingAnswer);
        const collision = signal.type === 'offer' && !readyForOffer;
        this.ignoreOffer = !this.polite && collision;
        if (this.ignoreOffer) return; // impolite: our offer wins, the other side rolls back
        this.settingAnswer = signal.type === 'answer';
        try {
          await pc.setRemoteDescription({ type: signal.type, sdp: signal.sdp }); // polite: implicit rollback
        } finally {
          this.settingAnswer = false;
        }
        if (signal.type === 'offer') {
          if (this.options.beforeAnswer) this.options.beforeAnswer();
          await pc.setLocalDescription();
          this.options.send({ type: pc.localDescription.type, sdp: pc.localDescription.sdp });
        }
      } else if (signal.type === 'ice-candidate' && signal.candidate) {
        try {
          await pc.addIceCandidate(signal.candidate);
        } catch (e) {
          if (!this.ignoreOffer) throw e; // candidates of an offer we ignored may fail
        }
      }
    }

    close() {
      this.pc.onnegotiationneeded = this.pc.onicecandidate = this.pc.ontrack = this.pc.onconnectionstatechange = null;
      this.pc.close();
    }
  }
  HD.Peer = Peer;

  // ---- ring tone ------------------------------------------------------------------------------
  let audioContext = null;
  function ring() {
    try {
      if (!audioContext) audioContext = new (global.AudioContext || global.webkitAudioContext)();
      if (audioContext.state === 'suspended') audioContext.resume();
      const t = audioContext.currentTime;
      for (const offset of [0, 0.45]) {
        const osc = audioContext.createOscillator();
        const gain = audioContext.createGain();
        osc.frequency.value = 660;
        gain.gain.setValueAtTime(0.0001, t + offset);
        gain.gain.exponentialRampToValueAtTime(0.15, t + offset + 0.03);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + offset + 0.35);
        osc.connect(gain).connect(audioContext.destination);
        osc.start(t + offset);
        osc.stop(t + offset + 0.4);
      }
    } catch (_) { /* no sound, no harm */ }
  }

  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const hh = Math.floor(seconds / 3600), mm = Math.floor(seconds / 60) % 60, ss = seconds % 60;
    const two = (n) => String(n).padStart(2, '0');
    return (hh ? hh + ':' + two(mm) : two(mm)) + ':' + two(ss);
  }

  const ERRORS = {
    busy: 'A call is already ringing or in progress in this chat.',
    forbidden: 'You cannot call in this chat.',
    conversation_closed: 'This chat is closed, so calls are no longer possible.',
    not_found: 'That call is no longer available.',
    offline: 'Not connected — try again in a moment.',
    timeout: 'The server did not answer — try again.',
  };
  function errorText(e) { return ERRORS[e.code] || e.message || 'The call failed.'; }

  // ---- the call manager ---------------------------------------------------------------------------
  /**
   * options: socket (HD.Socket), api (HD.Api), polite (bool), peerName(conversationId, from) -> name,
   * notice(conversationId, text, kind): a line in that chat's transcript, onChange(): call buttons,
   * onIncoming(invite), onAccept(conversationId): e.g. show that chat, mount: an element to hold
   * the call window in the page's layout (without one it floats over the page).
   * The page passes every socket event to handleEvent first.
   */
  class CallManager {
    constructor(options) {
      this.options = options;
      this.socket = options.socket;
      this.api = options.api;
      this.polite = !!options.polite;
      this.call = null; // the one call in progress on this page
      this.invites = new Map(); // call_id -> CALL_INVITE data, ringing here
      this.outbox = []; // RTC_SIGNAL frames that found the socket closed
      this.ice = null; // {servers, until}
      this.ringTimer = null;
      this.tickTimer = null;
      this.dock = new CallDock(this);
      global.__call = null;
      global.addEventListener('pagehide', () => {
        // Leaving the page ends the call at once instead of leaving the other side talking to nobody.
        if (this.call) this.socket.sendFrame('CALL_END', { conversation_id: this.call.conversationId, call_id: this.call.id });
      });
    }

    get busy() { return !!this.call; }
    /** No new call here: one is in progress on this page, or this chat's call is ringing. */
    busyFor(conversationId) {
      if (this.call) return true;
      for (const invite of this.invites.values()) if (invite.conversation_id === conversationId) return true;
      return false;
    }
    get supported() { return canCall(); }

    changed() {
      this.dock.render();
      if (this.options.onChange) this.options.onChange();
    }

    notice(conversationId, text, kind) {
      if (this.options.notice) this.options.notice(conversationId, text, kind);
      if (kind === 'bad') HD.toast(text, 'bad');
    }

    // ---- starting, answering, ending ---------------------------------------------------------
    /** Calls the other participant of a conversation (media: 'audio' | 'video'). */
    async start(conversationId, media) {
      if (this.call) { HD.toast('You are already in a call.', 'bad'); return null; }
      const call = this.newCall({
        id: HD.uuid(), conversationId, media, direction: 'outgoing', state: 'calling',
        peerName: this.options.peerName(conversationId, null), status: 'Starting your ' + (media === 'video' ? 'camera' : 'microphone') + '…',
      });
      try {
        const got = await localMedia(media);
        call.localStream = got.stream;
        if (got.note) this.notice(conversationId, got.note, 'warn');
      } catch (e) {
        this.end(call, 'media', e instanceof MediaError ? e.message : mediaMessage(e, 'microphone'), 'bad');
        return call;
      }
      if (call.state === 'ended') { stopTracks(call.localStream); return call; }
      call.media = call.localStream.getVideoTracks().length ? 'video' : 'audio';
      call.status = 'Calling…';
      this.changed();
      try {
        await this.socket.request('CALL_INVITE', { conversation_id: conversationId, call_id: call.id, media: call.media });
        if (call.state === 'calling') { call.status = 'Ringing…'; this.changed(); }
      } catch (e) {
        this.end(call, 'error', 'The call could not be started: ' + errorText(e), 'bad');
      }
      return call;
    }

    /** Answers a ringing invite (ends a call already in progress first). */
    async accept(callId) {
      const invite = this.invites.get(callId);
      if (!invite) return;
      this.invites.delete(callId);
      if (this.call) this.hangUp();
      const call = this.newCall({
        id: invite.call_id, conversationId: invite.conversation_id, media: invite.media === 'video' ? 'video' : 'audio',
        direction: 'incoming', state: 'connecting', peerName: this.inviteName(invite), status: 'Connecting…',
      });
      if (this.options.onAccept) this.options.onAccept(call.conversationId);
      try {
        const got = await localMedia(call.media);
        call.localStream = got.stream;
        if (got.note) this.notice(call.conversationId, got.note, 'warn');
      } catch (e) {
        this.socket.request('CALL_REJECT', { conversation_id: call.conversationId, call_id: call.id }).catch(() => {});
        this.end(call, 'media', 'You could not join the call. ' + (e instanceof MediaError ? e.message : mediaMessage(e, 'microphone')), 'bad');
        return;
      }
      if (call.state === 'ended') { stopTracks(call.localStream); return; } // the caller gave up meanwhile
      call.media = call.localStream.getVideoTracks().length ? 'video' : 'audio';
      this.changed();
      // The connection exists before the caller hears "accepted", so its offer always finds it.
      await this.connect(call);
      if (call.state === 'ended') return;
      try {
        await this.socket.request('CALL_ACCEPT', { conversation_id: call.conversationId, call_id: call.id });
      } catch (e) {
        this.end(call, 'error', 'The call could not be answered: ' + errorText(e), 'bad');
      }
    }

    /** Declines a ringing invite. */
    async reject(callId) {
      const invite = this.invites.get(callId);
      if (!invite) return;
      this.invites.delete(callId);
      this.changed();
      this.notice(invite.conversation_id, 'You declined the call from ' + this.inviteName(invite) + '.', 'call');
      try {
        await this.socket.request('CALL_REJECT', { conversation_id: invite.conversation_id, call_id: invite.call_id });
      } catch (e) {
        if (e.code !== 'not_found') HD.toast('Decline: ' + errorText(e), 'bad');
      }
    }

    /** Ends (or cancels) the call in progress. */
    hangUp() {
      const call = this.call;
      if (!call) return;
      this.socket.request('CALL_END', { conversation_id: call.conversationId, call_id: call.id }).catch(() => {});
      const text = call.connectedAt ? 'Call ended · ' + HD.formatDuration((Date.now() - call.connectedAt) / 1000)
        : call.direction === 'outgoing' ? 'You cancelled the call.' : 'Call ended.';
      this.end(call, 'hangup', text, 'call');
    }

    /** The conversation closed or left this page: its call and invites are over (the server ends them too). */
    conversationGone(conversationId) {
      for (const [id, invite] of this.invites) if (invite.conversation_id === conversationId) this.invites.delete(id);
      if (this.call && this.call.conversationId === conversationId) {
        const call = this.call;
        this.end(call, 'closed', call.connectedAt ? 'Call ended · ' + HD.formatDuration((Date.now() - call.connectedAt) / 1000) : 'Call ended.', 'call');
      }
      this.changed();
    }

    newCall(fields) {
      const call = Object.assign({
        localStream: null, peer: null, pending: [], tracksAttached: false, connectedAt: 0, remoteVideo: false,
        remoteAudioStream: new MediaStream(), remoteVideoStream: new MediaStream(), minimized: false, muted: false,
        cameraBusy: false, restarted: false, timer: null, endReason: null, endText: null,
      }, fields);
      Object.defineProperty(call, 'pc', { get() { return call.peer ? call.peer.pc : null; }, enumerable: true });
      this.call = call;
      global.__call = call;
      this.changed();
      return call;
    }

    /** Tears a call down here (the caller of end() told the server when that was ours to do). */
    end(call, reason, text, kind) {
      if (call.state === 'ended') return;
      call.state = 'ended';
      call.endReason = reason;
      call.endText = text || null;
      clearTimeout(call.timer);
      if (call.peer) call.peer.close();
      stopTracks(call.localStream);
      if (this.call === call) this.call = null;
      this.changed();
      if (text) this.notice(call.conversationId, text, kind);
    }

    inviteName(invite) {
      return this.options.peerName(invite.conversation_id, invite.from) || (invite.from && invite.from.name) || 'Someone';
    }

    // ---- the peer connection -------------------------------------------------------------------
    async iceServers() {
      if (this.ice && this.ice.until > Date.now()) return this.ice.servers;
      try {
        const reply = await this.api.get('/rtc/ice-servers');
        const servers = (reply.ice_servers || []).map((s) => {
          const server = { urls: s.urls };
          if (s.username) server.username = s.username;
          if (s.credential) server.credential = s.credential;
          return server;
        });
        // TURN credentials expire: reuse the list for half its lifetime.
        this.ice = { servers, until: Date.now() + Math.max(0, Number(reply.ttl) || 0) * 500 };
        return servers;
      } catch (_) {
        return []; // host candidates still connect on the same network
      }
    }

    async connect(call) {
      const iceServers = await this.iceServers();
      if (call.state === 'ended') return;
      call.peer = new Peer({
        iceServers,
        polite: this.polite,
        send: (signal) => this.sendSignal(call, signal),
        onTrack: (track) => this.remoteTrack(call, track),
        onState: (state) => this.pcState(call, state),
        onError: (e) => { if (global.console) console.warn('call negotiation:', e); },
        beforeAnswer: () => this.attachTracks(call),
      });
      if (call.direction === 'outgoing') this.attachTracks(call); // negotiationneeded: our first offer
      for (const signal of call.pending.splice(0)) call.peer.signal(signal);
      const limit = Number(global.HD_CALL_CONNECT_TIMEOUT_MS) || CONNECT_TIMEOUT_MS;
      call.timer = setTimeout(() => { if (!call.connectedAt) this.fail(call); }, limit);
      this.changed();
    }

    attachTracks(call) {
      if (call.tracksAttached || !call.localStream) return;
      call.tracksAttached = true;
      for (const track of call.localStream.getTracks()) call.peer.pc.addTrack(track, call.localStream);
    }

    sendSignal(call, signal) {
      if (call.state === 'ended') return;
      const data = { conversation_id: call.conversationId, call_id: call.id, signal };
      if (!this.socket.sendFrame('RTC_SIGNAL', data)) this.outbox.push(data);
    }

    remoteTrack(call, track) {
      if (track.kind === 'video') {
        call.remoteVideoStream.addTrack(track);
        call.remoteVideo = true;
      } else {
        call.remoteAudioStream.addTrack(track);
      }
      this.changed();
    }

    pcState(call, state) {
      if (call.state === 'ended') return;
      if (state === 'connected') {
        clearTimeout(call.timer);
        if (!call.connectedAt) call.connectedAt = Date.now();
        call.state = 'connected';
        call.status = '';
      } else if (state === 'disconnected' && call.connectedAt) {
        call.state = 'reconnecting';
        call.status = 'Connection lost — reconnecting…';
        clearTimeout(call.timer);
        call.timer = setTimeout(() => this.recover(call), RECOVER_MS / 2);
      } else if (state === 'failed') {
        this.recover(call);
        return;
      }
      this.changed();
    }

    /** A dropped connection gets one ICE restart; a call that never connected simply failed. */
    recover(call) {
      if (call.state === 'ended' || (call.pc && call.pc.connectionState === 'connected')) return;
      if (!call.connectedAt || call.restarted) { this.fail(call); return; }
      call.restarted = true;
      call.pc.restartIce();
      clearTimeout(call.timer);
      call.timer = setTimeout(() => { if (call.pc && call.pc.connectionState !== 'connected') this.fail(call); }, RECOVER_MS);
    }

    fail(call) {
      if (call.state === 'ended') return;
      this.socket.request('CALL_END', { conversation_id: call.conversationId, call_id: call.id }).catch(() => {});
      const text = call.connectedAt
        ? 'The call with ' + call.peerName + ' was cut off: the connection was lost.'
        : 'The call could not be connected. A firewall or the network may be blocking it — try again, or keep chatting here.';
      this.end(call, 'failed', text, 'bad');
    }

    // ---- in-call controls --------------------------------------------------------------------
    toggleMute() {
      const call = this.call;
      if (!call || !call.localStream) return;
      call.muted = !call.muted;
      for (const t of call.localStream.getAudioTracks()) t.enabled = !call.muted;
      this.changed();
    }

    /** Camera on/off; in an audio call, the first "Start video" adds a camera track (a renegotiation). */
    async toggleCamera() {
      const call = this.call;
      if (!call || !call.localStream || call.cameraBusy) return;
      const video = call.localStream.getVideoTracks()[0];
      if (video) {
        video.enabled = !video.enabled;
        this.changed();
        return;
      }
      call.cameraBusy = true;
      this.changed();
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: VIDEO });
      } catch (e) {
        call.cameraBusy = false;
        this.changed();
        this.notice(call.conversationId, mediaMessage(e, 'camera'), 'bad');
        return;
      }
      call.cameraBusy = false;
      if (call.state === 'ended') { stopTracks(stream); return; }
      const track = stream.getVideoTracks()[0];
      call.localStream.addTrack(track);
      call.media = 'video';
      if (call.tracksAttached && call.peer) call.peer.pc.addTrack(track, call.localStream); // negotiationneeded
      this.changed();
    }

    toggleMinimized() {
      if (!this.call) return;
      this.call.minimized = !this.call.minimized;
      this.changed();
    }

    // ---- socket events ---------------------------------------------------------------------------
    /** Call events are consumed here (returns true); everything else is the page's. */
    handleEvent(event, data) {
      switch (event) {
        case 'HELLO': {
          const queued = this.outbox.splice(0);
          for (const frame of queued) this.socket.sendFrame('RTC_SIGNAL', frame);
          return false;
        }
        case 'CALL_INVITE':
          this.invites.set(data.call_id, data);
          this.changed();
          if (this.options.onIncoming) this.options.onIncoming(data);
          return true;
        case 'CALL_ACCEPT': {
          const call = this.match(data);
          if (call && call.direction === 'outgoing' && call.state === 'calling') {
            call.state = 'connecting';
            call.status = 'Connecting…';
            this.changed();
            this.connect(call);
          }
          return true;
        }
        case 'CALL_REJECT': {
          const call = this.match(data);
          if (call) this.end(call, 'rejected', call.peerName + ' declined the call.', 'call');
          return true;
        }
        case 'CALL_END':
          this.remoteEnd(data);
          return true;
        case 'RTC_SIGNAL': {
          const call = this.match(data);
          if (call) {
            if (call.peer) call.peer.signal(data.signal); else call.pending.push(data.signal);
          }
          return true;
        }
        default:
          return false;
      }
    }

    match(data) {
      const call = this.call;
      return call && call.id === data.call_id && call.conversationId === data.conversation_id ? call : null;
    }

    remoteEnd(data) {
      const invite = this.invites.get(data.call_id);
      if (invite) {
        this.invites.delete(data.call_id);
        this.changed();
        this.notice(invite.conversation_id, 'Missed ' + (invite.media === 'video' ? 'video call' : 'call') + ' from ' + this.inviteName(invite) + '.', 'call');
        return;
      }
      const call = this.match(data);
      if (!call) return;
      if (data.reason === 'missed') {
        this.end(call, 'missed', call.direction === 'outgoing' ? 'No answer from ' + call.peerName + '.' : 'The call was not connected in time.', 'call');
      } else if (data.reason === 'rejected') {
        this.end(call, 'rejected', call.peerName + ' declined the call.', 'call');
      } else {
        const seconds = typeof data.duration_s === 'number' ? data.duration_s : call.connectedAt ? (Date.now() - call.connectedAt) / 1000 : 0;
        const by = data.from ? call.peerName + ' ended the call' : 'Call ended';
        this.end(call, 'ended', call.connectedAt ? by + ' · ' + HD.formatDuration(seconds) : by + '.', 'call');
      }
    }

    ringing() {
      const on = this.invites.size > 0;
      if (on && !this.ringTimer) { ring(); this.ringTimer = setInterval(ring, 3000); }
      if (!on && this.ringTimer) { clearInterval(this.ringTimer); this.ringTimer = null; }
    }
  }
  HD.CallManager = CallManager;

  // ---- what the user sees ------------------------------------------------------------------------
  /** The floating call window (stage with remote video and local picture-in-picture, controls), its
   * minimized bar, and the incoming-call notice. Painted from the manager's state by render(). */
  class CallDock {
    constructor(manager) {
      this.m = manager;
      this.remoteVideo = h('video', { class: 'call-remote', autoplay: true, playsinline: true, hidden: true });
      this.remoteVideo.muted = true; // sound plays through the audio element
      this.remoteAudio = h('audio', { class: 'call-audio', autoplay: true });
      this.localVideo = h('video', { class: 'call-local', autoplay: true, playsinline: true, 'aria-label': 'Your camera', hidden: true });
      this.localVideo.muted = true;
      this.initials = h('span', { class: 'call-initials', 'aria-hidden': 'true' });
      this.avatarText = h('span', { class: 'call-avatar-text' });
      this.avatar = h('div', { class: 'call-avatar' }, this.initials, this.avatarText);
      this.stage = h('div', { class: 'call-stage' }, this.remoteVideo, this.avatar, this.localVideo);
      this.peer = h('strong', { class: 'call-peer' });
      this.status = h('span', { class: 'call-status', role: 'status', 'aria-live': 'polite' });
      this.timer = h('time', { class: 'call-timer', 'aria-label': 'Call duration' });
      this.mute = h('button', { type: 'button', class: 'call-mute', onclick: () => manager.toggleMute() }, 'Mute');
      this.camera = h('button', { type: 'button', class: 'call-camera', onclick: () => manager.toggleCamera() }, 'Start video');
      this.minimize = h('button', { type: 'button', class: 'call-minimize', onclick: () => manager.toggleMinimized() }, 'Minimize');
      this.hangup = h('button', { type: 'button', class: 'call-hangup', onclick: () => manager.hangUp() }, 'Hang up');
      this.bar = h('div', { class: 'call-bar' },
        h('span', { class: 'call-dot', 'aria-hidden': 'true' }),
        h('div', { class: 'call-who' }, this.peer, h('span', { class: 'call-sub' }, this.status, this.timer)),
        h('div', { class: 'call-controls' }, this.mute, this.camera, this.minimize, this.hangup));
      this.root = h('section', { class: 'call-dock', id: 'call-dock', 'aria-label': 'Call', hidden: true }, this.stage, this.bar, this.remoteAudio);
      this.incoming = h('div', { class: 'call-incoming-list', id: 'call-incoming' });
      document.body.append(this.incoming);
      const mount = manager.options.mount;
      if (mount) {
        this.root.classList.add('docked'); // in the layout: covers none of the page's controls
        mount.append(this.root);
      } else {
        document.body.append(this.root);
      }
      this.shown = null; // the call painted last
      this.ticker = null;
    }

    render() {
      this.renderIncoming();
      this.m.ringing();
      const call = this.m.call;
      if (!call) {
        this.root.hidden = true;
        this.remoteAudio.srcObject = null;
        this.remoteVideo.srcObject = null;
        this.localVideo.srcObject = null;
        this.shown = null;
        clearInterval(this.ticker);
        this.ticker = null;
        return;
      }
      if (this.shown !== call) {
        this.shown = call;
        this.remoteAudio.srcObject = call.remoteAudioStream;
        this.remoteVideo.srcObject = null;
        this.localVideo.srcObject = null;
      }
      this.root.hidden = false;
      this.root.classList.toggle('minimized', call.minimized);
      this.root.dataset.state = call.state;
      this.root.setAttribute('aria-label', 'Call with ' + call.peerName);
      this.peer.textContent = call.peerName;
      this.initials.textContent = call.peerName.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('');
      this.avatarText.textContent = call.media === 'video' && !call.remoteVideo && call.connectedAt ? 'Camera off or not shared' : call.media === 'video' ? 'Video call' : 'Audio call';

      // Remote video once the other side sends some; local video as picture in picture.
      if (call.remoteVideo && this.remoteVideo.srcObject !== call.remoteVideoStream) this.remoteVideo.srcObject = call.remoteVideoStream;
      this.remoteVideo.hidden = !call.remoteVideo;
      this.avatar.hidden = call.remoteVideo;
      const video = call.localStream ? call.localStream.getVideoTracks()[0] : null;
      if (video && (!this.localVideo.srcObject || this.localVideo.srcObject.getVideoTracks()[0] !== video)) {
        this.localVideo.srcObject = new MediaStream([video]);
      }
      this.localVideo.hidden = !video || !video.enabled;

      const live = call.state === 'connected' || call.state === 'reconnecting';
      this.status.textContent = call.status || '';
      this.status.hidden = !call.status;
      this.mute.textContent = call.muted ? 'Unmute' : 'Mute';
      this.mute.classList.toggle('on', call.muted);
      this.mute.disabled = !call.localStream;
      this.camera.textContent = video && video.enabled ? 'Stop video' : 'Start video';
      this.camera.classList.toggle('on', !!video && !video.enabled);
      this.camera.disabled = call.cameraBusy || !(video || live);
      this.minimize.textContent = call.minimized ? 'Expand' : 'Minimize';
      this.minimize.setAttribute('aria-expanded', call.minimized ? 'false' : 'true');
      this.hangup.textContent = call.state === 'calling' ? 'Cancel call' : 'Hang up';
      this.tick();
      if (call.connectedAt && !this.ticker) this.ticker = setInterval(() => this.tick(), 1000);
    }

    tick() {
      const call = this.m.call;
      const on = !!(call && call.connectedAt);
      this.timer.hidden = !on;
      if (on) this.timer.textContent = clock((Date.now() - call.connectedAt) / 1000);
    }

    renderIncoming() {
      // Rebuild only when the set changed, so a focused button keeps its focus.
      const key = Array.from(this.m.invites.keys()).join(',') + '|' + !!this.m.call;
      if (this.incoming.dataset.key === key) return;
      this.incoming.dataset.key = key;
      const rows = [];
      for (const invite of this.m.invites.values()) {
        const name = this.m.inviteName(invite);
        const kind = invite.media === 'video' ? 'Video call' : 'Audio call';
        const title = 'call-in-' + invite.call_id;
        rows.push(h('div', { class: 'call-incoming', role: 'alertdialog', 'aria-labelledby': title, dataset: { callId: invite.call_id } },
          h('div', { class: 'call-incoming-text' },
            h('strong', { id: title }, name + ' is calling'),
            h('span', { class: 'muted small' }, kind + (this.m.call ? ' · answering ends your current call' : ''))),
          h('div', { class: 'call-incoming-actions' },
            h('button', { type: 'button', class: 'primary accept', onclick: () => this.m.accept(invite.call_id) }, 'Accept'),
            h('button', { type: 'button', class: 'danger', onclick: () => this.m.reject(invite.call_id) }, 'Decline'))));
      }
      this.incoming.replaceChildren(...rows); // no focus grab: the user may be typing
    }
  }
})(window);
