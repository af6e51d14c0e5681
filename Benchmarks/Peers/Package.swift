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
        .executable(name: "nio-https", targets: ["NIOHTTPS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", "2.37.0"..<"2.38.0"),
    ],
    targets: [
        .executableTarget(name: "NIOEcho", dependencies: [.product(name: "NIOPosix", package: "swift-nio")]),
        // The greeting handler and bootstrap nio-http and nio-https share, so they differ only in TLS.
        .target(name: "NIOGreeting", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .executableTarget(name: "NIOHTTP", dependencies: [
            "NIOGreeting",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .executableTarget(name: "NIOHTTPS", dependencies: [
            "NIOGreeting",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
