import Glibc
import Shared

/// Renews, from a thread of its own, the gateways' leases of the files a mount holds open: a
/// file kept open without a call for long (a log written once an hour, an unlinked temporary
/// file) stays open at its gateway, as on a local disk, rather than being opened again by
/// path (which would find another file, or none). The files of a mount that died are closed
/// by their gateways once their lease runs out.
enum LeaseRenewer {
    /// Starts renewing the leases of `mount`'s open files every `intervalSeconds`.
    /// - Throws: `UVError` when the thread cannot be started.
    static func start(for mount: MfsMount, every intervalSeconds: Int) throws {
        try startDetachedThread(named: "omx-mfs-renew") {
            while true {
                sleep(UInt32(intervalSeconds))
                for (holder, handles) in mount.openHandles() {
                    var request = FsRequest(naming: handles)
                    request.client = mount.client
                    // A lost instance needs nothing: the next call on the file opens it again.
                    _ = try? mount.send(holder.node, "Renew", request, retry: false, pinned: holder.instance, via: holder.via)
                }
            }
        }
    }
}
