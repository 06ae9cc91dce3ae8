import ArgumentParser
import Balancer

// ArgumentParser's static main() takes its synchronous path for a command from another
// module, so parse and run the concrete command here.
do {
    let command = try BalancerCommand.parse()
    try await command.run()
} catch {
    BalancerCommand.exit(withError: error)
}
