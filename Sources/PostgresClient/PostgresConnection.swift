import CLibPQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One libpq connection. Blocking: only the pool's threads call it, one at a time.
///
/// `@unchecked Sendable`: the pool hands a connection to exactly one thread-pool work item at a
/// time (it is taken out of the idle list before use and put back after), so the C handle is never
/// touched by two threads at once.
public final class PostgresConnection: @unchecked Sendable {
    private let handle: OpaquePointer

    /// Opens a connection from a libpq connection string or `postgresql://` URL.
    public init(conninfo: String) throws {
        guard let handle = PQconnectdb(conninfo) else { throw PostgresError(.connectionFailed, "libpq: out of memory") }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = Self.text(PQerrorMessage(handle))
            PQfinish(handle)
            throw PostgresError(.connectionFailed, message.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        self.handle = handle
        // Timestamps come back in UTC so that `Date(postgresText:)` needs no time-zone database.
        // Notices (e.g. "already exists, skipping") would go to stderr; only warnings matter to us.
        try execute(script: "SET TIME ZONE 'UTC'; SET client_min_messages TO warning")
    }

    deinit {
        PQfinish(handle)
    }

    /// False once the server connection broke; the pool then drops it.
    public var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    /// Whether an idle connection is still usable, without a round trip. libpq learns that the
    /// server went away (restart, failover, idle kill) only when it next reads; the server's
    /// farewell (a FATAL 57P01 and EOF) is already waiting on the socket, so an idle connection
    /// with anything to read is treated as dead.
    public var isAliveWhenIdle: Bool {
        guard PQstatus(handle) == CONNECTION_OK, PQtransactionStatus(handle) == PQTRANS_IDLE else { return false }
        let socket = PQsocket(handle)
        guard socket >= 0 else { return false }
        var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, 0)
        if ready < 0 { return false }
        return ready == 0
    }

    /// Runs one parameterized statement (PQexecParams, text format). Parameters are never spliced into SQL.
    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) throws -> PostgresRows {
        let texts: [String?] = parameters.map { $0?.postgresText }
        // libpq takes C strings: U+0000 would silently cut the value short (a different e-mail,
        // a shorter message). Refuse the statement instead of running it with other data.
        for (index, text) in texts.enumerated() where text?.utf8.contains(0) == true {
            throw PostgresError(.invalidParameter, "parameter $\(index + 1) contains a NUL character (U+0000), which PostgreSQL text cannot hold")
        }
        let cStrings: [UnsafeMutablePointer<CChar>?] = texts.map { $0.flatMap { strdup($0) } }
        defer { for p in cStrings { free(p) } }
        let result: OpaquePointer? = cStrings.map { UnsafePointer($0) }.withUnsafeBufferPointer { values in
            PQexecParams(handle, sql, Int32(texts.count), nil, values.baseAddress, nil, nil, 0)
        }
        return try consume(result)
    }

    /// Runs SQL text holding several statements (PQexec), for migration files. No parameters.
    public func execute(script: String) throws {
        _ = try consume(PQexec(handle, script))
    }

    private func consume(_ result: OpaquePointer?) throws -> PostgresRows {
        guard let result else {
            throw PostgresError(.connectionFailed, Self.text(PQerrorMessage(handle)))
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            break
        default:
            let message = Self.text(PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            if !isHealthy || state == nil {
                throw PostgresError(.connectionFailed, message.isEmpty ? "connection lost" : message, sqlState: state)
            }
            throw PostgresError(.queryFailed, message, sqlState: state)
        }
        let rowCount = Int(PQntuples(result))
        let fieldCount = Int(PQnfields(result))
        let columns = PostgresColumns(names: (0..<fieldCount).map { Self.text(PQfname(result, Int32($0))) })
        var rows: [PostgresRow] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(fieldCount)
            for f in 0..<fieldCount {
                if PQgetisnull(result, Int32(r), Int32(f)) == 1 {
                    values.append(nil)
                } else {
                    values.append(Self.text(PQgetvalue(result, Int32(r), Int32(f))))
                }
            }
            rows.append(PostgresRow(values: values, columns: columns))
        }
        let affected = Int(Self.text(PQcmdTuples(result))) ?? 0
        return PostgresRows(rows: rows, affectedRows: affected)
    }

    private static func text(_ pointer: UnsafePointer<CChar>?) -> String {
        pointer.map { String(cString: $0) } ?? ""
    }

    private static func text(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        pointer.map { String(cString: $0) } ?? ""
    }
}
