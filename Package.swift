// swift-tools-version: 6.0
import PackageDescription

// Linux only: the core includes <sys/epoll.h> and <sys/eventfd.h>, and the
// backends are Linux interfaces (SwiftPM has no `platforms:` entry for Linux,
// so none is listed; macOS and the others are not supported).
//
// Layers (arrows point down only):
//   Examples/, Tools/           users of the library
//   Reactor                     the umbrella: re-exports the model and every backend; run-time backend choice
//   PollEpoll, PollPoll,
//   PollLibev, PollUring        one Poller each, behind ReactorCore's contract (libev and io_uring
//                               compile to nothing when their Debian headers are missing)
//   ReactorCore                 the model: Poller, Runtime, Resource, handlers, Service, timers, Controller,
//                               errors; and the resources built with it: sockets, pipes, write queues, codecs
//   ProtocolRESP                RESP2 shared by servers and clients (parsers, encoder, RedisClient)
//   ReactorTLS                  TLS without system calls: shared configurations, one engine per connection
//   CReactorTLS                 OpenSSL 3 module map and macro shim (compiled out without libssl-dev)
//   CReactorSys, CLibev, CUring shims for what Swift's Glibc module omits, libev's macros, liburing's include order
//   CAres                       c-ares (libc-ares-dev): DNS on the runtime's poller (compiled out without it)
//   ReactorSync                 the one lock type (Mutex, or a pthread mutex ThreadSanitizer can see)
//
// Protocol modules sit beside the umbrella, on the model (and on ReactorNames to connect by name):
//   ProtocolHTTP1               HTTP/1.1 parsing and encoding for servers and clients, and HTTPClient
let package = Package(
    name: "swift-reactor",
    products: [
        .library(name: "ReactorCore", targets: ["ReactorCore"]),
        .library(name: "PollEpoll", targets: ["PollEpoll"]),
        .library(name: "PollPoll", targets: ["PollPoll"]),
        .library(name: "PollLibev", targets: ["PollLibev"]),
        .library(name: "PollUring", targets: ["PollUring"]),
        .library(name: "Reactor", targets: ["Reactor"]),
        .library(name: "ReactorTLS", targets: ["ReactorTLS"]),
        .library(name: "ReactorNames", targets: ["ReactorNames"]),
        .library(name: "ProtocolRESP", targets: ["ProtocolRESP"]),
        .library(name: "ProtocolHTTP1", targets: ["ProtocolHTTP1"]),
        .executable(name: "echo", targets: ["Echo"]),
        .executable(name: "chat", targets: ["Chat"]),
        .executable(name: "proxy", targets: ["Proxy"]),
        .executable(name: "kv", targets: ["KV"]),
        .executable(name: "http", targets: ["HTTP"]),
        .executable(name: "links", targets: ["Links"]),
        .executable(name: "reactor-microbench", targets: ["Microbench"]),
        .executable(name: "reactor-bench", targets: ["Bench"]),
        .executable(name: "resp-bench", targets: ["RESPBench"]),
        .executable(name: "reactor-fuzz", targets: ["ReactorFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(name: "CReactorSys", path: "Sources/CReactorSys"),
        // The lock every module uses: `Mutex`, or with -DREACTOR_TSAN a pthread mutex (scripts/sanitize.sh).
        .target(name: "ReactorSync"),
        .target(
            name: "ReactorCore",
            dependencies: [
                "CReactorSys",
                "ReactorSync",
                "ReactorTLS",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "PollEpoll", dependencies: ["ReactorCore", "CReactorSys"]),
        .target(name: "PollPoll", dependencies: ["ReactorCore", "CReactorSys"]),
        // libev from Debian's libev-dev; compiles to nothing when the header is absent.
        .systemLibrary(name: "CLibev", path: "Sources/CLibev"),
        .target(name: "PollLibev", dependencies: ["ReactorCore", "CReactorSys", "CLibev"]),
        // io_uring through Debian's liburing-dev; compiles to nothing when the header is absent.
        .systemLibrary(name: "CUring", path: "Sources/CUring"),
        .target(name: "PollUring", dependencies: ["ReactorCore", "CReactorSys", "CUring"]),
        // OpenSSL 3 from Debian's libssl-dev; compiles to nothing when the header is absent,
        // and ReactorTLS then throws "not built" from every entry point.
        .systemLibrary(name: "CReactorTLS", path: "Sources/CReactorTLS"),
        // c-ares from Debian's libc-ares-dev, for name resolution on the runtime's own poller;
        // compiles to nothing when the header is absent (resolving then says "not built").
        .systemLibrary(name: "CAres", path: "Sources/CAres"),
        .target(name: "ReactorNames", dependencies: ["ReactorCore", "CReactorSys", "CAres"]),
        .target(name: "ReactorTLS", dependencies: ["CReactorTLS", "ReactorSync"]),
        // RESP2 for servers and clients: request parsing, reply encoding, reply parsing, RedisClient.
        .target(
            name: "ProtocolRESP",
            dependencies: ["ReactorCore", "ReactorNames", .product(name: "DequeModule", package: "swift-collections")]
        ),
        // HTTP/1.1 as a library: what the http example serves with and the client speaks with.
        .target(name: "ProtocolHTTP1", dependencies: ["ReactorCore", "ReactorNames", "ReactorTLS"]),
        .target(name: "Reactor", dependencies: ["ReactorCore", "ReactorNames", "CReactorSys", "PollEpoll", "PollPoll", "PollLibev", "PollUring", "CLibev", "CUring"]),
        // The example services, in a library so that tests run them in-process too.
        .target(
            name: "ExampleServices",
            dependencies: ["Reactor", "ReactorSync", "ProtocolRESP", "ProtocolHTTP1", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Services"
        ),
        .executableTarget(
            name: "Echo",
            dependencies: ["Reactor", "ExampleServices", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Echo"
        ),
        .executableTarget(
            name: "Chat",
            dependencies: ["Reactor", "ExampleServices", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Chat"
        ),
        .executableTarget(
            name: "KV",
            dependencies: ["Reactor", "ExampleServices", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/KV"
        ),
        .executableTarget(
            name: "HTTP",
            dependencies: ["Reactor", "ExampleServices", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/HTTP"
        ),
        .executableTarget(
            name: "Links",
            dependencies: ["Reactor", "ExampleServices", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Links"
        ),
        .executableTarget(
            name: "Proxy",
            dependencies: ["Reactor", "ExampleServices", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Proxy"
        ),
        .executableTarget(
            name: "Microbench",
            dependencies: [
                "Reactor", "CReactorSys",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/Microbench"
        ),
        // The backend comparison: every backend and the peers (C, SwiftNIO, redis-server) under load.
        .executableTarget(
            name: "Bench",
            dependencies: [
                "Reactor", "PollEpoll", "ReactorTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Tools/Bench"
        ),
        // The RESP client's pipelined throughput and CPU against redis-server: one RedisClient, a RedisPool.
        .executableTarget(
            name: "RESPBench",
            dependencies: ["Reactor", "ProtocolRESP", "CReactorSys", "ReactorTestSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tools/RESPBench"
        ),
        // Fuzzing (scripts/fuzz.sh): one function per parser the network feeds, with the checks it makes;
        // the driver replays inputs through them, or, built with -sanitize=fuzzer -D FUZZING, is libFuzzer.
        .target(
            name: "ReactorFuzzTargets",
            dependencies: ["ReactorCore", "ReactorTLS", "ProtocolRESP", "ProtocolHTTP1", .product(name: "SystemPackage", package: "swift-system")],
            path: "Fuzz/Targets"
        ),
        .executableTarget(name: "ReactorFuzz", dependencies: ["ReactorFuzzTargets"], path: "Fuzz/Driver"),
        // What the test targets share (a plain library, no Testing): threads, clocks and waits;
        // child processes (posix_spawn, which the tools use too), the executables they run, reads
        // with deadlines, the backends under test.
        .target(name: "ReactorTestSupport", dependencies: ["Reactor", "ReactorSync", "CReactorSys", "ReactorTLS"], path: "Tests/Support"),
        .testTarget(name: "ReactorCoreTests", dependencies: ["ReactorCore"]),
        .testTarget(name: "ConformanceTests", dependencies: ["Reactor", "ReactorSync", "ReactorTestSupport"]),
        // Network tests on loopback: the example services in-process under load, edge cases of sockets.
        .testTarget(name: "NetworkTests", dependencies: ["Reactor", "ExampleServices", "ReactorTestSupport"]),
        // The kv and http services against real clients: redis-cli, redis-benchmark, redis-server, curl.
        .testTarget(name: "ServiceTests", dependencies: ["Reactor", "ExampleServices", "ProtocolRESP", "ProtocolHTTP1", "ReactorTestSupport"]),
        // Runs the example executables as a user would; they must be built first
        // (`swift build --build-tests` builds them).
        .testTarget(name: "ExampleTests", dependencies: ["Reactor", "ReactorTestSupport"]),
        // TLS engines in memory and against openssl s_server / s_client, with certificates made at test time.
        .testTarget(name: "TLSTests", dependencies: ["ReactorTLS", "CReactorTLS", "ReactorTestSupport"]),
        // The fuzz targets' committed seeds replayed, and the RESP reply parser against redis-server's recorded replies.
        .testTarget(name: "FuzzTests", dependencies: ["ReactorFuzzTargets", "Reactor", "ProtocolRESP", "ProtocolHTTP1", "ReactorTLS"]),
    ],
    swiftLanguageModes: [.v6]
)
