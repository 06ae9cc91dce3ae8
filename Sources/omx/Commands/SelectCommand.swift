import ArgumentParser
import Glibc
import Shared

/// `omx select`: the node `/mfs/selected` points at for the calling shell and its children.
struct SelectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "select",
        abstract: "Makes /mfs/selected point at NODE for the calling shell and every process it starts.",
        discussion: "Without NODE, prints the current selection; --clear removes it.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "A node id.")
    var node: UInt32?

    @Flag(help: "Forget the selection.")
    var clear = false

    func run() throws {
        let directory = "\(resolveRunDir(global.runDir))/mfs-selected"
        let path = "\(directory)/\(ProcStat.key(of: getppid()))"
        if clear {
            unlink(path)
            return
        }
        guard let node else {
            print((try? readTextFile(path))?.trimmedWhitespace ?? "none (selected is this node)")
            return
        }
        let map = try ClusterMap.load(path: resolveMapPath(global.mapPath))
        guard map.node(id: node) != nil else { throw ValidationError("\(map.source) has no node \(node)") }
        guard fileExists(directory) else { throw ValidationError("\(directory) does not exist: is this node's /mfs mounted (omx-fsgateway mount)?") }
        try writeTextFile(path, "\(node)\n")
    }
}
