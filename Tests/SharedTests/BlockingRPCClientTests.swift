import Foundation
import Synchronization
import XCTest

@testable import Shared

/// The blocking client the FUSE threads use, against a real server over TCP.
final class BlockingRPCClientTests: XCTestCase {
    private func client(_ fixture: RPCFixture, key: ClusterKey? = nil, port: Int? = nil) -> BlockingRPCClient {
        BlockingRPCClient(host: "127.0.0.1", port: port ?? fixture.port, authenticator: Authenticator(key: key ?? fixture.key, nodeID: 2), bindAddress: "127.0.0.1")
    }

    /// Checks that `body` fails with `status`, a message holding `text`, and `neverSent` as
    /// given (whether making the call again could make it twice).
    private func assertFails(
        _ status: StatusCode, containing text: String, neverSent: Bool = false, file: StaticString = #filePath, line: UInt = #line,
        _ body: () throws -> [UInt8]
    ) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let error = error as? RPCError else { return XCTFail("unexpected \(error)", file: file, line: line) }
            XCTAssertEqual(error.status, status, "\(error)", file: file, line: line)
            XCTAssertTrue(error.message.contains(text), "'\(error.message)' lacks '\(text)'", file: file, line: line)
            XCTAssertEqual(error.neverSent, neverSent, "\(error)", file: file, line: line)
        }
    }

    func testThreadsCallingAtOnceEachGetTheirOwnAnswerAndErrorsKeepTheirStatus() async throws {
        let fixture = try RPCFixture()
        fixture.server.register("Refuse") { _ in throw RPCError(.notFound, "nothing here") }
        try await fixture.listen()
        let client = client(fixture)
        let failures = Mutex<[String]>([])
        let done = DispatchGroup()
        for thread in 0..<8 {
            done.enter()
            Thread.detachNewThread {
                for call in 0..<50 {
                    let body = Array("thread \(thread) call \(call)".utf8) + [UInt8](repeating: UInt8(thread), count: call * 100)
                    do {
                        if try client.call("Echo", body) != body { failures.withLock { $0.append("thread \(thread) call \(call): wrong answer") } }
                    } catch {
                        failures.withLock { $0.append("thread \(thread) call \(call): \(error)") }
                    }
                }
                done.leave()
            }
        }
        done.wait()
        XCTAssertEqual(failures.withLock { $0 }, [String]())
        let large = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        XCTAssertTrue(try client.call("Echo", large, timeout: .seconds(30)) == large, "3 MiB come back whole")
        assertFails(.notFound, containing: "nothing here") { try client.call("Refuse", []) }
        XCTAssertEqual(try client.call("Echo", [7]), [7], "a refused call leaves its connection usable")
        await fixture.close()
    }

    func testACallAfterTheServerRestartedGoesToTheNewServer() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let port = fixture.port
        let client = client(fixture)
        XCTAssertEqual(try client.call("Echo", [1]), [1])
        await fixture.close()
        let restarted = try RPCFixture(key: fixture.key)
        try await restarted.listen(port: port)
        XCTAssertEqual(try client.call("Echo", [2]), [2], "the idle connection the old server closed is not used")
        await restarted.close()
    }

    func testNoServerFailsFastAndWaitsBeforeTheNextAttempt() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let port = fixture.port
        await fixture.close()
        let client = client(fixture, port: port)
        assertFails(.unavailable, containing: "Echo to 127.0.0.1:\(port): connect 127.0.0.1:\(port): Connection refused", neverSent: true) {
            try client.call("Echo", [])
        }
        assertFails(.unavailable, containing: "next attempt in", neverSent: true) { try client.call("Echo", []) }
    }

    func testASlowAnswerIsDeadlineExceededAndTheNextCallWorks() async throws {
        let fixture = try RPCFixture()
        fixture.server.register("Sleep") { _ in
            try await Task.sleep(for: .seconds(2))
            return [9]
        }
        try await fixture.listen()
        let client = client(fixture)
        let started = monotonicNs()
        assertFails(.deadlineExceeded, containing: "Sleep to 127.0.0.1:\(fixture.port) got no answer within 200 ms") { try client.call("Sleep", [], timeout: .milliseconds(200)) }
        XCTAssertLessThan(monotonicNs() - started, 1_500_000_000)
        XCTAssertEqual(try client.call("Echo", [3]), [3], "the late answer does not stand in for this one")
        await fixture.close()
    }

    func testASendToAPeerThatReadsNothingEndsAtTheDeadline() throws {
        // A listener that never accepts: the kernel takes the connection and a few MiB, no more.
        let (listener, port) = try listeningSocket()
        defer { close(listener) }
        let client = BlockingRPCClient(host: "127.0.0.1", port: port, authenticator: nil, bindAddress: nil)
        let started = monotonicNs()
        assertFails(.deadlineExceeded, containing: "could not be sent within 300 ms") {
            try client.call("Echo", [UInt8](repeating: 1, count: 15 << 20), timeout: .milliseconds(300))
        }
        XCTAssertLessThan(monotonicNs() - started, 3_000_000_000, "the thread was not held")
    }

    func testASendToAPeerThatReadsALittleAtATimeEndsAtTheDeadline() throws {
        let (listener, port) = try listeningSocket()
        defer { close(listener) }
        let peerDone = DispatchSemaphore(value: 0)
        let callEnded = Atomic(false)
        // A peer that takes 64 KiB every 250 ms, until the call ended: each send makes some
        // progress, slowly.
        Thread.detachNewThread {
            defer { peerDone.signal() }
            let peer = RawSocket(acceptedBy: listener)
            while !callEnded.load(ordering: .relaxed), peer.read(64 << 10) != nil { usleep(250_000) }
        }
        let client = BlockingRPCClient(host: "127.0.0.1", port: port, authenticator: nil, bindAddress: nil)
        let started = monotonicNs()
        assertFails(.deadlineExceeded, containing: "could not be sent within 300 ms") {
            try client.call("Echo", [UInt8](repeating: 1, count: 15 << 20), timeout: .milliseconds(300))
        }
        XCTAssertLessThan(monotonicNs() - started, 3_000_000_000, "the thread was held past the deadline")
        callEnded.store(true, ordering: .relaxed)
        peerDone.wait()
    }

    func testConnectingToAHostThatDoesNotAnswerTakesNoLongerThanTheCall() async throws {
        let silent = try FullListener()
        let full = await silent.becameFull()
        XCTAssertTrue(full, "the listener never stopped answering:\n\(silent.sockets)")
        let client = BlockingRPCClient(host: "127.0.0.1", port: silent.port, authenticator: nil, bindAddress: nil, connectTimeoutMs: 5_000)
        assertFails(.unavailable, containing: "connect 127.0.0.1:\(silent.port): timed out after 200 ms", neverSent: true) {
            try client.call("Echo", [1], timeout: .milliseconds(200))
        }
    }

    func testAnAnswerInPiecesIsReadWholeAndBytesAfterAnAnswerEndTheConnection() throws {
        let (listener, port) = try listeningSocket()
        defer { close(listener) }
        let peerDone = DispatchSemaphore(value: 0)
        // A peer answering by hand: the first answer in three pieces, the second followed by
        // three bytes no call asked for, the next connection's answer as it should be.
        Thread.detachNewThread {
            defer { peerDone.signal() }
            let first = RawSocket(acceptedBy: listener)
            guard let one = first.readEnvelope() else { return }
            let answer = frameBytes(Envelope(callID: one.callID, kind: .response, method: one.method, body: (0..<200).map { UInt8($0) }))
            for piece in [answer[0..<2], answer[2..<100], answer[100...]] {
                first.send(Array(piece))
                usleep(20_000)
            }
            guard let two = first.readEnvelope() else { return }
            first.send(frameBytes(Envelope(callID: two.callID, kind: .response, method: two.method, body: [2])) + [9, 9, 9])
            let second = RawSocket(acceptedBy: listener)
            guard let three = second.readEnvelope() else { return }
            second.send(frameBytes(Envelope(callID: three.callID, kind: .response, method: three.method, body: [3])))
        }
        let client = BlockingRPCClient(host: "127.0.0.1", port: port, authenticator: nil, bindAddress: nil)
        XCTAssertEqual(try client.call("Echo", [1]), (0..<200).map { UInt8($0) }, "the pieces make one answer")
        assertFails(.dataLoss, containing: "3 bytes came after the answer") { try client.call("Echo", [2]) }
        XCTAssertEqual(try client.call("Echo", [3]), [3], "the next call takes a new connection")
        peerDone.wait()
    }

    func testAnAnswerCutShortEndsAtTheCallsDeadlineNotAWaitLater() throws {
        let (listener, port) = try listeningSocket()
        defer { close(listener) }
        let peerDone = DispatchSemaphore(value: 0)
        // A peer that sends the first bytes of its answer 600 ms into a 1 s call, then nothing.
        Thread.detachNewThread {
            defer { peerDone.signal() }
            let peer = RawSocket(acceptedBy: listener)
            guard let call = peer.readEnvelope() else { return }
            usleep(600_000)
            peer.send(Array(frameBytes(Envelope(callID: call.callID, kind: .response, method: call.method, body: [1, 2, 3])).prefix(6)))
            _ = peer.isClosedByPeer()
        }
        let client = BlockingRPCClient(host: "127.0.0.1", port: port, authenticator: nil, bindAddress: nil)
        let started = monotonicNs()
        assertFails(.deadlineExceeded, containing: "Echo to 127.0.0.1:\(port) got no answer within 1000 ms") {
            try client.call("Echo", [1], timeout: .milliseconds(1000))
        }
        // Waiting a whole timeout again after the first piece would end at 1.6 s.
        XCTAssertLessThan(monotonicNs() - started, 1_400_000_000, "the wait after the first piece ran past the deadline")
        peerDone.wait()
    }

    func testAnotherKeyIsRefusedWithUnauthenticated() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        assertFails(.unauthenticated, containing: "bad MAC") { try client(fixture, key: .generate()).call("Echo", []) }
        await fixture.close()
    }
}

/// `envelope` as one unsigned frame's bytes.
private func frameBytes(_ envelope: Envelope) -> [UInt8] {
    let frame = envelope.frame()
    return Array(UnsafeRawBufferPointer(start: frame.base, count: frame.count))
}
