// Every committed seed, replayed through its fuzz target with all the
// target's checks: the corpora stay valid inputs, the targets keep compiling
// and their checks keep holding, without a fuzzing build.
import Foundation
import ReactorFuzzTargets
import ReactorTLS
import Testing

/// The package's Fuzz/Corpus folder, found from this file's place.
let corpusFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus").path

@Suite("Fuzz seed corpora")
struct SeedCorpusTests {
    static var targetNames: [String] { FuzzTarget.all.map(\.name) }

    @Test("every target has a seed corpus, and every corpus a target")
    func corporaMatchTargets() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: corpusFolder).filter { !$0.hasPrefix(".") }.sorted()
        #expect(folders == Self.targetNames.sorted())
    }

    @Test("each seed passes its target's checks", arguments: targetNames)
    func replay(_ name: String) throws {
        let target = try #require(FuzzTarget.named(name))
        if name == "tls-server" && !TLSLibrary.isBuilt { return }  // nothing to fuzz without OpenSSL
        let folder = corpusFolder + "/" + name
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { !$0.hasPrefix(".") }.sorted()
        #expect(files.count >= 3, "a few seeds per target")
        for file in files {
            let bytes = try #require(FileManager.default.contents(atPath: folder + "/" + file), "\(file)")
            #expect(bytes.count <= 4096, "\(name)/\(file): seeds stay small (scripts/fuzz.sh's -max_len)")
            do {
                try target.run(Array(bytes))
            } catch {
                Issue.record("\(name)/\(file): \(error)")
            }
        }
    }
}
