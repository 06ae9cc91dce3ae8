import ArgumentParser
import Balancer
import Glibc
import Shared

/// `omx mon` (openMosix's `mosmon`): every node's load, speed, memory and jobs as bars.
struct MonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mon",
        abstract: "Shows every node's load, speed, memory and jobs as bars, refreshed each second (openMosix's mosmon).",
        discussion: "Keys: l load, s speed, m memory, j jobs, q quit. Plain ASCII, fits an 80x24 terminal.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print one frame to standard output and exit (no terminal needed).")
    var once = false

    func run() async throws {
        bootstrapLogging(level: global.logLevel)
        let session = try ClusterSession(global: global)
        let client = try session.client(for: .balancer, node: nil)
        var view = MonView.load
        let terminal = once ? nil : RawTerminal()
        defer { terminal?.restore() }
        while true {
            var frame: [String]
            do {
                let answer = try await client.call("Balancer.ClusterLoad", ClusterLoadRequest(), returning: ClusterLoadResponse.self, timeout: .seconds(3))
                frame = MonView.render(answer, view: view, width: 80, height: 24)
            } catch let error as RPCError {
                if once {
                    printError("omx mon: the local Balancer (\(client.endpoint)): \(error.message)")
                    await session.close()
                    throw ExitCode.failure
                }
                frame = ["omx mon: no answer from the local Balancer: \(error.message)".prefix(79).description]
            }
            guard let terminal else {
                print(frame.joined(separator: "\n"))
                break
            }
            terminal.draw(frame)
            let deadline = monotonicNs() + 1_000_000_000
            var quit = false
            while monotonicNs() < deadline, !quit {
                guard let key = terminal.key(waitingMs: Int32((deadline - monotonicNs()) / 1_000_000)) else { continue }
                switch key {
                case "q", "Q": quit = true
                case "l": view = .load
                case "s": view = .speed
                case "m": view = .memory
                case "j": view = .jobs
                default: continue
                }
                if !quit { break }
            }
            if quit { break }
        }
        await session.close()
    }
}

/// What `omx mon` shows, drawn as lines of plain ASCII.
enum MonView: String {
    case load, speed, memory, jobs

    static func render(_ cluster: ClusterLoadResponse, view: MonView, width: Int, height: Int) -> [String] {
        let title: String
        let values: [Double]
        let labels: [String]
        switch view {
        case .load:
            title = "load per reference CPU (runnable processes / CPUs x speed/1000)"
            values = cluster.nodes.map(\.normalizedLoad)
            labels = cluster.nodes.map { formatLoad($0.normalizedLoad) }
        case .speed:
            title = "speed (1000 = reference CPU) x CPUs"
            values = cluster.nodes.map { Double($0.speed) * Double($0.cpus) }
            labels = cluster.nodes.map { "\($0.speed) x\($0.cpus)" }
        case .memory:
            title = "memory used"
            values = cluster.nodes.map { $0.totalMemory == 0 ? 0 : Double($0.totalMemory - min($0.totalMemory, $0.freeMemory)) / Double($0.totalMemory) }
            labels = cluster.nodes.map { "\(($0.totalMemory - min($0.totalMemory, $0.freeMemory)) >> 20)/\($0.totalMemory >> 20) MiB" }
        case .jobs:
            title = "jobs running"
            values = cluster.nodes.map { Double($0.jobs) }
            labels = cluster.nodes.map { "\($0.jobs)" }
        }
        let scale = max(values.max() ?? 0, view == .memory ? 1 : view == .load ? 2 : 1)
        let barWidth = width - 30
        var lines = ["omx mon: \(cluster.nodes.count) nodes   view: \(view.rawValue)", title, ""]
        let room = height - lines.count - 2
        for (index, node) in cluster.nodes.prefix(room).enumerated() {
            let filled = Int((values[index] / scale * Double(barWidth)).rounded())
            let bar = String(repeating: "#", count: min(barWidth, filled)) + String(repeating: ".", count: max(0, barWidth - filled))
            let flags = node.policy.description == "-" ? "" : " " + node.policy.description
            lines.append("node \(String(node.node).padding(toLength: 4)) [\(bar)] \(labels[index])\(flags)".prefix(width - 1).description)
        }
        if cluster.nodes.count > room { lines.append("... and \(cluster.nodes.count - room) more nodes") }
        if !cluster.unreachable.isEmpty { lines.append("no answer from node \(cluster.unreachable.map(String.init).joined(separator: ", "))".prefix(width - 1).description) }
        while lines.count < height - 1 { lines.append("") }
        lines.append("keys: l load  s speed  m memory  j jobs  q quit")
        return lines
    }
}

/// The terminal in raw mode (no echo, no line buffering) on the alternate screen, restored
/// on `restore()`.
final class RawTerminal {
    private var saved = termios()
    private let active: Bool

    init() {
        active = tcgetattr(0, &saved) == 0
        guard active else { return }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
        withUnsafeMutableBytes(of: &raw.c_cc) { bytes in
            bytes[Int(VMIN)] = 0
            bytes[Int(VTIME)] = 0
        }
        tcsetattr(0, TCSANOW, &raw)
        write("\u{1b}[?1049h\u{1b}[?25l")
    }

    func draw(_ lines: [String]) {
        write("\u{1b}[H" + lines.map { $0 + "\u{1b}[K" }.joined(separator: "\r\n") + "\u{1b}[J")
    }

    /// The next key pressed within `waitingMs`, or nil.
    func key(waitingMs: Int32) -> Character? {
        var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, max(0, waitingMs)) > 0 else { return nil }
        var byte: UInt8 = 0
        guard Glibc.read(0, &byte, 1) == 1 else {
            usleep(100_000)  // standard input closed: do not spin
            return nil
        }
        return Character(UnicodeScalar(byte))
    }

    func restore() {
        write("\u{1b}[?25h\u{1b}[?1049l")
        if active { tcsetattr(0, TCSANOW, &saved) }
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)
        _ = Glibc.write(1, &bytes, bytes.count)
    }
}
