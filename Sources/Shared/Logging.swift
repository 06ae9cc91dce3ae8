import ArgumentParser
import Logging
import Synchronization

extension Logger.Level: @retroactive ExpressibleByArgument {}

private let loggingStarted = Mutex(false)

/// Sends this process's logs to standard error at `level`; later calls change nothing.
public func bootstrapLogging(level: Logger.Level) {
    let first = loggingStarted.withLock { started -> Bool in
        defer { started = true }
        return !started
    }
    guard first else { return }
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}
