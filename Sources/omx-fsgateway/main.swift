import ArgumentParser
import FSGateway

// ArgumentParser's static main() takes its synchronous path for a command from another
// module, so parse and run the concrete subcommand here.
do {
    // Called as mount.mfs by mount(8): translate its arguments.
    let helper = CommandLine.arguments.first?.split(separator: "/").last == "mount.mfs"
    let command = try FSGatewayCommand.parseAsRoot(helper ? try mountHelperArguments(Array(CommandLine.arguments.dropFirst())) : nil)
    if let serve = command as? FSGatewayCommand.Serve {
        try await serve.run()
    } else if let mount = command as? FSGatewayCommand.Mount {
        try mount.run()
    } else {
        throw CleanExit.helpRequest(FSGatewayCommand.self)
    }
} catch let help as CleanExit {
    // Help for a subcommand must come from the subcommand (the root would print its own).
    let subcommand = CommandLine.arguments.dropFirst().first { !$0.hasPrefix("-") }
    switch subcommand {
    case "serve": FSGatewayCommand.Serve.exit(withError: help)
    case "mount": FSGatewayCommand.Mount.exit(withError: help)
    default: FSGatewayCommand.exit(withError: help)
    }
} catch {
    FSGatewayCommand.exit(withError: error)
}
