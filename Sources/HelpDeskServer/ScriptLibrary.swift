import Foundation
import HelpDeskCore
import RedisClient

/// The Lua library a node calls, loaded from `lua/` only when it speaks this binary's layout.
///
/// The scripts' KEYS and ARGV are a contract between the node's Swift and `lua/`. A binary run with
/// the `lua/` of another release would pass arguments the scripts read otherwise: an old `send.lua`
/// publishes a new node's messages under a wrong conversation id. So `lua/LAYOUT` holds the
/// contract's number, and a node refuses to start with any other (or with none: a `lua/` older
/// than the check).
public enum ScriptLibrary {
    /// The layout this binary's calls follow. Raise it, and `lua/LAYOUT` with it, whenever a
    /// script's KEYS or ARGV change meaning.
    public static let layout = 1

    /// The scripts of `directory`, after checking its layout.
    public static func load(directory: String) throws -> RedisScripts {
        try checkLayout(of: directory)
        return try RedisScripts(directory: directory)
    }

    static func checkLayout(of directory: String) throws {
        let path = directory + "/LAYOUT"
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read (\(error))" : "is missing"
            throw HelpDeskError(.validationFailed, "\(path) \(reason): \(directory) is not the lua/ of this release (layout \(layout)); ship the binary and its lua/ together")
        }
        let found = text.trimmingCharacters(in: CharacterSet.whitespacesAndNewlines.union(CharacterSet(charactersIn: "\u{FEFF}")))
        guard found == String(layout) else {
            throw HelpDeskError(.validationFailed, "\(path) says layout \(found), this binary calls layout \(layout): ship the binary and its lua/ together")
        }
    }
}
