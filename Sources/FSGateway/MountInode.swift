/// The inode numbers /mfs shows (stat's st_ino, readdir's d_ino). One mount shows the files of
/// every node, each node's from several file systems, so a file's own number is not enough:
/// its node, device and inode number are mixed into 64 bits. Hard links of one file get the
/// same number (cp, tar and rsync -H tell them apart from copies), and different files
/// practically never share one. The mount's own entries have small numbers of their own.
enum MountInode {
    /// The root of the mount.
    static let root: UInt64 = 1
    /// here, home, magic, lastexec, selected: 2 and on, in `MfsMount.magicEntries` order.
    static func magic(_ index: Int) -> UInt64 { 2 + UInt64(index) }
    /// /mfs/N, the root of node N's export (the same for every export root it may have).
    static func node(_ id: UInt32) -> UInt64 { 0x100 + UInt64(id) }

    /// The number of file `ino` of device `dev` on `node`: never one of the mount's own.
    static func of(node: UInt32, dev: UInt64, ino: UInt64) -> UInt64 {
        let mixed = mix(ino ^ mix(dev ^ mix(UInt64(node))))
        return mixed & ~(UInt64(1) << 63) | (UInt64(1) << 62)
    }

    /// SplitMix64's finalizer: every input bit moves about half of the output bits.
    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
