import Foundation
import Logging
import XCTest

@testable import Shared

/// Every refusal of the TCP authentication, over real sockets.
final class RPCAuthenticationTests: XCTestCase {
    func testAnUnsignedTCPCallIsRefused() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        await assertRPCError(.unauthenticated, containing: "carries no authentication") {
            try await fixture.tcpClient(signed: false).call("Echo", [])
        }
        await fixture.close()
    }

    func testACallSignedWithAnotherKeyIsRefused() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        await assertRPCError(.unauthenticated, containing: "bad MAC from node 2") {
            try await fixture.tcpClient(key: .generate()).call("Echo", [])
        }
        await fixture.close()
    }

    /// An `Echo` request of [1], signed by node 2 with `key` for receiver `destination`, as a frame.
    private func echoFrame(_ key: ClusterKey, for destination: String) -> [UInt8] {
        var request = Envelope(callID: 1, kind: .request, method: "Echo", body: [1])
        Authenticator(key: key, nodeID: 2).sign(&request, to: destination)
        return Frame.encode(request.serialized())
    }

    func testAReplayedFrameIsRefused() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let frame = echoFrame(fixture.key, for: fixture.service)
        let raw = try RawSocket(port: fixture.port)
        raw.send(frame)
        XCTAssertEqual(raw.readEnvelope()?.status, .ok)
        let again = try RawSocket(port: fixture.port)
        again.send(frame)
        let refusal = try XCTUnwrap(again.readEnvelope())
        XCTAssertEqual(refusal.status, .unauthenticated)
        XCTAssertTrue(refusal.error.contains("replayed envelope from node 2"), refusal.error)
        await fixture.close()
    }

    func testAFrameReplayedToTheServiceRestartedIsRefused() async throws {
        let before = try RPCFixture()
        try await before.listen()
        let frame = echoFrame(before.key, for: before.service)
        let raw = try RawSocket(port: before.port)
        raw.send(frame)
        XCTAssertEqual(raw.readEnvelope()?.status, .ok)
        await before.close()
        // The same service (key, address, port) started again, a millisecond later at least.
        let signedMs = wallClockMs()
        while wallClockMs() == signedMs { sched_yield() }
        let after = try RPCFixture(key: before.key)
        try await after.listen(port: before.port)
        let replay = try RawSocket(port: after.port)
        replay.send(frame)
        let refusal = try XCTUnwrap(replay.readEnvelope())
        XCTAssertEqual(refusal.status, .unauthenticated)
        XCTAssertTrue(refusal.error.contains("before this service started: a replay"), refusal.error)
        let served = try await after.tcpClient().call("Echo", [2])
        XCTAssertEqual(served, [2], "calls signed now are served")
        await after.close()
    }

    func testAnEnvelopeOvertakenByThousandsOfItsSendersOthersIsStillAccepted() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        // One sender (one authenticator): a request signed first and sent last, on its own
        // connection, while 2,000 later ones went out on another.
        let sender = Authenticator(key: fixture.key, nodeID: 2)
        let late = Envelope(callID: 1, kind: .request, method: "Echo", body: [7]).frame(signedBy: sender, to: fixture.service).withBytes { Array($0) }
        let client = RPCClient(
            loop: fixture.clientLoop, endpoint: .tcp(host: "127.0.0.1", port: fixture.port), configuration: .init(authenticator: sender), logger: Logger(label: "test"))
        for _ in 0..<2_000 { _ = try await client.call("Echo", [1]) }
        let raw = try RawSocket(port: fixture.port)
        raw.send(late)
        let answer = try XCTUnwrap(raw.readEnvelope())
        XCTAssertEqual(answer.status, .ok, answer.error)
        XCTAssertEqual(answer.body, [7])
        await client.close()
        await fixture.close()
    }

    func testAFrameCaughtOnTheWireIsRefusedByEveryOtherServiceOfTheCluster() async throws {
        // Two services of one cluster (the same key): a request signed for the first, sent
        // within the clock window to the second, whose replay window never saw its nonce.
        let first = try RPCFixture()
        let second = try RPCFixture(key: first.key)
        try await first.listen()
        try await second.listen()
        let frame = echoFrame(first.key, for: first.service)
        let elsewhere = try RawSocket(port: second.port)
        elsewhere.send(frame)
        let refusal = try XCTUnwrap(elsewhere.readEnvelope())
        XCTAssertEqual(refusal.status, .unauthenticated)
        XCTAssertTrue(refusal.error.contains("bad MAC from node 2") && refusal.error.contains("signed for another receiver than \(second.service)"), refusal.error)
        let intended = try RawSocket(port: first.port)
        intended.send(frame)
        XCTAssertEqual(intended.readEnvelope()?.body, [1], "the service it was signed for serves it")
        await first.close()
        await second.close()
    }

    func testAPeerWhoseAddressIsNotInTheMapIsRefused() async throws {
        let fixture = try RPCFixture(allowedAddresses: ["127.0.0.2", "127.0.0.3"])
        try await fixture.listen()
        await assertRPCError(.permissionDenied, containing: "address 127.0.0.1 is not in the cluster map of test server") {
            try await fixture.tcpClient(bindAddress: "127.0.0.1").call("Echo", [])
        }
        await fixture.close()
    }

    func testAPeerFromAnAddressInTheMapIsServed() async throws {
        let fixture = try RPCFixture(allowedAddresses: ["127.0.0.2"])
        fixture.server.register("Who") { request in Array("\(request.caller)".utf8) }
        try await fixture.listen()
        let answer = try await fixture.tcpClient(bindAddress: "127.0.0.2").call("Who", [])
        XCTAssertEqual(String(decoding: answer, as: UTF8.self), "node 2 (127.0.0.2)")
        await fixture.close()
    }

    func testUnixSocketCallersAreIdentifiedByTheirPeerCredentials() async throws {
        let fixture = try RPCFixture()
        fixture.server.register("Who") { request in
            guard case let .local(pid, uid, gid, groups) = request.caller else { throw RPCError(.internal, "not local") }
            return Array("\(pid) \(uid) \(gid) \(groups)".utf8)
        }
        try await fixture.listen()
        let answer = try await fixture.unixClient().call("Who", [])
        XCTAssertEqual(String(decoding: answer, as: UTF8.self), "\(getpid()) \(getuid()) \(getgid()) \(currentGroups())")
        await fixture.close()
    }

    func testUnixSocketCallersKeepTheSupplementaryGroupsTheyConnectedWith() async throws {
        guard getuid() == 0 else {
            XCTFail("giving this process 40 supplementary groups needs root; this test cannot run (CI runs as root)")
            throw XCTSkip("not root")
        }
        let fixture = try RPCFixture()
        fixture.server.register("Groups") { request in
            guard case let .local(_, _, _, groups) = request.caller else { throw RPCError(.internal, "not local") }
            return Array("\(groups)".utf8)
        }
        try await fixture.listen()
        // More groups than the first buffer holds; the kernel reports them as they were when
        // the client connected, whatever the process does after.
        let saved = currentGroups()
        let many = (0..<40).map { gid_t(70_000 + $0) }
        XCTAssertEqual(setgroups(many.count, many), 0)
        let client = fixture.unixClient()
        let atConnect = try await client.call("Groups", [])
        XCTAssertEqual(setgroups(saved.count, saved), 0)
        let later = try await client.call("Groups", [])
        XCTAssertEqual(String(decoding: atConnect, as: UTF8.self), "\(many)")
        XCTAssertEqual(String(decoding: later, as: UTF8.self), "\(many)")
        await fixture.close()
    }

    private func currentGroups() -> [gid_t] {
        var groups = [gid_t](repeating: 0, count: Int(getgroups(0, nil)))
        let count = getgroups(Int32(groups.count), &groups)
        return Array(groups.prefix(Int(max(count, 0))))
    }
}
