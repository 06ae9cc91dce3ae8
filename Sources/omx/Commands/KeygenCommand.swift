import ArgumentParser
import Shared

/// `omx keygen`: writes a new random cluster key, readable only by its owner.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Writes a new random cluster key (mode 0600); copy the same file to every node.")

    @Option(name: [.short, .customLong("output")], help: "Where to write the key (default: $OMX_KEY, else /etc/omx/cluster.key).")
    var output: String?

    @Flag(help: "Replace an existing key file.")
    var force = false

    func run() throws {
        let path = resolveKeyPath(output)
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try makeDirectories(String(path[..<slash]), mode: 0o700)
        }
        try ClusterKey.generate().write(to: path, overwrite: force)
        print("wrote a new cluster key to \(path)")
    }
}
