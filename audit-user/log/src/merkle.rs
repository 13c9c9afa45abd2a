//! RFC 6962 (and RFC 9162) Merkle tree hashing over the log's records, kept
//! as a compact "frontier": the roots of the perfect subtrees that make up
//! the tree so far, left to right. Appending is amortised O(1) hashes and the
//! state is O(log n), so neither the writer nor `verify` holds the tree.
//!
//! Leaf data is the 32 raw bytes of a record's `hash`, so anyone holding the
//! log (and nothing else) can recompute every checkpoint root.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// SHA-256 of arbitrary bytes.
pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// RFC 6962 leaf hash: SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    if let Ok(h) = <&Hash>::try_from(data) {
        // The case verify meets once per record: one padded block.
        let mut block = [0u8; 64];
        block[1..33].copy_from_slice(h);
        return padded(&mut [block], 33);
    }
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut blocks = [[0u8; 64]; 2];
    blocks[0][0] = 1;
    blocks[0][1..33].copy_from_slice(left);
    blocks[0][33..].copy_from_slice(&right[..31]);
    blocks[1][0] = right[31];
    padded(&mut blocks, 65)
}

/// SHA-256 of the first `len` bytes of `blocks`, which must leave room for
/// the padding (0x80, zeros, the bit length) in its last block. Straight
/// to the compression function: for these short fixed-size inputs the
/// streaming hasher's buffering and finalising cost about as much as the
/// compression itself, and verify computes two per record.
fn padded<const N: usize>(blocks: &mut [[u8; 64]; N], len: usize) -> Hash {
    const IV: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    debug_assert!(len % 64 < 56 && len.div_ceil(64) == N);
    blocks[N - 1][len % 64] = 0x80;
    blocks[N - 1][56..].copy_from_slice(&(len as u64 * 8).to_be_bytes());
    let mut state = IV;
    let blocks = blocks.map(sha2::digest::generic_array::GenericArray::from);
    sha2::compress256(&mut state, &blocks);
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// The tree of `size` leaves, as the roots of its perfect subtrees from the
/// largest (leftmost) to the smallest. Subtree sizes are the set bits of
/// `size`, so there are exactly `size.count_ones()` of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Rebuilds a frontier from its parts (e.g. from a checkpoint record);
    /// None when the number of nodes does not fit the size.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Option<Frontier> {
        (nodes.len() == size.count_ones() as usize).then_some(Frontier { size, nodes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends one leaf, given as its leaf hash.
    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut s = self.size;
        // Each trailing 1 bit of the old size is a subtree of equal size to
        // merge with, exactly like carrying in binary addition.
        while s & 1 == 1 {
            let Some(left) = self.nodes.pop() else { break };
            h = node_hash(&left, &h);
            s >>= 1;
        }
        self.nodes.push(h);
        // 2^64 leaves cannot exist; a forged size must not panic either.
        self.size = self.size.saturating_add(1);
    }

    /// Appends the leaf for a record with this `hash`.
    pub fn push_record(&mut self, record_hash: &Hash) {
        self.push_leaf_hash(leaf_hash(record_hash));
    }

    /// The tree head: MTH of all leaves (SHA-256 of nothing when empty).
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(last) = it.next() else {
            return sha256(b"");
        };
        // MTH(D[n]) = H(1 ‖ MTH(D[0:k]) ‖ MTH(D[k:n])) with k the largest power
        // of two below n: the leftmost subtree, then the rest folded the same way.
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_and_node_hashes_are_the_streaming_sha256() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            let mut h = [0u8; 32];
            for b in &mut h {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            h
        };
        for _ in 0..1000 {
            let (l, r) = (next(), next());
            let leaf: Hash = Sha256::new()
                .chain_update([0u8])
                .chain_update(l)
                .finalize()
                .into();
            assert_eq!(leaf_hash(&l), leaf);
            let node: Hash = Sha256::new()
                .chain_update([1u8])
                .chain_update(l)
                .chain_update(r)
                .finalize()
                .into();
            assert_eq!(node_hash(&l, &r), node);
        }
        // Leaf data of other lengths still takes the streaming path.
        let empty: Hash = Sha256::digest([0u8]).into();
        assert_eq!(leaf_hash(b""), empty);
    }

    /// RFC 6962 section 2.1, written literally.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => sha256(b""),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn frontier_matches_the_rfc_definition() {
        let leaves: Vec<Hash> = (0u32..130).map(|i| sha256(&i.to_le_bytes())).collect();
        let mut f = Frontier::new();
        assert_eq!(f.root(), mth(&[]));
        for (i, l) in leaves.iter().enumerate() {
            f.push_record(l);
            assert_eq!(f.root(), mth(&leaves[..=i]), "size {}", i + 1);
            assert_eq!(f.nodes().len(), (i + 1).count_ones() as usize);
        }
        let again = Frontier::from_parts(f.size(), f.nodes().to_vec()).unwrap();
        assert_eq!(again, f);
        assert!(Frontier::from_parts(3, vec![[0; 32]]).is_none());
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            hex::encode(Frontier::new().root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
