import ArgumentParser
import Shared

/// `omx mosctl` (openMosix's `mosctl`): this node's part in the cluster.
struct MosctlCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mosctl",
        abstract: "Controls this node's part in the cluster (openMosix's mosctl).",
        discussion: """
            stay / nostay       jobs running here do not / may move automatically
            lstay / nolstay     this node's own jobs stay / may move; guests may go either way
            block / noblock     refuse / accept guest jobs
            quiet / noquiet     stop / resume sending and receiving load
            expel               block, then send every guest job home (or elsewhere when home is down)
            bring               lstay, then bring every job whose home is this node back home
            setspeed N          this node's relative CPU speed (1000 = the reference CPU)
            getload, getspeed, status   show this node's load, speed and policy
            Changes need root; they last until changed (also across restarts).
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "stay, nostay, lstay, nolstay, block, noblock, quiet, noquiet, expel, bring, setspeed, getload, getspeed or status.")
    var action: String

    @Argument(help: "With setspeed: the speed.")
    var value: UInt32?

    func validate() throws {
        let actions = ["stay", "nostay", "lstay", "nolstay", "block", "noblock", "quiet", "noquiet", "expel", "bring", "setspeed", "getload", "getspeed", "status"]
        guard actions.contains(action) else { throw ValidationError("unknown action \"\(action)\" (\(actions.joined(separator: ", ")))") }
        if action == "setspeed" && (value ?? 0) == 0 { throw ValidationError("setspeed needs a positive speed, e.g. omx mosctl setspeed 2000") }
    }

    func run() async throws {
        bootstrapLogging(level: global.logLevel)
        let session = try ClusterSession(global: global)
        let client = try session.client(for: .balancer, node: nil)
        let answer: ControlResponse
        do {
            answer = try await client.call("Balancer.Control", ControlRequest(action: action, speed: value ?? 0), returning: ControlResponse.self, timeout: .seconds(1800))
        } catch let error as RPCError {
            printError("omx mosctl \(action): \(error.message)")
            await session.close()
            throw ExitCode.failure
        }
        await session.close()
        switch action {
        case "getload": print(String(format: answer.load.load, decimals: 2))
        case "getspeed": print(answer.load.speed)
        default: print("node \(answer.load.node): \(answer.message)")
        }
        if (action == "expel" || action == "bring") && answer.message.contains("stayed:") { throw ExitCode.failure }
    }
}
