// swift-tools-version: 6.0
// The SwiftNIO peers that `reactor-bench` measures swift-reactor against. A
// package of its own so that the library's build and CI never pay for NIO;
// `reactor-bench` builds it (release) when it runs the peers.
import PackageDescription

let package = Package(
    name: "reactor-bench-peers",
    products: [
        .executable(name: "nio-echo", targets: ["NIOEcho"]),
        .executable(name: "nio-http", targets: ["NIOHTTP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(name: "NIOEcho", dependencies: [.product(name: "NIOPosix", package: "swift-nio")]),
        .executableTarget(name: "NIOHTTP", dependencies: [
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
