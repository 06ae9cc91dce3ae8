import Foundation
import XCTest

/// Processes that take file locks for the /mfs lock tests: a small Python program (fcntl and
/// flock are its standard library's), one process per lock owner, as on a real cluster.
struct Locker {
    /// The program, written into the cluster's directory.
    let script: String

    static let source = #"""
        import fcntl, os, signal, sqlite3, struct, sys, time

        def flock_struct(kind, start, length):
            return struct.pack('hhqqi4x', kind, os.SEEK_SET, start, length, 0)

        def take(fd, how, kind, start, length, wait):
            if how == 'flock':
                fcntl.flock(fd, (fcntl.LOCK_SH if kind == fcntl.F_RDLCK else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
            else:
                fcntl.fcntl(fd, fcntl.F_SETLKW if wait else fcntl.F_SETLK, flock_struct(kind, start, length))

        class Alarm(Exception):
            pass

        def on_alarm(*_):
            raise Alarm()

        command, args = sys.argv[1], sys.argv[2:]
        if command == 'hold':  # hold HOW PATH TYPE START LENGTH [wait]: holds the lock until stdin closes
            how, path, kind, start, length = args[0], args[1], args[2], int(args[3]), int(args[4])
            fd = os.open(path, os.O_RDWR)
            if len(args) > 5:
                print('waiting', flush=True)
            take(fd, how, fcntl.F_RDLCK if kind == 'read' else fcntl.F_WRLCK, start, length, len(args) > 5)
            print('held', flush=True)
            sys.stdin.read()
        elif command == 'try':  # try HOW PATH TYPE START LENGTH [ACCESS]: got, busy, or the errno
            how, path, kind, start, length = args[0], args[1], args[2], int(args[3]), int(args[4])
            access = os.O_WRONLY if len(args) > 5 and args[5] == 'write-only' else os.O_RDWR
            fd = os.open(path, access)
            try:
                take(fd, how, fcntl.F_RDLCK if kind == 'read' else fcntl.F_WRLCK, start, length, False)
                print('got')
            except OSError as error:
                print('busy' if error.errno in (11, 13) else 'errno %d' % error.errno)
        elif command == 'test':  # test PATH START LENGTH: what F_GETLK says of a write lock there
            fd = os.open(args[0], os.O_RDWR)
            kind, _, start, length, pid = struct.unpack('hhqqi4x', fcntl.fcntl(fd, fcntl.F_GETLK, flock_struct(fcntl.F_WRLCK, int(args[1]), int(args[2]))))
            print('unlocked' if kind == fcntl.F_UNLCK else '%s %d %d pid %d' % ('read' if kind == fcntl.F_RDLCK else 'write', start, length, pid))
        elif command == 'wait':  # wait HOW PATH START LENGTH SECONDS: waits for a write lock, interrupted by an alarm
            how, path, start, length, seconds = args[0], args[1], int(args[2]), int(args[3]), int(args[4])
            signal.signal(signal.SIGALRM, on_alarm)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGALRM])  # the test runner blocks it
            fd = os.open(path, os.O_RDWR)
            print('waiting', flush=True)
            signal.alarm(seconds)
            try:
                take(fd, how, fcntl.F_WRLCK, start, length, True)
                signal.alarm(0)
                print('got', flush=True)
            except Alarm:
                print('interrupted', flush=True)
        elif command == 'crowd':  # crowd PATH THREADS REFUSALS: as many threads wait for a write lock on the whole file at once
            import threading
            path, threads, refusals = args[0], int(args[1]), int(args[2])
            outcomes, changed = [], threading.Condition()
            def wait_for_lock():
                fd = os.open(path, os.O_RDWR)  # left open: a close would drop the process's locks
                try:
                    take(fd, 'fcntl', fcntl.F_WRLCK, 0, 0, True)
                    outcome = 'got'
                except OSError as error:
                    outcome = 'errno %d' % error.errno
                with changed:
                    outcomes.append(outcome)
                    changed.notify_all()
            waiters = [threading.Thread(target=wait_for_lock) for _ in range(threads)]
            for waiter in waiters:
                waiter.start()
            # Says which errors came once REFUSALS threads failed, or after 30 s, whichever is first.
            with changed:
                changed.wait_for(lambda: len(outcomes) >= refusals, timeout=30)
                print('refused %s' % sorted(o for o in outcomes if o != 'got'), flush=True)
            for waiter in waiters:
                waiter.join()
            print('got %d' % outcomes.count('got'), flush=True)
        elif command == 'count':  # count DATABASE TIMES: adds 1 to the counter TIMES times, one transaction each
            database = sqlite3.connect(args[0], timeout=60, isolation_level=None)
            for _ in range(int(args[1])):
                database.execute('BEGIN IMMEDIATE')
                (n,) = database.execute('SELECT n FROM counter').fetchone()
                database.execute('UPDATE counter SET n = ?', (n + 1,))
                database.execute('COMMIT')
            print('counted', flush=True)
        elif command == 'guard':  # guard PATH FLAG: holds a write lock until FLAG exists, then sleeps unlocked
            fd = os.open(args[0], os.O_RDWR)
            take(fd, 'fcntl', fcntl.F_WRLCK, 0, 0, False)
            while not os.path.exists(args[1]):
                time.sleep(0.05)
            fcntl.fcntl(fd, fcntl.F_SETLK, flock_struct(fcntl.F_UNLCK, 0, 0))
            while True:
                time.sleep(1)
        elif command == 'handdown':  # handdown PATH FLAG: a child flocks, forks and exits; its child keeps the file until FLAG exists
            child = os.fork()
            if child != 0:
                os.waitpid(child, 0)  # no zombie left to stand for the taker
                while True:
                    time.sleep(1)
            fd = os.open(args[0], os.O_RDWR)
            take(fd, 'flock', fcntl.F_WRLCK, 0, 0, False)
            taker = os.getpid()
            if os.fork() != 0:
                os._exit(0)
            while os.getppid() == taker:
                time.sleep(0.01)
            open(args[1] + '.ready', 'w').close()
            while not os.path.exists(args[1]):
                time.sleep(0.05)
            os.close(fd)
            while True:
                time.sleep(1)
        """#

    /// Writes the program to `directory`.
    init(in directory: String) throws {
        script = "\(directory)/locker.py"
        try Locker.source.write(toFile: script, atomically: true, encoding: .utf8)
    }

    /// Runs a command of the program to its end; its output, trimmed.
    func run(_ arguments: [String]) -> String {
        let result = LocalCluster.runAbsolute(PythonClient.python, [script] + arguments)
        XCTAssertEqual(result.status, 0, "locker.py \(arguments.joined(separator: " ")): \(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A process that runs until its standard input closes (or it ends).
    final class Running {
        let process = Process()
        private let input = Pipe()
        private let output = Pipe()

        init(_ script: String, _ arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: PythonClient.python)
            process.arguments = [script] + arguments
            process.standardInput = input
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
        }

        /// Its next line of output ("" once it ended).
        func line() -> String {
            var bytes: [UInt8] = []
            while true {
                let byte = output.fileHandleForReading.readData(ofLength: 1)
                guard let first = byte.first, first != UInt8(ascii: "\n") else { break }
                bytes.append(first)
            }
            return String(decoding: bytes, as: UTF8.self)
        }

        /// Closes its standard input and waits for its end.
        func finish() {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
    }

    /// Starts a command of the program in the background.
    func start(_ arguments: [String]) throws -> Running { try Running(script, arguments) }
}
