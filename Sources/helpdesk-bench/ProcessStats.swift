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

    /// Nanoseconds each thread of `pid` has run (the first field of `/proc/<pid>/task/<tid>/schedstat`),
    /// by thread id; `nil` if the process is gone. `/proc/<pid>/stat` counts whole clock ticks
    /// (10 ms): over a pick race of ~0.3 s that is ±5 % of Redis's CPU, and so of pick.lua's ceiling.
    static func threadNanoseconds(pid: Int32) -> [Int32: UInt64]? {
        guard let directory = opendir("/proc/\(pid)/task") else { return nil }
        defer { closedir(directory) }
        var threads: [Int32: UInt64] = [:]
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let tid = Int32(name), let stat = read("/proc/\(pid)/task/\(tid)/schedstat"),
                  let first = stat.split(separator: UInt8(ascii: " ")).first,
                  let nanoseconds = UInt64(String(decoding: first, as: UTF8.self)) else { continue }
            threads[tid] = nanoseconds
        }
        // No thread's schedstat readable (a kernel without it): not "no CPU".
        return threads.isEmpty ? nil : threads
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

/// CPU time of a set of processes at one instant: clock ticks per process, and nanoseconds per thread.
struct CPUSample: Sendable {
    var seconds: [Int32: Double]
    var threads: [Int32: [Int32: UInt64]]

    static func take(_ pids: [Int32]) -> CPUSample {
        var sample = CPUSample(seconds: [:], threads: [:])
        for pid in pids {
            sample.seconds[pid] = ProcessStats.cpuSeconds(pid: pid) ?? .nan
            sample.threads[pid] = ProcessStats.threadNanoseconds(pid: pid)
        }
        return sample
    }

    /// Seconds each process used between `self` and `later`: from its threads' nanoseconds (a
    /// thread started since counts whole), or from clock ticks when one of its threads ended in
    /// between (its last nanoseconds are gone with it; the process's ticks keep them).
    func used(until later: CPUSample, _ pid: Int32) -> Double {
        let ticks = (later.seconds[pid] ?? .nan) - (seconds[pid] ?? .nan)
        guard let before = threads[pid], let after = later.threads[pid],
              before.keys.allSatisfy({ after[$0] != nil }) else { return ticks }
        var nanoseconds: UInt64 = 0
        for (tid, total) in after {
            let earlier = before[tid] ?? 0
            // A thread id used again by a new thread: its count started over.
            guard total >= earlier else { return ticks }
            nanoseconds += total - earlier
        }
        return Double(nanoseconds) / 1e9
    }
}
