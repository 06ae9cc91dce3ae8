import Foundation
import XCTest

@testable import Shared

/// What a server lets one caller hold: a number of connections per TCP address and per local
/// user, and a connection only while its frames keep coming.
final class ConnectionLimitsTests: XCTestCase {
    func testATCPAddressHoldsAtMostItsQuotaOfConnectionsAndGetsOneBackWhenItClosesOne() async throws {
        let fixture = try RPCFixture { $0.maxConnectionsPerAddress = 3 }
        try await fixture.listen()
        // Each client is a connection of its own.
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

    func testAConnectionWhoseFrameStopsComingIsClosedAndASlowOrIdleOneIsNot() async throws {
        let fixture = try RPCFixture { $0.stalledFrameTimeout = .milliseconds(300) }
        try await fixture.listen()
        let signer = Authenticator(key: fixture.key, nodeID: 2)
        func echo(_ id: UInt64) -> [UInt8] {
            Envelope(callID: id, kind: .request, method: "Echo", body: [7]).frame(signedBy: signer, to: fixture.service).withBytes { Array($0) }
        }
        let idle = try RawSocket(port: fixture.port)
        let slow = try RawSocket(port: fixture.port)
        let stalled = try RawSocket(port: fixture.port)
        stalled.send(Array(echo(1).dropLast(3)))

        // The slow sender sends a piece every 100 ms, for 1.5 s: it never stays quiet for a
        // whole check.
        let slowFrame = echo(2)
        let piece = slowFrame.count / 15 + 1
        for start in stride(from: 0, to: slowFrame.count, by: piece) {
            slow.send(Array(slowFrame[start..<min(start + piece, slowFrame.count)]))
            try await Task.sleep(for: .milliseconds(100))
        }
        let answered = slow.readEnvelope()
        XCTAssertEqual(answered?.status, .ok, "\(String(describing: answered))")
        XCTAssertEqual(answered?.body, [7])

        // By now (1.5 s later) the stalled one was told why and closed.
        let refusal = stalled.readEnvelope()
        XCTAssertEqual(refusal?.status, .resourceExhausted, "\(String(describing: refusal))")
        XCTAssertTrue(refusal?.error.contains("a frame stayed incomplete for 0.3 seconds") == true, refusal?.error ?? "no refusal")
        XCTAssertTrue(stalled.isClosedByPeer())

        // A connection with nothing half-sent may idle as long as it likes.
        idle.send(echo(3))
        XCTAssertEqual(idle.readEnvelope()?.body, [7])
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
