import Glibc

/// This process's mount table, from /proc/self/mountinfo.
public enum MountInfo {
    /// The mount points of this process's mount namespace, with their file systems' types
    /// (read as bytes: a mount point's name need not be UTF-8).
    public static func mountPoints() -> [(path: String, type: String)] {
        ((try? readFileBytes("/proc/self/mountinfo")) ?? []).split(separator: UInt8(ascii: "\n")).compactMap { line in
            // "36 35 98:0 /root /mount/point options [optional fields...] - type source options"
            let fields = line.split(separator: UInt8(ascii: " "))
            guard fields.count > 4, let separator = fields.firstIndex(where: { $0.elementsEqual([UInt8(ascii: "-")]) }), separator + 1 < fields.count else {
                return nil
            }
            return (WireFileName.decode(unescape(fields[4])), String(decoding: fields[separator + 1], as: UTF8.self))
        }
    }

    /// A mountinfo field with its octal escapes ("\040" for a space) undone.
    private static func unescape(_ field: ArraySlice<UInt8>) -> [UInt8] {
        var bytes: [UInt8] = []
        var rest = field
        while let byte = rest.first {
            let digits = rest.dropFirst().prefix(3)
            if byte == UInt8(ascii: "\\"), digits.count == 3, digits.allSatisfy({ (0x30...0x37).contains($0) }) {
                bytes.append(digits.reduce(0) { $0 &* 8 &+ ($1 - 0x30) })
                rest = rest.dropFirst(4)
            } else {
                bytes.append(byte)
                rest = rest.dropFirst()
            }
        }
        return bytes
    }

    /// The mount points at directory `path` or beneath it (named as the table names them: by
    /// a path without symlinks).
    public static func mountPoints(atOrBeneath path: String) -> [String] {
        let base = path.hasSuffix("/") ? path : path + "/"
        return mountPoints().map(\.path).filter { $0.utf8.elementsEqual(path.utf8) || $0.utf8.starts(with: base.utf8) }
    }
}
