import Foundation
import NIOConcurrencyHelpers

/// The Lua scripts of `lua/`, loaded into Redis as one function library and called with FCALL.
///
/// Each script becomes a function of the library `helpdesk_<version>`; the prelude of
/// `lua/lib/*.lua` runs once, when the library loads, and its locals (`hd.*`) are shared by every
/// function. (With EVALSHA the prelude ran on every call: measured in BENCHMARKS.md, a third of
/// Redis's CPU for a chat message went to defining the prelude's functions again and collecting
/// them.) A script's body is its function's body, with `KEYS` and `ARGV` as its parameters, so
/// the files read as EVAL scripts do.
///
/// `<version>` is a digest of the library's text, in the library's and every function's name
/// (`send_<version>`): nodes of two releases share one Redis during a rolling deploy, each calling
/// its own functions. Redis forgets functions it does not persist (a restart without RDB/AOF, a
/// `FUNCTION FLUSH`); a call that meets "Function not found" loads the library and retries, so
/// callers never see it.
public final class RedisScripts: Sendable {
    /// Script name (file name without `.lua`) to its body.
    public let sources: [String: String]
    /// The Lua that runs once when the library loads, before any function is registered.
    public let prelude: String
    /// The digest of the library's text (hex), in the library's and functions' names.
    public let version: String
    /// The library as `FUNCTION LOAD` takes it.
    public let library: String
    public var libraryName: String { "helpdesk_" + version }
    /// Each script's function name, made once (`command` runs for every chat message).
    private let functionNames: [String: String]

    /// Reads every `*.lua` file of `directory` as a script and every `lib/*.lua` (in name order)
    /// as the prelude.
    public convenience init(directory: String) throws {
        let files = FileManager.default
        let names = try files.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".lua") }
        let libDirectory = directory + "/lib"
        let libNames = ((try? files.contentsOfDirectory(atPath: libDirectory)) ?? []).filter { $0.hasSuffix(".lua") }.sorted()
        let prelude = try libNames.map { try String(contentsOfFile: libDirectory + "/" + $0, encoding: .utf8) }.joined(separator: "\n")
        var sources: [String: String] = [:]
        for file in names {
            sources[String(file.dropLast(4))] = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
        }
        self.init(sources: sources, prelude: prelude)
    }

    /// Scripts given in code (tests, tools). `prelude` runs once at load; `callPreamble` runs at the
    /// start of every call, before the script's body (tests use it to check the keys a call uses).
    public init(sources: [String: String], prelude: String = "", callPreamble: String = "") {
        self.sources = sources
        self.prelude = prelude
        // The version is the digest of the library as it would load without one, so that any
        // change to it (a script, the prelude, the wrapper below) gives new names.
        let version = Self.digest(Self.library(sources: sources, prelude: prelude, callPreamble: callPreamble, version: ""))
        self.version = version
        self.library = Self.library(sources: sources, prelude: prelude, callPreamble: callPreamble, version: version)
        self.functionNames = Dictionary(uniqueKeysWithValues: sources.keys.map { ($0, Self.functionName($0, version: version)) })
    }

    private static func library(sources: [String: String], prelude: String, callPreamble: String, version: String) -> String {
        var library = "#!lua name=helpdesk_\(version)\n" + prelude + "\n"
        for name in sources.keys.sorted() {
            library += "\nredis.register_function('\(functionName(name, version: version))', function(KEYS, ARGV)\n\(callPreamble)\n\(sources[name]!)\nend)\n"
        }
        return library
    }

    /// 64-bit FNV-1a of the text, as 16 hex digits: a version label, not a security measure.
    static func digest(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The function Redis knows a script by.
    public func functionName(_ name: String) -> String { functionNames[name] ?? Self.functionName(name, version: version) }

    /// A script's function name in the library of one version: what `FCALL` names.
    private static func functionName(_ name: String, version: String) -> String { name + "_" + version }

    /// Loads the library (a library of this version already there is fine).
    public func loadAll(on client: RedisClient) async throws {
        do {
            try await client.send(["FUNCTION", "LOAD", library])
        } catch let error as RedisError where error.message.contains("already exists") {
            return
        }
    }

    /// Runs a script; an error reply (including one the script raised) is thrown.
    @discardableResult
    public func run(_ name: String, keys: [String], arguments: [String], on client: RedisClient) async throws -> RESPValue {
        let command = try self.command(name, keys: keys, arguments: arguments)
        do {
            return try await client.send(command)
        } catch let error as RedisError where Self.isMissingFunction(error) {
            try await loadAll(on: client)
            return try await client.send(command)
        }
    }

    /// The FCALL of a script, for pipelines: a reply for which `isMissingFunction` holds asks the
    /// caller to `loadAll` and try again.
    public func command(_ name: String, keys: [String], arguments: [String]) throws -> [String] {
        guard let function = functionNames[name] else { throw RedisError(.invalidArgument, "no Lua script named \(name)") }
        var command: [String] = []
        command.reserveCapacity(3 + keys.count + arguments.count)
        command.append("FCALL")
        command.append(function)
        command.append(String(keys.count))
        command.append(contentsOf: keys)
        command.append(contentsOf: arguments)
        return command
    }

    /// Redis does not have the function (it restarted without persistence, or was flushed).
    public static func isMissingFunction(_ error: RedisError) -> Bool {
        error.code == .serverError && error.message.contains("Function not found")
    }

    /// The same, for an error reply inside a pipeline.
    public static func isMissingFunction(_ reply: RESPValue) -> Bool {
        if case .error(let message) = reply { return message.contains("Function not found") }
        return false
    }
}
