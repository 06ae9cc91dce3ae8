import ArgumentParser
import Glibc
import Shared

/// `omx run` (openMosix's `mosrun`): starts a command as a migratable job.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Starts a command as a job that can migrate (openMosix's mosrun) and prints its id.",
        discussion: """
            The job runs in a PID namespace of its own, with your cwd, environment, uid and gid, stdin
            from /dev/null and stdout/stderr in its spool directory (see omx logs). Its home is this
            node; --node starts it elsewhere.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "The node to start it on (default: this one).")
    var node: UInt32?

    @Flag(help: "Do not move it automatically (it may still be moved by hand).")
    var stay = false

    @Flag(help: "Never move it.")
    var lock = false

    @Option(help: "A name shown by omx mps.")
    var name = ""

    @Flag(help: "Wait for the job to end and exit with its status.")
    var wait = false

    @Argument(parsing: .captureForPassthrough, help: "-- CMD ARGS...")
    var command: [String] = []

    mutating func validate() throws {
        // The passthrough argument swallows a leading --help: it asks for help, not a job.
        if let first = command.first, first == "--help" || first == "-h" { throw CleanExit.helpRequest(self) }
    }

    /// The words of `command` in the wire form of their bytes as the kernel gave them (Swift's
    /// own arguments replace bytes that are not UTF-8): the command is the end of our arguments.
    private func commandBytes() -> [String] {
        let count = Int(CommandLine.argc)
        guard command.count <= count else { return command }
        let raw = (count - command.count..<count).map { WireFileName.decode(cString: CommandLine.unsafeArgv[$0]!) }
        let same = zip(raw, command).allSatisfy { wire, word in String(decoding: WireFileName.bytes(wire), as: UTF8.self) == word }
        return same ? raw : command
    }

    func run() async throws {
        bootstrapLogging(level: global.logLevel)
        let words = commandBytes()
        let argv = command.first == "--" ? Array(words.dropFirst()) : words
        guard !argv.isEmpty else { throw ValidationError("no command given: omx run [OPTIONS] -- CMD ARGS...") }
        // Arguments, environment and cwd are bytes to the kernel: they travel in the wire form
        // of file names, so that the job gets them byte for byte, UTF-8 or not.
        var environment: [String] = []
        var cursor = environ
        while let entry = cursor.pointee {
            environment.append(WireFileName.decode(cString: entry))
            cursor += 1
        }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { throw ValidationError("omx run: cannot read the current directory: \(String(cString: strerror(errno)))") }
        var request = RunRequest(argv: argv, env: environment, cwd: WireFileName.decode(cString: buffer))
        request.node = node ?? 0
        request.name = name
        request.stay = stay
        request.lock = lock
        request.uid = getuid()
        request.gid = getgid()
        let session = try ClusterSession(global: global)
        let job = try await session.callMigrator("run", "Migrator.Run", request, returning: Job.self)
        if global.json {
            printJSON(JobRow(job))
        } else {
            print(job.id)
        }
        fflush(stdout)
        guard wait else {
            await session.close()
            return
        }
        var current = job
        while current.state != .exited {
            current = try await session.callMigrator("run", "Migrator.Wait", WaitRequest(job: job.id, timeoutMs: 30_000), returning: Job.self, timeout: .seconds(40))
        }
        await session.close()
        if current.exit.hasPrefix("lost") { printError("omx run: job \(job.id) \(current.exit)") }
        let status = shellStatus(ofJobExit: current.exit)
        if status != 0 { throw ExitCode(status) }
    }
}
