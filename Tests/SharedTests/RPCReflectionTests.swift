import Foundation
import Logging
import XCTest

@testable import Shared

/// A TCP server that sends every byte it gets straight back: what a party in the middle could
/// do with a client's signed requests.
private final class MirrorServer: @unchecked Sendable {
    let listener: Int32
    let port: Int

    init() throws {
        let (listener, port) = try listeningSocket()
        self.listener = listener
        self.port = port
        Thread.detachNewThread {
            while case let fd = accept(listener, nil, nil), fd >= 0 {
                Thread.detachNewThread {
                    var buffer = [UInt8](repeating: 0, count: 65_536)
                    while case let count = buffer.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, 0) }), count > 0 {
                        _ = buffer.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, count, Int32(MSG_NOSIGNAL)) }
                    }
                    Glibc.close(fd)
                }
            }
        }
    }

    deinit { shutdown(listener, Int32(SHUT_RDWR)) }
}

final class RPCReflectionTests: XCTestCase {
    func testARequestSentBackIsNoAnswerToEitherClient() async throws {
        let mirror = try MirrorServer()
        let authenticator = Authenticator(key: ClusterKey.generate(), nodeID: 1)
        let loop = try EventLoop()
        let client = RPCClient(
            loop: loop, endpoint: .tcp(host: "127.0.0.1", port: mirror.port), configuration: .init(authenticator: authenticator), logger: Logger(label: "test"))
        // Its signature names the mirror's end, not the client's: refused before anything else.
        await assertRPCError(.dataLoss, containing: "signed for another receiver than 127.0.0.1:") {
            try await client.call("Echo", [1, 2, 3], timeout: .seconds(2))
        }
        await client.close()
        await loop.shutdown()

        let blocking = BlockingRPCClient(host: "127.0.0.1", port: mirror.port, authenticator: authenticator, bindAddress: nil)
        XCTAssertThrowsError(try blocking.call("Echo", [1, 2, 3], timeout: .seconds(2))) { error in
            XCTAssertEqual((error as? RPCError)?.status, .dataLoss, "\(error)")
            XCTAssertTrue("\(error)".contains("signed for another receiver than 127.0.0.1:"), "\(error)")
        }
    }
}
