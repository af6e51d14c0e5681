/// Every command the service knows, as the executor's switch sees it.
enum KVCommandID: UInt8 {
    case get, set, incr, mget, mset, ping, del, exists, getset, decr, incrby, decrby
    case expire, pexpire, ttl, pttl, persist, setnx, setex, psetex, strlen, append, getdel, type, unlink
    case dbsize, flushall, keys, select, echo, info, quit
    case client, clientSetName, clientGetName, clientID, clientHelp
    case config, configGet, configHelp
    case command, commandCount, commandDocs, commandInfo, commandList, commandHelp
    case flushdb, incrbyfloat, getex, getrange, setrange, msetnx, rename, renamenx, copy
    case expireat, pexpireat, expiretime, pexpiretime, time, hello
}

/// One command's metadata: what the dispatcher checks (arity) and what
/// COMMAND, COMMAND INFO and COMMAND DOCS report (redis-cli builds its help
/// and hints from COMMAND DOCS at start).
final class KVCommandSpec: Sendable {
    let id: KVCommandID
    /// Lowercase; `parent|child` for a subcommand, as Redis's error messages name it.
    let name: String
    /// Redis's convention: n > 0 exactly n arguments (the name included), n < 0 at least -n.
    let arity: Int
    let flags: [String]
    let firstKey: Int
    let lastKey: Int
    let keyStep: Int
    let categories: [String]
    let doc: KVCommandDoc
    let subcommands: [KVCommandSpec]

    /// The name as lowercase bytes, for case-insensitive matching.
    let nameBytes: [UInt8]

    init(_ id: KVCommandID, _ name: String, arity: Int, flags: [String], keys: (Int, Int, Int) = (0, 0, 0),
         categories: [String], doc: KVCommandDoc, subcommands: [KVCommandSpec] = []) {
        self.id = id
        self.name = name
        self.arity = arity
        self.flags = flags
        (firstKey, lastKey, keyStep) = keys
        self.categories = categories
        self.doc = doc
        self.subcommands = subcommands
        nameBytes = Array((name.split(separator: "|").last.map(String.init) ?? name).utf8)
    }

    /// True when `count` arguments (the name included) satisfy the arity.
    @inline(__always)
    func accepts(argumentCount count: Int) -> Bool {
        arity > 0 ? count == arity : count >= -arity
    }

    /// The subcommand named by `bytes` (any case), if any.
    func subcommand(_ bytes: UnsafeRawBufferPointer) -> KVCommandSpec? {
        subcommands.first { KVBytes.equalsIgnoringCase(bytes, $0.nameBytes) }
    }
}

/// The command table and its lookup by name.
enum KVCommandTable {
    /// Every command, the hot ones first (the lookup scans in order).
    static let all: [KVCommandSpec] = KVCommandDocs.table + KVCommandDocs.addedTable

    /// Names of up to 16 bytes folded to lowercase and packed in two words,
    /// so a lookup compares integers instead of strings.
    private struct PackedName: Equatable {
        var length: Int
        var low: UInt64
        var high: UInt64
    }

    /// What the dispatcher needs of a command, without touching its metadata.
    struct Entry: Sendable {
        let id: KVCommandID
        let arity: Int
        /// The position in ``all``.
        let index: Int

        /// True when `count` arguments (the name included) satisfy the arity.
        @inline(__always)
        func accepts(argumentCount count: Int) -> Bool {
            arity > 0 ? count == arity : count >= -arity
        }

        var spec: KVCommandSpec { KVCommandTable.all[index] }
    }

    private static let packed: [(name: PackedName, entry: Entry)] = all.enumerated().map { index, spec in
        (spec.nameBytes.withUnsafeBytes { pack($0)! }, Entry(id: spec.id, arity: spec.arity, index: index))
    }

    @inline(__always)
    private static func pack(_ bytes: UnsafeRawBufferPointer) -> PackedName? {
        guard bytes.count <= 16 else { return nil }
        var low: UInt64 = 0
        var high: UInt64 = 0
        for index in 0..<bytes.count {
            let byte = UInt64(KVBytes.lowerASCII(bytes[index]))
            if index < 8 { low |= byte << (UInt64(index) * 8) } else { high |= byte << (UInt64(index - 8) * 8) }
        }
        return PackedName(length: bytes.count, low: low, high: high)
    }

    /// The command named by `name` (any case), or nil.
    @inline(__always)
    static func lookup(_ name: UnsafeRawBufferPointer) -> Entry? {
        guard let key = pack(name) else { return nil }
        for candidate in packed where candidate.name == key { return candidate.entry }
        return nil
    }

    /// The command or subcommand named `name` (`client|setname`), for COMMAND INFO and DOCS.
    static func lookup(fullName name: String) -> KVCommandSpec? {
        let lowered = name.lowercased()
        for spec in all {
            if spec.name == lowered { return spec }
            if let sub = spec.subcommands.first(where: { $0.name == lowered }) { return sub }
        }
        return nil
    }
}

/// The COMMAND DOCS entry of a command.
struct KVCommandDoc: Sendable {
    let summary: String
    let since: String
    let group: String
    let complexity: String
    let arguments: [KVArgumentDoc]
}

/// One argument in COMMAND DOCS (what redis-cli turns into its hints:
/// `SET key value [NX|XX] [GET] ...`).
struct KVArgumentDoc: Sendable {
    let name: String
    /// key, string, integer, pattern, unix-time, pure-token, oneof, block
    let type: String
    var token: String? = nil
    var optional = false
    var multiple = false
    var children: [KVArgumentDoc] = []

    static func key(_ name: String = "key", multiple: Bool = false) -> KVArgumentDoc {
        KVArgumentDoc(name: name, type: "key", multiple: multiple)
    }
    static func string(_ name: String, optional: Bool = false, multiple: Bool = false) -> KVArgumentDoc {
        KVArgumentDoc(name: name, type: "string", optional: optional, multiple: multiple)
    }
    static func integer(_ name: String, token: String? = nil) -> KVArgumentDoc {
        KVArgumentDoc(name: name, type: "integer", token: token)
    }
    static func pattern(_ name: String = "pattern", multiple: Bool = false) -> KVArgumentDoc {
        KVArgumentDoc(name: name, type: "pattern", multiple: multiple)
    }
    static func token(_ token: String, optional: Bool = false) -> KVArgumentDoc {
        KVArgumentDoc(name: token.lowercased(), type: "pure-token", token: token, optional: optional)
    }
    static func oneOf(_ name: String, optional: Bool = true, _ children: [KVArgumentDoc]) -> KVArgumentDoc {
        KVArgumentDoc(name: name, type: "oneof", optional: optional, children: children)
    }
    static func block(_ name: String, multiple: Bool = false, _ children: [KVArgumentDoc]) -> KVArgumentDoc {
        KVArgumentDoc(name: name, type: "block", multiple: multiple, children: children)
    }
}
