import Dispatch
import Foundation
import NIOCore
import NIOPosix

/// The process entry. Swift concurrency's jobs run on NIO's event loops unless
/// `HELPDESK_NIO_EXECUTOR=0`: a socket's task then resumes on the thread that did its I/O instead
/// of hopping to Swift's own pool and back for every frame and every Redis reply (BENCHMARKS.md
/// measures both). Nothing in the node blocks a thread for long: scrypt and libpq run on their
/// own thread pools.
@main
enum Entry {
    static func main() {
        let environment = ProcessInfo.processInfo.environment
        // HELPDESK_EVENT_LOOPS: the node's event-loop threads (default: one per core). Must be set
        // before anything touches NIO's singleton group, so it is read here, not with the rest of
        // the configuration; a bad value stops the process as a bad configuration does.
        if let text = environment["HELPDESK_EVENT_LOOPS"] {
            let most = 4 * System.coreCount
            guard let loops = Int(text), (1...most).contains(loops) else {
                FileHandle.standardError.write(Data("HELPDESK_EVENT_LOOPS must be an integer from 1 to \(most) (4 per core), got \(text)\n".utf8))
                exit(2)
            }
            NIOSingletons.groupLoopCountSuggestion = loops
        }
        if environment["HELPDESK_NIO_EXECUTOR"] != "0" {
            NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        let done = DispatchSemaphore(value: 0)
        // Detached: `main` runs on the main actor, whose thread waits below.
        Task.detached {
            await HelpDeskCommand.main()
            done.signal()
        }
        done.wait()
    }
}
