import ArgumentParser
import FSGateway

// ArgumentParser's static main() takes its synchronous path for a command from another
// module, so parse and run the concrete subcommand here.
do {
    let command = try FSGatewayCommand.parseAsRoot()
    if let serve = command as? FSGatewayCommand.Serve {
        try await serve.run()
    } else if let mount = command as? FSGatewayCommand.Mount {
        try mount.run()
    } else {
        throw CleanExit.helpRequest(FSGatewayCommand.self)
    }
} catch {
    FSGatewayCommand.exit(withError: error)
}
