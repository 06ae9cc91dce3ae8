import FoundationEssentials
import Glibc

/// Writes `message` and a newline to standard error.
func printError(_ message: String) {
    fputs(message + "\n", stderr)
}

/// Prints `value` as pretty, key-sorted JSON on standard output.
func printJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let data = (try? encoder.encode(value)) ?? Data("null".utf8)
    print(String(decoding: data, as: UTF8.self))
}

/// Left-aligned columns separated by two spaces, one line per row.
func formatTable(header: [String], rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index])
        }.joined(separator: "  ") + "\n"
    }.joined()
}

extension String {
    /// The string padded with spaces to `length` characters.
    func padding(toLength length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }

    /// `value` with `decimals` digits after the point (`value / 1024` when given KiB as Int).
    init(format value: Double, decimals: Int) {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = Int((value * scale).rounded())
        let whole = scaled / Int(scale)
        let fraction = String(abs(scaled) % Int(scale))
        self = decimals == 0 ? "\(whole)" : "\(whole).\(String(repeating: "0", count: decimals - fraction.count))\(fraction)"
    }

    /// KiB as MiB with `decimals` digits.
    init(format kib: Int, decimals: Int) {
        self.init(format: Double(kib) / 1024, decimals: decimals)
    }
}
