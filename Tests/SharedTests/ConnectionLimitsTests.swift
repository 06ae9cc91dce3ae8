import Foundation
import XCTest

@testable import Shared

/// What a server lets one caller hold: a number of connections per local user and per TCP
/// address that signed a call, a few unsigned ones for a short while, and a connection only
/// while its frames keep coming and its answers are read.
final class ConnectionLimitsTests: XCTestCase {
    func testATCPAddressHoldsAtMostItsQuotaOfConnectionsAndGetsOneBackWhenItClosesOne() async throws {
        let fixture = try RPCFixture { $0.maxConnectionsPerAddress = 3 }
        try await fixture.listen()
        // Each client is a connection of its own, which signs its first envelope at once.
        let held = (0..<3).map { _ in fixture.tcpClient() }
        for client in held { _ = try await client.call("Echo", [1]) }

        let fourth = fixture.tcpClient()
        do {
            _ = try await fourth.call("Echo", [1])
            XCTFail("a fourth connection from 127.0.0.1 was served")
        } catch let error as RPCError {
            XCTAssertEqual(error.status, .resourceExhausted, "\(error)")
            XCTAssertTrue(error.message.contains("test server: address 127.0.0.1 already holds 3 connections, the most one caller may"), error.message)
        }
        // The held connections still serve, and one closed makes room for another.
        _ = try await held[0].call("Echo", [2])
        await held[1].close()
        let admitted = await eventually { (try? await fourth.call("Echo", [3])) == [3] }
        XCTAssertTrue(admitted, "a connection from 127.0.0.1 is served again once one of its three closed")
        await fixture.close()
    }

    func testConnectionsThatSignNothingCanNeitherPileUpNorStayNorCrowdOutSignedOnes() async throws {
        let fixture = try RPCFixture {
            $0.maxConnectionsPerAddress = 2
            $0.maxUnsignedConnectionsPerAddress = 2
            $0.signInTimeout = .milliseconds(500)
        }
        try await fixture.listen()
        // Unsigned connections from the cluster's address (a user without the key) never
        // count against it: the third pushes out the first.
        let first = try RawSocket(port: fixture.port)
        let second = try RawSocket(port: fixture.port)
        let third = try RawSocket(port: fixture.port)
        let pushedOut = first.readEnvelope()
        XCTAssertEqual(pushedOut?.status, .resourceExhausted)
        XCTAssertTrue(pushedOut?.error.contains("2 connections from 127.0.0.1 have signed no call yet; closing the oldest") == true, pushedOut?.error ?? "none")
        XCTAssertTrue(first.isClosedByPeer())
        // Signed callers are served meanwhile, up to their own limit.
        let signed = (0..<2).map { _ in fixture.tcpClient() }
        for client in signed { _ = try await client.call("Echo", [1]) }
        // Whatever is still unsigned after the sign-in time is told so and closed.
        for late in [second, third] {
            let refusal = late.readEnvelope()
            let said = refusal?.error ?? ""
            XCTAssertTrue(said.contains("no signed call within 0.5 s of connecting") || said.contains("have signed no call yet"), said)
            XCTAssertTrue(late.isClosedByPeer())
        }
        for client in signed { _ = try await client.call("Echo", [2]) }
        await fixture.close()
    }

    func testTheQuotaCountsLocalUsersButNotRoot() {
        var quota = ConnectionQuota(perUser: 2, perAddress: 5)
        let alice = ConnectionQuota.holder(of: .local(pid: 10, uid: 1000, gid: 1000, groups: []))
        let root = ConnectionQuota.holder(of: .local(pid: 11, uid: 0, gid: 0, groups: []))
        XCTAssertNil(root, "root is not limited")
        XCTAssertNil(quota.admit(alice))
        XCTAssertNil(quota.admit(alice))
        let first = quota.admit(alice)
        XCTAssertEqual(first?.reason, "uid 1000 already holds 2 connections, the most one caller may; close some first")
        XCTAssertEqual(first?.isFirst, true)
        XCTAssertEqual(quota.admit(alice)?.isFirst, false, "a flood is logged once")
        for _ in 0..<10 { XCTAssertNil(quota.admit(root)) }
        quota.release(alice)
        XCTAssertNil(quota.admit(alice), "one closed, one more may open")
        XCTAssertEqual(quota.admit(alice)?.isFirst, true, "reaching the limit again is logged again")
        XCTAssertEqual(quota.held(by: .user(1000)), 2)
    }

    func testAFrameMustArriveWholeInTimeWhileAnIdleConnectionMayStay() async throws {
        let fixture = try RPCFixture { $0.stalledTimeout = .milliseconds(600) }
        try await fixture.listen()
        let signer = Authenticator(key: fixture.key, nodeID: 2)
        func echo(_ id: UInt64) -> [UInt8] {
            Envelope(callID: id, kind: .request, method: "Echo", body: [7]).frame(signedBy: signer, to: fixture.service).withBytes { Array($0) }
        }
        let idle = try RawSocket(port: fixture.port)
        let slow = try RawSocket(port: fixture.port)
        let trickling = try RawSocket(port: fixture.port)
        let stalled = try RawSocket(port: fixture.port)
        stalled.send(Array(echo(1).dropLast(3)))

        // A frame sent in pieces over 0.2 s is served; one trickled over 2 s is not, however
        // steadily its bytes come.
        for (socket, frame, pieces, gapMs) in [(slow, echo(2), 10, 20), (trickling, echo(3), 20, 100)] {
            let piece = frame.count / pieces + 1
            Task.detached {
                for start in stride(from: 0, to: frame.count, by: piece) {
                    socket.send(Array(frame[start..<min(start + piece, frame.count)]))
                    try? await Task.sleep(for: .milliseconds(gapMs))
                }
            }
        }
        XCTAssertEqual(slow.readEnvelope()?.body, [7])
        for overdue in [stalled, trickling] {
            let refusal = overdue.readEnvelope()
            XCTAssertEqual(refusal?.status, .resourceExhausted, "\(String(describing: refusal))")
            XCTAssertTrue(refusal?.error.contains("a frame began arriving") == true && refusal?.error.contains("ago and is still incomplete") == true, refusal?.error ?? "no refusal")
            XCTAssertTrue(overdue.isClosedByPeer())
        }

        // A connection with nothing half-sent may idle as long as it likes.
        idle.send(echo(4))
        XCTAssertEqual(idle.readEnvelope()?.body, [7])
        await fixture.close()
    }

    func testACallerThatReadsNoneOfItsAnswersIsClosedOnceTheyStopMoving() async throws {
        let fixture = try RPCFixture { $0.stalledTimeout = .milliseconds(500) }
        try await fixture.listen()
        let raw = try RawSocket(port: fixture.port)
        let signer = Authenticator(key: fixture.key, nodeID: 2)
        let body = [UInt8](repeating: 7, count: 1 << 20)
        let sent = raw.sendWithoutReading(limit: 300 << 20) { id in
            Envelope(callID: UInt64(id), kind: .request, method: "Echo", body: body).frame(signedBy: signer, to: fixture.service)
        }
        XCTAssertLessThan(sent.bytes, 200 << 20, "the server stopped reading")
        // More than the timeout later (the send gave up after a second), the server has let go:
        // what it had written drains, then the connection ends.
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var last = 0
        repeat {
            last = recv(raw.fd, &buffer, buffer.count, 0)
            received += max(last, 0)
        } while last > 0
        let ending = last == 0 ? "end of stream" : String(cString: strerror(errno))
        XCTAssertTrue(last == 0 || errno == ECONNRESET, "the connection ended rather than waiting (recv: \(ending))")
        XCTAssertLessThan(received, sent.frames * (1 << 20) + (1 << 20), "not every answer was delivered: \(received) bytes")
        await fixture.close()
    }

    /// Polls `condition` every 50 ms for up to 5 s.
    private func eventually(_ condition: () async -> Bool) async -> Bool {
        for _ in 0..<100 {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
}
