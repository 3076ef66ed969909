import Foundation
import NIOConcurrencyHelpers

/// The Lua scripts of `lua/`, loaded with SCRIPT LOAD and called with EVALSHA.
///
/// Every script runs with the prelude of `lua/lib/*.lua` in front of it (one chunk, so the
/// prelude's locals, `hd.*`, are the script's): the frames and views all scripts publish are built
/// there once. The digest Redis knows, and `evalCommand`'s source, are of that combined text.
///
/// Redis forgets its script cache on restart or failover; a call that meets NOSCRIPT loads the
/// script again and retries, so callers never see it.
public final class RedisScripts: Sendable {
    /// Script name (file name without `.lua`) to its full source, prelude included.
    public let sources: [String: String]
    /// The prelude put before every script (empty when there is none).
    public let prelude: String
    private let shas = NIOLockedValueBox<[String: String]>([:])

    /// Reads every `*.lua` file of `directory` as a script and every `lib/*.lua` (in name order)
    /// as the prelude.
    public init(directory: String) throws {
        let files = FileManager.default
        let names = try files.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".lua") }
        let libDirectory = directory + "/lib"
        let libNames = ((try? files.contentsOfDirectory(atPath: libDirectory)) ?? []).filter { $0.hasSuffix(".lua") }.sorted()
        let prelude = try libNames.map { try String(contentsOfFile: libDirectory + "/" + $0, encoding: .utf8) }.joined(separator: "\n")
        var sources: [String: String] = [:]
        for file in names {
            let body = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            sources[String(file.dropLast(4))] = Self.combine(prelude: prelude, body)
        }
        self.sources = sources
        self.prelude = prelude
    }

    /// Scripts given in code (tests, tools), each with `prelude` in front of it.
    public init(sources: [String: String], prelude: String = "") {
        self.sources = sources.mapValues { Self.combine(prelude: prelude, $0) }
        self.prelude = prelude
    }

    private static func combine(prelude: String, _ body: String) -> String {
        prelude.isEmpty ? body : prelude + "\n" + body
    }

    /// Loads every script into Redis's cache and remembers the SHA1 digests.
    public func loadAll(on client: RedisClient) async throws {
        for name in sources.keys.sorted() { _ = try await load(name, on: client) }
    }

    private func load(_ name: String, on client: RedisClient) async throws -> String {
        guard let source = sources[name] else { throw RedisError(.invalidArgument, "no Lua script named \(name)") }
        guard let sha = try await client.send(["SCRIPT", "LOAD", source]).string else {
            throw RedisError(.unexpectedReply, "SCRIPT LOAD returned no digest")
        }
        shas.withLockedValue { $0[name] = sha }
        return sha
    }

    /// Runs a script; an error reply (including one the script raised) is thrown.
    @discardableResult
    public func run(_ name: String, keys: [String], arguments: [String], on client: RedisClient) async throws -> RESPValue {
        let cached = shas.withLockedValue { $0[name] }
        let sha: String
        if let cached { sha = cached } else { sha = try await load(name, on: client) }
        let command = ["EVALSHA", sha, String(keys.count)] + keys + arguments
        do {
            return try await client.send(command)
        } catch let error as RedisError where error.serverErrorPrefix == "NOSCRIPT" {
            let sha = try await load(name, on: client)
            return try await client.send(["EVALSHA", sha, String(keys.count)] + keys + arguments)
        }
    }

    /// The EVAL form of a call, for pipelines: a NOSCRIPT inside a pipeline is answered by running this.
    public func evalCommand(_ name: String, keys: [String], arguments: [String]) throws -> [String] {
        guard let source = sources[name] else { throw RedisError(.invalidArgument, "no Lua script named \(name)") }
        return ["EVAL", source, String(keys.count)] + keys + arguments
    }
}
