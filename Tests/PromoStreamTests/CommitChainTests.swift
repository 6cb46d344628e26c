import PromoStream
import Testing

/// A changelog partition as a broker that shows aborted records leaves it: transactions' records and links, some
/// of them never committed. Offsets as Kafka gives them (a transaction marker takes one after each transaction).
private func link(_ id: String, previous: Int64) -> CommitLink {
    CommitLink(application: "app", transaction: Array(id.utf8), previous: previous)
}

@Test("a commit chain names the transactions that committed, not those that aborted in between, and says where it cannot tell")
func commitChain() {
    // t1 records 0–1, link 2, marker 3 → committed end 3.
    // t2 (killed) records 4–5, link 6, no marker.
    // t3 (the next owner, from end 3) records 7–8, link 9, marker 10 → end 10.
    // t4 (killed before its link) record 11.
    let links: [Int64: CommitLink] = [2: link("t1", previous: -1), 6: link("t2", previous: 3), 9: link("t3", previous: 3)]
    let chain = CommitChain(end: 10, links: links)
    #expect(chain.committed == [Array("t1".utf8), Array("t3".utf8)])
    #expect(chain.knownFrom == 0)
    #expect(chain.verdict(offset: 0, transaction: Array("t1".utf8)) == true)
    #expect(chain.verdict(offset: 4, transaction: Array("t2".utf8)) == false)
    #expect(chain.verdict(offset: 8, transaction: Array("t3".utf8)) == true)
    #expect(chain.verdict(offset: 11, transaction: Array("t4".utf8)) == false, "beyond the committed end")
    #expect(chain.verdict(offset: 1, transaction: nil) == nil, "a record without a header is judged otherwise")
}

@Test("a chain cut by compaction (or written before links existed) judges only above the cut; no group: nothing")
func commitChainCut() {
    // The link before t3 is gone: t3 is known, what lies below its previous end is not.
    let chain = CommitChain(end: 10, links: [9: link("t3", previous: 3)])
    #expect(chain.knownFrom == 3)
    #expect(chain.verdict(offset: 1, transaction: Array("t1".utf8)) == nil)
    #expect(chain.verdict(offset: 5, transaction: Array("t2".utf8)) == false)
    // A link that points forward (a damaged record) stops the walk instead of looping.
    let damaged = CommitChain(end: 10, links: [9: link("t3", previous: 12)])
    #expect(damaged.committed.isEmpty && damaged.knownFrom == 10)
    // Nothing committed yet: every record with a header is uncommitted.
    #expect(CommitChain(end: -1, links: links()).verdict(offset: 0, transaction: Array("t1".utf8)) == false)
    // No group to ask (a benchmark's restore): the chain says nothing.
    #expect(CommitChain(end: nil, links: [:]).verdict(offset: 0, transaction: Array("t1".utf8)) == nil)
}

private func links() -> [Int64: CommitLink] { [2: link("t1", previous: -1)] }

@Test("a link's value round-trips and is told apart from a state record")
func commitLinkCodec() {
    let value = link("m/1a2b/7", previous: 42).encoded()
    #expect(CommitLink.isLink(value))
    #expect(CommitLink.decode(value) == link("m/1a2b/7", previous: 42))
    #expect(CommitLink.decode(Array(value.dropLast())) == nil)
    #expect(!CommitLink.isLink([3, 0, 0]))
}
