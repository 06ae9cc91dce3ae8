import ArgumentParser
import FoundationEssentials
import Shared

/// `omx map`: the cluster map.
struct MapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "Checks and prints the cluster map (/etc/openmosix.map).",
        subcommands: [Check.self])

    /// `omx map check`: parse a map, print its expanded table and digest or every error.
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Checks a map; prints the expanded nodes and the digest, or every error (exit status 1).")

        @Option(name: [.short, .customLong("file")], help: "The map file (default: $OMX_MAP, else /etc/openmosix.map, /etc/mosix.map, /etc/hpc.map).")
        var file: String?

        @Flag(help: "Print a JSON array of {\"id\", \"address\", \"aliases\"}.")
        var json = false

        func run() throws {
            let map: ClusterMap
            do {
                map = try ClusterMap.load(path: resolveMapPath(file))
            } catch let error as MapError {
                printError(error.description)
                throw ExitCode.failure
            } catch let error as ConfigError {
                printError(error.description)
                throw ExitCode.failure
            }
            if json {
                struct Row: Encodable {
                    let id: UInt32
                    let address: String
                    let aliases: [String]
                }
                printJSON(map.nodes.map { Row(id: $0.id, address: $0.address, aliases: $0.aliases) })
                return
            }
            let rows = map.nodes.map { [String($0.id), $0.address, $0.aliases.isEmpty ? "-" : $0.aliases.joined(separator: ",")] }
            print(formatTable(header: ["ID", "ADDRESS", "ALIASES"], rows: rows), terminator: "")
            print("\(map.nodes.count) node\(map.nodes.count == 1 ? "" : "s") from \(map.source), digest \(map.digest)")
        }
    }
}
