import Foundation

/// Starts helper programs (redis-server, pg_ctl) for tests.
///
/// A child of the test process inherits its blocked signal mask, in which SIGTERM, SIGCHLD and
/// friends are blocked; PostgreSQL then never finishes starting and redis-server ignores SIGTERM.
/// So children are started through a one-line Python launcher that clears the mask and execs.
public enum Spawn {
    static let launcher = "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execvp(sys.argv[1], sys.argv[1:])"
    /// For commands that leave a daemon behind (pg_ctl start): run them as a grandchild without
    /// our inherited descriptors, or Foundation would wait for the daemon to close them.
    static let runner = "import signal, subprocess, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); sys.exit(subprocess.call(sys.argv[1:], close_fds=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))"

    /// A configured process (not yet started) running `tool` with a clean signal mask.
    public static func process(_ tool: String, _ arguments: [String]) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", launcher, tool] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        return process
    }

    /// Runs to completion; throws on a non-zero exit.
    public static func run(_ tool: String, _ arguments: [String]) throws {
        let process = process(tool, arguments)
        process.arguments = ["-c", runner, tool] + arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw NSError(domain: "Spawn", code: Int(process.terminationStatus), userInfo: [NSLocalizedDescriptionKey: "\(tool) \(arguments.first ?? "") exited with \(process.terminationStatus)"])
        }
    }
}

/// Runs blocking work (waiting for a process, sleeping) on a Dispatch thread instead of Swift
/// concurrency's cooperative pool, which has one thread per core: blocking it stalls every test.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}
