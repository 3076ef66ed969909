import Dispatch
import HelpDeskCore

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
struct TokenBucket {
    let rate: Double
    let burst: Double
    private var tokens: Double
    private var updatedNanos: UInt64

    init(rate: Double, burst: Double, now: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updatedNanos = now
    }

    /// Takes a token if there is one.
    mutating func take(now: UInt64 = DispatchTime.now().uptimeNanoseconds) -> Bool {
        let elapsed = Double(now &- updatedNanos) / 1e9
        updatedNanos = now
        tokens = min(burst, tokens + elapsed * rate)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// What one socket may send: each class of event has its own bucket, so a flood of one (TYPING,
/// JOIN) neither starves nor hides behind another. A refused event gets `rate_limited` and counts
/// against the socket's error budget, so a client that keeps going is closed (1008).
struct SocketLimits {
    /// Messages a socket may send (`HELPDESK_SOCKET_MESSAGE_RATE` a second, bursts of
    /// `HELPDESK_SOCKET_MESSAGE_BURST`: a paste of lines, a reconnect's outbox).
    var messages: TokenBucket
    var typing = TokenBucket(rate: 5, burst: 10)
    /// JOIN reads history from Redis: the most expensive event a customer can send.
    var joins = TokenBucket(rate: 2, burst: 20)
    var calls = TokenBucket(rate: 50, burst: 200)
    /// Every other event: PICK, CLOSE_CONVERSATION, SET_STATUS, TAKE_OVER, CANCEL, ACCEPT_OFFER,
    /// DECLINE_OFFER, END_WRAP_UP, LEAVE_CONVERSATION, PING (`HELPDESK_SOCKET_EVENT_RATE` / `_BURST`).
    var other: TokenBucket

    init(messageRate: Double, messageBurst: Double, eventRate: Double, eventBurst: Double) {
        messages = TokenBucket(rate: messageRate, burst: messageBurst)
        other = TokenBucket(rate: eventRate, burst: eventBurst)
    }

    mutating func allow(_ event: ClientEventName) -> Bool {
        switch event {
        case .sendMessage: return messages.take()
        case .typing: return typing.take()
        case .joinConversation: return joins.take()
        case .rtcSignal, .callInvite, .callAccept, .callReject, .callEnd: return calls.take()
        default: return other.take()
        }
    }
}
