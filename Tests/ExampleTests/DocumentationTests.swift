// The documentation cannot rot: every Swift block of README.md type-checks
// against the modules just built, and every public declaration of the
// library modules carries a documentation comment.
import Foundation
import ReactorTestSupport
import Testing

@Suite("documentation")
struct DocumentationTests {
    /// The library modules whose public API must be documented.
    static let documentedModules = ["ReactorCore", "ReactorTLS", "Reactor", "PollEpoll", "PollPoll", "PollLibev", "PollUring", "ExampleServices", "ProtocolHTTP1"]

    @Test("every Swift code block in README.md type-checks against the built modules")
    func readmeBlocksCompile() throws {
        let root = try #require(Executables.packageRoot())
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let blocks = Self.swiftBlocks(in: readme)
        #expect(blocks.count >= 3, "README.md should show the library in code; found \(blocks.count) Swift blocks")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-readme-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        for (index, block) in blocks.enumerated() {
            // Each block on its own, as top-level code in a main.swift: a user can paste any one of them.
            let blockDirectory = directory.appendingPathComponent("block\(index + 1)")
            try FileManager.default.createDirectory(at: blockDirectory, withIntermediateDirectories: true)
            let file = blockDirectory.appendingPathComponent("main.swift")
            try block.code.write(to: file, atomically: true, encoding: .utf8)
            let result = try runTool("swiftc", ["-typecheck", "-swift-version", "6"] + (try Self.compilerSearchArguments()) + [file.path],
                                     timeout: .seconds(120))
            #expect(result.status == 0, "README.md block \(index + 1) (line \(block.line)) does not compile:\n\(result.errorOutput)\(result.output)")
        }
    }

    @Test("every public declaration of the library modules is documented")
    func publicDeclarationsAreDocumented() throws {
        let root = try #require(Executables.packageRoot())
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-symbols-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: output) }
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        var undocumented: [String] = []
        for module in Self.documentedModules {
            let result = try runTool("swift-symbolgraph-extract",
                                     ["-module-name", module, "-target", try Self.targetTriple(), "-output-dir", output.path,
                                      "-minimum-access-level", "public"] + (try Self.compilerSearchArguments(xcc: "-Xcc")),
                                     timeout: .seconds(120))
            try #require(result.status == 0, "swift-symbolgraph-extract \(module) failed: \(result.errorOutput)")
            let data = try Data(contentsOf: output.appendingPathComponent("\(module).symbols.json"))
            let graph = try JSONDecoder().decode(SymbolGraph.self, from: data)
            for symbol in graph.symbols where ["public", "open"].contains(symbol.accessLevel) {
                // Members the compiler wrote (Equatable's ==, say) and symbols from other packages are not ours to document.
                guard !symbol.identifier.precise.contains("::SYNTHESIZED::"),
                      let uri = symbol.location?.uri, uri.contains(root.path + "/"), symbol.docComment == nil else { continue }
                let path = uri.components(separatedBy: root.path + "/").last ?? uri
                undocumented.append("\(path):\((symbol.location?.position.line ?? 0) + 1) \(symbol.pathComponents.joined(separator: "."))")
            }
        }
        let list = undocumented.sorted().joined(separator: "\n")
        #expect(undocumented.isEmpty, "\(undocumented.count) public declarations have no /// comment:\n\(list)")
    }

    // MARK: Helpers

    /// The ```swift blocks of a Markdown text, with the line each starts on.
    static func swiftBlocks(in markdown: String) -> [(code: String, line: Int)] {
        var blocks: [(String, Int)] = []
        var current: [String]?
        var start = 0
        for (number, line) in markdown.components(separatedBy: "\n").enumerated() {
            if current == nil, line.trimmingCharacters(in: .whitespaces) == "```swift" {
                current = []
                start = number + 2
            } else if current != nil, line.trimmingCharacters(in: .whitespaces) == "```" {
                blocks.append((current!.joined(separator: "\n") + "\n", start))
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }

    /// `-I` for the built Swift modules and a module map for every C module
    /// of the package and its dependencies (what SwiftPM passes its own compiles).
    static func compilerSearchArguments(xcc: String = "-Xcc") throws -> [String] {
        let modules = try Executables.product("echo").deletingLastPathComponent().appendingPathComponent("Modules")
        let root = try #require(Executables.packageRoot())
        var arguments = ["-I", modules.path]
        for directory in ["Sources", ".build/checkouts"] {
            let base = root.appendingPathComponent(directory)
            guard let walker = FileManager.default.enumerator(atPath: base.path) else { continue }
            for case let path as String in walker where path.hasSuffix("module.modulemap") {
                // Benchmarks and tests of dependencies have module maps of their own that nothing here imports.
                guard !path.contains("Benchmarks/"), !path.contains("Tests/") else { continue }
                arguments += [xcc, "-fmodule-map-file=\(base.appendingPathComponent(path).path)"]
            }
        }
        return arguments
    }

    /// `x86_64-unknown-linux-gnu` or the like, for the symbol-graph extractor.
    static func targetTriple() throws -> String {
        var name = utsname()
        uname(&name)
        let machine = withUnsafeBytes(of: name.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return "\(machine)-unknown-linux-gnu"
    }

    /// The parts of a symbol graph this check reads.
    struct SymbolGraph: Decodable {
        struct Symbol: Decodable {
            struct Identifier: Decodable { var precise: String }
            struct Location: Decodable {
                struct Position: Decodable { var line: Int }
                var uri: String
                var position: Position
            }
            struct DocComment: Decodable {}
            var identifier: Identifier
            var pathComponents: [String]
            var accessLevel: String
            var location: Location?
            var docComment: DocComment?
        }
        var symbols: [Symbol]
    }
}
