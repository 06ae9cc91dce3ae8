import Glibc
import Shared

/// `omx mosctl`: this node's policies and speed, kept in the run directory across restarts.
extension BalancerService {
    /// `Balancer.Control`: one mosctl action, by root on the Unix socket.
    func control(_ request: ControlRequest, caller: Caller) async throws -> ControlResponse {
        let readOnly = ["getload", "getspeed", "status"].contains(request.action)
        if !readOnly {
            guard case let .local(_, uid, _, _) = caller, uid == 0 else {
                throw RPCError(.permissionDenied, "Balancer.Control \(request.action): only root on node \(nodeID)'s Unix socket may change its policy (caller: \(caller))")
            }
        }
        var message: String
        switch request.action {
        case "stay", "nostay": policy.stay = request.action == "stay"; message = "jobs here \(policy.stay ? "stay" : "may move automatically")"
        case "lstay", "nolstay": policy.lstay = request.action == "lstay"; message = "this node's own jobs \(policy.lstay ? "stay" : "may move automatically")"
        case "block", "noblock": policy.block = request.action == "block"; message = "guest jobs are \(policy.block ? "refused" : "welcome")"
        case "quiet", "noquiet": policy.quiet = request.action == "quiet"; message = policy.quiet ? "no load sent or received" : "load exchange resumed"
        case "setspeed":
            guard request.speed > 0 else { throw RPCError(.invalidArgument, "Balancer.Control setspeed: the speed must be a positive number (1000 = the reference CPU)") }
            speed = request.speed
            own.speed = speed
            message = "speed \(speed)"
        case "expel":
            policy.block = true
            let answer = try await migrator.call("Migrator.Expel", ExpelRequest(), returning: ExpelResponse.self, timeout: .seconds(1800))
            message = "blocked; " + summary("sent away", answer)
        case "bring":
            policy.lstay = true
            let answer = try await migrator.call("Migrator.Bring", BringRequest(), returning: ExpelResponse.self, timeout: .seconds(1800))
            message = "lstay; " + summary("brought home", answer)
        case "getload", "getspeed", "status":
            message = "load \(formatLoad(own.load)) on \(own.cpus) CPUs (\(formatLoad(own.normalizedLoad)) per reference CPU), speed \(speed), policy \(policy.description), \(window.records.count) peer records"
        default:
            throw RPCError(.invalidArgument, "Balancer.Control: unknown action \"\(request.action)\" (stay, nostay, lstay, nolstay, block, noblock, quiet, noquiet, setspeed, expel, bring, getload, getspeed, status)")
        }
        own.policy = policy
        if !readOnly {
            savePolicy()
            record("mosctl \(request.action)\(request.action == "setspeed" ? " \(request.speed)" : ""): \(message)")
        }
        return ControlResponse(load: own, message: message)
    }

    private func summary(_ verb: String, _ answer: ExpelResponse) -> String {
        var parts = ["\(verb) \(answer.moved.count) job(s)\(answer.moved.isEmpty ? "" : ": " + answer.moved.joined(separator: ", "))"]
        if !answer.failed.isEmpty { parts.append("stayed: " + answer.failed.joined(separator: "; ")) }
        return parts.joined(separator: "; ")
    }

    private func savePolicy() {
        let text = "speed \(speed)\nstay \(policy.stay)\nlstay \(policy.lstay)\nblock \(policy.block)\nquiet \(policy.quiet)\n"
        do { try writeTextFile("\(host.runDir)/balancer.policy", text) } catch { logger.error("cannot keep the policy: \(error)") }
    }

    /// The policy and speed saved by an earlier run, if any.
    static func loadPolicy(from path: String) -> (policy: NodePolicy, speed: UInt32)? {
        guard let text = try? readTextFile(path) else { return nil }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2 { values[String(fields[0])] = String(fields[1]) }
        }
        let policy = NodePolicy(stay: values["stay"] == "true", lstay: values["lstay"] == "true", block: values["block"] == "true", quiet: values["quiet"] == "true")
        return (policy, values["speed"].flatMap(UInt32.init) ?? 1000)
    }
}
