import HelpDeskCore
import NIOConcurrencyHelpers
import NIOWebSocket

/// One client socket as the hub sees it: who is on it, and a bounded outbound queue.
///
/// Frames are queued, not written, by whoever produces them (the hub's fan-out), so a slow client
/// never slows anyone else down; when its queue is full the socket is closed and the client comes
/// back with `last_message_id`.
final class SocketSession: Sendable {
    enum Outbound: Sendable {
        case text(String)
    }

    /// Frames a socket may have queued before it counts as too slow.
    static let outboundLimit = 2048

    let id: Int
    let caller: Caller
    /// Categories an agent serves (empty: all), for filtering queue events.
    let categories: Set<String>
    let outbound: AsyncStream<Outbound>
    private let continuation: AsyncStream<Outbound>.Continuation
    private let closeCode = NIOLockedValueBox<(WebSocketErrorCode, String)?>(nil)

    init(id: Int, caller: Caller, categories: Set<String>) {
        self.id = id
        self.caller = caller
        self.categories = categories
        (outbound, continuation) = AsyncStream.makeStream(of: Outbound.self, bufferingPolicy: .bufferingOldest(Self.outboundLimit))
    }

    /// Queues a frame; a full queue closes the socket.
    func send(_ text: String) {
        if case .dropped = continuation.yield(.text(text)) {
            close(.unknown(4008), "too slow: reconnect and resume with last_message_id")
        }
    }

    /// Ends the socket after the frames already queued, with this close code.
    func close(_ code: WebSocketErrorCode, _ reason: String) {
        closeCode.withLockedValue { if $0 == nil { $0 = (code, reason) } }
        continuation.finish()
    }

    /// The close code asked for, if any.
    var requestedClose: (WebSocketErrorCode, String)? { closeCode.withLockedValue { $0 } }

    var isStaff: Bool { caller.isStaff }
    var isSupervisor: Bool { caller.role == .supervisor || caller.role == .admin }
}
