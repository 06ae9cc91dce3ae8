import Foundation
import Shared

/// Waits for an `omx-rawbench` or OMX bench server to print "ready".
func waitForReady(_ path: String, stderr: String, _ server: ChildProcess) throws {
    let deadline = monotonicNs() + 10_000_000_000
    while monotonicNs() < deadline {
        if ((try? readTextFile(path)) ?? "").hasPrefix("ready\n") { return }
        if let status = server.poll() {
            throw ConfigError("\(server.command.joined(separator: " ")) exited with status \(status) before it was ready: \((try? readTextFile(stderr)) ?? "")")
        }
        usleep(20_000)
    }
    throw ConfigError("\(server.command.joined(separator: " ")) was not ready within 10 s")
}

/// The FRAMES of each "served FRAMES cpu_ns NS user_ns NS" line.
func servedFrames(_ path: String) -> [Int] {
    ((try? readTextFile(path)) ?? "").split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        return fields.count == 6 && fields[0] == "served" ? Int(fields[1]) : nil
    }
}
