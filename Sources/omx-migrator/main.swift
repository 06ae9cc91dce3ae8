import ArgumentParser
import Migrator

// ArgumentParser's static main() takes its synchronous path for a command from another
// module, so parse and run the concrete command here.
do {
    let command = try MigratorCommand.parse()
    try await command.run()
} catch {
    MigratorCommand.exit(withError: error)
}
