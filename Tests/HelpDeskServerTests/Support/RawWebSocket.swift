import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A WebSocket client on a plain blocking socket, for the clients a library would not let us be:
/// one that never reads (a tiny receive buffer fills at once), or one that ignores the server's
/// close frame and keeps sending.
final class RawWebSocket: @unchecked Sendable {
    private let fd: Int32

    /// Connects and upgrades; `receiveBuffer` shrinks the kernel's buffer so unread frames back up.
    init(port: Int, token: String, receiveBuffer: Int32? = nil) throws {
        fd = try Self.connectTCP(port: port, receiveBuffer: receiveBuffer)
        let request = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer \(token)\r\n\r\n"
        try write(Array(request.utf8))
        // The 101 response ends with an empty line; read it byte by byte so no frame is consumed.
        var head: [UInt8] = []
        while !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
            var byte: UInt8 = 0
            guard recv(fd, &byte, 1, 0) == 1 else { throw TestSocketError.failed("upgrade: connection closed") }
            head.append(byte)
        }
        guard String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 101") else {
            throw TestSocketError.failed("upgrade refused: \(String(decoding: head, as: UTF8.self))")
        }
    }

    deinit { close(fd) }

    /// A blocking TCP connection to 127.0.0.1:`port` (the caller closes it).
    static func connectTCP(port: Int, receiveBuffer: Int32? = nil) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSocketError.failed("socket()") }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw TestSocketError.failed("connect()")
        }
        return fd
    }

    /// The next close frame the server sends (frames before it are skipped), or nil.
    func readClose(timeout: Duration = .seconds(10)) -> [UInt8]? {
        while let frame = readFrame(timeout: timeout) {
            if frame.opcode == 0x8 { return frame.payload }
        }
        return nil
    }

    /// Sends one masked text frame; false once the server has closed the connection.
    @discardableResult
    func sendText(_ text: String) -> Bool {
        sendFrame(opcode: 0x1, payload: Array(text.utf8))
    }

    /// Sends one masked frame of any opcode (`fin` false: a fragment to be continued).
    @discardableResult
    func sendFrame(opcode: UInt8, fin: Bool = true, payload: [UInt8]) -> Bool {
        (try? write(Self.frame(opcode: opcode, fin: fin, payload: payload))) != nil
    }

    /// Sends bytes as they are (e.g. many frames in one write, so the server reads them at once).
    @discardableResult
    func sendBytes(_ bytes: [UInt8]) -> Bool { (try? write(bytes)) != nil }

    /// Shuts the sending side (a FIN without a close frame, as a killed browser's socket does).
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// The bytes of one masked client frame.
    static func frame(opcode: UInt8, fin: Bool = true, payload: [UInt8]) -> [UInt8] {
        var frame: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else if payload.count < 65536 {
            frame.append(0x80 | 126)
            frame += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) { frame.append(UInt8((payload.count >> shift) & 0xFF)) }
        }
        let mask: [UInt8] = [1, 2, 3, 4]
        frame += mask
        for (i, byte) in payload.enumerated() { frame.append(byte ^ mask[i % 4]) }
        return frame
    }

    func sendEvent(_ event: String, _ data: [String: Any], ref: String? = nil) -> Bool {
        var object: [String: Any] = ["event": event, "data": data]
        if let ref { object["ref"] = ref }
        return sendText(String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self))
    }

    /// Reads until the server closes the TCP connection (or `timeout`); returns what arrived.
    func readUntilClosed(timeout: Duration) -> (bytes: [UInt8], closed: Bool) {
        var timeval = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeval, socklen_t(MemoryLayout<timeval>.size))
        let deadline = ContinuousClock.now + timeout
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { return (all, true) }
            if n > 0 { all += buffer[0..<n] } else if errno != EAGAIN && errno != EWOULDBLOCK { return (all, true) }
        }
        return (all, false)
    }

    private var unread: [UInt8] = []

    /// The next frame the server sends (unmasked, as servers send), or nil at close or timeout.
    func readFrame(timeout: Duration = .seconds(10)) -> (opcode: UInt8, payload: [UInt8])? {
        var timeval = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeval, socklen_t(MemoryLayout<timeval>.size))
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            if unread.count >= 2 {
                var length = Int(unread[1] & 0x7F), offset = 2
                if length == 126, unread.count >= 4 { length = Int(unread[2]) << 8 | Int(unread[3]); offset = 4 }
                if length == 127, unread.count >= 10 { length = unread[2..<10].reduce(0) { $0 << 8 | Int($1) }; offset = 10 }
                if (length < 126 || offset > 2), unread.count >= offset + length {
                    let frame = (unread[0] & 0x0F, Array(unread[offset..<(offset + length)]))
                    unread.removeFirst(offset + length)
                    return frame
                }
            }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { return nil }
            if n > 0 { unread += buffer[0..<n] } else if errno != EAGAIN && errno != EWOULDBLOCK { return nil }
        }
        return nil
    }

    /// An upgrade request with these headers, answered and closed: the status and the body.
    static func refusedUpgrade(port: Int, path: String = "/ws", headers: [String: String]) throws -> (status: Int, body: [String: Any]) {
        let fd = try connectTCP(port: port)
        defer { close(fd) }
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var timeval = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeval, socklen_t(MemoryLayout<timeval>.size))
        var all: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            all += buffer[0..<n]
        }
        let text = String(decoding: all, as: UTF8.self)
        let parts = text.components(separatedBy: "\r\n\r\n")
        let status = Int(parts[0].split(separator: " ").dropFirst().first ?? "") ?? 0
        let body = parts.count > 1 ? (try? JSONSerialization.jsonObject(with: Data(parts[1].utf8))) as? [String: Any] : nil
        return (status, body ?? [:])
    }

    private func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestSocketError.failed("send failed") }
            sent += n
        }
    }
}
