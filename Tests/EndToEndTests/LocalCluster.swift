import Foundation
import Shared
import XCTest

/// The output of a finished command.
struct CommandResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Real service processes of one or more nodes on 127.0.SUBNET.x, with their key, map and run
/// directories in a temporary folder. Everything it starts is stopped by `stop()`.
final class LocalCluster {
    let dir: String
    let subnet: Int
    let mapPath: String
    let keyPath: String
    private(set) var processes: [(name: String, process: ChildProcess)] = []

    /// - Parameters:
    ///   - subnet: the third byte of the nodes' addresses; each test uses its own.
    ///   - mapText: the map; by default `1 127.0.SUBNET.1 nodes`.
    init(subnet: Int, nodes: Int = 2, mapText: String? = nil) throws {
        self.subnet = subnet
        dir = NSTemporaryDirectory() + "omx-e2e-\(subnet)-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        mapPath = dir + "/cluster.map"
        keyPath = dir + "/cluster.key"
        try (mapText ?? "1 127.0.\(subnet).1 \(nodes)\n").write(toFile: mapPath, atomically: true, encoding: .utf8)
        let keygen = LocalCluster.run("omx", ["keygen", "-o", keyPath])
        XCTAssertEqual(keygen.status, 0, keygen.stderr)
    }

    func runDir(_ node: UInt32) -> String { "\(dir)/node-\(node)/run" }

    func logPath(_ name: String) -> String { "\(dir)/\(name).log" }

    /// Starts one service of `node` and waits until it answers Ping on its Unix socket.
    @discardableResult
    func start(_ kind: ServiceKind, node: UInt32, instance: UInt32 = 0, extra: [String] = []) throws -> ChildProcess {
        var arguments = kind == .fsgateway ? ["serve", "--instance", "\(instance)"] : []
        arguments += ["--map", mapPath, "--key", keyPath, "--node-id", "\(node)", "--run-dir", runDir(node)] + extra
        let name = "\(kind.rawValue)-\(instance)-node\(node)"
        let process = try ChildProcess.spawn(siblingExecutable(kind.executableName), arguments, stderrPath: logPath(name))
        processes.append((name, process))
        let socket = "\(runDir(node))/\(kind.socketName(instance: instance))"
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: socket) { return process }
            if let status = process.poll() {
                throw ConfigError("\(name) exited with status \(status): \(log(name))")
            }
            usleep(20_000)
        }
        throw ConfigError("\(name) did not create \(socket) within 10 s: \(log(name))")
    }

    /// Every service of `node`, and `gateways` FSGateway instances.
    func startNode(_ node: UInt32, gateways: UInt32 = 1) throws {
        for kind in [ServiceKind.discovery, .balancer, .migrator] { try start(kind, node: node) }
        for instance in 0..<gateways { try start(.fsgateway, node: node, instance: instance) }
    }

    func log(_ name: String) -> String {
        (try? String(contentsOfFile: logPath(name), encoding: .utf8)) ?? ""
    }

    /// Runs `omx` with this cluster's map and key in its environment.
    func omx(_ arguments: [String]) -> CommandResult {
        LocalCluster.run("omx", arguments, environment: ["OMX_MAP": mapPath, "OMX_KEY": keyPath])
    }

    /// SIGTERMs everything still running and waits for it.
    func stop() {
        for (_, process) in processes { process.send(SIGTERM) }
        for (_, process) in processes where process.poll() == nil {
            let deadline = Date().addingTimeInterval(5)
            while process.poll() == nil && Date() < deadline { usleep(20_000) }
            if process.poll() == nil {
                process.send(SIGKILL)
                process.wait()
            }
        }
        removeTree(dir)  // never through a mount left in it
    }

    /// Runs a built executable and collects its output.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) -> CommandResult {
        runAbsolute(siblingExecutable(executable), arguments, environment: environment)
    }

    /// Runs the program at `path` to its end and collects its output.
    static func runAbsolute(_ path: String, _ arguments: [String], environment: [String: String] = [:]) -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return CommandResult(status: -1, stdout: "", stderr: "cannot run \(path): \(error)")
        }
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }
}
