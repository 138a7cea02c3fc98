// Package consensus is the chain service of a node: it runs the Tendermint
// machine of consensus/bft over gossipsub and executes blocks with the
// ledger of consensus/ledger, with all the I/O those pure cores leave out.
//
// # Pieces
//
//   - Service (service.go): one loop goroutine owns the engine; gossipsub
//     validators, the API and block-sync handlers read an immutable view
//     published after every step. Validator mode when the node's key is in
//     the height's validator set, follower mode otherwise (bft.Machine
//     decides per height).
//   - Topics: protocol.TopicConsensus carries proposals (KindProposal) and
//     votes (KindVote) in envelopes; its validator rejects bad signatures,
//     bad shapes and non-validators, and ignores other heights (a far-ahead
//     one triggers block sync). Own messages go to the machine directly and
//     are always accepted. protocol.TopicTxs feeds the mempool;
//     protocol.TopicBlocks carries commit announcements (a certificate).
//   - Mempool (mempool.go): signature (verified once, cached for the
//     ledger), nonce and fee checks; bounded; per-sender nonce order;
//     re-checked after each commit.
//   - WAL (wal.go): every own message with its height/round/step, and the
//     proposal this node locks on (so it can re-propose that block after a
//     restart), fsynced before the message that depends on it is sent;
//     replayed into the machine at start-up. A corrupt
//     record in the middle stops start-up (ErrCorruptWAL); a torn last one
//     is deleted.
//   - Block store (store.go): blocks with their commit certificates and a
//     tx index, written in one atomic batch with the WAL pruning. The ledger
//     state is rebuilt from genesis and the blocks at start-up, re-checking
//     every state hash (the ledger's State has no serialised form yet).
//   - Block sync (sync.go): the "blocksync" stream protocol; every fetched
//     block's certificate is verified against its height's validator set
//     before the ledger applies it.
//   - Timers: round timeouts from the machine, a pause after each commit
//     (CommitWait, skipped while the mempool holds a full block), and
//     rebroadcast of the latest own messages on its own backing-off timer.
//   - Events: OnCommit callbacks and, through Config.Events, "chain.block"
//     and "chain.tx" on the API event hub. RegisterAPI adds the HTTP
//     endpoints under /api/v1/chain.
package consensus
