import Foundation
import NIOConcurrencyHelpers

/// The Lua scripts of `lua/`, loaded with SCRIPT LOAD and called with EVALSHA.
///
/// Redis forgets its script cache on restart or failover; a call that meets NOSCRIPT loads the
/// script again and retries, so callers never see it.
public final class RedisScripts: Sendable {
    /// Script name (file name without `.lua`) to source.
    public let sources: [String: String]
    private let shas = NIOLockedValueBox<[String: String]>([:])

    /// Reads every `*.lua` file of `directory`.
    public init(directory: String) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".lua") }
        var sources: [String: String] = [:]
        for file in names {
            sources[String(file.dropLast(4))] = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
        }
        self.sources = sources
    }

    /// Scripts given in code (tests, tools).
    public init(sources: [String: String]) {
        self.sources = sources
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
