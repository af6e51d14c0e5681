// The script the compatibility tests run against kv and a real redis-server:
// raw bytes in, raw bytes compared. It avoids what legitimately differs
// (KEYS order with several matches, INFO, COMMAND, CLIENT ID, PTTL of a live
// key) and covers the rest: every command, its errors, expiry, pipelining,
// inline commands, partial frames and protocol errors. The commands added
// later have their steps in KVCompatibilityScriptAdded.swift; replies that
// differ by nature (TIME, HELLO's client id) are compared by shape in
// KVHandshakeTests.swift.

/// One step: bytes sent in chunks (with a pause between, so each chunk
/// arrives in its own read), then either every reply up to a marker, or,
/// for a step that ends the connection, everything until the server closes.
struct KVStep {
    var name: String
    var chunks: [[UInt8]]
    var closes = false
    /// Waited after the step's replies (expiry tests).
    var waitAfter: Duration = .zero

    init(_ name: String, _ chunks: [UInt8]..., closes: Bool = false, waitAfter: Duration = .zero) {
        self.name = name
        self.chunks = chunks
        self.closes = closes
        self.waitAfter = waitAfter
    }
}

/// Several commands as one chunk (one read on the server: a pipeline).
func kvPipeline(_ commands: [String]...) -> [UInt8] {
    commands.flatMap { kvCommand($0.map { Array($0.utf8) }) }
}

enum KVCompatibilityScript {
    static let maxInt = "9223372036854775807"
    static let minInt = "-9223372036854775808"

    /// Commands, options and their errors, on one connection.
    static let commands: [KVStep] = [
        KVStep("flush", kvPipeline(["FLUSHALL"])),
        KVStep("ping and echo", kvPipeline(["PING"], ["PING", "hello"], ["ping", ""], ["ECHO", ""], ["ECHO", "a b"])),
        KVStep("get and set", kvPipeline(["SET", "k", "v"], ["GET", "k"], ["GET", "missing"], ["GETSET", "k", "w"], ["GETSET", "new", "x"],
                                          ["GET", "k"], ["STRLEN", "k"], ["STRLEN", "missing"], ["APPEND", "k", "xyz"],
                                          ["APPEND", "fresh", "ab"], ["GET", "k"], ["SET", "", ""], ["GET", ""])),
        KVStep("del and exists", kvPipeline(["DEL", "k", "missing", "new"], ["EXISTS", "fresh", "fresh", "missing"], ["TYPE", "fresh"],
                                            ["TYPE", "missing"], ["GETDEL", "fresh"], ["GETDEL", "fresh"], ["UNLINK", "", "x"])),
        KVStep("mset and mget", kvPipeline(["MSET", "a", "1", "b", "2", "c", "3"], ["MGET", "a", "b", "missing", "c"],
                                           ["MSET", "a"], ["MSET", "a", "1", "b"], ["MGET"])),
        KVStep("counters", kvPipeline(["INCR", "counter"], ["INCR", "counter"], ["DECR", "counter"], ["INCRBY", "counter", "10"],
                                      ["DECRBY", "counter", "3"], ["INCRBY", "counter", "-20"], ["INCRBY", "counter", "x"],
                                      ["SET", "text", "abc"], ["INCR", "text"], ["SET", "big", maxInt], ["INCR", "big"],
                                      ["SET", "small", minInt], ["DECR", "small"], ["DECRBY", "counter", minInt],
                                      ["INCRBY", "n", "+1"], ["SET", "sp", " 1"], ["INCR", "sp"], ["SET", "z", "007"], ["INCR", "z"],
                                      ["SET", "neg", "-0"], ["INCR", "neg"], ["INCRBY", "q", minInt], ["GET", "q"],
                                      ["SET", "long", "123456789012345678901"], ["INCR", "long"])),
        KVStep("set conditions", kvPipeline(["SET", "nx", "1", "NX"], ["SET", "nx", "2", "NX"], ["GET", "nx"], ["SET", "xx", "1", "XX"],
                                            ["GET", "xx"], ["SET", "nx", "3", "XX"], ["GET", "nx"], ["SET", "nx", "4", "NX", "XX"],
                                            ["SET", "nx", "5", "xx", "nx"], ["SET", "g", "new", "GET"], ["SET", "g", "newer", "get"],
                                            ["SET", "g", "v", "NX", "GET"], ["SET", "absent", "v", "XX", "GET"], ["GET", "absent"],
                                            ["SETNX", "sn", "1"], ["SETNX", "sn", "2"], ["GET", "sn"])),
        KVStep("set expiry options", kvPipeline(["SET", "g", "v", "EX"], ["SET", "g", "v", "EX", "0"], ["SET", "g", "v", "EX", "-5"],
                                                ["SET", "g", "v", "PX", "0"], ["SET", "g", "v", "EX", "abc"], ["SET", "g", "v", "EX", "10", "PX", "100"],
                                                ["SET", "g", "v", "KEEPTTL", "EX", "10"], ["SET", "g", "v", "FOO"],
                                                ["SET", "g", "v", "EX", maxInt], ["SET", "g", "v", "PX", maxInt], ["SET", "g", "v", "EX", "100"],
                                                ["TTL", "g"], ["SET", "g", "w", "KEEPTTL"], ["TTL", "g"], ["SET", "g", "x"], ["TTL", "g"],
                                                ["SET", "g", "v", "ex", "10", "EX", "20"], ["TTL", "g"], ["SET", "e", "v", "EXAT", "1"],
                                                ["EXISTS", "e"], ["SET", "e", "v", "PXAT", "1", "GET"], ["SET", "e", "v", "KEEPTTL", "KEEPTTL"],
                                                ["SETEX", "se", "100", "v"], ["TTL", "se"], ["SETEX", "se", "0", "v"], ["SETEX", "se", "x", "v"],
                                                ["PSETEX", "pe", "100000", "v"], ["TTL", "pe"], ["PSETEX", "pe", "-1", "v"])),
        KVStep("expire", kvPipeline(["SET", "t", "v"], ["TTL", "t"], ["PTTL", "t"], ["PTTL", "missing"], ["TTL", "missing"],
                                    ["EXPIRE", "t", "100"], ["TTL", "t"], ["EXPIRE", "t", "200", "NX"], ["EXPIRE", "t", "50", "XX"], ["TTL", "t"],
                                    ["EXPIRE", "t", "10", "GT"], ["EXPIRE", "t", "100", "gt"], ["TTL", "t"], ["EXPIRE", "t", "500", "LT"],
                                    ["EXPIRE", "t", "20", "LT"], ["TTL", "t"], ["EXPIRE", "t", "10", "NX", "XX"], ["EXPIRE", "t", "10", "GT", "LT"],
                                    ["EXPIRE", "t", "10", "FOO"], ["EXPIRE", "t", "abc", "FOO"], ["EXPIRE", "t", "abc"],
                                    ["EXPIRE", "t", maxInt], ["PEXPIRE", "t", maxInt], ["EXPIRE", "missing", "10"], ["PERSIST", "t"],
                                    ["PERSIST", "t"], ["TTL", "t"], ["PEXPIRE", "t", "100000"], ["TTL", "t"], ["SET", "u", "v"],
                                    ["EXPIRE", "u", "10", "GT"], ["EXPIRE", "u", "10", "LT"], ["TTL", "u"], ["EXPIRE", "u", "-1"],
                                    ["EXISTS", "u"], ["EXPIRE", "u", "10", "XX"], ["EXPIRE"], ["TTL"], ["PERSIST", "a", "b"])),
        KVStep("command errors", kvPipeline(["FOO"], ["foo", "a", "b"], ["nope", String(repeating: "x", count: 100), String(repeating: "y", count: 100), "z"],
                                            ["bad\r\nname", "a\nb"], ["GET"], ["GET", "a", "b"], ["SET", "k"], ["set"], ["CLIENT"],
                                            ["CLIENT", "FOO"], ["client", "foo", "bar"], ["CLIENT", "SETNAME"], ["CLIENT", "SETNAME", "a b"],
                                            ["CLIENT", "SETNAME", "ok"], ["CLIENT", "GETNAME"], ["CLIENT", "SETNAME", ""], ["CLIENT", "GETNAME"],
                                            ["CLIENT", "GETNAME", "x"], ["CONFIG"], ["CONFIG", "FOO"], ["CONFIG", "GET"], ["CONFIG", "GET", "save"],
                                            ["CONFIG", "GET", "appendonly"], ["CONFIG", "GET", "SAVE"], ["CONFIG", "GET", "no-such-parameter"],
                                            ["COMMAND", "FOO"], ["COMMAND", "COUNT", "x"], ["COMMAND", "DOCS", "no-such-command"],
                                            ["SELECT", "0"], ["SELECT", "x"], ["SELECT", "00"], ["FLUSHALL", "X"], ["FLUSHALL", "ASYNC", "SYNC"],
                                            ["DBSIZE", "x"], ["PING", "a", "b"], ["ECHO"], ["KEYS"], ["TYPE"])),
        KVStep("keys", kvPipeline(["FLUSHALL", "SYNC"], ["MSET", "hello", "1", "hallo", "2", "hxllo", "3", "h*llo", "4", "a\\b", "5", "k1", "6"],
                                  ["KEYS", "hel*"], ["KEYS", "h[a]llo"], ["KEYS", "h[^ae*]llo"], ["KEYS", "h\\*llo"], ["KEYS", "a\\\\b"],
                                  ["KEYS", "k[1-2"], ["KEYS", "nothing*"], ["KEYS", "h[z-x]llo"], ["KEYS", "?1"], ["KEYS", "*1"],
                                  ["KEYS", "**1"], ["KEYS", "k\\"], ["KEYS", ""], ["DBSIZE"], ["FLUSHALL", "async"], ["DBSIZE"], ["KEYS", "*"])),
        KVStep("expiry, part 1", kvPipeline(["SET", "x1", "v", "PX", "100"], ["SET", "x2", "v", "PX", "100"], ["SET", "x3", "v", "EX", "100"],
                                            ["SET", "x4", "v"], ["PEXPIRE", "x4", "100"], ["DBSIZE"]), waitAfter: .milliseconds(350)),
        // (Not TTL x3: after the wait, a stalled machine could round it differently on the two servers.)
        KVStep("expiry, part 2", kvPipeline(["GET", "x1"], ["EXISTS", "x2"], ["EXISTS", "x3"], ["TTL", "x4"], ["PERSIST", "x4"],
                                            ["PERSIST", "x3"], ["DBSIZE"])),
        KVStep("pipeline", kvPipeline(["SET", "p", "0"], ["INCR", "p"], ["INCR", "p"], ["GET", "p"], ["MSET", "p1", "a", "p2", "b"],
                                      ["MGET", "p", "p1", "p2"], ["DEL", "p1"], ["EXISTS", "p1", "p2"], ["INCRBY", "p", "40"],
                                      ["APPEND", "p", "!"], ["GET", "p"], ["INCR", "p"], ["SET", "p", "1", "XX", "GET"], ["PING"],
                                      ["ECHO", "done"])),
        KVStep("inline", Array("PING\r\nping hello\nSET il \"a b\\x41\\n\"\r\nGET il\r\n\r\n   \r\nSET sq 'x\\'y'\r\nGET sq\r\nEXISTS il sq\r\n".utf8)),
        KVStep("empty multibulk", Array("*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n".utf8)),
        KVStep("skipped bulk terminator", Array("*2\r\n$4\r\nECHO\r\n$3\r\nfoox\r\n".utf8)),
        KVStep("partial frames", Array("*3\r\n$3\r\nSET\r\n$2\r\npf".utf8), Array("\r\n$5\r\nhel".utf8),
               Array("lo\r\n*2\r\n$3\r\nGET\r\n$2\r\npf\r\n*2\r\n$3\r\nGE".utf8), Array("T\r\n$2\r\npf\r\nGET p".utf8), Array("f\r\n".utf8),
               Array("*".utf8), Array("1\r".utf8), Array("\n$".utf8), Array("4\r\nPING\r".utf8), Array("\n".utf8)),
        KVStep("value across reads", Array(bigValue.prefix(100_000)), Array(bigValue.dropFirst(100_000).prefix(100_000)),
               Array(bigValue.dropFirst(200_000)) + kvPipeline(["STRLEN", "bigvalue"], ["GET", "bigvalue"])),
    ]

    /// 300 KB of SET, sent in three parts.
    static let bigValue: [UInt8] = kvCommand([Array("SET".utf8), Array("bigvalue".utf8), (0..<300_000).map { UInt8(ascii: "a") + UInt8($0 % 26) }])

    /// Requests that end the connection, each on a connection of its own.
    static let endings: [KVStep] = [
        KVStep("bulk length over 512 MB", Array("*1\r\n$536870913\r\n".utf8), closes: true),
        KVStep("malformed bulk length after a command", Array("PING\r\n*1\r\n$abc\r\n".utf8), closes: true),
        KVStep("negative bulk length", Array("*1\r\n$-1\r\n".utf8), closes: true),
        KVStep("malformed multibulk length", Array("*abc\r\n".utf8), closes: true),
        KVStep("multibulk length with a plus sign", Array("*+1\r\n$4\r\nPING\r\n".utf8), closes: true),
        KVStep("bulk without a dollar", Array("*1\r\nfoo\r\n".utf8), closes: true),
        KVStep("error after a command in the same read", kvPipeline(["SET", "k", "v"]) + Array("*1\r\n$ 3\r\n".utf8), closes: true),
        KVStep("unbalanced quotes", Array("SET a \"b\r\n".utf8), closes: true),
        KVStep("text after a closing quote", Array("ECHO 'it''s'\r\n".utf8), closes: true),
        KVStep("inline request over 64 KB", [UInt8](repeating: UInt8(ascii: "x"), count: 70_000), closes: true),
        KVStep("quit", Array("PING\r\nQUIT\r\nPING\r\n".utf8), closes: true),
        KVStep("quit with arguments", kvPipeline(["QUIT", "now"]), closes: true),
    ]
}
