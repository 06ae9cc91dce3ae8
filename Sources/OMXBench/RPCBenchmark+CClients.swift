import Glibc
import Shared

extension RPCBenchmark {
    /// The server a C client of `omx-rawbench` ran against, and how its share of the CPU time
    /// is known.
    enum CServer {
        /// An `omx-rawbench` server, which prints "served FRAMES cpu_ns NS user_ns NS" to this
        /// file once the client is gone.
        case reporting(to: String)
        /// The OMX server, charged with the CPU time its process spent meanwhile.
        case omx(ChildProcess)
    }

    /// Runs one C client of `omx-rawbench` (in the directory of `servers`, stopped with them)
    /// and reads what it measured: each round trip (ping-pong) or its calls and seconds
    /// (pipeline), and the CPU time of the client and of the server's share.
    func runC(_ arguments: [String], against server: CServer, of servers: Servers) throws -> Tally {
        let output = "\(servers.dir)/raw-client.out"
        unlink(output)
        var reportsBefore = 0
        var serverBefore: (cpu: UInt64, user: UInt64) = (0, 0)
        switch server {
        case let .reporting(path): reportsBefore = rawServerReports(path).count
        case let .omx(process): serverBefore = (cpuTimeNs(of: process.pid) ?? 0, userTimeNs(of: process.pid) ?? 0)
        }
        let process = try servers.termination.spawn([rawPath] + arguments, stdoutPath: output)
        let status = process.wait()
        let lines = ((try? readTextFile(output)) ?? "").split(separator: "\n")
        let clientCPU = lines.last.flatMap { line in line.hasPrefix("cpu ") ? line.dropFirst(4).split(separator: " ").compactMap { Double($0) } : nil }
        guard status == 0, let clientCPU, clientCPU.count == 2 else {
            throw ConfigError("omx-rawbench \(arguments.joined(separator: " ")) failed with status \(status): \(lines.joined(separator: "\n"))")
        }
        var tally = Tally()
        let values = lines.dropLast().compactMap { line in line.split(separator: " ").map { Double($0) } }
        if arguments[0].hasPrefix("pingpong") {
            tally.samplesUs = values.compactMap { $0.first ?? nil }
            tally.calls = tally.samplesUs.count + tally.samplesUs.count / 10  // and the warm-up
        } else {
            guard let figures = values.first, figures.count == 2, let calls = figures[0], let seconds = figures[1] else {
                throw ConfigError("omx-rawbench \(arguments.joined(separator: " ")) printed no calls and seconds")
            }
            tally.calls = Int(calls)
            tally.seconds = seconds
        }
        let served = try serverShare(of: server, since: (reportsBefore, serverBefore), for: arguments)
        tally.cpuNs = clientCPU[0] * Double(tally.calls) + Double(served.cpuNs)
        tally.userNs = clientCPU[1] * Double(tally.calls) + Double(served.userNs)
        return tally
    }

    /// The CPU time `server` spent on the client run just ended: what an `omx-rawbench` server
    /// reports for the connection (once it sees the client gone), or the OMX server's since.
    private func serverShare(
        of server: CServer, since before: (reports: Int, times: (cpu: UInt64, user: UInt64)), for arguments: [String]
    ) throws -> (cpuNs: UInt64, userNs: UInt64) {
        switch server {
        case let .omx(process):
            return ((cpuTimeNs(of: process.pid) ?? 0) - before.times.cpu, (userTimeNs(of: process.pid) ?? 0) - before.times.user)
        case let .reporting(path):
            let deadline = monotonicNs() + 5_000_000_000
            var reports = rawServerReports(path)
            while reports.count == before.reports && monotonicNs() < deadline {
                usleep(5_000)
                reports = rawServerReports(path)
            }
            guard reports.count > before.reports, let report = reports.last, report.frames > 0 else {
                throw ConfigError("omx-rawbench's server did not report the connection of \(arguments.joined(separator: " ")) (see \(path))")
            }
            return (report.cpuNs, report.userNs)
        }
    }

    /// The "served FRAMES cpu_ns NS user_ns NS" lines an `omx-rawbench` server printed so far.
    private func rawServerReports(_ path: String) -> [(frames: Int, cpuNs: UInt64, userNs: UInt64)] {
        ((try? readTextFile(path)) ?? "").split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 6, fields[0] == "served", let frames = Int(fields[1]), let cpu = UInt64(fields[3]), let user = UInt64(fields[5]) else {
                return nil
            }
            return (frames, cpu, user)
        }
    }
}
