import Glibc

/// CPU time and memory of processes, read from /proc: the benches report what the server
/// processes spent during the measured window, not what the load generator thinks they spent.
enum ProcessStats {
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// utime + stime of `pid` in seconds (`/proc/<pid>/stat` fields 14 and 15); `nil` if it is gone.
    static func cpuSeconds(pid: Int32) -> Double? {
        guard let stat = read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // Fields after "(comm)" start at field 3; the command name may itself hold spaces or ')'.
        let fields = stat[(close + 2)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 12, let user = Double(String(decoding: fields[fields.startIndex + 11], as: UTF8.self)),
              let system = Double(String(decoding: fields[fields.startIndex + 12], as: UTF8.self)) else { return nil }
        return (user + system) / ticksPerSecond
    }

    /// Resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
    static func rssKiB(pid: Int32) -> Int? {
        guard let status = read("/proc/\(pid)/status") else { return nil }
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        }
        return nil
    }

    /// Raises this process's soft open-files limit to its hard limit; returns the new soft limit.
    @discardableResult
    static func raiseOpenFilesLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return -1 }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return -1 }
        return Int(limit.rlim_cur)
    }

    /// The whole of a small /proc file (its size reads as 0, so read until EOF).
    private static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { _ = Glibc.close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 4096) }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }
}

/// CPU seconds of a set of processes at one instant.
struct CPUSample: Sendable {
    var seconds: [Int32: Double]

    static func take(_ pids: [Int32]) -> CPUSample {
        CPUSample(seconds: Dictionary(pids.map { ($0, ProcessStats.cpuSeconds(pid: $0) ?? .nan) }, uniquingKeysWith: { first, _ in first }))
    }

    /// Seconds each process used between `self` and `later`.
    func used(until later: CPUSample, _ pid: Int32) -> Double {
        (later.seconds[pid] ?? .nan) - (seconds[pid] ?? .nan)
    }
}
