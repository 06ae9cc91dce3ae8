import ArgumentParser
import Discovery

// ArgumentParser's static main() takes its synchronous path for a command from another
// module, so parse and run the concrete command here.
do {
    let command = try DiscoveryCommand.parse()
    try await command.run()
} catch {
    DiscoveryCommand.exit(withError: error)
}
