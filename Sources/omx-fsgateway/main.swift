import ArgumentParser
import FSGateway

// ArgumentParser's static main() takes its synchronous path for a command from another
// module, so parse and run the concrete subcommand here.
do {
    let command = try FSGatewayCommand.parseAsRoot()
    guard let serve = command as? FSGatewayCommand.Serve else { throw CleanExit.helpRequest(FSGatewayCommand.self) }
    try await serve.run()
} catch {
    FSGatewayCommand.exit(withError: error)
}
