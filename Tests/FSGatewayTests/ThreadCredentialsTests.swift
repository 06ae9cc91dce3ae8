import CFileSystem
import Glibc
import Shared
import XCTest

/// The credentials a gateway thread takes on to act for a caller.
final class ThreadCredentialsTests: XCTestCase {
    /// The effective capabilities of the calling thread, from /proc.
    private func effectiveCapabilities() -> UInt64? {
        guard let status = try? readTextFile("/proc/thread-self/status"),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") })
        else { return nil }
        return UInt64(line.dropFirst("CapEff:".count).trimmedWhitespace, radix: 16)
    }

    func testActingForAUserTakesNoneOfRootsCapabilitiesAndGivesThemBack() throws {
        guard getuid() == 0 else {
            XCTFail("switching a thread's credentials needs root; this test cannot run")
            throw XCTSkip("not root")
        }
        let own = try XCTUnwrap(effectiveCapabilities())
        XCTAssertNotEqual(own, 0)
        var groups: [gid_t] = [65534]
        XCTAssertEqual(omx_set_thread_credentials(65534, 65534, &groups, 1), 0, String(cString: strerror(errno)))
        let asUser = effectiveCapabilities()
        XCTAssertEqual(omx_set_thread_credentials(0, 0, nil, 0), 0, String(cString: strerror(errno)))
        XCTAssertEqual(asUser, 0, "no capability of root's (CAP_SYS_RESOURCE, CAP_SYS_PTRACE ...) while acting for uid 65534")
        XCTAssertEqual(effectiveCapabilities(), own, "all of them back afterwards")
    }
}
