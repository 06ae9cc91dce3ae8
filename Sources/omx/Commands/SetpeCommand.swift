import ArgumentParser
import Shared

/// `omx setpe`: openMosix's node configuration tool, talking to the local Discovery.
struct SetpeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setpe",
        abstract: "Loads a map into the running node (-w), prints it (-r), or leaves the cluster (-off).",
        discussion: "As openMosix's setpe: `omx setpe -w -f /etc/openmosix.map`, `omx setpe -r`, `omx setpe -off`.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .customShort("w"), help: "Load the map from -f FILE (or standard input) into the running node.")
    var write = false

    @Flag(name: .customShort("r"), help: "Print the map the running node uses.")
    var read = false

    @Flag(name: .customLong("off", withSingleDash: true), help: "Leave the cluster gracefully.")
    var off = false

    @Option(name: .customShort("f"), help: "The map file for -w (- for standard input).")
    var file: String?

    func validate() throws {
        guard [write, read, off].filter({ $0 }).count == 1 else { throw ValidationError("give exactly one of -w, -r, -off") }
        if file != nil && !write { throw ValidationError("-f goes with -w") }
    }

    func run() async throws {
        bootstrapLogging(level: global.logLevel)
        let session = try ClusterSession(global: global)
        let client = try session.client(for: .discovery, node: nil)
        do {
            if read {
                let map = try await client.call("Discovery.GetMap", Empty(), returning: MapText.self)
                print(map.text, terminator: map.text.hasSuffix("\n") ? "" : "\n")
            } else if off {
                _ = try await client.call("Discovery.Disable", Empty(), returning: Empty.self)
                print("this node left the cluster; `omx setpe -w -f FILE` joins again")
            } else {
                let source = file ?? "-"
                let text = source == "-" ? readStandardInput() : try readTextFile(source)
                let loaded = try await client.call("Discovery.SetMap", MapText(text: text, source: source == "-" ? "<stdin>" : source), returning: MapText.self)
                print("loaded \(loaded.source), digest \(loaded.digest)")
            }
        } catch let error as RPCError {
            printError("omx setpe: \(error.status == .invalidArgument ? error.message : "\(error)")")
            await session.close()
            throw ExitCode.failure
        }
        await session.close()
    }

    private func readStandardInput() -> String {
        var lines: [String] = []
        while let line = readLine(strippingNewline: false) { lines.append(line) }
        return lines.joined()
    }
}
