/// Parses `omx.conf`:
///
///     # comment
///     [section]
///     key = value      # comment
///
/// Every problem is reported, each as `file:line: what is wrong`, all in one `ConfigError`.
extension OMXConfig {
    /// - Throws: `ConfigError` listing every bad line of `text` as `source:line: problem`.
    public static func parse(_ text: String, source: String) throws -> OMXConfig {
        var config = OMXConfig()
        config.source = source
        var problems: [String] = []
        var section = ""
        var seen: [String: Int] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?
                .trimmingWhitespace() ?? ""
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), case let name = String(line.dropFirst().dropLast()).trimmingWhitespace(), sections.contains(name) else {
                    problems.append("\(source):\(number): unknown section \(line) (sections: \(sections.sorted().map { "[\($0)]" }.joined(separator: ", ")))")
                    section = "?"
                    continue
                }
                section = name
                continue
            }
            guard let equals = line.firstIndex(of: "=") else {
                problems.append("\(source):\(number): expected `key = value`, found \"\(line)\"")
                continue
            }
            let key = String(line[..<equals]).trimmingWhitespace()
            let value = String(line[line.index(after: equals)...]).trimmingWhitespace()
            if section == "?" { continue }
            let name = section.isEmpty ? key : "\(section).\(key)"
            guard let setter = setters[name] else {
                let known = setters.keys.filter { $0.hasPrefix(section.isEmpty ? "" : section + ".") }.map { $0.split(separator: ".").last.map(String.init) ?? $0 }
                let hint = section.isEmpty ? "every key belongs to a [section]" : "[\(section)] has \(known.sorted().joined(separator: ", "))"
                problems.append("\(source):\(number): unknown key \"\(key)\"\(section.isEmpty ? "" : " in [\(section)]") (\(hint))")
                continue
            }
            if let first = seen[name] {
                problems.append("\(source):\(number): \(name) is set twice (first on line \(first))")
                continue
            }
            seen[name] = number
            do {
                try setter(&config, ConfigValue(text: value, name: name, place: "\(source):\(number)"))
            } catch let error as ConfigError {
                problems.append("\(source):\(number): \(error.description)")
            } catch {
                problems.append("\(source):\(number): \(error)")
            }
        }
        guard problems.isEmpty else { throw ConfigError(problems.joined(separator: "\n")) }
        return config
    }

    /// The known keys, as `section.key`.
    public static var keys: [String] { setters.keys.sorted() }

    private static let sections: Set<String> = ["cluster", "ports", "mfs", "migrator", "balancer", "limits"]

    private static let setters: [String: @Sendable (inout OMXConfig, ConfigValue) throws -> Void] = [
        "cluster.map": { $0.mapPath = try $1.path() },
        "cluster.key": { $0.keyPath = try $1.path() },
        "cluster.run_dir": { $0.runDir = try $1.path() },
        "cluster.secure_ports": { $0.securePorts = try $1.bool() },
        "cluster.disclosure": { config, value in
            config.disclosure = Disclosure(rawValue: try value.integer(in: 0...2))!
        },
        "cluster.log_level": { config, value in
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            guard levels.contains(value.text) else { throw value.invalid("one of \(levels.joined(separator: ", "))") }
            config.logLevel = value.text
        },
        "cluster.answer_poll_us": { $0.answerPollMicroseconds = try $1.integer(in: 0...10_000) },
        "ports.discovery": { $0.ports.discovery = try $1.integer(in: 1...65535) },
        "ports.balancer": { $0.ports.balancer = try $1.integer(in: 1...65535) },
        "ports.migrator": { $0.ports.migrator = try $1.integer(in: 1...65535) },
        "ports.fsgateway": { $0.ports.fsgateway = try $1.integer(in: 1...65535) },
        "mfs.enabled": { config, value in
            config.mfs.enabled = try value.bool()
            config.mfs.enabledSetAt = value.place
        },
        "mfs.mountpoint": { $0.mfs.mountpoint = try $1.path() },
        "mfs.dfsa": { $0.mfs.dfsa = try $1.bool() },
        "mfs.export": { $0.mfs.export = try $1.path() },
        "mfs.cache_seconds": { $0.mfs.cacheSeconds = try $1.number(in: 0...3600) },
        "mfs.lease_seconds": { $0.mfs.leaseSeconds = try $1.integer(in: 4...86_400) },
        "mfs.io_threads": { $0.mfs.ioThreads = try $1.integer(in: 2...1024) },
        "migrator.state_dir": { $0.migrator.stateDir = try $1.path() },
        "migrator.spool_dir": { $0.migrator.spoolDir = try $1.path() },
        "migrator.criu": { $0.migrator.criu = try $1.path() },
        "migrator.max_transfer_rate": { $0.migrator.maxTransferRateMiBps = UInt64(try $1.integer(in: 0...1_000_000)) },
        "migrator.lost_after": { $0.migrator.lostAfterSeconds = UInt64(try $1.integer(in: 1...86_400)) },
        "balancer.speed": { $0.balancer.speed = UInt32(try $1.integer(in: 1...1_000_000)) },
        "balancer.load_source": { config, value in
            guard ["machine", "jobs"].contains(value.text) else { throw value.invalid("machine or jobs") }
            config.balancer.loadSource = value.text
        },
        "balancer.migration_mbps": { $0.balancer.migrationMiBps = try $1.number(in: 1...1_000_000) },
        "balancer.load_decay": { $0.balancer.loadDecay = try $1.number(in: 0...0.99) },
        "balancer.hysteresis": { $0.balancer.hysteresis = try $1.number(in: 0...10) },
        "balancer.placement_margin": { $0.balancer.placementMargin = try $1.number(in: 0...10) },
        "balancer.min_residence_ms": { $0.balancer.minResidenceMs = UInt64(try $1.integer(in: 0...86_400_000)) },
        "balancer.benefit_over_cost": { $0.balancer.benefitOverCost = try $1.number(in: 0...1000) },
        "balancer.low_memory_share": { $0.balancer.lowMemoryShare = try $1.number(in: 0...1) },
        "balancer.io_locality_share": { $0.balancer.ioLocalityShare = try $1.number(in: 0...1) },
        "balancer.fanout": { $0.balancer.fanout = try $1.integer(in: 1...64) },
        "balancer.stale_after_ms": { $0.balancer.staleAfterMs = UInt64(try $1.integer(in: 500...3_600_000)) },
        "limits.connections_per_user": { $0.limits.connectionsPerUser = try $1.integer(in: 1...1_000_000) },
        "limits.connections_per_address": { $0.limits.connectionsPerAddress = try $1.integer(in: 1...1_000_000) },
        "limits.stalled_seconds": { $0.limits.stalledSeconds = try $1.integer(in: 1...3_600) },
    ]
}

/// One `key = value`'s value, with typed readers whose errors say what was expected.
private struct ConfigValue {
    let text: String
    let name: String
    let place: String

    func invalid(_ expected: String) -> ConfigError {
        ConfigError("\(name) = \"\(text)\": expected \(expected)")
    }

    func path() throws -> String {
        guard text.hasPrefix("/") else { throw invalid("an absolute path") }
        return text
    }

    func bool() throws -> Bool {
        switch text.lowercased() {
        case "yes", "on", "true", "1": return true
        case "no", "off", "false", "0": return false
        default: throw invalid("yes or no")
        }
    }

    func integer(in range: ClosedRange<Int>) throws -> Int {
        guard let value = Int(text), range.contains(value) else { throw invalid("a whole number from \(range.lowerBound) to \(range.upperBound)") }
        return value
    }

    func number(in range: ClosedRange<Double>) throws -> Double {
        guard let value = Double(text), value.isFinite, range.contains(value) else {
            throw invalid("a number from \(formatBound(range.lowerBound)) to \(formatBound(range.upperBound))")
        }
        return value
    }

    private func formatBound(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs.
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
